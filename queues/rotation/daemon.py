"""The rotation daemon: one pass over every target, and ``revoke``.

Each pass, for each target (integration.md §6.3):

1. **Observe pickup** of the current generation (``pickup.observe``).
2. **Re-issue** when there is no generation yet, the template changed, no
   channel ever got the current one, or its first grant expires within
   ``rotate_before``: mint a new set (``Minter``), write it to the ledger
   (compare-and-set, so two writers never issue the same generation), then
   deliver it and delete the superseded credentials-queue documents. The old
   grants are left alone: they work until their own expiry.
   Channels that failed are retried on later passes while this process
   lives (the document, with its tokens, is kept in memory only).
3. **Alert** once per (target, generation) not picked up by its pickup
   deadline, unless a successor was issued before that deadline: one message
   ``{"event": "rotation.pickup_missed", ...}`` on the target's
   ``alerts_queue``. The ledger records the alert before it is posted (a
   compare-and-set write), so no second daemon or pass posts it again.

``revoke`` denies every live grant of the target in the store
(``GrantStore.revoke(jti, exp)``, honoured by every API worker within
``signing.revocation_cache_ttl``) and issues a new generation in the same
ledger write.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from typing import Any, Awaitable, Callable, TypeVar

from queues.config import Settings
from queues.errors import MailslotError, StorageUnavailable
from queues.models import NewMessage
from queues.rotation import pickup
from queues.rotation.delivery import Deliverer, Outcome
from queues.rotation.document import Issue, Minter
from queues.rotation.ledger import (
    CREDENTIALS, LEASE_SECONDS, Generation, Ledger, LedgerStore,
)
from queues.rotation.template import Target
from queues.storage.base import Driver

LOG = logging.getLogger("mailslot.rotation")
WRITE_ATTEMPTS = 20
WRITE_BACKOFF = 0.25
T = TypeVar("T")


@dataclasses.dataclass
class Report:
    """Counters of one pass (or of a process's life)."""

    issued: int = 0
    delivery_failures: int = 0
    picked_up: int = 0
    late: int = 0
    alerts: int = 0
    errors: int = 0

    def add(self, other: Report) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name,
                    getattr(self, field.name) + getattr(other, field.name))


def rotation_reason(target: Target, ledger: Ledger, now: float,
                    retrying: bool = False) -> str | None:
    """Why ``target`` needs a new generation now, or None."""
    current = ledger.current
    if current is None:
        return "first issue"
    if current.revoked is not None:
        return "revoked"
    if current.digest != target.digest():
        return "template changed"
    if not current.delivered and not retrying and (
            current.failed or now - current.issued_at > LEASE_SECONDS):
        return "never delivered"
    left = current.expires - now
    if left < target.timing.rotate_before:
        return f"expires in {max(0, int(left))} s"
    return None


def alert_due(ledger: Ledger, generation: Generation, now: float) -> bool:
    """A missed pickup that matters: not taken by its deadline, and not
    superseded before that deadline either."""
    if generation.alerted or generation.revoked is not None:
        return False
    if generation.picked_up is not None or now < generation.pickup_deadline:
        return False
    successor = ledger.successor(generation.number)
    return successor is None or successor.issued_at > generation.pickup_deadline


