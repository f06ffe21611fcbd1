"""Subscriptions (zaqar-v2-api.md §2.5, §5.3) and their delivery log.

Zaqar's routes -- create, list, get, patch, delete, confirm -- with Zaqar's
validation and messages (``api/subscription_rules.py``), plus Mailslot's
``deliveries`` (the attempt log; redeliver one message) and ``dead_letters``
(list; replay).

The API never calls a subscriber: with ``dispatch.require_confirmation`` it
queues the (un)confirmation payload as a delivery job, and the dispatcher
sends it. Each subscription's webhook secret is generated here, stored, and
shown once: in the answer to the POST that created it.

Only account holders reach these routes (never a token), with one exception:
``PUT .../confirm`` also takes the Zaqar-form signature of a confirmation
link, and only one that signs exactly that path and ``PUT``.
"""

from __future__ import annotations

from typing import Any, Callable

import falcon

import signing
from queues.api import body, params, views
from queues.api.body import json_response
from queues.api.middleware import refuse_tokens
from queues.api.resources.base import Context, Resource
from queues.api.signed import KeySource, audit
from queues.api.subscription_rules import SubscriptionRules
from queues.errors import InvalidBody, InvalidInput, SignatureRejected, TokenRefused
from queues.models import Subscription, notification
from subscriptions import confirmation, webhook

# Pages of the delivery log and of dead letters.
LOG_PAGE_DEFAULT = 20
LOG_PAGE_MAX = 100
_LIST_PARAMS = {"marker": str, "limit": int}

PayloadBuilder = Callable[..., bytes]


async def _document(req: falcon.Request, ctx: Context, empty: Any) -> Any:
    """The parsed JSON body, or ``empty`` when there is none."""
    raw = await body.read(req, ctx.limits.max_queue_metadata,
                          "Request body is too large.", InvalidBody)
    return body.parse(raw) if raw.strip() else empty


class Confirmations:
    """Queues (un)confirmation payloads as delivery jobs (§5.3)."""

    def __init__(self, ctx: Context, keys: KeySource) -> None:
        self._ctx = ctx
        self._keys = keys

    @property
    def required(self) -> bool:
        return self._ctx.settings.dispatch.require_confirmation

    def check_ready(self) -> None:
        """Refuse to make a subscription no one could ever confirm (the app
        also refuses to start so configured: see ``create_app``)."""
        if self.required:
            self._ring()

    def _ring(self) -> signing.KeyRing:
        ring = self._keys.current()
        if ring is None:
            raise InvalidInput("Subscriptions must be confirmed on this server, but"
                               " no signing key is configured to sign the"
                               " confirmation link.")
        return ring

    async def subscribe(self, sub: Subscription) -> None:
        ttl = min(sub.ttl, self._ctx.settings.signing.max_ttl)
        await self._queue(sub, confirmation.subscription_confirmation, ttl)

    async def unsubscribe(self, sub: Subscription) -> None:
        settings = self._ctx.settings
        ttl = min(settings.transport.default_subscription_ttl, settings.signing.max_ttl)
        await self._queue(sub, confirmation.unsubscribe_confirmation, ttl)

    async def _queue(self, sub: Subscription, build: PayloadBuilder, ttl: int) -> None:
        ring, storage = self._ring(), self._ctx.storage
        generation = await storage.grants.generation(sub.project, sub.queue)
        key = signing.zaqar_queue_key(ring.active.secret, sub.project, sub.queue,
                                      generation)
        payload = build(key, project=sub.project, queue=sub.queue,
                        subscription_id=sub.id, expires=self._ctx.clock() + ttl)
        await storage.jobs.redeliver(sub.id, confirmation.new_message_id(), payload)


class _SubscriptionResource(Resource):
    __slots__ = ("_rules", "_confirmations")

    def __init__(self, ctx: Context, rules: SubscriptionRules,
                 confirmations: Confirmations) -> None:
        super().__init__(ctx)
        self._rules = rules
        self._confirmations = confirmations


