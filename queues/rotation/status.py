"""Read-only views of the ledger: ``mailslot rotate status`` and ``--dry-run``.

Neither mints, delivers, posts nor writes anything; neither prints a token.
"""

from __future__ import annotations

import datetime
import urllib.parse
from typing import Callable

from queues.errors import MailslotError
from queues.rotation.daemon import alert_due, rotation_reason
from queues.rotation.ledger import Generation, Ledger, LedgerStore
from queues.rotation.template import Delivery, Target


def when(moment: float | None, now: float) -> str:
    """``2026-11-24T21:33:02Z (in 40 s)``; ``-`` for None."""
    if moment is None:
        return "-"
    stamp = datetime.datetime.fromtimestamp(moment, datetime.timezone.utc)
    delta = int(moment - now)
    relative = f"in {delta} s" if delta >= 0 else f"{-delta} s ago"
    return f"{stamp.strftime('%Y-%m-%dT%H:%M:%SZ')} ({relative})"


async def _per_target(targets: list[Target], ledgers: LedgerStore,
                      render: Callable[[Target, Ledger], list[str]]) -> list[str]:
    """``render`` each target's ledger; a ledger that cannot be read is one
    error line, and the other targets still show."""
    lines = []
    for target in targets:
        try:
            ledger = await ledgers.load(target)
        except MailslotError as ex:
            lines.append(f"{target.name} ({target.project}): error: {ex.description}")
            continue
        lines.extend(render(target, ledger))
    return lines


async def status_lines(targets: list[Target], ledgers: LedgerStore,
                       now: float) -> list[str]:
    """One block per target: generation, issued, expires, pickup, next rotation."""
    return await _per_target(targets, ledgers,
                             lambda target, ledger: _status(target, ledger, now))


def _status(target: Target, ledger: Ledger, now: float) -> list[str]:
    head = f"{target.name} ({target.project}, {target.source})"
    current = ledger.current
    if current is None:
        return [f"{head}: nothing issued yet"]
    picked = (f"{when(current.picked_up, now)} [{current.picked_up_by}]"
              if current.picked_up is not None else "not yet")
    next_rotation = current.expires - target.timing.rotate_before
    live = [_label(g) for g in ledger.generations if g is current or g.is_live(now)]
    return [
        f"{head}: generation {current.number}",
        f"  issued       {when(current.issued_at, now)}",
        f"  expires      {when(current.expires, now)}",
        f"  picked up    {picked} (deadline {when(current.pickup_deadline, now)})",
        f"  next rotation {when(next_rotation, now)}",
        f"  delivered    {', '.join(current.delivered) or '-'}"
        + (f"; failed {', '.join(current.failed)}" if current.failed else ""),
        f"  alerts       {sum(g.alerted for g in ledger.generations)} sent",
        f"  live         {', '.join(live)}",
    ]


def _label(generation: Generation) -> str:
    return f"{generation.number}" + (" (revoked)" if generation.revoked else "")


async def plan_lines(targets: list[Target], ledgers: LedgerStore, max_ttl: int,
                     now: float) -> list[str]:
    """What a pass would do now (``--dry-run``)."""
    return await _per_target(
        targets, ledgers, lambda target, ledger: _plan(target, ledger, max_ttl, now))


def _plan(target: Target, ledger: Ledger, max_ttl: int, now: float) -> list[str]:
    lines = []
    reason = rotation_reason(target, ledger, now)
    if reason is None:
        next_rotation = ledger.current.expires - target.timing.rotate_before
        lines.append(f"{target.name}: generation {ledger.number} is current;"
                     f" next rotation {when(next_rotation, now)}")
    else:
        ttl = min(target.timing.ttl, max_ttl)
        grants = [f"{'+'.join(g.ops)} on {g.project}/{g.queue}" for g in target.grants]
        if target.credentials_queue:
            grants.append(f"delete+read on {target.project}/{target.credentials_queue}")
        lines.append(f"{target.name}: would issue generation {ledger.number + 1}"
                     f" ({reason}), ttl {ttl} s: {'; '.join(grants)}")
        lines.append(f"  deliver to: {', '.join(_channel(d) for d in target.deliver)}")
    for generation in ledger.generations:
        if alert_due(ledger, generation, now):
            lines.append(f"  would alert on {target.project}/{target.alerts_queue}:"
                         f" generation {generation.number} not picked up by"
                         f" {when(generation.pickup_deadline, now)}")
    return lines


def _channel(delivery: Delivery) -> str:
    if delivery.kind == "queue":
        return f"queue {delivery.queue}"
    if delivery.kind == "file":
        return f"file {delivery.path} (mode {delivery.mode:04o})"
    return f"webhook {urllib.parse.urlsplit(delivery.url).netloc}"
