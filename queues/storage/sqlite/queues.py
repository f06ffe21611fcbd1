"""Queues on SQLite: metadata, listing, stats."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from queues.errors import QueueNotFound
from queues.models import Page, QueueInfo, QueueStats
from queues.storage.base import QueueStore
from queues.storage.sqlite.driver import Database, queue_row, transaction
from queues.storage.sqlite.grants import bump_generation
from queues.storage.sqlite.rows import MESSAGE_COLUMNS, to_message


class SqliteQueues(QueueStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, project: str, name: str, metadata: dict[str, Any] | None = None
    ) -> bool:
        return await self._db.run(_create, project, name, metadata or {})

    async def exists(self, project: str, name: str) -> bool:
        return await self._db.run(
            lambda conn, now: queue_row(conn, project, name) is not None)

    async def get_metadata(self, project: str, name: str) -> dict[str, Any]:
        return await self._db.run(_get_metadata, project, name)

    async def set_metadata(
        self, project: str, name: str, metadata: dict[str, Any]
    ) -> None:
        await self._db.run(_set_metadata, project, name, metadata)

    async def delete(self, project: str, name: str) -> None:
        await self._db.run(_delete, project, name)

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
        return await self._db.run(
            _list, project, marker, limit, detailed, name, filters or {})

    async def count(self, project: str) -> int:
        return await self._db.run(
            lambda conn, now: conn.execute(
                "SELECT COUNT(*) FROM queues WHERE project = ?", (project,)
            ).fetchone()[0])

    async def stats(self, project: str, name: str) -> QueueStats:
        return await self._db.run(_stats, project, name)


def _create(conn: sqlite3.Connection, now: float, project: str, name: str,
            metadata: dict[str, Any]) -> bool:
    cursor = conn.execute(
        "INSERT OR IGNORE INTO queues (project, name, metadata, created)"
        " VALUES (?, ?, ?, ?)", (project, name, json.dumps(metadata), now))
    return cursor.rowcount == 1


def _get_metadata(conn: sqlite3.Connection, now: float, project: str,
                  name: str) -> dict[str, Any]:
    row = queue_row(conn, project, name)
    if row is None:
        raise QueueNotFound(project, name)
    return json.loads(row[1])


def _set_metadata(conn: sqlite3.Connection, now: float, project: str, name: str,
                  metadata: dict[str, Any]) -> None:
    cursor = conn.execute(
        "UPDATE queues SET metadata = ? WHERE project = ? AND name = ?",
        (json.dumps(metadata), project, name))
    if cursor.rowcount == 0:
        raise QueueNotFound(project, name)


def _delete(conn: sqlite3.Connection, now: float, project: str, name: str) -> None:
    with transaction(conn):
        row = queue_row(conn, project, name)
        if row is None:
            return
        conn.execute("DELETE FROM messages WHERE queue_id = ?", (row[0],))
        conn.execute("DELETE FROM claims WHERE queue_id = ?", (row[0],))
        conn.execute("DELETE FROM queues WHERE id = ?", (row[0],))
        bump_generation(conn, project, name)


def _json_path(key: str) -> str:
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _list(conn: sqlite3.Connection, now: float, project: str, marker: str | None,
          limit: int, detailed: bool, name: str | None,
          filters: dict[str, Any]) -> Page[QueueInfo]:
    sql = "SELECT name, metadata FROM queues WHERE project = ?"
    args: list[Any] = [project]
    if marker is not None:
        sql += " AND name > ?"
        args.append(marker)
    if name:
        sql += " AND instr(name, ?) > 0"
        args.append(name)
    for key, value in filters.items():
        sql += " AND json_extract(metadata, ?) = ?"
        args += [_json_path(key), json.dumps(value) if isinstance(
            value, (dict, list)) else value]
    sql += " ORDER BY name LIMIT ?"
    args.append(limit)
    items = [
        QueueInfo(row[0], json.loads(row[1]) if detailed else None)
        for row in conn.execute(sql, args)
    ]
    return Page(items, items[-1].name if items else None)


def _stats(conn: sqlite3.Connection, now: float, project: str,
           name: str) -> QueueStats:
    row = queue_row(conn, project, name)
    if row is None:
        return QueueStats(0, 0, 0)
    total, claimed = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(claim_expires > ?), 0) FROM messages"
        " WHERE queue_id = ? AND expires > ?", (now, row[0], now)).fetchone()
    if not total:
        return QueueStats(0, 0, 0)
    ends = [
        to_message(conn.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE queue_id = ?"
            f" AND expires > ? ORDER BY marker {order} LIMIT 1",
            (row[0], now)).fetchone())
        for order in ("ASC", "DESC")
    ]
    return QueueStats(claimed, total - claimed, total, ends[0], ends[1])