@falcon.before(refuse_tokens)
class SubscriptionCollection(_SubscriptionResource):
    async def on_post(self, req: falcon.Request, resp: falcon.Response,
                      queue_name: str) -> None:
        spec = self._rules.for_create(await _document(req, self.ctx, {}),
                                      self.ctx.clock(), req.context.project)
        self._confirmations.check_ready()
        secret = webhook.generate_secret()
        resp.location = req.path  # Zaqar's, on 201 and on 409
        sub, created = await self.ctx.storage.subscriptions.create(
            req.context.project, queue_name, spec.subscriber, ttl=spec.ttl,
            options=spec.options, secret=secret)
        if self._confirmations.required:
            await self._confirmations.subscribe(sub)  # again for a duplicate
        answer = {"subscription_id": sub.id}
        if created:
            answer["secret"] = secret  # shown this once, never again
        json_response(resp, answer, falcon.HTTP_201)

    async def on_get(self, req: falcon.Request, resp: falcon.Response,
                     queue_name: str) -> None:
        limit = params.limit(req, self.ctx.limits.max_subscriptions_per_page)
        page = await self.ctx.storage.subscriptions.list(
            req.context.project, queue_name, marker=req.get_param("marker"),
            limit=limit)
        now = self.ctx.clock()
        json_response(resp, {
            "subscriptions": [views.subscription(s, now) for s in page.items],
            "links": views.next_links(req.path, page, params.echoed(req, _LIST_PARAMS)),
        })


@falcon.before(refuse_tokens)
class SubscriptionItem(_SubscriptionResource):
    async def on_get(self, req: falcon.Request, resp: falcon.Response,
                     queue_name: str, subscription_id: str) -> None:
        sub = await self.ctx.storage.subscriptions.get(
            req.context.project, queue_name, subscription_id)
        json_response(resp, views.subscription(sub, self.ctx.clock()))

    async def on_delete(self, req: falcon.Request, resp: falcon.Response,
                        queue_name: str, subscription_id: str) -> None:
        await self.ctx.storage.subscriptions.delete(
            req.context.project, queue_name, subscription_id)
        resp.status = falcon.HTTP_204

    async def on_patch(self, req: falcon.Request, resp: falcon.Response,
                       queue_name: str, subscription_id: str) -> None:
        changes = self._rules.for_update(await _document(req, self.ctx, {}),
                                         subscription_id, self.ctx.clock())
        project, store = req.context.project, self.ctx.storage.subscriptions
        current = await store.get(project, queue_name, subscription_id)
        moved = changes.subscriber not in (None, current.subscriber)
        if moved or changes.options is not None:
            self._rules.check_destination(
                changes.subscriber or current.subscriber,
                current.options if changes.options is None else changes.options,
                project)
        if moved:
            self._confirmations.check_ready()
        await store.update(project, queue_name, subscription_id,
                           subscriber=changes.subscriber, ttl=changes.ttl,
                           options=changes.options)
        if moved and self._confirmations.required:
            await self._reconfirm(project, queue_name, subscription_id)
        resp.status = falcon.HTTP_204
        resp.location = req.path

    async def _reconfirm(self, project: str, queue: str, subscription_id: str) -> None:
        """A new subscriber must consent itself: the old one's confirmation
        does not carry over (Zaqar keeps it, which lets a confirmed
        subscription be pointed at any third party)."""
        store = self.ctx.storage.subscriptions
        await store.confirm(project, queue, subscription_id, False)
        await self._confirmations.subscribe(
            await store.get(project, queue, subscription_id))


class SubscriptionConfirm(_SubscriptionResource):
    # Lets SignedAccess verify Zaqar-form URL-* headers here; Mailslot tokens
    # never grant "confirm". The exact-path rule is enforced below.
    grant_ops = {"PUT": "confirm"}

    async def on_put(self, req: falcon.Request, resp: falcon.Response,
                     queue_name: str, subscription_id: str) -> None:
        _check_confirmation_link(req, queue_name, subscription_id)
        document = await _document(req, self.ctx, {})
        confirmed = document.get("confirmed") if isinstance(document, dict) else None
        if not isinstance(confirmed, bool):
            raise InvalidInput("The 'confirmed' should be boolean.")
        project, store = req.context.project, self.ctx.storage.subscriptions
        await store.confirm(project, queue_name, subscription_id, confirmed)
        if not confirmed and self._confirmations.required:
            await self._confirmations.unsubscribe(
                await store.get(project, queue_name, subscription_id))
        resp.status = falcon.HTTP_204
        resp.location = req.path


