"""The delivery outbox on SQLite: jobs, leases, breakers, dead letters, log.

``write_jobs`` runs inside ``MessageStore.post``'s transaction, so a message
and its jobs are committed together. ``lease`` is one write transaction
(``BEGIN IMMEDIATE`` under the writers' flock), so two dispatcher processes
can never both take a job under a live lease.

A lease walks the subscriptions that have pending jobs (a skip-scan of the
``jobs_pending`` index, one seek per subscription) and takes each eligible
one's oldest due jobs, up to its room under ``max_in_flight``; so a large
backlog behind a full or tripped subscription costs nothing to skip.
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Sequence

from queues.errors import SubscriptionNotFound
from queues.models import DeliveryAttempt, DeliveryJob, NewMessage, notification
from queues.storage.base import JobStore
from queues.storage.sqlite.driver import Database, transaction
from queues.storage.sqlite.rows import placeholders

# Same order as the fields of ``queues.models.DeliveryJob``.
COLUMNS = ("id, subscription_id, project, queue, message_id, message, created, due,"
           " attempts, lease_token, lease_expires")

INSERT_JOB = ("INSERT INTO jobs (id, subscription_id, project, queue, message_id,"
              " message, created, due) VALUES (?,?,?,?,?,?,?,?)")

ATTEMPT_COLUMNS = ("subscription_id, message_id, job_id, attempt, at, outcome,"
                   " status, error, latency_ms, response")

# Subscriptions with jobs not dead, found by seeking the index once per
# subscription, that are live, enabled and whose breaker is closed.
LEASABLE_SUBSCRIPTIONS = """
WITH RECURSIVE pending (id) AS (
    SELECT (SELECT MIN(subscription_id) FROM jobs WHERE dead = 0)
    UNION ALL
    SELECT (SELECT MIN(subscription_id) FROM jobs
            WHERE dead = 0 AND subscription_id > pending.id)
    FROM pending WHERE pending.id IS NOT NULL
)
SELECT s.id FROM pending JOIN subscriptions s ON s.id = pending.id
WHERE s.disabled = 0 AND s.expires > ?1
  AND NOT EXISTS (SELECT 1 FROM breakers b
                  WHERE b.subscription_id = s.id AND b.open_until > ?1)
