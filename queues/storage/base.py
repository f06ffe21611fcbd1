"""The storage interface every driver implements (SQLite, Redis, MongoDB).

All methods are coroutines. Drivers read the time from their ``clock``
(``time.time`` by default) so tests can freeze it. Every multi-step invariant
(post with FIFO counter, claim, DLQ move, pop) is one atomic operation inside
the driver: a SQLite transaction, a Redis Lua script, a MongoDB
single-document update or transaction.

Drivers translate their client library's errors into ``queues.errors`` at this
boundary: an outage is ``StorageUnavailable``; nothing else escapes.
"""

from __future__ import annotations

import abc
from typing import Any, Sequence

from queues.models import (
    Claim, DeliveryAttempt, DeliveryJob, Message, NewMessage, Page, QueueInfo,
    QueueStats, Subscription,
)


class QueueStore(abc.ABC):
    """Queues are named per project and hold a JSON-object of metadata."""

    @abc.abstractmethod
    async def create(
        self, project: str, name: str, metadata: dict[str, Any] | None = None
    ) -> bool:
        """Create the queue; return False (and change nothing) if it exists."""

    @abc.abstractmethod
    async def exists(self, project: str, name: str) -> bool: ...

    @abc.abstractmethod
    async def get_metadata(self, project: str, name: str) -> dict[str, Any]:
        """Stored metadata as written. Raises ``QueueNotFound``."""

    @abc.abstractmethod
    async def set_metadata(
        self, project: str, name: str, metadata: dict[str, Any]
    ) -> None:
        """Replace the metadata. Raises ``QueueNotFound``."""

    @abc.abstractmethod
    async def delete(self, project: str, name: str) -> None:
        """Delete the queue with its messages and claims. Idempotent."""

    @abc.abstractmethod
    async def list(
        self,
        project: str,
        *,
        marker: str | None = None,
        limit: int = 10,
        detailed: bool = False,
        name: str | None = None,
        filters: dict[str, Any] | None = None,
    ) -> Page[QueueInfo]:
        """Queues sorted by name, after ``marker`` (a queue name).

        ``name`` keeps names containing that substring; ``filters`` keeps
        queues whose metadata has each key equal to the value.
        """

    @abc.abstractmethod
    async def count(self, project: str) -> int: ...

    @abc.abstractmethod
    async def stats(self, project: str, name: str) -> QueueStats:
        """Counts of live messages; zeros for a missing queue."""


class MessageStore(abc.ABC):
    @abc.abstractmethod
    async def post(
        self,
        project: str,
        queue: str,
        messages: Sequence[NewMessage],
        client_id: str | None,
    ) -> list[str]:
        """Store a batch atomically, in order, creating the queue if missing.

        Each message takes the next value of the queue's FIFO counter, so a
        batch is contiguous and in request order. Returns the ids in order.
        """

    @abc.abstractmethod
    async def list(
        self,
        project: str,
        queue: str,
        *,
        marker: str | None = None,
        limit: int = 10,
        echo: bool = False,
        client_id: str | None = None,
        include_claimed: bool = False,
        include_delayed: bool = False,
    ) -> Page[Message]:
        """Live messages oldest first, after ``marker`` (opaque, from a page).

        ``echo=False`` hides messages posted with ``client_id``. An unparsable
        marker gives an empty page.
        """

    @abc.abstractmethod
    async def get(self, project: str, queue: str, message_id: str) -> Message:
        """Raises ``MessageNotFound`` (also for expired messages)."""

    @abc.abstractmethod
    async def get_many(
        self, project: str, queue: str, message_ids: Sequence[str]
    ) -> list[Message]:
        """The live messages among ``message_ids``; unknown ids are skipped."""

    @abc.abstractmethod
    async def delete(
        self, project: str, queue: str, message_id: str, claim_id: str | None = None
    ) -> None:
        """Delete one message; a missing message is not an error.

        Without ``claim_id`` a message under a live claim raises
        ``MessageIsClaimed``. With one: ``MessageNotClaimed`` if the message
        was never claimed or its claim was released, ``ClaimExpired`` if the id
        is unknown or expired, ``MessageIsClaimed`` if another live claim
        holds it.
        """

    @abc.abstractmethod
    async def delete_many(
        self,
        project: str,
        queue: str,
        message_ids: Sequence[str],
        claim_ids: Sequence[str] | None = None,
    ) -> None:
        """Delete by ids, claimed or not; with ``claim_ids`` only messages
        held by one of those live claims are deleted."""

    @abc.abstractmethod
    async def pop(self, project: str, queue: str, limit: int) -> list[Message]:
        """Atomically remove and return up to ``limit`` free, visible messages."""

    @abc.abstractmethod
    async def purge(self, project: str, queue: str) -> None:
        """Delete every message of the queue, claimed ones included."""


