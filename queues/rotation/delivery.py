"""Delivering a generation's document to each of a target's channels.

* ``queue``: one message on the credentials queue, message ttl = grant ttl;
  the daemon deletes the superseded documents, so the queue holds the latest
  (and, for a moment, its predecessor).
* ``file``: written to a temporary file in the same directory, fsynced,
  renamed over the path, and the directory fsynced: a reader sees the old
  document or the new one, never a partial file. Missing parent directories
  are created with mode 0700.
* ``webhook``: POSTed through the dispatcher's SSRF-guarded client
  (``dispatch.allow_cidrs``, ``dispatch.https_only``, its timeouts); any 2xx
  is success. ``Idempotency-Key: <target>/<generation>``.

Channels are labelled ``<kind>#<index in deliver>`` in the ledger and logs;
neither the document nor a webhook reply is ever logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import tempfile
from typing import TYPE_CHECKING, Sequence

from queues.config import Settings
from queues.errors import MailslotError
from queues.models import NewMessage
from queues.rotation.document import Issue
from queues.rotation.template import Delivery, Target
from queues.storage.base import Driver

if TYPE_CHECKING:
    from subscriptions.http import Client

LOG = logging.getLogger("mailslot.rotation")


class DeliveryFailed(MailslotError):
    """A channel refused the document (the description names no secret)."""


@dataclasses.dataclass
class Outcome:
    """What one delivery attempt achieved."""

    delivered: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)
    message_id: str | None = None


def label(index: int, delivery: Delivery) -> str:
    return f"{delivery.kind}#{index}"


def encode(document: dict) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


class Deliverer:
    """Sends documents; owns the webhook client (made on first use)."""

    def __init__(self, storage: Driver, settings: Settings) -> None:
        self._storage = storage
        self._settings = settings
        self._client: Client | None = None

    async def deliver(self, target: Target, issue: Issue,
                      only: Sequence[str] | None = None) -> Outcome:
        """Every channel (or those labelled in ``only``); failures are
        logged and reported, never raised."""
        outcome, body = Outcome(), encode(issue.document)
        for index, delivery in enumerate(target.deliver):
            name = label(index, delivery)
            if only is not None and name not in only:
                continue
            try:
                message_id = await self._send(target, delivery, issue, body)
            except Exception as ex:  # noqa: BLE001 - one channel must not stop others
                LOG.error("target %s generation %d: delivery %s failed (%s)",
                          target.name, issue.generation.number, name, _reason(ex))
                outcome.failed.append(name)
                continue
            outcome.delivered.append(name)
            outcome.message_id = message_id or outcome.message_id
        return outcome

    async def _send(self, target: Target, delivery: Delivery, issue: Issue,
                    body: bytes) -> str | None:
        if delivery.kind == "queue":
            ids = await self._storage.messages.post(
                target.project, delivery.queue, [NewMessage(body, issue.ttl)], None)
            return ids[0]
        if delivery.kind == "file":
            await asyncio.to_thread(write_atomically, delivery.path, body,
                                    delivery.mode)
            return None
        await self._post(delivery.url, body,
                         f"{target.name}/{issue.generation.number}")
        return None

    async def _post(self, url: str, body: bytes, key: str) -> None:
        from subscriptions import http

        dispatch = self._settings.dispatch
        reply = await http.post(
            self._webhook_client(), url, content=body,
            headers={"Content-Type": "application/json", "Idempotency-Key": key},
            max_response_bytes=dispatch.max_response_bytes,
            deadline=dispatch.delivery_deadline)
        if not 200 <= reply.status < 300:
            raise DeliveryFailed(f"HTTP {reply.status}")

    def _webhook_client(self) -> Client:
        if self._client is None:
            from subscriptions.http import make_client
            from subscriptions.service import guard_for

            dispatch = self._settings.dispatch
            self._client = make_client(guard_for(self._settings),
                                       connect_timeout=dispatch.connect_timeout,
                                       read_timeout=dispatch.read_timeout,
                                       max_connections=4)
        return self._client

    async def supersede(self, target: Target, message_ids: Sequence[str]) -> None:
        """Delete older documents from the credentials queue (claimed or not)."""
        queue = target.credentials_queue
        if queue is not None and message_ids:
            await self._storage.messages.delete_many(target.project, queue,
                                                     list(message_ids))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _reason(ex: BaseException) -> str:
    """A loggable reason: our own descriptions, else the class of a network
    error (exception texts may quote URLs)."""
    if isinstance(ex, MailslotError):
        return ex.description or type(ex).__name__
    if isinstance(ex, OSError) and not type(ex).__module__.startswith("aiohttp"):
        return ex.strerror or type(ex).__name__
    from subscriptions.http import error_class

    return error_class(ex)


def write_atomically(path: str, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` (mode ``mode``) in one rename."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory,
                                     prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)
