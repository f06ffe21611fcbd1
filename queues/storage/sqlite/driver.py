"""SQLite connection handling, schema and the driver object.

One connection per process lives on one dedicated thread; coroutines hand
work to it with ``Database.run``. Writers take the database lock up front
(``BEGIN IMMEDIATE``), so a claim's read-then-update is atomic across every
gunicorn worker sharing the file. WAL mode lets readers run beside a writer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import os
import pathlib
import sqlite3
import threading
import time
from typing import Any, Callable, Iterator, TypeVar

from queues.errors import StorageUnavailable
from queues.storage.base import Driver

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    counter INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    UNIQUE (project, name)
);
CREATE TABLE IF NOT EXISTS messages (
    queue_id INTEGER NOT NULL,
    marker INTEGER NOT NULL,
    id TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    ttl INTEGER NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    delay_until REAL NOT NULL DEFAULT 0,
    client_id TEXT,
    claim_id TEXT,
    claim_expires REAL,
    claim_count INTEGER NOT NULL DEFAULT 0,
    checksum TEXT,
    PRIMARY KEY (queue_id, marker)
);
CREATE INDEX IF NOT EXISTS messages_expires ON messages (expires);
CREATE INDEX IF NOT EXISTS messages_claim ON messages (claim_id)
    WHERE claim_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS claims (
    id TEXT PRIMARY KEY,
    queue_id INTEGER NOT NULL,
    ttl INTEGER NOT NULL,
    grace INTEGER NOT NULL,
    updated REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS claims_expires ON claims (expires);
CREATE INDEX IF NOT EXISTS claims_queue ON claims (queue_id);
CREATE TABLE IF NOT EXISTS signing_generations (
    project TEXT NOT NULL,
    queue TEXT NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (project, queue)
);
CREATE TABLE IF NOT EXISTS token_marks (
    kind TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (kind, jti)
);
CREATE TABLE IF NOT EXISTS rate_counters (
    key TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    queue TEXT NOT NULL,
    subscriber TEXT NOT NULL,
    ttl INTEGER NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    confirmed INTEGER NOT NULL DEFAULT 0,
    secret TEXT NOT NULL DEFAULT '',
    disabled INTEGER NOT NULL DEFAULT 0,
    digest TEXT NOT NULL,
    UNIQUE (project, queue, subscriber, digest)
);
CREATE INDEX IF NOT EXISTS subscriptions_expires ON subscriptions (expires);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    subscription_id TEXT NOT NULL,
    project TEXT NOT NULL,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    message BLOB NOT NULL,
    created REAL NOT NULL,
    due REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_token TEXT,
    lease_expires REAL,
    dead INTEGER NOT NULL DEFAULT 0,
    dead_reason TEXT
);
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (subscription_id, due)
    WHERE dead = 0;
CREATE INDEX IF NOT EXISTS jobs_leased ON jobs (subscription_id, lease_expires)
    WHERE lease_expires IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_dead ON jobs (subscription_id) WHERE dead = 1;
CREATE TABLE IF NOT EXISTS breakers (
    subscription_id TEXT PRIMARY KEY,
    open_until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS delivery_attempts (
    seq INTEGER PRIMARY KEY,
    subscription_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at REAL NOT NULL,
    outcome TEXT NOT NULL,
    status INTEGER,
    error TEXT,
    latency_ms REAL NOT NULL,
    response TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS delivery_attempts_subscription
    ON delivery_attempts (subscription_id, at);
"""

# Expired rows are invisible at once (every query filters on time); they are
# deleted in bounded batches at most this often, by whichever call comes first.
GC_INTERVAL = 10.0
GC_BATCH = 1000


class Database:
    """The per-process connection, its thread, and transaction helpers."""

    def __init__(
        self, path: str, *, timeout: float, synchronous: str, clock: Callable[[], float]
    ) -> None:
        self.path = path
        self.timeout = timeout
        self.synchronous = synchronous
        self.clock = clock
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._pid = os.getpid()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._last_gc = 0.0
        self._lock = threading.Lock()

    @staticmethod
    def _new_executor() -> concurrent.futures.ThreadPoolExecutor:
        return concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sqlite")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, now, *args)`` on the database thread."""
        self._check_fork()
        if self._executor is None:
            self._executor = self._new_executor()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn, args)

    def _check_fork(self) -> None:
        # gunicorn forks workers after the app may have been built: a child
        # must not reuse its parent's thread or connection.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._conn = None
            self._executor = None

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            conn = self._connection()
            now = self.clock()
            result = fn(conn, now, *args)
            self._maybe_gc(conn, now)
            return result
        except sqlite3.Error as ex:
            raise StorageUnavailable(_describe(ex)) from ex

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _open_lock_file(self) -> int | None:
        """A sidecar file whose ``flock`` orders writers across processes."""
        if self.path == ":memory:":
            return None
        return os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            pathlib.Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None,
            check_same_thread=False, factory=LockingConnection,
        )
        conn.lock_fd = self._open_lock_file()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
        with transaction(conn):
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
        return conn

    def _maybe_gc(self, conn: sqlite3.Connection, now: float) -> None:
        if now - self._last_gc < GC_INTERVAL:
            return
        self._last_gc = now
        with transaction(conn):
            conn.execute(
                "DELETE FROM messages WHERE rowid IN (SELECT rowid FROM messages"
                " WHERE expires <= ? LIMIT ?)", (now, GC_BATCH))
            conn.execute(
                "DELETE FROM claims WHERE rowid IN (SELECT rowid FROM claims"
                " WHERE expires <= ? LIMIT ?)", (now, GC_BATCH))
            drop_subscriptions(conn, [row[0] for row in conn.execute(
                "SELECT id FROM subscriptions WHERE expires <= ? LIMIT ?",
                (now, GC_BATCH))])
            conn.execute("DELETE FROM breakers WHERE open_until <= ?", (now,))

    def close(self) -> None:
        """Close the connection and stop the thread; a later call reopens."""
        executor, self._executor = self._executor, None
        if executor is None:
            return

        def _close() -> None:
            if self._conn is not None:
                if self._conn.lock_fd is not None:
                    os.close(self._conn.lock_fd)
                self._conn.close()
                self._conn = None

        executor.submit(_close).result()
        executor.shutdown(wait=True)


