"""Row <-> model conversion shared by the SQLite modules."""

from __future__ import annotations

from typing import Sequence

from queues.models import Message

# Same order as the fields of ``queues.models.Message``.
MESSAGE_COLUMNS = (
    "id, marker, body, ttl, created, expires, delay_until, client_id,"
    " claim_id, claim_expires, claim_count, checksum"
)


def to_message(row: Sequence) -> Message:
    return Message(*row)


def placeholders(count: int) -> str:
    return ",".join("?" * count)
