"""``GET /``, ``GET /v2/`` (JSON-Home), ping and health."""

from __future__ import annotations

import json
import time
import uuid

import falcon
import orjson

from queues.api.body import json_response
from queues.api.middleware import require_admin
from queues.api.resources.base import Resource
from queues.models import NewMessage

VERSIONS = {"versions": [{
    "id": "2", "status": "CURRENT", "updated": "2014-9-24T04:06:47Z",
    "media-types": [{"base": "application/json",
                     "type": "application/vnd.openstack.messaging-v2+json"}],
    "links": [{"href": "/v2/", "rel": "self"}],
}]}

_Q = "/v2/queues/{queue_name}"
# relation -> (href template, variables, allowed methods)
_RELATIONS = {
    "queues": ("/v2/queues{?marker,limit,detailed}",
               ("marker", "limit", "detailed"), ["GET"]),
    "queue": (_Q, ("queue_name",), ["PUT", "DELETE", "GET", "PATCH"]),
    "queue_stats": (_Q + "/stats", ("queue_name",), ["GET"]),
    "queue_share": (_Q + "/share", ("queue_name",), ["POST"]),
    "queue_purge": (_Q + "/purge", ("queue_name",), ["POST"]),
    "messages": (_Q + "/messages{?marker,limit,echo,include_claimed}",
                 ("queue_name", "marker", "limit", "echo", "include_claimed"), ["GET"]),
    "post_messages": (_Q + "/messages", ("queue_name",), ["POST"]),
    "messages_delete": (_Q + "/messages{?ids,pop}", ("queue_name", "ids", "pop"),
                        ["DELETE"]),
    "message_delete": (_Q + "/messages/{message_id}{?claim}",
                       ("queue_name", "message_id", "claim"), ["DELETE"]),
    "message_get": (_Q + "/messages/{message_id}", ("queue_name", "message_id"),
                    ["GET"]),
    "claim": (_Q + "/claims/{claim_id}", ("queue_name", "claim_id"), ["GET"]),
    "post_claim": (_Q + "/claims{?limit}", ("queue_name", "limit"), ["POST"]),
    "patch_claim": (_Q + "/claims/{claim_id}", ("queue_name", "claim_id"), ["PATCH"]),
    "delete_claim": (_Q + "/claims/{claim_id}", ("queue_name", "claim_id"),
                     ["DELETE"]),
    "subscriptions_get": (_Q + "/subscriptions{?marker,limit}",
                          ("queue_name", "marker", "limit"), ["GET"]),
    "subscriptions_post": (_Q + "/subscriptions", ("queue_name",), ["POST"]),
    "subscription": (_Q + "/subscriptions/{subscription_id}",
                     ("queue_name", "subscription_id"), ["GET", "DELETE"]),
    "subscription_patch": (_Q + "/subscriptions/{subscription_id}",
                           ("queue_name", "subscription_id"), ["PATCH"]),
    "ping": ("/v2/ping", (), ["GET", "HEAD"]),
}
# Zaqar lists these whenever admin_mode is on; pools and flavors answer 404
# without pooling, on Zaqar as here.
_ADMIN_RELATIONS = {
    "pools": ("/v2/pools{?detailed,limit,marker}", ("detailed", "limit", "marker"),
              ["GET"]),
    "pool": ("/v2/pools/{pool_name}", ("pool_name",), ["GET", "PUT", "PATCH", "DELETE"]),
    "flavors": ("/v2/flavors{?detailed,limit,marker}", ("detailed", "limit", "marker"),
                ["GET"]),
    "flavor": ("/v2/flavors/{flavor_name}", ("flavor_name",),
               ["GET", "PUT", "PATCH", "DELETE"]),
    "health": ("/v2/health", (), ["GET"]),
}


def home_document(admin_mode: bool) -> bytes:
    relations = dict(_RELATIONS, **(_ADMIN_RELATIONS if admin_mode else {}))
    resources = {}
    for rel, (template, variables, allow) in relations.items():
        entry: dict = {"href-template": template} if variables else {"href": template}
        if variables:
            entry["href-vars"] = {v: f"param/{v}" for v in variables}
        entry["hints"] = {"allow": allow, "formats": {"application/json": {}}}
        resources[f"rel/{rel}"] = entry
    return json.dumps({"resources": resources}, indent=4).encode()


class Versions(Resource):
    async def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        json_response(resp, VERSIONS, falcon.HTTP_300)


class Home(Resource):
    __slots__ = ("_document",)

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self._document = home_document(ctx.settings.api.admin_mode)

    async def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "application/json-home"
        resp.cache_control = ["max-age=86400"]
        resp.data = self._document


class Ping(Resource):
    async def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        alive = await self.ctx.storage.is_alive()
        resp.status = falcon.HTTP_204 if alive else falcon.HTTP_503

    async def on_head(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = falcon.HTTP_204


class Health(Resource):
    """Zaqar's KPI check: really runs each operation on a scratch queue."""

    @falcon.before(require_admin)
    async def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        alive = await self.ctx.storage.is_alive()
        document = {"storage_reachable": alive}
        if alive:
            document["operation_status"] = await self._operations(req.context.project)
        json_response(resp, document)

    async def _operations(self, project: str) -> dict:
        storage, queue = self.ctx.storage, f"_health_{uuid.uuid4().hex[:16]}"
        status: dict = {}
        batch = [NewMessage(orjson.dumps({"health": i}), 60) for i in range(100)]

        async def timed(name, call):
            start = time.perf_counter()
            try:
                result = await call
                status[name] = {"succeeded": True, "ref": None,
                                "seconds": round(time.perf_counter() - start, 6)}
                return result
            except Exception:
                status[name] = {"succeeded": False, "ref": None,
                                "seconds": round(time.perf_counter() - start, 6)}
                return None

        await timed("create_queue", storage.queues.create(project, queue))
        ids = await timed("post_messages",
                          storage.messages.post(project, queue, batch, None)) or []
        claim = await timed("claim_messages", storage.claims.create(
            project, queue, ttl=60, grace=60, limit=10))
        await timed("list_messages", storage.messages.list(project, queue, echo=True))
        if claim is not None:
            await timed("delete_messages", storage.messages.delete(
                project, queue, claim.messages[0].id, claim.id))
            await timed("delete_claim", storage.claims.release(project, queue, claim.id))
        await timed("bulk_delete_messages",
                    storage.messages.delete_many(project, queue, ids[:20]))
        await timed("delete_queue", storage.queues.delete(project, queue))
        return status
