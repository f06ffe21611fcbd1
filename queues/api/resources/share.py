"""``POST /v2/queues/{name}/share``: mint a pre-signed URL.

Accepts Zaqar's body (``paths``, ``methods``, ``expires``) and answers
Zaqar's fields, so python-zaqarclient's ``signed_url()`` and its
``signed-url`` auth backend work unchanged; also accepts ``ttl``,
``not_before``, ``cidrs`` and ``one_time``, and adds ``url``, ``token``,
``kid`` and ``jti``. Only an account holder can mint: never a token.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

import falcon

import signing
from queues.api import body
from queues.api.body import json_response
from queues.api.middleware import refuse_tokens
from queues.api.resources.base import Resource
from queues.api.signed import TOKEN_PARAM, KeySource, audit
from queues.errors import InvalidBody, InvalidInput

GRANTABLE_PATHS = {"messages", "subscriptions", "claims"}
ZAQAR_KEYS = {"paths", "methods", "expires"}
MAILSLOT_KEYS = {"ttl", "not_before", "cidrs", "one_time"}
# (path, HTTP method) -> operation; subscriptions are never token-grantable.
_OPERATIONS = {
    ("messages", "GET"): "read", ("messages", "HEAD"): "read",
    ("messages", "POST"): "post", ("messages", "DELETE"): "delete",
    ("claims", "POST"): "claim", ("claims", "GET"): "claim",
    ("claims", "PATCH"): "claim", ("claims", "DELETE"): "claim",
}


def _string_list(document: dict, key: str, default: list[str]) -> list[str]:
    value = document.get(key, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"`{key}` should be a list")
    return value


class MintRequest:
    """The validated share body."""

    def __init__(self, document: Any, now: float, max_ttl: int) -> None:
        if not isinstance(document, dict):
            raise InvalidBody("Request body could not be parsed.")
        unknown = set(document) - ZAQAR_KEYS - MAILSLOT_KEYS
        if unknown:
            raise InvalidInput(f"Unknown keys: {unknown}")
        self.paths = _string_list(document, "paths", ["messages"])
        invalid = set(self.paths) - GRANTABLE_PATHS
        if invalid:
            raise InvalidInput(f"Invalid paths: {invalid}")
        self.methods = _string_list(document, "methods", ["GET"])
        self.ttl = self._ttl(document, now, max_ttl)
        self.not_before = self._not_before(document.get("not_before"))
        self.cidrs = _string_list(document, "cidrs", [])
        self.one_time = document.get("one_time", False)
        if not isinstance(self.one_time, bool):
            raise InvalidInput("`one_time` should be a boolean")
        self.ops = sorted({_OPERATIONS[(p, m)] for p in self.paths
                           for m in self.methods if (p, m) in _OPERATIONS})
        if not self.ops:
            raise InvalidInput("The paths and methods requested grant nothing a signed"
                               " URL may do (read, post or delete messages; claims).")

    @staticmethod
    def _ttl(document: dict, now: float, max_ttl: int) -> int | None:
        if "expires" in document and "ttl" in document:
            raise InvalidInput("Give either `expires` or `ttl`, not both.")
        if "ttl" in document:
            ttl = document["ttl"]
            if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= max_ttl:
                raise InvalidInput(f"`ttl` must be an integer from 1 to {max_ttl}.")
            return ttl
        if "expires" not in document:
            return None
        expires = document["expires"]
        if isinstance(expires, str) and expires.isdigit():
            raise InvalidInput("`expires` should be date format, for example"
                               f" 2016-01-01T00:00:00, not integer value: {expires}")
        try:
            moment = signing.parse_expires(expires)
        except signing.GrantError:
            raise InvalidInput("`expires` should be date format, for example"
                               " 2016-01-01T00:00:00") from None
        seconds = moment.replace(tzinfo=datetime.timezone.utc).timestamp() - now
        if seconds <= 0:
            raise InvalidInput("`expires` is lower than the current time")
        if seconds > max_ttl:
            raise InvalidInput(f"`expires` may be at most {max_ttl} seconds ahead.")
        return max(1, math.floor(seconds))

    @staticmethod
    def _not_before(value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput("`not_before` must be an integer (epoch seconds).")
        return value


class QueueShare(Resource):
    __slots__ = ("_keys",)

    def __init__(self, ctx, keys: KeySource) -> None:
        super().__init__(ctx)
        self._keys = keys

    @falcon.before(refuse_tokens)
    async def on_post(self, req: falcon.Request, resp: falcon.Response,
                      queue_name: str) -> None:
        signer, ring = self._keys.signer(), self._keys.current()
        if signer is None or ring is None:
            raise InvalidInput("The `key` can't be None")
        raw = await body.read(req, self.ctx.limits.max_queue_metadata,
                              "Request body is too large.", InvalidBody)
        if not raw.strip():
            raise InvalidBody("Request body could not be parsed.")
        now = self.ctx.clock()
        spec = MintRequest(body.parse(raw), now, signer.max_ttl)
        project = req.context.project
        generation = await self.ctx.storage.grants.generation(project, queue_name)
        try:
            token, grant = signer.mint(
                project, queue_name, spec.ops, now=now, ttl=spec.ttl,
                not_before=spec.not_before, cidrs=spec.cidrs, gen=generation,
                one_time=spec.one_time)
        except signing.GrantError as ex:
            raise InvalidInput(str(ex)) from None
        zaqar_key = signing.zaqar_queue_key(ring.active.secret, project, queue_name,
                                            generation)
        json_response(resp, self._answer(req, queue_name, spec, token, grant, zaqar_key))
        audit("mint", kid=grant.kid, jti=grant.jti, project=project, queue=queue_name,
              ops=",".join(spec.ops), exp=grant.exp, client=req.remote_addr)

    def _answer(self, req: falcon.Request, queue: str, spec: MintRequest, token: str,
                grant: signing.Grant, zaqar_key: bytes) -> dict[str, Any]:
        paths = sorted(f"/v2/queues/{queue}/{p}" for p in set(spec.paths))
        methods = sorted(set(spec.methods))
        expires = datetime.datetime.fromtimestamp(grant.exp, datetime.timezone.utc)
        expires_text = expires.strftime("%Y-%m-%dT%H:%M:%S")
        base = (self.ctx.settings.signing.public_url or req.prefix).rstrip("/")
        credential = signing.format_credential(grant.kid, token)
        return {
            "paths": paths, "methods": methods, "project": grant.project,
            "expires": expires_text,
            "signature": signing.zaqar_signature(zaqar_key, paths, methods,
                                                 grant.project, expires_text),
            "url": f"{base}/v2/queues/{queue}/messages?{TOKEN_PARAM}={credential}",
            "token": token, "kid": grant.kid, "jti": grant.jti,
            "ops": spec.ops, "exp": grant.exp,
        }
