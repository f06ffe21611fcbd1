"""Claims on SQLite, with dead-letter moves in the same transaction."""

from __future__ import annotations

import json
import sqlite3
import uuid

from queues.errors import ClaimNotFound
from queues.models import (
    DEAD_LETTER_QUEUE, DEAD_LETTER_QUEUE_MESSAGES_TTL, MAX_CLAIM_COUNT, Claim,
)
from queues.storage.base import ClaimStore
from queues.storage.sqlite.driver import Database, ensure_queue, queue_row, transaction
from queues.storage.sqlite.rows import MESSAGE_COLUMNS, to_message

CLAIMABLE = (
    "queue_id = ? AND expires > ? AND delay_until <= ?"
    " AND (claim_expires IS NULL OR claim_expires <= ?)"
)


class SqliteClaims(ClaimStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, project: str, queue: str, *, ttl: int, grace: int,
                     limit: int) -> Claim | None:
        return await self._db.run(_create, project, queue, ttl, grace, limit)

    async def get(self, project: str, queue: str, claim_id: str) -> Claim:
        return await self._db.run(_get, project, queue, claim_id)

    async def renew(self, project: str, queue: str, claim_id: str, *, ttl: int,
                    grace: int) -> None:
        await self._db.run(_renew, project, queue, claim_id, ttl, grace)

    async def release(self, project: str, queue: str, claim_id: str) -> None:
        await self._db.run(_release, project, queue, claim_id)


def _create(conn: sqlite3.Connection, now: float, project: str, queue: str,
            ttl: int, grace: int, limit: int) -> Claim | None:
    with transaction(conn):
        row = queue_row(conn, project, queue)
        if row is None:
            return None
        queue_id, metadata = row[0], json.loads(row[1])
        picked = conn.execute(
            f"SELECT id, claim_count FROM messages WHERE {CLAIMABLE}"
            " ORDER BY marker LIMIT ?", (queue_id, now, now, now, limit)).fetchall()
        keep = _dead_letter(conn, now, project, metadata, picked)
        if not keep:
            return None
        claim_id = uuid.uuid4().hex
        expires = now + ttl
        conn.execute("INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?)",
                     (claim_id, queue_id, ttl, grace, now, expires))
        conn.executemany(
            "UPDATE messages SET claim_id = ?, claim_expires = ?,"
            " claim_count = claim_count + 1 WHERE id = ?",
            [(claim_id, expires, message_id) for message_id in keep])
        _extend_lives(conn, claim_id, expires + grace, ttl + grace)
        messages = _claimed_messages(conn, now, claim_id)
    return Claim(claim_id, ttl, grace, now, expires, messages)


def _dead_letter(conn: sqlite3.Connection, now: float, project: str,
                 metadata: dict, picked: list[tuple[str, int]]) -> list[str]:
    """Move over-claimed messages to the DLQ; return the ids left to claim."""
    max_count = metadata.get(MAX_CLAIM_COUNT)
    dlq = metadata.get(DEAD_LETTER_QUEUE)
    if not max_count or not dlq:
        return [message_id for message_id, _ in picked]
    keep = [message_id for message_id, count in picked if count < max_count]
    moving = [message_id for message_id, count in picked if count >= max_count]
    if moving:
        _move(conn, now, project, dlq, moving,
              metadata.get(DEAD_LETTER_QUEUE_MESSAGES_TTL))
    return keep


def _move(conn: sqlite3.Connection, now: float, project: str, dlq: str,
          ids: list[str], new_ttl: int | None) -> None:
    dlq_id = ensure_queue(conn, now, project, dlq)
    conn.execute("UPDATE queues SET counter = counter + ? WHERE id = ?",
                 (len(ids), dlq_id))
    last = conn.execute("SELECT counter FROM queues WHERE id = ?",
                        (dlq_id,)).fetchone()[0]
    first = last - len(ids) + 1
    for offset, message_id in enumerate(ids):
        conn.execute(
            "UPDATE messages SET queue_id = ?, marker = ?, claim_id = NULL,"
            " claim_expires = NULL, ttl = COALESCE(?, ttl),"
            " expires = COALESCE(? + ?, expires) WHERE id = ?",
            (dlq_id, first + offset, new_ttl, now, new_ttl, message_id))


def _extend_lives(conn: sqlite3.Connection, claim_id: str, until: float,
                  ttl: int) -> None:
    """Messages must outlive their claim by the grace period."""
    conn.execute(
        "UPDATE messages SET expires = ?, ttl = ? WHERE claim_id = ? AND expires < ?",
        (until, ttl, claim_id, until))


def _claimed_messages(conn: sqlite3.Connection, now: float, claim_id: str) -> list:
    return [to_message(r) for r in conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE claim_id = ?"
        " AND claim_expires > ? AND expires > ? ORDER BY marker",
        (claim_id, now, now))]


def _live_claim(conn: sqlite3.Connection, now: float, project: str, queue: str,
                claim_id: str) -> tuple | None:
    row = queue_row(conn, project, queue)
    if row is None:
        return None
    return conn.execute(
        "SELECT id, ttl, grace, updated, expires FROM claims"
        " WHERE id = ? AND queue_id = ? AND expires > ?",
        (claim_id, row[0], now)).fetchone()


def _get(conn: sqlite3.Connection, now: float, project: str, queue: str,
         claim_id: str) -> Claim:
    claim = _live_claim(conn, now, project, queue, claim_id)
    if claim is None:
        raise ClaimNotFound(project, queue, claim_id)
    return Claim(*claim, messages=_claimed_messages(conn, now, claim_id))


def _renew(conn: sqlite3.Connection, now: float, project: str, queue: str,
           claim_id: str, ttl: int, grace: int) -> None:
    with transaction(conn):
        if _live_claim(conn, now, project, queue, claim_id) is None:
            raise ClaimNotFound(project, queue, claim_id)
        expires = now + ttl
        conn.execute(
            "UPDATE claims SET ttl = ?, grace = ?, updated = ?, expires = ?"
            " WHERE id = ?", (ttl, grace, now, expires, claim_id))
        conn.execute(
            "UPDATE messages SET claim_expires = ? WHERE claim_id = ?"
            " AND claim_expires > ?", (expires, claim_id, now))
        _extend_lives(conn, claim_id, expires + grace, ttl + grace)


def _release(conn: sqlite3.Connection, now: float, project: str, queue: str,
             claim_id: str) -> None:
    with transaction(conn):
        row = queue_row(conn, project, queue)
        if row is None:
            return
        conn.execute("DELETE FROM claims WHERE id = ? AND queue_id = ?",
                     (claim_id, row[0]))
        conn.execute(
            "UPDATE messages SET claim_id = NULL, claim_expires = NULL"
            " WHERE claim_id = ? AND queue_id = ?", (claim_id, row[0]))