class LockingConnection(sqlite3.Connection):
    """A connection carrying the descriptor of its writers' lock file."""

    lock_fd: int | None = None


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction that holds the database lock from its start.

    Writers first take an exclusive ``flock`` on a sidecar file: waiting
    processes sleep in the kernel and wake the moment it is released, where
    SQLite's own busy handler would poll with sleeps of up to 100 ms (tail
    latency of a second under load with two workers). The kernel drops the
    lock of a process that dies, so a crash cannot wedge the others.
    """
    lock_fd = getattr(conn, "lock_fd", None)
    if lock_fd is not None:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        if lock_fd is not None:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)


def _describe(ex: sqlite3.Error) -> str:
    if "locked" in str(ex) or "busy" in str(ex):
        return "The store is busy. Please try again in a few seconds."
    return "The store failed. Please try again in a few seconds."


def queue_row(conn: sqlite3.Connection, project: str, name: str) -> sqlite3.Row | None:
    """``(id, metadata, counter)`` of a queue, or None."""
    return conn.execute(
        "SELECT id, metadata, counter FROM queues WHERE project = ? AND name = ?",
        (project, name),
    ).fetchone()


def ensure_queue(conn: sqlite3.Connection, now: float, project: str, name: str) -> int:
    """The queue's id, creating the queue if missing (inside a transaction)."""
    conn.execute(
        "INSERT OR IGNORE INTO queues (project, name, created) VALUES (?, ?, ?)",
        (project, name, now),
    )
    return queue_row(conn, project, name)[0]


def drop_subscriptions(conn: sqlite3.Connection, ids: list[str]) -> None:
    """Inside a transaction: delete subscriptions with their jobs (dead
    letters included), breaker and delivery log."""
    if not ids:
        return
    rows = [(subscription_id,) for subscription_id in ids]
    conn.executemany("DELETE FROM subscriptions WHERE id = ?", rows)
    # Two statements so that each one can use its partial index.
    conn.executemany("DELETE FROM jobs WHERE subscription_id = ? AND dead = 0", rows)
    conn.executemany("DELETE FROM jobs WHERE subscription_id = ? AND dead = 1", rows)
    conn.executemany("DELETE FROM breakers WHERE subscription_id = ?", rows)
    conn.executemany("DELETE FROM delivery_attempts WHERE subscription_id = ?", rows)


class SqliteDriver(Driver):
    def __init__(
        self,
        path: str,
        *,
        timeout: float = 5.0,
        synchronous: str = "NORMAL",
        clock: Callable[[], float] = time.time,
    ) -> None:
        from queues.storage.sqlite.claims import SqliteClaims
        from queues.storage.sqlite.grants import SqliteGrants
        from queues.storage.sqlite.jobs import SqliteJobs
        from queues.storage.sqlite.messages import SqliteMessages
        from queues.storage.sqlite.queues import SqliteQueues
        from queues.storage.sqlite.subscriptions import SqliteSubscriptions

        self.db = Database(path, timeout=timeout, synchronous=synchronous, clock=clock)
        self.queues = SqliteQueues(self.db)
        self.messages = SqliteMessages(self.db)
        self.claims = SqliteClaims(self.db)
        self.grants = SqliteGrants(self.db)
        self.subscriptions = SqliteSubscriptions(self.db)
        self.jobs = SqliteJobs(self.db)

    async def is_alive(self) -> bool:
        try:
            return await self.db.run(lambda conn, now: conn.execute("SELECT 1")
                                     .fetchone()[0] == 1)
        except Exception:
            return False

    async def close(self) -> None:
        await asyncio.to_thread(self.db.close)

    async def wipe(self) -> None:
        def _wipe(conn: sqlite3.Connection, now: float) -> None:
            with transaction(conn):
                for table in ("messages", "claims", "queues", "signing_generations",
                              "token_marks", "rate_counters", "subscriptions", "jobs",
                              "breakers", "delivery_attempts"):
                    conn.execute(f"DELETE FROM {table}")

        await self.db.run(_wipe)
