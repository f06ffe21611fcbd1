"""Store answers cached per worker, stale for at most ``ttl`` seconds.

Message POST and list read their queue's metadata, and signed requests
revocation state (a queue's signing generation, the deny-list), on every
request. Reading the store each time would cost a round trip per request, so
answers are kept for at most ``ttl`` seconds: the documented bound on how
late another worker's change (a revocation, a metadata update) takes effect.
Within that bound, two things keep store reads off the request path:

- **refresh ahead**: an answer used once it is past half its ttl is re-read
  in the background while it is still served, so under steady traffic no
  request waits for the store;
- **one read per key in flight**: requests that find no fresh answer wait
  for the same read instead of each sending their own (with dozens of
  requests in flight per worker, each expiry used to send dozens of
  identical reads, and open connections for them).

A request that suspends for a read of its own costs more than the round
trip: the Redis driver sends the commands of one event-loop turn together,
and a request that waits out an extra round trip leaves the batch it arrived
with, so batches shrink for every request. Measured with wrk on one queue:
a metadata cache that expired every second for all requests in flight at
once cost single POSTs ~15% of their rate; the same pattern in the signed
path made signed POSTs 10-15% slower than unsigned ones (Redis reads per
POST 0.15 unsigned, 0.2-0.37 signed).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

LOG = logging.getLogger("mailslot.api")
# An answer used past this share of its ttl is re-read in the background.
REFRESH_AHEAD_AT = 0.5


class TtlCache(Generic[K, V]):
    """``await cache.get(key)``, or ``cache.fresh(key, now)`` without an await.

    An answer is the value ``fetch(key)`` returned, stamped with the time the
    read was *issued* (it reflects the store at some point after that), and
    used while ``now - issued < ttl``. Values must not be None. With
    ``ttl == 0`` every ``get`` reads the store.
    """

    def __init__(self, fetch: Callable[[K], Awaitable[V]], ttl: float,
                 clock: Callable[[], float], max_entries: int = 100_000) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._max_entries = max_entries
        self._answers: dict[K, tuple[V, float]] = {}
        self._reads: dict[K, tuple[asyncio.Task[V], float]] = {}
        # When a key's last read failed: refreshes ahead wait a while after
        # that (a store that is down is not asked again on every request).
        self._failed: dict[K, float] = {}

    def fresh(self, key: K, now: float) -> V | None:
        """The answer if younger than the ttl, else None. Past half the ttl a
        background re-read starts (needs a running event loop)."""
        answer = self._answers.get(key)
        if answer is None:
            return None
        age = now - answer[1]
        if age >= self._ttl:
            return None
        if age >= self._ttl * REFRESH_AHEAD_AT and key not in self._reads \
                and now - self._failed.get(key, -self._ttl) >= self._ttl * REFRESH_AHEAD_AT:
            self._start_read(key, now)
        return answer[0]

    async def get(self, key: K) -> V:
        """A fresh answer, from the cache or from a read (shared with any
        other caller waiting for the same key; store errors propagate)."""
        now = self._clock()
        value = self.fresh(key, now)
        if value is not None:
            return value
        read = self._reads.get(key)
        # Join a read in flight only if its answer will still be fresh now.
        task = read[0] if read is not None and now - read[1] < self._ttl \
            else self._start_read(key, now)
        # shield: a caller that is cancelled must not cancel the shared read.
        return await asyncio.shield(task)

    def forget(self, key: K) -> None:
        """Drop the answer and any read in flight (its answer is not kept):
        the next ``get`` reads the store. For changes this worker made."""
        self._answers.pop(key, None)
        self._reads.pop(key, None)
        self._failed.pop(key, None)

    async def drain(self) -> None:
        """Wait for the reads in flight (at shutdown)."""
        tasks = [task for task, _ in self._reads.values()]
        await asyncio.gather(*tasks, return_exceptions=True)

    def _start_read(self, key: K, issued: float) -> asyncio.Task[V]:
        task = asyncio.get_running_loop().create_task(self._read(key, issued))
        task.add_done_callback(_note_failure)
        self._reads[key] = (task, issued)
        return task

    async def _read(self, key: K, issued: float) -> V:
        """Read, and keep the answer if this is still the key's current read
        (not replaced by a newer one, not forgotten)."""
        try:
            value = await self._fetch(key)
        except BaseException:
            if self._finish(key):
                self._failed[key] = self._clock()
            raise
        if self._finish(key):
            if key not in self._answers and len(self._answers) >= self._max_entries:
                self._answers.clear()
                self._failed.clear()
            self._answers[key] = (value, issued)
            self._failed.pop(key, None)
        return value

    def _finish(self, key: K) -> bool:
        read = self._reads.get(key)
        if read is None or read[0] is not asyncio.current_task():
            return False
        del self._reads[key]
        return True


def _note_failure(task: asyncio.Task) -> None:
    """Retrieve a read's error. Its waiters get it (a 503); one nobody waited
    for was a refresh ahead, whose answer would not be needed for a while."""
    if not task.cancelled() and task.exception() is not None:
        LOG.debug("a cached store read failed: %s", type(task.exception()).__name__)