def _check_confirmation_link(req: falcon.Request, queue: str,
                             subscription_id: str) -> None:
    """Header auth, or a Zaqar-form signature of exactly this confirm path
    and method: a share-minted signature covering ``.../subscriptions`` (or
    another subscription's link) confirms nothing."""
    token = req.context.token
    if token is None:
        return
    if token.kind != "zaqar":
        raise TokenRefused()
    if (req.get_header("URL-Paths") != confirmation.confirm_path(queue, subscription_id)
            or req.get_header("URL-Methods") != confirmation.METHOD):
        audit("refuse", form="zaqar", reason="scope", method=req.method,
              path=req.path, client=req.remote_addr)
        raise SignatureRejected()


async def _subscription(ctx: Context, req: falcon.Request, queue: str,
                        subscription_id: str) -> Subscription:
    """The subscription, only if it belongs to this project and queue."""
    return await ctx.storage.subscriptions.get(req.context.project, queue,
                                               subscription_id)


def _only_keys(document: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise InvalidBody("Document type not supported.")
    unknown = set(document) - allowed
    if unknown:
        raise InvalidInput(f"Unknown keys: {unknown}")
    return document


@falcon.before(refuse_tokens)
class SubscriptionDeliveries(Resource):
    """Mailslot: the delivery log, newest first; redeliver one message now."""

    async def on_get(self, req: falcon.Request, resp: falcon.Response,
                     queue_name: str, subscription_id: str) -> None:
        limit = params.limit(req, LOG_PAGE_MAX, default=LOG_PAGE_DEFAULT)
        sub = await _subscription(self.ctx, req, queue_name, subscription_id)
        attempts = await self.ctx.storage.jobs.attempts(sub.id, limit=limit)
        json_response(resp, {"deliveries": [views.delivery_attempt(a)
                                             for a in attempts]})

    async def on_post(self, req: falcon.Request, resp: falcon.Response,
                      queue_name: str, subscription_id: str) -> None:
        document = _only_keys(await _document(req, self.ctx, {}), {"message_id"})
        message_id = document.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            raise InvalidBody('The value of the "message_id" field must be a'
                              ' message id.')
        sub = await _subscription(self.ctx, req, queue_name, subscription_id)
        message = await self.ctx.storage.messages.get(req.context.project,
                                                      queue_name, message_id)
        job_id = await self.ctx.storage.jobs.redeliver(
            sub.id, message.id, notification(message.as_posted()))
        json_response(resp, {"job_id": job_id}, falcon.HTTP_202)


@falcon.before(refuse_tokens)
class SubscriptionDeadLetters(Resource):
    """Mailslot: jobs that exhausted their retries or failed for good; replay."""

    async def on_get(self, req: falcon.Request, resp: falcon.Response,
                     queue_name: str, subscription_id: str) -> None:
        limit = params.limit(req, LOG_PAGE_MAX, default=LOG_PAGE_DEFAULT)
        sub = await _subscription(self.ctx, req, queue_name, subscription_id)
        jobs = await self.ctx.storage.jobs.dead_letters(sub.id, limit=limit)
        json_response(resp, {"dead_letters": [views.dead_letter(j) for j in jobs]})

    async def on_post(self, req: falcon.Request, resp: falcon.Response,
                      queue_name: str, subscription_id: str) -> None:
        document = _only_keys(await _document(req, self.ctx, {}), {"ids"})
        ids = document.get("ids")
        if ids is not None and (not isinstance(ids, list) or not all(
                isinstance(i, str) and i for i in ids)):
            raise InvalidBody('The value of the "ids" field must be a list of'
                              ' dead letter job ids.')
        sub = await _subscription(self.ctx, req, queue_name, subscription_id)
        replayed = await self.ctx.storage.jobs.replay(sub.id, ids)
        json_response(resp, {"replayed": replayed})