class ClaimStore(abc.ABC):
    @abc.abstractmethod
    async def create(
        self, project: str, queue: str, *, ttl: int, grace: int, limit: int
    ) -> Claim | None:
        """Claim up to ``limit`` of the oldest free, visible messages.

        Never takes a message held by another live claim. Messages whose life
        ends before the claim's end plus ``grace`` are extended to it. If the
        queue's metadata has ``_max_claim_count`` and ``_dead_letter_queue``,
        a picked message already claimed that many times is moved (same id)
        to the dead-letter queue in the same atomic step instead of being
        returned. Returns None when nothing was claimed.
        """

    @abc.abstractmethod
    async def get(self, project: str, queue: str, claim_id: str) -> Claim:
        """Raises ``ClaimNotFound`` for unknown or expired claims."""

    @abc.abstractmethod
    async def renew(
        self, project: str, queue: str, claim_id: str, *, ttl: int, grace: int
    ) -> None:
        """Restart the claim for ``ttl`` seconds. Raises ``ClaimNotFound``."""

    @abc.abstractmethod
    async def release(self, project: str, queue: str, claim_id: str) -> None:
        """Release the messages at once. Idempotent."""


class SubscriptionStore(abc.ABC):
    """Subscriptions, unique by (project, queue, subscriber URI, options).

    Options compare by ``queues.models.options_digest``: key order does not
    matter, values do. So several subscriptions may share a subscriber URI
    when their options differ (Zaqar allows one per URI); each gets its own
    delivery jobs. Uniqueness holds under concurrent creates and updates.

    Expired subscriptions are invisible at once, and never stand in the way
    of a new one. Deleting a queue keeps its subscriptions (as Zaqar does).
    """

    @abc.abstractmethod
    async def create(self, project: str, queue: str, subscriber: str, *, ttl: int,
                     options: dict[str, Any], secret: str) -> tuple[Subscription, bool]:
        """Create; the bool is False when an unconfirmed one with the same
        subscriber and options existed (it is returned unchanged, ttl and
        secret included). Raises ``Conflict`` when such a one is confirmed.
        Creates the queue if missing."""

    @abc.abstractmethod
    async def get(self, project: str, queue: str, subscription_id: str) -> Subscription:
        """Raises ``SubscriptionNotFound``."""

    @abc.abstractmethod
    async def list(self, project: str, queue: str, *, marker: str | None = None,
                   limit: int = 10) -> Page[Subscription]: ...

    @abc.abstractmethod
    async def update(self, project: str, queue: str, subscription_id: str, *,
                     subscriber: str | None = None, ttl: int | None = None,
                     options: dict[str, Any] | None = None) -> None:
        """A new ``ttl`` restarts expiry from now; ``options`` replaces all.
        Raises ``SubscriptionNotFound``, or ``Conflict`` (and changes
        nothing) when the new subscriber and options are those of another
        live subscription of the queue."""

    @abc.abstractmethod
    async def confirm(self, project: str, queue: str, subscription_id: str,
                      confirmed: bool) -> None:
        """Raises ``SubscriptionNotFound``."""

    @abc.abstractmethod
    async def disable(self, subscription_id: str) -> None:
        """Stop deliveries (the subscriber answered 410). Idempotent."""

    @abc.abstractmethod
    async def delete(self, project: str, queue: str, subscription_id: str) -> None:
        """Idempotent; pending jobs of the subscription are dropped."""

    @abc.abstractmethod
    async def purge(self, project: str, queue: str) -> None:
        """Delete every subscription of the queue."""


