"""Messages: batch post, list, get/delete by ids, pop, single get/delete."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import falcon
import orjson

from queues import models
from queues.api import body, params, views
from queues.api.body import json_response
from queues.api.resources.base import Resource
from queues.config import TransportSettings
from queues.errors import InvalidBody, InvalidInput, MessagesNotFound
from queues.models import NewMessage


def _size_limit(meta: dict[str, Any], limits: TransportSettings) -> tuple[int, str]:
    configured = limits.max_messages_post_size
    per_queue = meta.get(models.MAX_MESSAGES_POST_SIZE)
    if isinstance(per_queue, int) and not isinstance(per_queue, bool) and per_queue:
        smallest = min(per_queue, configured)
        return smallest, (
            "Message collection size is too large. The max size for current queue"
            f" is {smallest}. It is calculated by max size = min("
            f"max_messages_post_size_config: {configured},"
            f" max_messages_post_size_queue: {per_queue}).")
    return configured, f"Message collection size is too large. Max size {configured}"


_LIST_PARAMS = {"limit": int, "echo": bool, "include_claimed": bool,
                "include_delayed": bool}


class PostRules:
    """Turns one posted document into ``NewMessage``s (Zaqar §2.3 rules)."""

    def __init__(self, meta: dict[str, Any], limits: TransportSettings,
                 checksum: bool) -> None:
        self.limits = limits
        self.checksum = checksum
        self.default_ttl = meta.get(models.DEFAULT_MESSAGE_TTL) or limits.default_message_ttl
        self.default_delay = meta.get(models.DEFAULT_MESSAGE_DELAY) or 0

    def messages(self, document: Any) -> list[NewMessage]:
        if not isinstance(document, dict) or "messages" not in document:
            raise InvalidInput("No messages were found in the request body.")
        raw = document["messages"]
        if not isinstance(raw, list) or not all(isinstance(m, dict) for m in raw):
            raise InvalidBody("Document type not supported.")
        if not raw:
            raise InvalidInput("No messages to enqueu.")
        parsed = [self._fields(m) for m in raw]
        return [self._validated(*fields) for fields in parsed]

    def _fields(self, message: dict) -> tuple[Any, int, int]:
        ttl = body.int_field(message, "ttl", self.default_ttl)
        if "body" not in message:
            raise InvalidBody('Missing "body" field.')
        delay = 0
        if self.default_delay:
            delay = body.int_field(message, "delay", self.default_delay)
        return message["body"], ttl, delay

    def _validated(self, payload: Any, ttl: int, delay: int) -> NewMessage:
        limits = self.limits
        if not 60 <= ttl <= limits.max_message_ttl:
            raise InvalidInput(
                f"The TTL for a message may not exceed {limits.max_message_ttl}"
                " seconds, and must be at least 60 seconds long.")
        if not 0 <= delay <= limits.max_message_delay:
            raise InvalidInput(
                f"The Delay TTL for a message may not exceed {limits.max_message_delay}"
                " seconds,and must be at least 0 seconds long.")
        checksum = None
        if self.checksum:
            checksum = "MD5:" + hashlib.md5(json.dumps(payload).encode()).hexdigest()
        return NewMessage(orjson.dumps(payload), ttl, delay, checksum)


class MessageCollection(Resource):
    # What a signed URL must grant for each method (see api/signed.py);
    # ?pop= returns the bodies it deletes, so it needs read as well.
    grant_ops = {"GET": "read", "POST": "post",
                 "DELETE": lambda req: ("delete", "read") if req.get_param("pop")
                 is not None else ("delete",)}
    async def on_post(self, req: falcon.Request, resp: falcon.Response,
                      queue_name: str) -> None:
        project, limits = req.context.project, self.ctx.limits
        meta = await self.ctx.metadata.get(project, queue_name)
        size, too_large = _size_limit(meta, limits)
        if req.context.token is not None:
            size = min(size, self.ctx.settings.signing.max_post_bytes)
            too_large = ("Message collection size is too large. Max size for a"
                         f" signed URL {size}")
        document = body.parse(await body.read(req, size, too_large))
        rules = PostRules(meta, limits, self.ctx.settings.api.enable_checksum)
        ids = await self.ctx.storage.messages.post(
            project, queue_name, rules.messages(document), req.context.client_id)
        base = f"/v2/queues/{queue_name}/messages"
        resp.location = f"{base}?ids={','.join(ids)}"
        json_response(resp, {"resources": [f"{base}/{i}" for i in ids]},
                      falcon.HTTP_201)

    async def on_get(self, req: falcon.Request, resp: falcon.Response,
                     queue_name: str) -> None:
        ids = params.id_list(req, "ids")
        if ids is not None:
            await self._get_by_ids(req, resp, queue_name, ids)
            return
        await self._list(req, resp, queue_name)

    async def _list(self, req: falcon.Request, resp: falcon.Response,
                    queue_name: str) -> None:
        project, limits = req.context.project, self.ctx.limits
        limit = params.limit(req, limits.max_messages_per_page)
        echoed = params.echoed(req, _LIST_PARAMS)
        meta = await self.ctx.metadata.get(project, queue_name)
        if not meta.get(models.DEFAULT_MESSAGE_DELAY):
            echoed["include_delayed"] = True
        page = await self.ctx.storage.messages.list(
            project, queue_name, marker=req.get_param("marker"), limit=limit,
            echo=echoed.get("echo", False), client_id=req.context.client_id,
            include_claimed=echoed.get("include_claimed", False),
            include_delayed=echoed.get("include_delayed", False))
        now = self.ctx.clock()
        json_response(resp, {
            "messages": [views.message(m, queue_name, now) for m in page.items],
            "links": views.next_links(req.path, page, echoed)})

    async def _get_by_ids(self, req: falcon.Request, resp: falcon.Response,
                          queue_name: str, ids: list[str]) -> None:
        maximum = self.ctx.limits.max_messages_per_page
        if not 0 < len(ids) <= maximum:
            raise InvalidInput(params.LIMIT_MAY_NOT.format(maximum))
        project = req.context.project
        found = await self.ctx.storage.messages.get_many(project, queue_name, ids)
        if not found:
            raise MessagesNotFound(project, queue_name, ids)
        now = self.ctx.clock()
        json_response(resp, {"messages": [views.message(m, queue_name, now)
                                          for m in found]})

    async def on_delete(self, req: falcon.Request, resp: falcon.Response,
                        queue_name: str) -> None:
        limits = self.ctx.limits
        ids = params.id_list(req, "ids")
        pop = req.get_param_as_int("pop")
        if pop is not None and ids is not None:
            raise InvalidInput("pop and id params cannot be present together in the"
                               " delete request.")
        if pop is None and ids is None:
            raise InvalidInput('The request should have either "ids" or "pop"'
                               " parameter in the request, to be able to delete.")
        if pop is not None:
            await self._pop(req, resp, queue_name, pop)
            return
        if not 0 < len(ids) <= limits.max_messages_per_page:
            raise InvalidInput("ids parameter should have at least 1 and not greater"
                               f" than {limits.max_messages_per_page} values.")
        claim_ids = params.id_list(req, "claim_ids")
        if limits.message_delete_with_claim_id and not claim_ids:
            raise InvalidInput('The request should have both "ids" and "claim_ids"'
                               " parameter in the request when"
                               " message_delete_with_claim_id is True.")
        await self.ctx.storage.messages.delete_many(
            req.context.project, queue_name, ids,
            claim_ids if limits.message_delete_with_claim_id else None)
        resp.status = falcon.HTTP_204

    async def _pop(self, req: falcon.Request, resp: falcon.Response,
                   queue_name: str, pop: int) -> None:
        maximum = self.ctx.limits.max_messages_per_claim_or_pop
        if not 0 < pop <= maximum:
            raise InvalidInput(
                f"Pop value must be at least 1 and may not be greater than {maximum}.")
        popped = await self.ctx.storage.messages.pop(req.context.project, queue_name,
                                                     pop)
        now = self.ctx.clock()
        json_response(resp, {"messages": [views.popped(m, now) for m in popped]})


class MessageItem(Resource):
    grant_ops = {"GET": "read", "DELETE": "delete"}
    async def on_get(self, req: falcon.Request, resp: falcon.Response,
                     queue_name: str, message_id: str) -> None:
        found = await self.ctx.storage.messages.get(req.context.project, queue_name,
                                                    message_id)
        json_response(resp, views.message(found, queue_name, self.ctx.clock()))

    async def on_delete(self, req: falcon.Request, resp: falcon.Response,
                        queue_name: str, message_id: str) -> None:
        await self.ctx.storage.messages.delete(
            req.context.project, queue_name, message_id, req.get_param("claim_id"))
        resp.status = falcon.HTTP_204