"""


def new_job_id(now: float) -> str:
    """32 hex digits: milliseconds then 80 random bits. Time-ordered ids land
    at the right edge of the id index, so a post fanning out to many jobs
    dirties a few index pages instead of one random page per job."""
    return f"{int(now * 1000) & 0xFFFFFFFFFFFF:012x}{uuid.uuid4().hex[:20]}"


def write_jobs(conn: sqlite3.Connection, now: float, project: str, queue: str,
               ids: Sequence[str], messages: Sequence[NewMessage]) -> None:
    """Inside the post's transaction: one due job per message and live,
    enabled subscription of the queue."""
    subscriptions = conn.execute(
        "SELECT id FROM subscriptions WHERE project = ? AND queue = ?"
        " AND expires > ? AND disabled = 0", (project, queue, now)).fetchall()
    if not subscriptions:
        return
    payloads = [notification(m) for m in messages]
    conn.executemany(
        INSERT_JOB,
        [(new_job_id(now), subscription_id, project, queue, message_id, payload,
          now, now)
         for message_id, payload in zip(ids, payloads)
         for (subscription_id,) in subscriptions])


def to_job(row: Sequence) -> DeliveryJob:
    return DeliveryJob(*row)


class SqliteJobs(JobStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def lease(self, limit: int, lease_seconds: float, *,
                    max_in_flight: int) -> list[DeliveryJob]:
        return await self._db.run(_lease, limit, lease_seconds, max_in_flight)

    async def ack(self, job_id: str, lease_token: str) -> bool:
        return await self._db.run(
            _fenced, "DELETE FROM jobs WHERE id = ? AND lease_token = ? AND dead = 0",
            (job_id, lease_token))

    async def retry(self, job_id: str, lease_token: str, due: float) -> bool:
        return await self._db.run(
            _fenced,
            "UPDATE jobs SET due = ?, lease_token = NULL, lease_expires = NULL"
            " WHERE id = ? AND lease_token = ? AND dead = 0",
            (due, job_id, lease_token))

    async def bury(self, job_id: str, lease_token: str, reason: str) -> bool:
        return await self._db.run(
            _fenced,
            "UPDATE jobs SET dead = 1, dead_reason = ?, lease_token = NULL,"
            " lease_expires = NULL WHERE id = ? AND lease_token = ? AND dead = 0",
            (reason, job_id, lease_token))

    async def trip(self, subscription_id: str, until: float) -> None:
        await self._db.run(_trip, subscription_id, until)

    async def dead_letters(self, subscription_id: str, *, limit: int = 20
                           ) -> list[DeliveryJob]:
        return await self._db.run(
            lambda conn, now: [to_job(row) for row in conn.execute(
                f"SELECT {COLUMNS} FROM jobs WHERE subscription_id = ? AND dead = 1"
                " ORDER BY seq LIMIT ?", (subscription_id, limit))])

    async def replay(self, subscription_id: str, job_ids: Sequence[str] | None = None
                     ) -> int:
        return await self._db.run(
            _replay, subscription_id, None if job_ids is None else list(job_ids))

    async def record(self, attempt: DeliveryAttempt, *, keep: int, keep_seconds: float
                     ) -> None:
        await self._db.run(_record, attempt, keep, keep_seconds)

    async def attempts(self, subscription_id: str, *, limit: int = 20
                       ) -> list[DeliveryAttempt]:
        return await self._db.run(
            lambda conn, now: [DeliveryAttempt(*row) for row in conn.execute(
                f"SELECT {ATTEMPT_COLUMNS} FROM delivery_attempts"
                " WHERE subscription_id = ? ORDER BY at DESC, seq DESC LIMIT ?",
                (subscription_id, limit))])

    async def redeliver(self, subscription_id: str, message_id: str,
                        message: bytes) -> str:
        return await self._db.run(_redeliver, subscription_id, message_id, message)


def _lease(conn: sqlite3.Connection, now: float, limit: int, lease_seconds: float,
           max_in_flight: int) -> list[DeliveryJob]:
    if limit <= 0 or max_in_flight <= 0:
        return []
    with transaction(conn):
        candidates: list[tuple[float, int]] = []
        subscriptions = conn.execute(LEASABLE_SUBSCRIPTIONS, (now,)).fetchall()
        for (subscription_id,) in subscriptions:
            in_flight = conn.execute(
                "SELECT COUNT(*) FROM jobs WHERE subscription_id = ?"
                " AND lease_expires > ?", (subscription_id, now)).fetchone()[0]
            room = min(limit, max_in_flight - in_flight)
            if room > 0:
                candidates += conn.execute(
                    "SELECT due, seq FROM jobs WHERE subscription_id = ? AND dead = 0"
                    " AND due <= ? AND (lease_expires IS NULL OR lease_expires <= ?)"
                    " ORDER BY due, seq LIMIT ?",
                    (subscription_id, now, now, room)).fetchall()
        candidates.sort()
        expires = now + lease_seconds
        return [to_job(conn.execute(
            "UPDATE jobs SET lease_token = ?, lease_expires = ?,"
            f" attempts = attempts + 1 WHERE seq = ? RETURNING {COLUMNS}",
            (uuid.uuid4().hex, expires, seq)).fetchone())
            for _, seq in candidates[:limit]]


def _fenced(conn: sqlite3.Connection, now: float, sql: str, args: tuple) -> bool:
    """Run a statement guarded by the lease token; True if it hit the job."""
    with transaction(conn):
        return conn.execute(sql, args).rowcount == 1


def _trip(conn: sqlite3.Connection, now: float, subscription_id: str,
          until: float) -> None:
    with transaction(conn):
        conn.execute(
            "INSERT INTO breakers (subscription_id, open_until) VALUES (?, ?)"
            " ON CONFLICT (subscription_id)"
            " DO UPDATE SET open_until = excluded.open_until",
            (subscription_id, until))


def _replay(conn: sqlite3.Connection, now: float, subscription_id: str,
            job_ids: list[str] | None) -> int:
    sql = ("UPDATE jobs SET dead = 0, dead_reason = NULL, due = ?, attempts = 0,"
           " lease_token = NULL, lease_expires = NULL"
           " WHERE subscription_id = ? AND dead = 1")
    args: list = [now, subscription_id]
    if job_ids is not None:
        if not job_ids:
            return 0
        sql += f" AND id IN ({placeholders(len(job_ids))})"
        args += job_ids
    with transaction(conn):
        return conn.execute(sql, args).rowcount


def _record(conn: sqlite3.Connection, now: float, attempt: DeliveryAttempt,
            keep: int, keep_seconds: float) -> None:
    with transaction(conn):
        conn.execute(
            f"INSERT INTO delivery_attempts ({ATTEMPT_COLUMNS})"
            " VALUES (?,?,?,?,?,?,?,?,?,?)",
            (attempt.subscription_id, attempt.message_id, attempt.job_id,
             attempt.attempt, attempt.at, attempt.outcome, attempt.status,
             attempt.error, attempt.latency_ms, attempt.response))
        conn.execute(
            "DELETE FROM delivery_attempts WHERE subscription_id = ? AND at < ?",
            (attempt.subscription_id, now - keep_seconds))
        conn.execute(
            "DELETE FROM delivery_attempts WHERE seq IN (SELECT seq FROM"
            " delivery_attempts WHERE subscription_id = ?"
            " ORDER BY at DESC, seq DESC LIMIT -1 OFFSET ?)",
            (attempt.subscription_id, max(keep, 0)))


def _redeliver(conn: sqlite3.Connection, now: float, subscription_id: str,
               message_id: str, message: bytes) -> str:
    with transaction(conn):
        row = conn.execute(
            "SELECT project, queue FROM subscriptions WHERE id = ? AND expires > ?",
            (subscription_id, now)).fetchone()
        if row is None:
            raise SubscriptionNotFound(subscription_id)
        job_id = new_job_id(now)
        conn.execute(INSERT_JOB, (job_id, subscription_id, row[0], row[1], message_id,
                                  message, now, now))
    return job_id
