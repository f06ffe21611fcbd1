"""The rotation ledger: what each target was issued, kept in the store.

Where it lives: the metadata of one internal queue per target,
``rotation.ledger.<target>`` in the target's project, under the key
``rotation``. Queue metadata is part of the storage interface every driver
implements (SQLite, Redis, MongoDB), so the ledger needs no driver code and
lives in the same store as the grants' revocation state. The ledger holds
token ids (``jti``) and expiries, never tokens: a token exists only in the
documents delivered to the target.

Concurrent writers (the daemon, ``mailslot rotate revoke`` from a shell, a
second daemon by mistake) are ordered by a compare-and-set on the ledger's
``version``: writing version ``v + 1`` first takes the mark
``rotation.ledger:<project>/<target>/<v + 1>`` with ``GrantStore.consume``,
which every driver makes atomic (one winner), then re-reads the version and
writes. A writer that lost re-reads and decides again; so no update, and no
issued grant, is ever silently overwritten. The mark lapses after
``LEASE_SECONDS``, so a writer that died holding it blocks that target for at
most that long; a writer stalled for longer than that could still lose its
update, which is the documented limit.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable

from queues.errors import MailslotError, QueueNotFound
from queues.rotation.template import Target
from queues.storage.base import Driver

METADATA_KEY = "rotation"
LEASE_SECONDS = 30.0
GRANT = "grant"
CREDENTIALS = "credentials"


class LedgerError(MailslotError):
    """A target's ledger cannot be read (someone edited its queue metadata)."""


@dataclasses.dataclass
class IssuedGrant:
    """One minted grant, without its token."""

    kind: str  # GRANT (from the template) or CREDENTIALS (the credentials queue)
    project: str
    queue: str
    ops: tuple[str, ...]
    jti: str
    exp: int


@dataclasses.dataclass
class Generation:
    """One issue of a target's grants and what became of it."""

    number: int
    issued_at: float
    digest: str
    grants: list[IssuedGrant]
    pickup_deadline: float
    message_id: str | None = None
    delivered: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)
    picked_up: float | None = None
    picked_up_by: str | None = None
    alerted: bool = False
    revoked: float | None = None

    @property
    def expires(self) -> int:
        """When its first grant expires: the target must have moved on by then."""
        return min(g.exp for g in self.grants)

    def is_live(self, now: float) -> bool:
        return any(g.exp > now for g in self.grants)


@dataclasses.dataclass
class Ledger:
    """A target's generations, oldest first, and the write version."""

    target: str
    version: int = 0
    generations: list[Generation] = dataclasses.field(default_factory=list)

    @property
    def current(self) -> Generation | None:
        return self.generations[-1] if self.generations else None

    @property
    def number(self) -> int:
        """The current generation number (0 before the first issue)."""
        return self.generations[-1].number if self.generations else 0

    def find(self, number: int) -> Generation | None:
        return next((g for g in self.generations if g.number == number), None)

    def successor(self, number: int) -> Generation | None:
        return next((g for g in self.generations if g.number > number), None)

    def prune(self, now: float) -> None:
        """Forget generations whose grants have all expired (keep the current)."""
        current = self.current
        self.generations = [g for g in self.generations
                            if g is current or g.is_live(now)]


def to_document(ledger: Ledger) -> dict[str, Any]:
    """Plain JSON data (tuples become lists), as every driver stores it."""
    return json.loads(json.dumps(dataclasses.asdict(ledger)))


def from_document(target: str, data: Any) -> Ledger:
    """Rebuild a ledger from queue metadata; LedgerError if it is not one."""
    try:
        generations = [_generation(g) for g in data["generations"]]
        ledger = Ledger(target=data["target"], version=int(data["version"]),
                        generations=generations)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise LedgerError(f"the ledger of target {target} is unreadable") from None
    if ledger.target != target:
        raise LedgerError(f"the ledger of target {target} names {ledger.target}")
    return ledger


def _generation(data: dict[str, Any]) -> Generation:
    values = dict(data)
    values["grants"] = [IssuedGrant(**{**g, "ops": tuple(g["ops"])})
                        for g in values["grants"]]
    return Generation(**values)


class LedgerStore:
    """Reads and compare-and-set writes of ledgers over a storage driver."""

    def __init__(self, storage: Driver, clock: Callable[[], float]) -> None:
        self._storage = storage
        self._clock = clock
        # Leases this process took and may reuse (a write that failed after
        # taking its lease is retried without waiting for the lease to lapse).
        self._held: dict[str, float] = {}

    async def load(self, target: Target) -> Ledger:
        try:
            metadata = await self._storage.queues.get_metadata(
                target.project, target.ledger_queue)
        except QueueNotFound:
            return Ledger(target.name)
        if METADATA_KEY not in metadata:
            return Ledger(target.name)
        return from_document(target.name, metadata[METADATA_KEY])

    async def store(self, target: Target, ledger: Ledger) -> bool:
        """Write ``ledger`` as its next version; False (nothing written) if
        another writer got there first: re-load and decide again."""
        version = ledger.version + 1
        if not await self._lease(target, version):
            return False
        if (await self.load(target)).version != ledger.version:
            return False
        document = to_document(dataclasses.replace(ledger, version=version))
        await self._storage.queues.create(target.project, target.ledger_queue)
        await self._storage.queues.set_metadata(
            target.project, target.ledger_queue, {METADATA_KEY: document})
        ledger.version = version
        return True

    async def _lease(self, target: Target, version: int) -> bool:
        key = f"rotation.ledger:{target.project}/{target.name}/{version}"
        now = self._clock()
        self._held = {k: until for k, until in self._held.items() if until > now}
        if key in self._held:
            return True
        until = now + LEASE_SECONDS
        if not await self._storage.grants.consume(key, until):
            return False
        self._held[key] = until
        return True
