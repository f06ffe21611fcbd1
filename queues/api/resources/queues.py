"""Queues: list, create, get/head, patch, delete, stats, purge."""

from __future__ import annotations

from typing import Any

import falcon

from queues.api import body, metadata, params, views
from queues.api.body import json_response
from queues.api.resources.base import Resource
from queues.errors import InvalidBody, InvalidInput, QueueNotFound, UnsupportedMediaType

_LIST_PARAMS = {"marker": str, "limit": int, "detailed": bool, "name": str,
                "with_count": bool}
PURGEABLE = {"messages", "subscriptions"}


def _filter_value(value: Any) -> Any:
    """Metadata filters compare as int when the value parses as one."""
    text = ",".join(value) if isinstance(value, list) else value
    try:
        return int(text)
    except ValueError:
        return text


class QueueCollection(Resource):
    async def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        limits = self.ctx.limits
        limit = params.limit(req, limits.max_queues_per_page,
                             message=params.LIMIT_NO_GREATER)
        detailed = params.flag(req, "detailed")
        with_count = params.flag(req, "with_count")
        filters = {k: _filter_value(v) for k, v in req.params.items()
                   if k not in _LIST_PARAMS}
        project = req.context.project
        page = await self.ctx.storage.queues.list(
            project, marker=req.get_param("marker"), limit=limit, detailed=detailed,
            name=req.get_param("name"), filters=filters)
        queues = []
        for info in page.items:
            item = {"name": info.name, "href": views.queue_href(info.name)}
            if detailed:
                item["metadata"] = metadata.with_defaults(info.metadata or {}, limits)
            queues.append(item)
        link_params = params.echoed(req, _LIST_PARAMS)
        document: dict[str, Any] = {
            "queues": queues, "links": views.next_links(req.path, page, link_params)}
        if with_count:
            count = await self.ctx.storage.queues.count(project)
            if count:
                document["count"] = count
        json_response(resp, document)


class QueueItem(Resource):
    async def on_put(self, req: falcon.Request, resp: falcon.Response,
                     queue_name: str) -> None:
        limits = self.ctx.limits
        raw = await body.read(
            req, limits.max_queue_metadata,
            f"Queue metadata is too large. Max size: {limits.max_queue_metadata}")
        document = body.parse(raw) if raw.strip() else {}
        if not isinstance(document, dict):
            raise InvalidBody("Document type not supported.")
        metadata.validate(document, limits)
        created = await self.ctx.storage.queues.create(
            req.context.project, queue_name, document)
        self.ctx.metadata.forget(req.context.project, queue_name)
        resp.status = falcon.HTTP_201 if created else falcon.HTTP_204
        resp.location = views.queue_href(queue_name)

    async def on_get(self, req: falcon.Request, resp: falcon.Response,
                     queue_name: str) -> None:
        stored = await self.ctx.queue_metadata(req.context.project, queue_name)
        json_response(resp, metadata.with_defaults(stored, self.ctx.limits))

    async def on_head(self, req: falcon.Request, resp: falcon.Response,
                      queue_name: str) -> None:
        exists = await self.ctx.storage.queues.exists(req.context.project, queue_name)
        resp.status = falcon.HTTP_204 if exists else falcon.HTTP_404

    async def on_patch(self, req: falcon.Request, resp: falcon.Response,
                       queue_name: str) -> None:
        if req.content_type != metadata.PATCH_MEDIA_TYPE:  # exact, as Zaqar
            raise UnsupportedMediaType(
                "Accepted media type for PATCH: {'Accept-Patch':"
                f" '{metadata.PATCH_MEDIA_TYPE}'}}.")
        limits, project = self.ctx.limits, req.context.project
        raw = await body.read(
            req, limits.max_queue_metadata,
            f"Queue metadata is too large. Max size: {limits.max_queue_metadata}",
            InvalidBody)
        if not raw.strip():
            raise InvalidBody("PATCH body could not be empty for update.")
        changes = metadata.parse_patch(body.parse(raw))
        store = self.ctx.storage.queues
        try:
            stored, exists = await store.get_metadata(project, queue_name), True
        except QueueNotFound:
            stored, exists = {}, False
        reserved = set(metadata.reserved_defaults(limits))
        updated = metadata.apply_patch(stored, changes, reserved)
        try:
            metadata.validate(updated, limits)
        except InvalidInput as ex:
            raise InvalidBody(ex.description) from None
        # Queues are lazy: a GET of a missing one answers its defaults, and
        # python-zaqarclient (so Heat's OS::Zaqar::Queue) patches that view.
        # Zaqar answers 404 there; creating the queue is what clients expect.
        if exists or not await store.create(project, queue_name, updated):
            await store.set_metadata(project, queue_name, updated)
        self.ctx.metadata.forget(project, queue_name)
        json_response(resp, metadata.with_defaults(updated, limits))

    async def on_delete(self, req: falcon.Request, resp: falcon.Response,
                        queue_name: str) -> None:
        await self.ctx.storage.queues.delete(req.context.project, queue_name)
        self.ctx.metadata.forget(req.context.project, queue_name)
        resp.status = falcon.HTTP_204


class QueueStats(Resource):
    async def on_get(self, req: falcon.Request, resp: falcon.Response,
                     queue_name: str) -> None:
        stats = await self.ctx.storage.queues.stats(req.context.project, queue_name)
        counts: dict[str, Any] = {
            "claimed": stats.claimed, "free": stats.free, "total": stats.total}
        if stats.total:
            now = self.ctx.clock()
            counts["oldest"] = views.stat_end(stats.oldest, queue_name, now)
            counts["newest"] = views.stat_end(stats.newest, queue_name, now)
        json_response(resp, {"messages": counts})


class QueuePurge(Resource):
    async def on_post(self, req: falcon.Request, resp: falcon.Response,
                      queue_name: str) -> None:
        raw = await body.read(req, self.ctx.limits.max_queue_metadata,
                              "Request body is too large.", InvalidBody)
        kinds = PURGEABLE
        if raw.strip():
            document = body.parse(raw)
            if not isinstance(document, dict):
                raise InvalidBody("Document type not supported.")
            if "resource_types" not in document:
                raise InvalidInput('Post body must contain key "resource_types".')
            kinds = document["resource_types"]
            if not isinstance(kinds, list) or not set(map(str, kinds)) <= PURGEABLE \
                    or not all(isinstance(k, str) for k in kinds):
                raise InvalidInput("Resource types must be a sub set of"
                                   " {'messages', 'subscriptions'}.")
        if "messages" in kinds:
            await self.ctx.storage.messages.purge(req.context.project, queue_name)
        if "subscriptions" in kinds and hasattr(self.ctx.storage, "subscriptions"):
            await self.ctx.storage.subscriptions.purge(req.context.project, queue_name)
        resp.status = falcon.HTTP_204
