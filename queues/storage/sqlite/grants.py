"""Signed-URL state on SQLite: generations, deny-list, one-time use, counters."""

from __future__ import annotations

import sqlite3
from typing import Sequence

from queues.storage.base import GrantStore
from queues.storage.sqlite.driver import Database, transaction
from queues.storage.sqlite.rows import placeholders


class SqliteGrants(GrantStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def generation(self, project: str, queue: str) -> int:
        return await self._db.run(_generation, project, queue)

    async def bump_generation(self, project: str, queue: str) -> int:
        return await self._db.run(_bump, project, queue)

    async def revoke(self, jti: str, expires: float) -> None:
        await self._db.run(_mark, "revoked", jti, expires)

    async def revoked(self, jtis: Sequence[str]) -> set[str]:
        return await self._db.run(_revoked, list(jtis))

    async def consume(self, jti: str, expires: float) -> bool:
        return await self._db.run(_mark, "used", jti, expires)

    async def count_uses(self, counts: dict[str, int], window: int) -> dict[str, int]:
        return await self._db.run(_count, dict(counts), window)


def _generation(conn: sqlite3.Connection, now: float, project: str, queue: str) -> int:
    row = conn.execute("SELECT generation FROM signing_generations WHERE project = ?"
                       " AND queue = ?", (project, queue)).fetchone()
    return row[0] if row else 0


def _bump(conn: sqlite3.Connection, now: float, project: str, queue: str) -> int:
    with transaction(conn):
        return bump_generation(conn, project, queue)


def bump_generation(conn: sqlite3.Connection, project: str, queue: str) -> int:
    """Inside a transaction: increment and return the queue's generation."""
    conn.execute(
        "INSERT INTO signing_generations (project, queue, generation) VALUES (?, ?, 1)"
        " ON CONFLICT (project, queue) DO UPDATE SET generation = generation + 1",
        (project, queue))
    return _generation(conn, 0.0, project, queue)


def _mark(conn: sqlite3.Connection, now: float, kind: str, jti: str,
          expires: float) -> bool:
    """Insert (kind, jti) unless present and live; True if this call inserted."""
    with transaction(conn):
        conn.execute("DELETE FROM token_marks WHERE expires <= ?", (now,))
        cursor = conn.execute(
            "INSERT OR IGNORE INTO token_marks (kind, jti, expires) VALUES (?, ?, ?)",
            (kind, jti, expires))
        return cursor.rowcount == 1


def _revoked(conn: sqlite3.Connection, now: float, jtis: list[str]) -> set[str]:
    if not jtis:
        return set()
    return {row[0] for row in conn.execute(
        f"SELECT jti FROM token_marks WHERE kind = 'revoked' AND expires > ?"
        f" AND jti IN ({placeholders(len(jtis))})", [now, *jtis])}


def _count(conn: sqlite3.Connection, now: float, counts: dict[str, int],
           window: int) -> dict[str, int]:
    start = int(now // window) * window
    with transaction(conn):
        conn.execute("DELETE FROM rate_counters WHERE window_start < ?", (start,))
        totals = {}
        for key, amount in counts.items():
            conn.execute(
                "INSERT INTO rate_counters (key, window_start, count) VALUES (?, ?, ?)"
                " ON CONFLICT (key, window_start) DO UPDATE SET count = count + ?",
                (key, start, amount, amount))
            totals[key] = conn.execute(
                "SELECT count FROM rate_counters WHERE key = ? AND window_start = ?",
                (key, start)).fetchone()[0]
    return totals
