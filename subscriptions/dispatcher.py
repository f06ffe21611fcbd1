"""The dispatcher: lease delivery jobs from the store's outbox, deliver, settle.

Any number of dispatcher processes may run against one store: ``lease`` is
atomic, so a job is held by at most one of them at a time, and every settle
call (``ack``/``retry``/``bury``) carries the lease token, so a worker whose
lease ran out (it was too slow, or paused) cannot change a job another
dispatcher has taken over. A dispatcher killed mid-delivery loses nothing: its
leases expire and the jobs are delivered again (at-least-once; receivers
de-duplicate on ``webhook-id``).

Per job: look the subscription up (cached for ``CACHE_SECONDS``), drop jobs
of deleted, expired or disabled subscriptions and -- with
``require_confirmation`` -- notifications for unconfirmed ones, deliver
through ``Channels``, then let ``classify.decide`` pick the outcome with the
effective ``_retry_policy``: ack, reschedule (a due time in the store, never
a sleeping task), dead-letter, or disable on 410. Every attempt is recorded in
the delivery log. Consecutive retryable failures of one subscription open its
breaker in the store, which every dispatcher honours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any, Callable

from queues.config import DispatchSettings
from queues.errors import MailslotError, QueueNotFound, SubscriptionNotFound
from queues.models import DeliveryAttempt, DeliveryJob, Subscription
from queues.storage.base import Driver
from subscriptions.channels import Channels
from subscriptions.classify import Decision, Outcome, decide
from subscriptions.errors import InvalidRetryPolicy
from subscriptions.payload import InvalidPayload, decode, is_control
from subscriptions.result import DeliveryResult
from subscriptions.retry import DEFAULT_POLICY, RETRY_POLICY, RetryPolicy, effective_policy

LOG = logging.getLogger("mailslot.dispatch")
# How long a subscription or queue policy read is reused.
CACHE_SECONDS = 1.0
# Seconds after the last leased job during which the outbox is polled at the
# minimum interval (traffic tends to continue); only then does polling back
# off towards the maximum, so an idle dispatcher costs little.
ACTIVE_WINDOW = 2.0
# Seconds in-flight deliveries get to finish on shutdown before cancellation.
SHUTDOWN_GRACE = 10.0
UNCONFIRMED = "unconfirmed"


class TimedCache:
    """A small read-through cache; ``None`` results are cached too."""

    def __init__(self, clock: Callable[[], float], ttl: float = CACHE_SECONDS,
                 size: int = 10_000) -> None:
        self._clock, self._ttl, self._size = clock, ttl, size
        self._entries: dict[Any, tuple[Any, float]] = {}

    async def get(self, key: Any, load: Callable[[], Any]) -> Any:
        now = self._clock()
        hit = self._entries.get(key)
        if hit is not None and now - hit[1] < self._ttl:
            return hit[0]
        value = await load()
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[key] = (value, now)
        return value

    def forget(self, key: Any) -> None:
        self._entries.pop(key, None)


class Dispatcher:
    def __init__(self, storage: Driver, settings: DispatchSettings,
                 channels: Channels, *, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        self._storage = storage
        self._settings = settings
        self._channels = channels
        self._clock = clock
        self._rng = rng or random.Random()
        self._subscriptions = TimedCache(clock)
        self._policies = TimedCache(clock)
        self._failures: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.delivered = 0

    # --- the loop -------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Lease and deliver until ``stop`` is set; then let in-flight
        deliveries finish (bounded), and leave the rest to lease expiry."""
        stopping = asyncio.ensure_future(stop.wait())
        busy_until = 0.0
        poll = self._settings.min_poll_interval
        try:
            while not stop.is_set():
                if await self._lease_some():
                    busy_until = time.monotonic() + ACTIVE_WINDOW
                    poll = self._settings.min_poll_interval
                    await asyncio.sleep(0)
                    continue
                await asyncio.wait({stopping, *self._tasks}, timeout=poll,
                                   return_when=asyncio.FIRST_COMPLETED)
                if time.monotonic() >= busy_until:
                    poll = min(poll * 2, self._settings.max_poll_interval)
        finally:
            stopping.cancel()
            await self._drain()

    async def _lease_some(self) -> int:
        """Start deliveries for newly leased jobs; how many were leased."""
        room = self._settings.concurrency - len(self._tasks)
        if room <= 0:
            return 0
        try:
            jobs = await self._storage.jobs.lease(
                room, self._settings.lease_seconds,
                max_in_flight=self._settings.max_in_flight_per_subscription)
        except MailslotError as ex:
            LOG.warning("cannot lease delivery jobs: %s", ex.description)
            return 0
        for job in jobs:
            task = asyncio.create_task(self._handle(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(jobs)

    async def _drain(self) -> None:
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=SHUTDOWN_GRACE)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # --- one job --------------------------------------------------------------

    async def _handle(self, job: DeliveryJob) -> None:
        try:
            await self.process(job)
        except MailslotError as ex:
            LOG.warning("job %s of subscription %s left to its lease: %s",
                        job.id, job.subscription_id, ex.description)
        except Exception:
            LOG.exception("job %s of subscription %s failed unexpectedly",
                          job.id, job.subscription_id)

    async def process(self, job: DeliveryJob) -> None:
        """Deliver one leased job and settle it."""
        subscription = await self._subscription(job)
        if subscription is not None and self._awaits_confirmation(subscription, job):
            # Never drop on a cached answer: it may predate the confirmation.
            self._subscriptions.forget(job.subscription_id)
            subscription = await self._subscription(job)
        if subscription is None:
            await self._settle(job, self._storage.jobs.ack(job.id, job.lease_token))
            return
        if self._awaits_confirmation(subscription, job):
            await self._settle(job, self._storage.jobs.ack(job.id, job.lease_token))
            await self._record(job, DeliveryResult(error=UNCONFIRMED),
                               Decision(Outcome.FAILED, UNCONFIRMED))
            return
        result = await self._channels.deliver(subscription, job, self._clock())
        decision = decide(result, await self._policy(job, subscription),
                          job.attempts, self._clock(), self._rng)
        await self._apply(job, subscription, decision)
        await self._record(job, result, decision)
        await self._track_health(subscription, decision)

    async def _subscription(self, job: DeliveryJob) -> Subscription | None:
        """The live, enabled subscription of a job, or None (drop the job)."""

        async def load() -> Subscription | None:
            try:
                return await self._storage.subscriptions.get(
                    job.project, job.queue, job.subscription_id)
            except SubscriptionNotFound:
                return None

        found = await self._subscriptions.get(job.subscription_id, load)
        if found is None or found.disabled or found.expires <= self._clock():
            return None
        return found

    def _awaits_confirmation(self, subscription: Subscription, job: DeliveryJob) -> bool:
        if not self._settings.require_confirmation or subscription.confirmed:
            return False
        try:
            return not is_control(decode(job.message))
        except InvalidPayload:
            return True

    async def _policy(self, job: DeliveryJob, subscription: Subscription) -> RetryPolicy:
        async def load() -> Any:
            try:
                metadata = await self._storage.queues.get_metadata(job.project, job.queue)
            except QueueNotFound:
                return None
            return metadata.get(RETRY_POLICY)

        queue_raw = await self._policies.get((job.project, job.queue), load)
        try:
            return effective_policy(queue_raw, subscription.options.get(RETRY_POLICY))
        except InvalidRetryPolicy:
            return DEFAULT_POLICY  # stored before validation existed; still deliver

    async def _apply(self, job: DeliveryJob, subscription: Subscription,
                     decision: Decision) -> None:
        jobs, token = self._storage.jobs, job.lease_token
        if decision.outcome is Outcome.DELIVERED:
            self.delivered += 1
            await self._settle(job, jobs.ack(job.id, token))
        elif decision.outcome is Outcome.RETRY:
            due = self._clock() + (decision.delay or 0.0)
            await self._settle(job, jobs.retry(job.id, token, due))
        elif decision.outcome is Outcome.DISABLED:
            await self._storage.subscriptions.disable(subscription.id)
            self._subscriptions.forget(subscription.id)
            LOG.warning("subscription %s disabled: %s", subscription.id, decision.reason)
            await self._settle(job, jobs.bury(job.id, token, decision.reason))
        else:  # FAILED (final) or DEAD (retries exhausted)
            await self._settle(job, jobs.bury(job.id, token, decision.reason))

    @staticmethod
    async def _settle(job: DeliveryJob, call: Any) -> None:
        if not await call:
            LOG.info("job %s: lease lost to another dispatcher; its outcome stands",
                     job.id)

    async def _record(self, job: DeliveryJob, result: DeliveryResult,
                      decision: Decision) -> None:
        error = result.error
        if error is None and decision.outcome not in (Outcome.DELIVERED,) \
                and result.status is None:
            error = decision.reason
        attempt = DeliveryAttempt(
            job.subscription_id, job.message_id, job.id, job.attempts, self._clock(),
            decision.outcome.value, result.status, error, round(result.latency_ms, 3),
            result.response or result.detail)
        await self._storage.jobs.record(attempt, keep=self._settings.log_keep,
                                        keep_seconds=self._settings.log_keep_seconds)

    async def _track_health(self, subscription: Subscription, decision: Decision) -> None:
        """Open the shared breaker after ``breaker_failures`` retryable
        failures in a row seen by this dispatcher."""
        if decision.outcome is not Outcome.RETRY:
            self._failures.pop(subscription.id, None)
            return
        count = self._failures.get(subscription.id, 0) + 1
        if count < self._settings.breaker_failures:
            self._failures[subscription.id] = count
            return
        self._failures.pop(subscription.id, None)
        until = self._clock() + self._settings.breaker_seconds
        with contextlib.suppress(MailslotError):
            await self._storage.jobs.trip(subscription.id, until)
        LOG.warning("subscription %s: breaker open for %.0f s after %d failures",
                    subscription.id, self._settings.breaker_seconds, count)
