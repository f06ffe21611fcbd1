"""Acceptance: rotation over ~20 s of real time, on every store.

ttl 6 s, rotate_before 3 s, min_overlap 1 s, a pass every 0.5 s
(``service.serve``, the daemon's own loop), real signing keys and the real
API (``create_app``). Two "VMs" (integration.md §6.4 point 7):

* ``vm-a`` every 0.25 s reads its file and its credentials queue (with the
  newest credentials grant it holds), adopts the highest generation ("latest
  wins"), acks the queue documents, and posts a heartbeat with its newest
  grant. It also keeps using every older grant it holds until just before
  that grant's own expiry, and checks each is refused just after it.
* ``vm-b`` never picks anything up.

After ~12 s the test revokes ``vm-a`` from a second Rotator (as
``mailslot rotate revoke`` would, while the daemon runs).

Asserted: until the revoke, every heartbeat succeeded and the newest grant
held was never expired; every generation reached both the queue and the
file; older grants worked until their own expiry and not after; after the
revoke, every old grant is refused within ``signing.revocation_cache_ttl``
and a new generation is issued and works; ``vm-b`` got exactly one alert
per missed generation and ``vm-a`` none.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import pathlib
import time

import pytest

from queues.rotation import service

pytestmark = pytest.mark.slow

TIMING = {"ttl": 6, "rotate_before": 3, "min_overlap": 1}
CHECK_INTERVAL = 0.5
REVOCATION_CACHE_TTL = 0.5
TICK = 0.25
REVOKE_AFTER = 12.0
RUN_FOR = 20.0
# exp is exclusive and whole seconds: "before" and "after" keep this margin.
MARGIN = 0.3


@dataclasses.dataclass
class VM:
    """A VM that follows its documents, as the README tells it to."""

    env: object
    name: str
    file: pathlib.Path
    documents: dict[int, dict] = dataclasses.field(default_factory=dict)
    seen_file: set[int] = dataclasses.field(default_factory=set)
    seen_queue: set[int] = dataclasses.field(default_factory=set)
    heartbeats: list[tuple[float, int, int]] = dataclasses.field(default_factory=list)
    old_grant_failures: list[str] = dataclasses.field(default_factory=list)
    expired_checked: set[int] = dataclasses.field(default_factory=set)

    @property
    def newest(self) -> dict | None:
        return self.documents[max(self.documents)] if self.documents else None

    def adopt(self, document: dict) -> None:
        self.documents.setdefault(document["generation"], document)

    async def refresh(self) -> None:
        if self.file.exists():
            document = json.loads(self.file.read_text())
            self.seen_file.add(document["generation"])
            self.adopt(document)
        newest = self.newest
        if newest is None:
            return
        result = await self.env.use(newest["credentials"]["url"], "GET")
        if result.status_code == 401:  # revoked: wait for the file
            return
        assert result.status_code in (200, 204), result.text
        for message in (result.json or {}).get("messages", []):
            self.seen_queue.add(message["body"]["generation"])
            self.adopt(message["body"])
            assert await self.env.ack(newest["credentials"], message["id"]) == 204

    async def heartbeat(self) -> None:
        newest, now = self.newest, time.time()
        if newest is None:
            return
        grant = newest["grants"][0]
        assert grant["expires"] > now, "the VM holds only expired grants"
        status = await self.env.post_with(grant)
        # When it was answered: a request answered before the revoke began
        # must have worked (one in flight meanwhile may be refused).
        self.heartbeats.append((time.time(), newest["generation"], status))

    async def use_old_grants(self, revoked_before: int) -> None:
        """Older generations work until their own expiry, and not after."""
        for number, document in sorted(self.documents.items())[:-1]:
            if number < revoked_before:
                continue
            grant, now = document["grants"][0], time.time()
            if now < grant["expires"] - MARGIN:
                if await self.env.post_with(grant) != 201:
                    self.old_grant_failures.append(f"gen {number} refused early")
            elif now > grant["expires"] + MARGIN and number not in self.expired_checked:
                self.expired_checked.add(number)
                if await self.env.post_with(grant) != 401:
                    self.old_grant_failures.append(f"gen {number} works after exp")


async def run_vm(vm: VM, stop: asyncio.Event, state: dict) -> None:
    while not stop.is_set():
        await vm.refresh()
        await vm.heartbeat()
        await vm.use_old_grants(state["revoked_through"] + 1)
        await asyncio.sleep(TICK)


async def revoke_and_watch(env, vm: VM, state: dict) -> None:
    """Revoke from a second Rotator; every held grant must fail within the
    cache bound, then the new generation must work."""
    held = [d["grants"][0] for d in vm.documents.values()]
    held += [d["credentials"] for d in vm.documents.values()]
    before = max(vm.documents)
    state["revoke_started"] = time.time()
    # While the revoke runs, every generation it may cover can be refused:
    # pause the old-grant checks until it has said which one is new.
    state["revoked_through"] = 10**9
    issue = await env.new_rotator().revoke("vm-a")
    revoked_at = time.time()
    state["revoked_through"] = issue.generation.number - 1
    state["revoked_at"] = revoked_at
    assert issue.generation.number > before
    while True:
        statuses = [await env.post_with(g) if "post" in g["ops"] else
                    (await env.use(g["url"], "GET")).status_code for g in held]
        if all(status == 401 for status in statuses):
            break
        assert time.time() - revoked_at < REVOCATION_CACHE_TTL + MARGIN, statuses
        await asyncio.sleep(0.05)
    state["refused_after"] = time.time() - revoked_at
    while vm.newest["generation"] < issue.generation.number:
        assert time.time() - revoked_at < 2.0, "the new generation did not arrive"
        await asyncio.sleep(0.05)
    state["new_generation"] = issue.generation.number


async def test_rotation_end_to_end(make_env, tmp_path):
    targets = [
        {"name": name, "grants": [{"queue": "events", "ops": ["post"]}],
         "deliver": [{"kind": "queue"},
                     {"kind": "file", "path": str(tmp_path / f"{name}.json")}]}
        for name in ("vm-a", "vm-b")]
    env = make_env(targets, timing=TIMING,
                   rotation={"check_interval": CHECK_INTERVAL},
                   signing={"revocation_cache_ttl": REVOCATION_CACHE_TTL})
    vm = VM(env, "vm-a", tmp_path / "vm-a.json")
    stop, state = asyncio.Event(), {"revoked_through": 0}
    started = time.time()
    daemon = asyncio.create_task(service.serve(env.rotator, CHECK_INTERVAL, stop))
    vm_task = asyncio.create_task(run_vm(vm, stop, state))
    try:
        await asyncio.sleep(REVOKE_AFTER)
        await revoke_and_watch(env, vm, state)
        await asyncio.sleep(max(0.0, RUN_FOR - (time.time() - started)))
    finally:
        stop.set()
        await asyncio.gather(daemon, vm_task)

    totals = env.rotator.totals
    assert (totals.errors, totals.late, totals.delivery_failures) == (0, 0, 0)
    # Until the revoke: every heartbeat with the newest grant worked.
    assert vm.heartbeats and all(status == 201 for at, _, status in vm.heartbeats
                                 if at < state["revoke_started"])
    # After it: only the new generations, and they work.
    after = [(generation, status) for at, generation, status in vm.heartbeats
             if at > state["revoked_at"] + REVOCATION_CACHE_TTL + MARGIN]
    assert after and all(status == 201 for generation, status in after
                         if generation >= state["new_generation"])
    assert state["refused_after"] <= REVOCATION_CACHE_TTL + MARGIN
    assert vm.old_grant_failures == []
    assert vm.expired_checked, "no older grant was checked at its expiry"

    ledger_a = await env.ledger("vm-a")
    issued = set(range(1, ledger_a.number + 1))
    assert ledger_a.number >= 6  # ~20 s / ~3 s, plus the revoke
    assert vm.seen_file == issued
    assert vm.seen_queue == issued

    alerts = await env.alerts()
    keys = [(a["target"], a["generation"]) for a in alerts]
    assert len(keys) == len(set(keys)), keys
    assert not [k for k in keys if k[0] == "vm-a"], keys
    ledger_b = await env.ledger("vm-b")
    assert ledger_b.number >= 5
    assert {g for t, g in keys if t == "vm-b"} >= set(range(2, ledger_b.number - 1))
    assert all(g.picked_up is None for g in ledger_b.generations)
