"""Storage contract: the delivery outbox (jobs written by post, leases, dead
letters, delivery log). Runs on every driver that has it."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from queues.errors import StorageUnavailable, SubscriptionNotFound
from queues.models import DeliveryAttempt, NewMessage
from queues.storage import load_driver
from tests.storage.helpers import P, post


@pytest.fixture(autouse=True)
def _needs_jobs(driver):
    if not hasattr(driver, "jobs"):
        pytest.skip("not implemented by this driver yet")


async def subscribe(driver, subscriber: str = "http://h/1", *, queue: str = "q1",
                    ttl: int = 3600):
    created, _ = await driver.subscriptions.create(
        P, queue, subscriber, ttl=ttl, options={}, secret="whsec_x")
    return created


async def lease(driver, limit: int = 1000, seconds: float = 60, cap: int = 1000):
    return await driver.jobs.lease(limit, seconds, max_in_flight=cap)


def attempt(sub_id: str, n: int, *, at: float | None = None) -> DeliveryAttempt:
    when = time.time() if at is None else at
    return DeliveryAttempt(sub_id, f"m{n}", f"j{n}", n, when, "retry", 503, None, 12.5,
                           f"response {n}")


# --- the outbox, written by post --------------------------------------------


async def test_post_writes_one_job_per_message_and_subscription(driver, clock):
    a = await subscribe(driver, "http://h/a")
    b = await subscribe(driver, "http://h/b")
    await subscribe(driver, "http://h/other-queue", queue="q2")
    ids = await driver.messages.post(P, "q1", [
        NewMessage(b'{"k": [1, "\\u00e9"]}', 300),
        NewMessage(b'"text"', 120, 30),
    ], "c1")
    jobs = await lease(driver)
    assert sorted((j.subscription_id, j.message_id) for j in jobs) == sorted(
        (s.id, m) for s in (a, b) for m in ids)
    payloads = {j.message_id: orjson.loads(j.message) for j in jobs}
    assert payloads[ids[0]] == {"body": {"k": [1, "é"]}, "ttl": 300}
    assert payloads[ids[1]] == {"body": "text", "ttl": 120, "delay": 30}
    now = time.time()
    for job in jobs:
        assert (job.project, job.queue) == (P, "q1")
        assert job.created == pytest.approx(now) and job.due == pytest.approx(now)
        assert job.attempts == 1
        assert job.lease_token and job.lease_expires == pytest.approx(now + 60)
    assert len({j.id for j in jobs}) == 4 and len({j.lease_token for j in jobs}) == 4


async def test_no_jobs_without_subscriptions(driver):
    await post(driver, "q1", 1, 2)
    await subscribe(driver)
    assert await lease(driver) == []


async def test_no_jobs_for_expired_or_disabled_subscriptions(driver, clock):
    await subscribe(driver, "http://h/short", ttl=60)
    off = await subscribe(driver, "http://h/off")
    live = await subscribe(driver, "http://h/live")
    await driver.subscriptions.disable(off.id)
    clock.shift(61)
    await post(driver, "q1", 1)
    assert [j.subscription_id for j in await lease(driver)] == [live.id]


async def test_disabled_subscription_jobs_are_not_leased(driver):
    sub = await subscribe(driver)
    await post(driver, "q1", 1)
    await driver.subscriptions.disable(sub.id)
    assert await lease(driver) == []


async def test_post_and_jobs_commit_together(driver, driver_name):
    """A post that fails writes neither its messages nor its jobs."""
    if driver_name != "sqlite":
        pytest.skip("failure injected with a SQLite trigger")
    await subscribe(driver)

    def add_trigger(conn, now):
        conn.execute("CREATE TEMP TRIGGER fail_jobs BEFORE INSERT ON main.jobs"
                     " BEGIN SELECT RAISE(ABORT, 'injected'); END")

    await driver.db.run(add_trigger)
    with pytest.raises(StorageUnavailable):
        await post(driver, "q1", 1, 2)
    await driver.db.run(lambda conn, now: conn.execute("DROP TRIGGER fail_jobs"))
    assert (await driver.messages.list(P, "q1", echo=True)).items == []
    assert (await driver.queues.stats(P, "q1")).total == 0
    assert await lease(driver) == []
    # The FIFO counter rolled back too: the next post's marker is the first.
    await post(driver, "q1", 3)
    page = await driver.messages.list(P, "q1", echo=True)
    assert [m.marker for m in page.items] == [1]


async def test_jobs_are_visible_only_with_their_messages(driver, tmp_path):
    """While another driver instance posts, a lease never returns a job whose
    message is not stored, and never misses the job of a stored message."""
    await subscribe(driver)
    other = _second_driver(driver, tmp_path)
    if other is None:
        pytest.skip("needs a second instance on the same store")
    done = asyncio.Event()

    async def producer():
        for n in range(60):
            await post(other, "q1", *range(n, n + 5))
        done.set()

    async def consumer():
        seen = 0
        for _ in range(10_000):
            finished = done.is_set()
            stored = (await driver.queues.stats(P, "q1")).total
            jobs = await lease(driver)
            assert seen + len(jobs) >= stored
            if jobs:
                found = await driver.messages.get_many(P, "q1",
                                                       [j.message_id for j in jobs])
                assert {m.id for m in found} == {j.message_id for j in jobs}
            seen += len(jobs)
            if finished and not jobs:
                break
        return seen

    try:
        _, seen = await asyncio.gather(producer(), consumer())
    finally:
        await other.close()
    assert seen == 300


# --- leasing -----------------------------------------------------------------


async def test_lease_takes_oldest_due_first_up_to_limit(driver):
    await subscribe(driver)
    ids = await post(driver, "q1", *range(5))
    first = await lease(driver, limit=2)
    assert [j.message_id for j in first] == ids[:2]
    rest = await lease(driver, limit=10)
    assert [j.message_id for j in rest] == ids[2:]
    assert await lease(driver) == []


async def test_lease_orders_by_due_time(driver, clock):
    await subscribe(driver)
    await post(driver, "q1", 0, 1, 2)
    jobs = await lease(driver)
    now = time.time()
    for job, delay in zip(jobs, [10, 5, 20]):
        assert await driver.jobs.retry(job.id, job.lease_token, now + delay)
    clock.shift(30)
    again = await lease(driver, limit=2)
    assert [j.id for j in again] == [jobs[1].id, jobs[0].id]
    assert [j.due for j in again] == pytest.approx([now + 5, now + 10])


async def test_lease_orders_across_subscriptions(driver, clock):
    a = await subscribe(driver, "http://h/a")
    await post(driver, "q1", "early")
    clock.shift(1)
    b = await subscribe(driver, "http://h/b")
    await post(driver, "q1", "late")
    jobs = [(j.subscription_id, orjson.loads(j.message)["body"])
            for j in await lease(driver)]
    assert jobs[0] == (a.id, "early")
    assert sorted(jobs[1:]) == sorted([(a.id, "late"), (b.id, "late")])


async def test_expired_lease_is_leased_again_with_new_token(driver, clock):
    await subscribe(driver)
    await post(driver, "q1", 1)
    [first] = await lease(driver, seconds=30)
    clock.shift(29)
    assert await lease(driver) == []
    clock.shift(2)
    [second] = await lease(driver, seconds=30)
    assert second.id == first.id
    assert second.lease_token != first.lease_token
    assert second.attempts == 2
    assert second.lease_expires == pytest.approx(time.time() + 30)


async def test_stale_token_changes_nothing(driver, clock):
    await subscribe(driver)
    await post(driver, "q1", 1)
    [old] = await lease(driver, seconds=30)
    clock.shift(31)
    [new] = await lease(driver, seconds=30)
    assert await driver.jobs.ack(old.id, old.lease_token) is False
    assert await driver.jobs.retry(old.id, old.lease_token, time.time()) is False
    assert await driver.jobs.bury(old.id, old.lease_token, "late") is False
    assert await driver.jobs.dead_letters(new.subscription_id) == []
    assert await lease(driver) == []  # still held by the new lease
    clock.shift(31)
    [third] = await lease(driver)
    assert third.id == old.id and third.attempts == 3


async def test_unknown_job_or_token(driver):
    await subscribe(driver)
    await post(driver, "q1", 1)
    [job] = await lease(driver)
    assert await driver.jobs.ack("bogus", job.lease_token) is False
    assert await driver.jobs.ack(job.id, "bogus") is False
    assert await driver.jobs.retry(job.id, "bogus", time.time()) is False
    assert await driver.jobs.bury(job.id, "bogus", "x") is False
    assert await driver.jobs.ack(job.id, job.lease_token) is True


async def test_ack_deletes_the_job(driver, clock):
    await subscribe(driver)
    await post(driver, "q1", 1)
    [job] = await lease(driver, seconds=30)
    assert await driver.jobs.ack(job.id, job.lease_token) is True
    assert await driver.jobs.ack(job.id, job.lease_token) is False
    clock.shift(31)
    assert await lease(driver) == []


async def test_late_ack_before_takeover_still_counts(driver, clock):
    await subscribe(driver)
    await post(driver, "q1", 1)
    [job] = await lease(driver, seconds=30)
    clock.shift(31)
    assert await driver.jobs.ack(job.id, job.lease_token) is True
    assert await lease(driver) == []


async def test_in_flight_cap_per_subscription(driver):
    a = await subscribe(driver, "http://h/a")
    await post(driver, "q1", *range(5))
    b = await subscribe(driver, "http://h/b")
    await post(driver, "q1", "b")
    first = await lease(driver, limit=10, cap=2)
    assert sorted(j.subscription_id for j in first) == sorted([a.id, a.id, b.id])
    assert await lease(driver, cap=2) == []
    done = next(j for j in first if j.subscription_id == a.id)
    assert await driver.jobs.ack(done.id, done.lease_token)
    assert [j.subscription_id for j in await lease(driver, cap=2)] == [a.id]
    assert await lease(driver, cap=2) == []


async def test_in_flight_cap_frees_with_expired_leases(driver, clock):
    await subscribe(driver)
    await post(driver, "q1", *range(4))
    assert len(await lease(driver, seconds=30, cap=2)) == 2
    clock.shift(31)
    # The two expired leases no longer count; those same jobs come first.
    assert [j.attempts for j in await lease(driver, seconds=30, cap=2)] == [2, 2]


async def test_breaker_blocks_leasing_until_it_closes(driver, clock):
    tripped = await subscribe(driver, "http://h/down")
    fine = await subscribe(driver, "http://h/up")
    await post(driver, "q1", 1)
    await driver.jobs.trip(tripped.id, time.time() + 30)
    assert [j.subscription_id for j in await lease(driver)] == [fine.id]
    clock.shift(29)
    assert await lease(driver) == []
    clock.shift(2)
    assert [j.subscription_id for j in await lease(driver)] == [tripped.id]


async def test_trip_again_moves_the_end(driver, clock):
    sub = await subscribe(driver)
    await post(driver, "q1", 1)
    await driver.jobs.trip(sub.id, time.time() + 300)
    await driver.jobs.trip(sub.id, time.time() + 10)
    clock.shift(11)
    assert len(await lease(driver)) == 1


async def test_retry_sets_due_and_frees_the_lease(driver, clock):
    await subscribe(driver)
    await post(driver, "q1", 1)
    [job] = await lease(driver, seconds=300)
    assert await driver.jobs.retry(job.id, job.lease_token, time.time() + 10) is True
    # The old token is spent.
    assert await driver.jobs.ack(job.id, job.lease_token) is False
    clock.shift(9)
    assert await lease(driver) == []
    clock.shift(2)
    [again] = await lease(driver)
    assert again.id == job.id and again.attempts == 2
    assert again.message == job.message


async def test_bury_moves_to_dead_letters(driver):
    sub = await subscribe(driver)
    other = await subscribe(driver, "http://h/2")
    await post(driver, "q1", 1)
    jobs = await lease(driver)
    job = next(j for j in jobs if j.subscription_id == sub.id)
    assert await driver.jobs.bury(job.id, job.lease_token, "exhausted") is True
    assert await driver.jobs.bury(job.id, job.lease_token, "again") is False
    assert await driver.jobs.ack(job.id, job.lease_token) is False
    [dead] = await driver.jobs.dead_letters(sub.id)
    assert (dead.id, dead.message_id, dead.message) == (job.id, job.message_id,
                                                        job.message)
    assert dead.attempts == 1 and dead.lease_token is None
    assert await driver.jobs.dead_letters(other.id) == []


async def test_dead_letters_are_never_leased(driver, clock):
    sub = await subscribe(driver)
    await post(driver, "q1", 1)
    [job] = await lease(driver, seconds=10)
    await driver.jobs.bury(job.id, job.lease_token, "exhausted")
    clock.shift(600)
    assert await lease(driver) == []
    assert len(await driver.jobs.dead_letters(sub.id)) == 1


async def test_dead_letters_limit(driver):
    sub = await subscribe(driver)
    await post(driver, "q1", *range(5))
    for job in await lease(driver):
        await driver.jobs.bury(job.id, job.lease_token, "x")
    assert len(await driver.jobs.dead_letters(sub.id, limit=3)) == 3
    assert len(await driver.jobs.dead_letters(sub.id)) == 5


async def test_replay_all_dead_letters(driver):
    sub = await subscribe(driver)
    await post(driver, "q1", 1, 2)
    jobs = await lease(driver)
    for job in jobs:
        await driver.jobs.retry(job.id, job.lease_token, time.time())
    for job in await lease(driver):
        await driver.jobs.bury(job.id, job.lease_token, "x")
    assert await driver.jobs.replay(sub.id) == 2
    assert await driver.jobs.dead_letters(sub.id) == []
    again = await lease(driver)
    assert sorted(j.id for j in again) == sorted(j.id for j in jobs)
    assert [j.attempts for j in again] == [1, 1]
    assert await driver.jobs.replay(sub.id) == 0


async def test_replay_listed_dead_letters(driver):
    sub = await subscribe(driver)
    await post(driver, "q1", 1, 2, 3)
    jobs = await lease(driver)
    for job in jobs:
        await driver.jobs.bury(job.id, job.lease_token, "x")
    assert await driver.jobs.replay(sub.id, [jobs[1].id, "bogus"]) == 1
    assert [j.id for j in await lease(driver)] == [jobs[1].id]
    assert {j.id for j in await driver.jobs.dead_letters(sub.id)} == {
        jobs[0].id, jobs[2].id}
    assert await driver.jobs.replay(sub.id, []) == 0
    assert await driver.jobs.replay("other", [jobs[0].id]) == 0


async def test_redeliver_queues_a_new_job(driver, clock):
    sub = await subscribe(driver)
    [mid] = await post(driver, "q1", 1)
    [job] = await lease(driver)
    await driver.jobs.ack(job.id, job.lease_token)
    new_id = await driver.jobs.redeliver(sub.id, mid, job.message)
    assert new_id != job.id
    [again] = await lease(driver)
    assert (again.id, again.subscription_id, again.message_id, again.message) == (
        new_id, sub.id, mid, job.message)
    assert (again.project, again.queue, again.attempts) == (P, "q1", 1)
    assert again.due == pytest.approx(time.time())


async def test_redeliver_unknown_subscription(driver):
    with pytest.raises(SubscriptionNotFound):
        await driver.jobs.redeliver("bogus", "m", b"{}")


# --- the delivery log --------------------------------------------------------


async def test_attempts_newest_first_and_bounded_by_count(driver, clock):
    for n in range(5):
        await driver.jobs.record(attempt("s1", n), keep=3, keep_seconds=3600)
        clock.shift(1)
    await driver.jobs.record(attempt("s2", 9), keep=3, keep_seconds=3600)
    got = await driver.jobs.attempts("s1")
    assert [a.attempt for a in got] == [4, 3, 2]
    assert got[0] == attempt("s1", 4, at=got[0].at)
    assert [a.attempt for a in await driver.jobs.attempts("s1", limit=2)] == [4, 3]
    assert [a.attempt for a in await driver.jobs.attempts("s2")] == [9]
    assert await driver.jobs.attempts("nobody") == []


async def test_attempts_bounded_by_age(driver, clock):
    await driver.jobs.record(attempt("s1", 0), keep=10, keep_seconds=60)
    clock.shift(30)
    await driver.jobs.record(attempt("s1", 1), keep=10, keep_seconds=60)
    clock.shift(31)
    await driver.jobs.record(attempt("s1", 2), keep=10, keep_seconds=60)
    assert [a.attempt for a in await driver.jobs.attempts("s1")] == [2, 1]


async def test_attempts_round_trip_every_field(driver):
    full = DeliveryAttempt("s1", "m1", "j1", 3, time.time(), "failed", None,
                           "ConnectError", 1234.5, "")
    await driver.jobs.record(full, keep=10, keep_seconds=60)
    assert await driver.jobs.attempts("s1") == [full]


# --- several dispatchers -----------------------------------------------------


def _second_driver(driver, tmp_path):
    """Another instance on the same store, as a second process would have."""
    if type(driver).__module__.startswith("queues.storage.mongodb"):
        # Its own client on the same server and database.
        hosts = ",".join(f"{host}:{port}" for host, port in
                         driver.client.topology_description.server_descriptions())
        return load_driver(f"mongodb://{hosts}/", timeout=driver.timeout,
                           namespace=driver.db.name)
    if type(driver).__module__.startswith("queues.storage.redis"):
        # Its own connections to the same server, in the same namespace.
        server = driver.client.connection_pool.connection_kwargs
        return load_driver(
            f"redis://{server['host']}:{server['port']}/{server.get('db', 0)}",
            timeout=5, namespace=driver.namespace)
    path = getattr(getattr(driver, "db", None), "path", None)
    if path is None:
        return None
    return load_driver(f"sqlite:///{path}", timeout=5)


async def test_parallel_dispatchers_never_share_a_live_lease(driver, tmp_path):
    for n in range(3):
        await subscribe(driver, f"http://h/{n}")
    for start in range(0, 100, 20):
        await post(driver, "q1", *range(start, start + 20))
    other = _second_driver(driver, tmp_path)
    if other is None:
        pytest.skip("needs a second instance on the same store")

    async def dispatcher(instance):
        taken = []
        for _ in range(300):  # bounded, in case leases are handed out twice
            jobs = await instance.jobs.lease(7, 600, max_in_flight=1000)
            if not jobs:
                break
            taken += [j.id for j in jobs]
            await asyncio.sleep(0)
        return taken

    try:
        mine, theirs = await asyncio.gather(dispatcher(driver), dispatcher(other))
    finally:
        await other.close()
    assert len(mine) + len(theirs) == 300
    assert len(set(mine) | set(theirs)) == 300
    assert mine and theirs
