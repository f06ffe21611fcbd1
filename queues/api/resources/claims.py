"""Claims: create, get, renew (PATCH), release (DELETE)."""

from __future__ import annotations

import falcon

from queues.api import body, params, views
from queues.api.body import json_response
from queues.api.resources.base import Resource
from queues.config import TransportSettings
from queues.errors import InvalidBody, InvalidInput


def _check_ttl(ttl: int, limits: TransportSettings) -> None:
    if not 60 <= ttl <= limits.max_claim_ttl:
        raise InvalidInput(f"The TTL for a claim may not exceed {limits.max_claim_ttl}"
                           " seconds, and must be at least 60 seconds long.")


def _check_grace(grace: int, limits: TransportSettings) -> None:
    if not 60 <= grace <= limits.max_claim_grace:
        raise InvalidInput(
            f"The grace for a claim may not exceed {limits.max_claim_grace} seconds,"
            " and must be at least 60 seconds long.")


async def _claim_options(req: falcon.Request, limits: TransportSettings,
                         required: bool) -> tuple[int, int]:
    raw = await body.read(req, limits.max_queue_metadata, "Request body is too large.",
                          InvalidBody)
    if not raw.strip():
        if required:
            raise InvalidBody("Request body could not be parsed.")
        return limits.default_claim_ttl, limits.default_claim_grace
    document = body.parse(raw)
    if not isinstance(document, dict):
        raise InvalidBody("Document type not supported.")
    return (body.int_field(document, "ttl", limits.default_claim_ttl),
            body.int_field(document, "grace", limits.default_claim_grace))


class ClaimCollection(Resource):
    grant_ops = {"POST": "claim"}
    async def on_post(self, req: falcon.Request, resp: falcon.Response,
                      queue_name: str) -> None:
        limits = self.ctx.limits
        ttl, grace = await _claim_options(req, limits, required=False)
        _check_ttl(ttl, limits)
        limit = params.limit(req, limits.max_messages_per_claim_or_pop)
        _check_grace(grace, limits)
        claim = await self.ctx.storage.claims.create(
            req.context.project, queue_name, ttl=ttl, grace=grace, limit=limit)
        if claim is None:
            resp.status = falcon.HTTP_204
            return
        resp.location = f"/v2/queues/{queue_name}/claims/{claim.id}"
        now = self.ctx.clock()
        json_response(resp, {"messages": [views.message(m, queue_name, now)
                                          for m in claim.messages]}, falcon.HTTP_201)


class ClaimItem(Resource):
    grant_ops = {"GET": "claim", "PATCH": "claim", "DELETE": "claim"}
    async def on_get(self, req: falcon.Request, resp: falcon.Response,
                     queue_name: str, claim_id: str) -> None:
        claim = await self.ctx.storage.claims.get(req.context.project, queue_name,
                                                  claim_id)
        resp.content_location = req.path
        json_response(resp, views.claim(claim, queue_name, self.ctx.clock()))

    async def on_patch(self, req: falcon.Request, resp: falcon.Response,
                       queue_name: str, claim_id: str) -> None:
        limits = self.ctx.limits
        ttl, grace = await _claim_options(req, limits, required=True)
        _check_ttl(ttl, limits)
        await self.ctx.storage.claims.renew(req.context.project, queue_name, claim_id,
                                            ttl=ttl, grace=grace)
        resp.status = falcon.HTTP_204

    async def on_delete(self, req: falcon.Request, resp: falcon.Response,
                        queue_name: str, claim_id: str) -> None:
        await self.ctx.storage.claims.release(req.context.project, queue_name,
                                              claim_id)
        resp.status = falcon.HTTP_204
