"""Messages on SQLite: FIFO post (with its delivery jobs), listing, delete rules,
pop."""

from __future__ import annotations

import sqlite3
from typing import Any, Sequence

from queues.errors import ClaimExpired, MessageIsClaimed, MessageNotClaimed, MessageNotFound
from queues.models import Message, NewMessage, Page, new_ids
from queues.storage.base import MessageStore
from queues.storage.sqlite.driver import Database, ensure_queue, queue_row, transaction
from queues.storage.sqlite.jobs import write_jobs
from queues.storage.sqlite.rows import MESSAGE_COLUMNS, placeholders, to_message

FREE = "(claim_expires IS NULL OR claim_expires <= ?)"


class SqliteMessages(MessageStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def post(self, project: str, queue: str, messages: Sequence[NewMessage],
                   client_id: str | None) -> list[str]:
        return await self._db.run(_post, project, queue, messages, client_id)

    async def list(self, project: str, queue: str, *, marker: str | None = None,
                   limit: int = 10, echo: bool = False, client_id: str | None = None,
                   include_claimed: bool = False,
                   include_delayed: bool = False) -> Page[Message]:
        return await self._db.run(
            _list, project, queue, marker, limit,
            None if echo else client_id, include_claimed, include_delayed)

    async def get(self, project: str, queue: str, message_id: str) -> Message:
        found = await self.get_many(project, queue, [message_id])
        if not found:
            raise MessageNotFound(project, queue, message_id)
        return found[0]

    async def get_many(self, project: str, queue: str,
                       message_ids: Sequence[str]) -> list[Message]:
        return await self._db.run(_get_many, project, queue, list(message_ids))

    async def delete(self, project: str, queue: str, message_id: str,
                     claim_id: str | None = None) -> None:
        await self._db.run(_delete, project, queue, message_id, claim_id)

    async def delete_many(self, project: str, queue: str, message_ids: Sequence[str],
                          claim_ids: Sequence[str] | None = None) -> None:
        await self._db.run(_delete_many, project, queue, list(message_ids),
                           None if claim_ids is None else list(claim_ids))

    async def pop(self, project: str, queue: str, limit: int) -> list[Message]:
        return await self._db.run(_pop, project, queue, limit)

    async def purge(self, project: str, queue: str) -> None:
        await self._db.run(_purge, project, queue)


def _post(conn: sqlite3.Connection, now: float, project: str, queue: str,
          messages: Sequence[NewMessage], client_id: str | None) -> list[str]:
    with transaction(conn):
        queue_id = ensure_queue(conn, now, project, queue)
        conn.execute("UPDATE queues SET counter = counter + ? WHERE id = ?",
                     (len(messages), queue_id))
        last = conn.execute("SELECT counter FROM queues WHERE id = ?",
                            (queue_id,)).fetchone()[0]
        first = last - len(messages) + 1
        ids = new_ids(len(messages))
        conn.executemany(
            "INSERT INTO messages (queue_id, marker, id, body, ttl, created, expires,"
            " delay_until, client_id, checksum) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [(queue_id, first + i, ids[i], m.body_json, m.ttl, now, now + m.ttl,
              now + m.delay if m.delay else 0, client_id, m.checksum)
             for i, m in enumerate(messages)])
        write_jobs(conn, now, project, queue, ids, messages)
    return ids


def _list(conn: sqlite3.Connection, now: float, project: str, queue: str,
          marker: str | None, limit: int, hide_client: str | None,
          include_claimed: bool, include_delayed: bool) -> Page[Message]:
    row = queue_row(conn, project, queue)
    try:
        after = int(marker) if marker is not None else 0
    except ValueError:
        return Page([], None)
    if row is None or not -(2**63) <= after < 2**63:
        return Page([], None)
    sql = (f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE queue_id = ?"
           " AND marker > ? AND expires > ?")
    args: list[Any] = [row[0], after, now]
    if not include_claimed:
        sql += f" AND {FREE}"
        args.append(now)
    if not include_delayed:
        sql += " AND delay_until <= ?"
        args.append(now)
    if hide_client is not None:
        sql += " AND (client_id IS NULL OR client_id != ?)"
        args.append(hide_client)
    sql += " ORDER BY marker LIMIT ?"
    args.append(limit)
    items = [to_message(r) for r in conn.execute(sql, args)]
    return Page(items, str(items[-1].marker) if items else None)


def _get_many(conn: sqlite3.Connection, now: float, project: str, queue: str,
              ids: list[str]) -> list[Message]:
    row = queue_row(conn, project, queue)
    if row is None or not ids:
        return []
    return [to_message(r) for r in conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id IN ({placeholders(len(ids))})"
        " AND queue_id = ? AND expires > ? ORDER BY marker", [*ids, row[0], now])]


def _delete(conn: sqlite3.Connection, now: float, project: str, queue: str,
            message_id: str, claim_id: str | None) -> None:
    with transaction(conn):
        row = queue_row(conn, project, queue)
        if row is None:
            return
        found = conn.execute(
            "SELECT claim_id, claim_expires FROM messages WHERE id = ? AND queue_id = ?"
            " AND expires > ?", (message_id, row[0], now)).fetchone()
        if found is None:
            return
        _check_delete_claim(conn, now, found[0], found[1], claim_id)
        conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))


def _check_delete_claim(conn: sqlite3.Connection, now: float, held_by: str | None,
                        held_until: float | None, claim_id: str | None) -> None:
    """Zaqar's delete rules; see ``MessageStore.delete``."""
    claimed = held_until is not None and held_until > now
    if claim_id is None:
        if claimed:
            raise MessageIsClaimed()
        return
    if not claimed:
        raise ClaimExpired() if held_by == claim_id else MessageNotClaimed()
    if held_by == claim_id:
        return
    live = conn.execute("SELECT 1 FROM claims WHERE id = ? AND expires > ?",
                        (claim_id, now)).fetchone()
    raise MessageIsClaimed() if live else ClaimExpired()


def _delete_many(conn: sqlite3.Connection, now: float, project: str, queue: str,
                 ids: list[str], claim_ids: list[str] | None) -> None:
    row = queue_row(conn, project, queue)
    if row is None or not ids:
        return
    sql = f"DELETE FROM messages WHERE id IN ({placeholders(len(ids))}) AND queue_id = ?"
    args: list[Any] = [*ids, row[0]]
    if claim_ids is not None:
        sql += (f" AND claim_id IN ({placeholders(len(claim_ids))})"
                " AND claim_expires > ?")
        args += [*claim_ids, now]
    with transaction(conn):
        conn.execute(sql, args)


def _pop(conn: sqlite3.Connection, now: float, project: str, queue: str,
         limit: int) -> list[Message]:
    with transaction(conn):
        row = queue_row(conn, project, queue)
        if row is None:
            return []
        popped = [to_message(r) for r in conn.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE queue_id = ? AND expires > ?"
            f" AND delay_until <= ? AND {FREE} ORDER BY marker LIMIT ?",
            (row[0], now, now, now, limit))]
        conn.executemany("DELETE FROM messages WHERE id = ?",
                         [(m.id,) for m in popped])
    return popped


def _purge(conn: sqlite3.Connection, now: float, project: str, queue: str) -> None:
    with transaction(conn):
        row = queue_row(conn, project, queue)
        if row is not None:
            conn.execute("DELETE FROM messages WHERE queue_id = ?", (row[0],))
            conn.execute("DELETE FROM claims WHERE queue_id = ?", (row[0],))