class JobStore(abc.ABC):
    """The outbox: delivery jobs written by ``MessageStore.post`` in the same
    atomic step as the messages (one per live, enabled subscription of the
    queue), leased by any number of dispatcher processes.
    """

    @abc.abstractmethod
    async def lease(self, limit: int, lease_seconds: float, *,
                    max_in_flight: int) -> list[DeliveryJob]:
        """Atomically take up to ``limit`` due jobs whose lease is free or
        expired, oldest due first; each gets a new ``lease_token`` and one
        more attempt. A crashed worker's jobs come back when their lease ends.

        Skips subscriptions whose breaker is open, and never lets one
        subscription hold more than ``max_in_flight`` live leases, so one
        slow or dead endpoint cannot take every worker.
        """

    @abc.abstractmethod
    async def ack(self, job_id: str, lease_token: str) -> bool:
        """Delete a delivered job; False (and no change) if the token is stale."""

    @abc.abstractmethod
    async def retry(self, job_id: str, lease_token: str, due: float) -> bool:
        """Release the lease and make the job due again at ``due``; False if stale."""

    @abc.abstractmethod
    async def bury(self, job_id: str, lease_token: str, reason: str) -> bool:
        """Move an exhausted job to its subscription's dead letters; False if stale."""

    @abc.abstractmethod
    async def trip(self, subscription_id: str, until: float) -> None:
        """Open the subscription's breaker: lease none of its jobs before
        ``until`` (shared by every dispatcher)."""

    @abc.abstractmethod
    async def dead_letters(self, subscription_id: str, *, limit: int = 20
                           ) -> list[DeliveryJob]: ...

    @abc.abstractmethod
    async def replay(self, subscription_id: str, job_ids: Sequence[str] | None = None
                     ) -> int:
        """Make dead letters (all, or those listed) due now; returns how many."""

    @abc.abstractmethod
    async def record(self, attempt: DeliveryAttempt, *, keep: int, keep_seconds: float
                     ) -> None:
        """Append to the delivery log, keeping at most ``keep`` attempts per
        subscription and none older than ``keep_seconds``."""

    @abc.abstractmethod
    async def attempts(self, subscription_id: str, *, limit: int = 20
                       ) -> list[DeliveryAttempt]:
        """The newest attempts first."""

    @abc.abstractmethod
    async def redeliver(self, subscription_id: str, message_id: str,
                        message: bytes) -> str:
        """Queue a new job for (subscription, message) now; returns its id."""


class GrantStore(abc.ABC):
    """Shared state behind signed URLs, so every API worker agrees on it.

    The signing generation of a queue survives the queue's deletion, and
    deleting a queue bumps it, so a re-created queue does not honour tokens
    minted for its predecessor.
    """

    @abc.abstractmethod
    async def generation(self, project: str, queue: str) -> int:
        """The queue's current signing generation (0 if never bumped)."""

    @abc.abstractmethod
    async def bump_generation(self, project: str, queue: str) -> int:
        """Invalidate every token of the queue; returns the new generation."""

    @abc.abstractmethod
    async def revoke(self, jti: str, expires: float) -> None:
        """Deny the token id until ``expires`` (its own expiry)."""

    @abc.abstractmethod
    async def revoked(self, jtis: Sequence[str]) -> set[str]:
        """Which of ``jtis`` are revoked."""

    @abc.abstractmethod
    async def consume(self, jti: str, expires: float) -> bool:
        """Atomically mark a one-time token used; False if it already was."""

    @abc.abstractmethod
    async def count_uses(self, counts: dict[str, int], window: int) -> dict[str, int]:
        """Add ``counts`` to each key's counter for the current ``window``
        (seconds, aligned to the epoch) and return the new totals."""


class Driver(abc.ABC):
    """A storage backend: the controllers plus health and lifecycle."""

    queues: QueueStore
    messages: MessageStore
    claims: ClaimStore
    grants: GrantStore
    # Push subscriptions and their delivery outbox (issue 5; being built).
    subscriptions: SubscriptionStore
    jobs: JobStore

    @abc.abstractmethod
    async def is_alive(self) -> bool:
        """True if the store answers; never raises."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and threads; the driver is unusable after."""

    async def wipe(self) -> None:
        """Delete all data of this driver's namespace (tests only)."""
        raise NotImplementedError