class Rotator:
    """Keeps every target of the templates supplied with fresh grants."""

    def __init__(self, settings: Settings, storage: Driver, targets: list[Target],
                 minter: Minter, deliverer: Deliverer,
                 clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._storage = storage
        self._clock = clock
        self.targets = {target.name: target for target in targets}
        self._minter = minter
        self._deliverer = deliverer
        self._ledgers = LedgerStore(storage, clock)
        self._pending: dict[str, tuple[Issue, list[str]]] = {}
        self.totals = Report()

    async def run_pass(self) -> Report:
        """One pass over every target; a target's failure does not stop others."""
        report = Report()
        for target in self.targets.values():
            try:
                await self._tend(target, report)
            except MailslotError as ex:
                report.errors += 1
                LOG.error("target %s: %s", target.name, ex.description)
            except Exception as ex:  # noqa: BLE001 - a bug must not stop the daemon
                report.errors += 1
                LOG.error("target %s: unexpected %s", target.name, type(ex).__name__,
                          exc_info=True)
        self.totals.add(report)
        return report

    async def _tend(self, target: Target, report: Report) -> None:
        await self._observe(target, report)
        issue = await self._rotate(target, report)
        if issue is None:
            await self._retry(target, report)
        await self._alert(target, report)

    async def ledger(self, target: Target) -> Ledger:
        return await self._ledgers.load(target)

    # -- writes -------------------------------------------------------------

    async def _update(self, target: Target,
                      change: Callable[[Ledger], Awaitable[T | None]]) -> T | None:
        """Load, ``change`` (which returns None for "nothing to write"), and
        compare-and-set; on a lost race, load again and re-decide."""
        for _ in range(WRITE_ATTEMPTS):
            ledger = await self._ledgers.load(target)
            result = await change(ledger)
            if result is None:
                return None
            if await self._ledgers.store(target, ledger):
                return result
            await asyncio.sleep(WRITE_BACKOFF)
        raise StorageUnavailable(f"the ledger of target {target.name} stayed busy")

    # -- pickup -------------------------------------------------------------

    async def _observe(self, target: Target, report: Report) -> None:
        async def change(ledger: Ledger) -> Generation | None:
            current = ledger.current
            if current is None or current.picked_up is not None:
                return None
            now = self._clock()
            sign = await pickup.observe(self._storage, target, current, now)
            if sign is None:
                return None
            current.picked_up, current.picked_up_by = now, sign
            return current

        generation = await self._update(target, change)
        if generation is not None:
            report.picked_up += 1
            LOG.info("target %s picked up generation %d (%s)", target.name,
                     generation.number, generation.picked_up_by)

    # -- issue --------------------------------------------------------------

    async def _rotate(self, target: Target, report: Report, *,
                      revoke: bool = False, keep_channel: bool = False) -> Issue | None:
        retrying = target.name in self._pending

        async def change(ledger: Ledger) -> tuple[Issue, str] | None:
            now = self._clock()
            reason = "revoked" if revoke else rotation_reason(target, ledger, now,
                                                               retrying)
            if reason is None:
                return None
            if revoke:
                await self._deny(ledger, now, keep_channel)
            self._note_late(target, ledger, now, report)
            issue = await self._minter.issue(target, ledger.number + 1, now,
                                             ledger.current)
            ledger.generations.append(issue.generation)
            ledger.prune(now)
            return issue, reason

        issued = await self._update(target, change)
        if issued is None:
            return None
        issue, reason = issued
        LOG.info("target %s: generation %d issued (%s)", target.name,
                 issue.generation.number, reason)
        report.issued += 1
        self._pending.pop(target.name, None)
        await self._deliver(target, issue, None, report)
        return issue

    async def _deny(self, ledger: Ledger, now: float, keep_channel: bool) -> None:
        """Deny every live grant (idempotent: a retried write denies again)."""
        for generation in ledger.generations:
            for grant in generation.grants:
                if grant.exp > now and not (keep_channel and grant.kind == CREDENTIALS):
                    await self._storage.grants.revoke(grant.jti, grant.exp)
            generation.revoked = generation.revoked or now

    def _note_late(self, target: Target, ledger: Ledger, now: float,
                   report: Report) -> None:
        current = ledger.current
        if current is not None and current.revoked is None and current.expires <= now:
            report.late += 1
            LOG.warning("target %s: rotated late, its grants expired %d s ago",
                        target.name, int(now - current.expires))

    # -- delivery -----------------------------------------------------------

    async def _deliver(self, target: Target, issue: Issue, only: list[str] | None,
                       report: Report) -> None:
        outcome = await self._deliverer.deliver(target, issue, only)
        report.delivery_failures += len(outcome.failed)
        number = issue.generation.number
        superseded = await self._update(
            target, lambda ledger: self._record(ledger, number, outcome))
        if superseded:
            await self._deliverer.supersede(target, superseded)
        if outcome.failed:
            self._pending[target.name] = (issue, outcome.failed)
        else:
            self._pending.pop(target.name, None)

    async def _record(self, ledger: Ledger, number: int,
                      outcome: Outcome) -> list[str] | None:
        """Note the outcome on generation ``number``; returns the message ids
        of older documents to delete ([] if none, None if it is gone)."""
        generation = ledger.find(number)
        if generation is None:
            return None
        generation.delivered = sorted(set(generation.delivered)
                                      | set(outcome.delivered))
        generation.failed = sorted(set(outcome.failed))
        generation.message_id = outcome.message_id or generation.message_id
        return [g.message_id for g in ledger.generations
                if g.number < number and g.message_id is not None]

    async def _retry(self, target: Target, report: Report) -> None:
        pending = self._pending.get(target.name)
        if pending is None:
            return
        issue, failed = pending
        ledger = await self._ledgers.load(target)
        if ledger.number != issue.generation.number:
            del self._pending[target.name]  # superseded, e.g. by a revoke
            return
        await self._deliver(target, issue, failed, report)

    # -- alerts -------------------------------------------------------------

    async def _alert(self, target: Target, report: Report) -> None:
        async def change(ledger: Ledger) -> Generation | None:
            now = self._clock()
            due = next((g for g in ledger.generations if alert_due(ledger, g, now)),
                       None)
            if due is not None:
                due.alerted = True
            return due

        while (generation := await self._update(target, change)) is not None:
            try:
                await self._post_alert(target, generation)
            except MailslotError:
                await self._update(target, _unmark_alert(generation.number))
                raise
            report.alerts += 1

    async def _post_alert(self, target: Target, generation: Generation) -> None:
        body = alert_document(target, generation)
        LOG.warning("target %s did not pick up generation %d by its deadline",
                    target.name, generation.number)
        await self._storage.messages.post(
            target.project, target.alerts_queue,
            [NewMessage(json.dumps(body).encode(), self._settings.rotation.alert_ttl)],
            None)

    # -- revoke -------------------------------------------------------------

    async def revoke(self, name: str, *, keep_channel: bool = False) -> Issue:
        """Deny every live grant of target ``name`` and issue a new generation."""
        target = self.targets.get(name)
        if target is None:
            raise MailslotError(f"no target named {name!r} in the templates")
        issue = await self._rotate(target, Report(), revoke=True,
                                   keep_channel=keep_channel)
        assert issue is not None  # a revoke always issues
        LOG.warning("target %s: every live grant revoked; generation %d issued",
                    name, issue.generation.number)
        return issue

    async def close(self) -> None:
        await self._deliverer.close()


def _unmark_alert(number: int) -> Callable[[Ledger], Awaitable[bool | None]]:
    """A change that clears ``alerted`` so a later pass posts it after all."""
    async def change(ledger: Ledger) -> bool | None:
        generation = ledger.find(number)
        if generation is None or not generation.alerted:
            return None
        generation.alerted = False
        return True
    return change


def alert_document(target: Target, generation: Generation) -> dict[str, Any]:
    """The ops alert for a missed pickup (no token, no URL)."""
    return {
        "event": "rotation.pickup_missed", "target": target.name,
        "project": target.project, "generation": generation.number,
        "issued_at": int(generation.issued_at),
        "pickup_deadline": int(generation.pickup_deadline),
        "expires": generation.expires,
        "credentials_queue": target.credentials_queue,
        "delivered": generation.delivered, "template": target.source,
    }
