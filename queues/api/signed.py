"""Signed-URL authentication for the API (threat model: signing.md §4).

A request presents a token as ``Authorization: Signed <kid>:<token>``, as
``?token=<kid>:<token>`` (the minted ``url``), or as Zaqar's ``URL-*``
headers. When one is present it must verify — there is no fall-through to
header auth — and it replaces the project and roles of the request.

Scope is checked against the router's parsed ``queue_name`` and the route's
operation (``grant_ops`` on the resource), never against path strings.
Revocation state (queue generation, jti deny-list, key file) is cached per
worker for at most ``signing.revocation_cache_ttl`` seconds: the documented
bound on how late a revocation takes effect, and re-read in the background
before it expires. Per-token request counts are batched and shared through
the store, also in the background: in the common case a signed request never
waits for the store more than an unsigned one does.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import random
import re
import time
import uuid
from typing import Any, Callable, NamedTuple

import falcon

import signing
from queues.api.ttl_cache import TtlCache
from queues.config import SigningSettings
from queues.errors import ConfigError, SignatureRejected, TokenRefused, TooManyRequests
from queues.storage.base import Driver, GrantStore

AUDIT = logging.getLogger("mailslot.audit")
TOKEN_PARAM = "token"
ZAQAR_HEADERS = ("URL-Signature", "URL-Expires", "URL-Methods", "URL-Paths")
_CLIENT_NAMESPACE = uuid.UUID("5c0f1c4e-8d1e-4b0c-9a51-6d61696c736c")
RATE_WINDOW = 60
RATE_FLUSH_EVERY = 25
# ... or this share of the limit, when that is more (see UseCounter).
RATE_FLUSH_SHARE = 0.01
VERIFIED_CACHE_SIZE = 10_000
MAX_SCOPES_PER_CREDENTIAL = 16
# Token-authenticated responses must not be cached or leak the URL via Referer.
TOKEN_RESPONSE_HEADERS = (("Cache-Control", "no-store"), ("Referrer-Policy", "no-referrer"))


def audit(event: str, **fields: Any) -> None:
    """One structured line per event; never a token or signature."""
    AUDIT.info("%s %s", event, " ".join(f"{k}={v}" for k, v in fields.items()))


class TokenAuth(NamedTuple):
    """What a verified token established for this request (a named tuple:
    built on every signed request, and a frozen dataclass costs more)."""

    kind: str  # "signed" (Mailslot token) or "zaqar" (URL-* headers)
    project: str
    jti: str | None = None
    kid: str | None = None
    # The Client-ID of a request that sends none (echo rules): one per token.
    client_id: str = ""


class Verified(NamedTuple):
    """A verified credential as cached by ``KeySource.verify``."""

    kid: str
    grant: signing.Grant
    valid_from: int  # signer.valid_window(grant): the time checks pass
    valid_until: int  # for valid_from <= now < valid_until
    auth: TokenAuth  # what the request gets once every check passed
    # (operations, queue) pairs signing.authorize accepted (grants without
    # CIDRs only: theirs depend on the peer address)
    scopes: dict[tuple[tuple[str, ...], str], bool]


class KeySource:
    """The key ring, re-read from ``keys_file`` when the file changes."""

    def __init__(self, settings: SigningSettings, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._clock = clock
        self._checked = 0.0
        self._mtime: float | None = None
        self.ring = self._load()
        self._signer = self._build_signer(self.ring)
        self._verified: dict[tuple[str, str], Verified] = {}
        self._verified_for: signing.GrantSigner | None = None

    def _load(self) -> signing.KeyRing | None:
        try:
            if self._settings.keys_file:
                self._mtime = os.stat(self._settings.keys_file).st_mtime
                return signing.KeyRing.from_file(self._settings.keys_file)
            value = os.environ.get(signing.ENV_VAR)
            return signing.KeyRing.from_env(value) if value else None
        except (OSError, signing.SigningConfigError) as ex:
            raise ConfigError(f"signing keys: {ex}") from None

    def current(self, now: float | None = None) -> signing.KeyRing | None:
        """The ring, re-read first if the key file changed (checked at most
        every ``revocation_cache_ttl`` seconds)."""
        now = self._clock() if now is None else now
        if self._settings.keys_file and now - self._checked >= \
                self._settings.revocation_cache_ttl:
            self._checked = now
            try:
                if os.stat(self._settings.keys_file).st_mtime != self._mtime:
                    self.ring = self._load()
                    self._signer = self._build_signer(self.ring)
                    audit("keys_reloaded", kids=",".join(self.ring.kids))
            except (OSError, ConfigError):
                logging.getLogger("mailslot.api").error(
                    "signing key file could not be reloaded; keeping the old ring")
        return self.ring

    def signer(self) -> signing.GrantSigner | None:
        self.current()
        return self._signer

    def verify(self, source: str, value: str, now: float) -> Verified:
        """Parse and verify a presented credential.

        ``source`` is "header" (an ``Authorization`` value) or "query" (a
        ``kid:token``). Verified credentials are cached (bounded), keyed by
        the text presented: the same text always parses and decodes to the
        same grant, so a repeat request skips parsing, decoding and HMAC; the
        time checks still run every time (the grant's validity window, from
        the signer), and a key ring reload empties the cache (a retired key
        stops working).
        """
        self.current(now)
        signer = self._signer
        if signer is None:
            raise signing.InvalidToken("unknown_kid")
        if self._verified_for is not signer:
            self._verified, self._verified_for = {}, signer
        found = self._verified.get((source, value))
        if found is None:
            kid, token = _split_credential(source, value)
            grant = signer.verify(kid, token, now=now)
            found = Verified(kid, grant, *signer.valid_window(grant),
                             TokenAuth("signed", grant.project, grant.jti, kid,
                                       _client_id(grant.jti or grant.project)), {})
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                self._verified.clear()
            self._verified[(source, value)] = found
        elif not found.valid_from <= now < found.valid_until:
            signer.check_times(found.grant, now=now)  # raises, with the reason
        return found

    def _build_signer(self, ring: signing.KeyRing | None) -> signing.GrantSigner | None:
        if ring is None:
            return None
        return signing.GrantSigner(
            ring, default_ttl=self._settings.default_ttl, max_ttl=self._settings.max_ttl,
            leeway=self._settings.leeway)


class RevocationCache:
    """Queue generations and deny-list answers, stale for at most ``ttl``
    seconds, read off the request path (``TtlCache``)."""

    def __init__(self, storage: Driver, ttl: float, clock: Callable[[], float]) -> None:
        self._generations: TtlCache[tuple[str, str], int] = TtlCache(
            lambda key: storage.grants.generation(*key), ttl, clock)
        self._revoked: TtlCache[str, bool] = TtlCache(
            lambda jti: _is_denied(storage.grants, jti), ttl, clock)

    def known_live(self, grant: signing.Grant, now: float) -> bool:
        """True when fresh cached answers already say the grant is neither
        re-keyed nor revoked: the common case, answered without an await."""
        return (self._generations.fresh((grant.project, grant.queue), now) == grant.gen
                and self._revoked.fresh(grant.jti, now) is False)

    async def generation(self, project: str, queue: str) -> int:
        return await self._generations.get((project, queue))

    async def is_revoked(self, jti: str) -> bool:
        return await self._revoked.get(jti)

    async def drain(self) -> None:
        await self._generations.drain()
        await self._revoked.drain()


async def _is_denied(grants: GrantStore, jti: str) -> bool:
    return jti in await grants.revoked([jti])


class UseCounter:
    """Per-token request counts, shared by all workers through the store.

    Each worker counts uses locally and sends them (every token's) to the
    store once a token has a batch of unsent uses, or every ``ttl`` seconds,
    in the background: no request waits for the send (why that matters:
    ``queues.api.ttl_cache``). A batch is ``RATE_FLUSH_EVERY`` uses, or
    ``RATE_FLUSH_SHARE`` of the limit when that is more: precision only
    matters relative to the limit, and many tokens well under it (or one far
    under a high one) then cost one send per ``ttl``, not one per 25 uses.

    A use is allowed while the shared total the last send returned plus this
    worker's uses since then (sends in flight included) stays within the
    limit, so a worker never overshoots on its own; all workers together may
    overshoot by the uses the others have not sent yet, or sent after this
    worker's last send: about one batch, at most two (one in flight, one
    pending), per other worker. A send that fails keeps its counts for the
    next one, tried ``ttl`` seconds later. With ``ttl == 0`` every use is sent and awaited: exact counts.
    """

    def __init__(self, storage: Driver, ttl: float, clock: Callable[[], float]) -> None:
        self._storage = storage
        self._ttl = ttl
        self._clock = clock
        self._pending: dict[str, int] = {}
        self._sending: dict[str, int] = {}
        self._totals: dict[str, tuple[int, int]] = {}  # jti -> (window, shared total)
        self._next_send = 0.0
        self._retry_at = 0.0  # after a failed send, none before this
        self._task: asyncio.Task[None] | None = None

    async def within(self, jti: str, per_minute: int, now: float) -> bool:
        """Count one use of ``jti``; False once its total passes the limit."""
        window = int(now // RATE_WINDOW)
        pending = self._pending[jti] = self._pending.get(jti, 0) + 1
        if self._ttl <= 0:
            await self._send(window)
        elif self._task is None and now >= self._retry_at and (
                now >= self._next_send
                or pending >= max(RATE_FLUSH_EVERY, per_minute * RATE_FLUSH_SHARE)):
            self._next_send = now + self._ttl
            self._task = asyncio.get_running_loop().create_task(
                self._send_in_background(window))
        return self._total(jti, window) <= per_minute

    async def drain(self) -> None:
        """At shutdown: wait for the send in flight, then send what is left."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._pending:
            await self._send(int(self._clock() // RATE_WINDOW))

    def _total(self, jti: str, window: int) -> int:
        known_window, known = self._totals.get(jti, (window, 0))
        return ((known if known_window == window else 0) + self._sending.get(jti, 0)
                + self._pending.get(jti, 0))

    async def _send_in_background(self, window: int) -> None:
        try:
            await self._send(window)
        except Exception as ex:  # noqa: BLE001 - kept for the next send
            self._retry_at = self._clock() + self._ttl
            logging.getLogger("mailslot.api").warning(
                "signed-URL use counts not sent (%s); kept for the next send",
                type(ex).__name__)
        finally:
            self._task = None

    async def _send(self, window: int) -> None:
        batch, self._pending = self._pending, {}
        _add(self._sending, batch, 1)
        try:
            totals = await self._storage.grants.count_uses(batch, RATE_WINDOW)
        except BaseException:
            _add(self._pending, batch, 1)
            raise
        finally:
            _add(self._sending, batch, -1)
        self._totals = {jti: known for jti, known in self._totals.items()
                        if known[0] == window}
        for jti, count in totals.items():  # totals only grow within a window
            known_window, known = self._totals.get(jti, (window, 0))
            self._totals[jti] = (window, max(count, known))


def _add(counts: dict[str, int], amounts: dict[str, int], sign: int) -> None:
    for jti, amount in amounts.items():
        left = counts.get(jti, 0) + sign * amount
        if left:
            counts[jti] = left
        else:
            counts.pop(jti, None)


_EMPTY_TOKEN_PARAM = re.compile(rf"(?:^|&){TOKEN_PARAM}=(?:&|$)")


def _credential(req: falcon.Request) -> tuple[str, str] | None:
    header = req.get_header("Authorization")
    in_query = req.get_param(TOKEN_PARAM)
    if in_query is None and req.query_string and _EMPTY_TOKEN_PARAM.search(req.query_string):
        raise TokenRefused()  # an empty token never means "no token"
    if header is not None and signing.is_signed_scheme(header):
        if in_query is not None:
            raise TokenRefused()
        return "header", header
    if in_query is not None:
        return "query", in_query
    return None


def _split_credential(source: str, value: str) -> tuple[str, str]:
    """``(kid, token)`` of an ``Authorization`` value or a query ``kid:token``."""
    if source == "header":
        return signing.parse_authorization(value)
    return signing.parse_credential(value)


def _kid_or_dash(source: str, value: str) -> str:
    """The kid of a refused credential, for the audit line ("-" if malformed)."""
    try:
        return _split_credential(source, value)[0]
    except signing.InvalidToken:
        return "-"


def _check_scope(req: falcon.Request, found: Verified, operations: tuple[str, ...],
                 params: dict) -> None:
    """The grant covers every operation on the routed queue, and any project
    header names the grant's project. ``signing.authorize`` decides; its
    acceptances are remembered per credential for grants without CIDRs."""
    grant = found.grant
    header_project = req.get_header("X-Project-ID")
    if not operations or (header_project is not None and header_project != grant.project):
        raise signing.InvalidToken("scope")
    queue = params.get("queue_name")
    if grant.cidrs:
        # The peer address is looked up (falcon builds the access route for
        # it) only for a grant bound to CIDRs: the one case authorize reads it.
        for operation in operations:
            signing.authorize(grant, grant.project, queue, operation,
                              client_ip=req.remote_addr)
    elif (operations, queue) not in found.scopes:
        for operation in operations:
            signing.authorize(grant, grant.project, queue, operation)
        if len(found.scopes) < MAX_SCOPES_PER_CREDENTIAL:
            found.scopes[(operations, queue)] = True


class SignedAccess:
    """Falcon middleware; runs before ``ZaqarChecks``."""

    def __init__(self, settings: SigningSettings, keys: KeySource, storage: Driver,
                 clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._keys = keys
        self._storage = storage
        self._cache = RevocationCache(storage, settings.revocation_cache_ttl, clock)
        self._uses = UseCounter(storage, settings.revocation_cache_ttl, clock)
        self._clock = clock

    async def process_shutdown(self, scope: dict, event: dict) -> None:
        """Finish the store reads and use counts in flight, before the
        store closes (``Lifecycle`` is first in the list: its shutdown runs
        last)."""
        await self._cache.drain()
        await self._uses.drain()

    async def process_resource(self, req: falcon.Request, resp: falcon.Response,
                               resource: object, params: dict) -> None:
        req.context.token = None
        if resource is None:
            return
        operations = required_operations(resource, req)
        if req.get_header("URL-Signature") is not None:
            req.context.token = await self._zaqar(req, operations, params)
        else:
            credential = _credential(req)
            if credential is None:
                return
            req.context.token = await self._signed(req, operations, params,
                                                   *credential)
        resp.set_headers(TOKEN_RESPONSE_HEADERS)

    async def _signed(self, req: falcon.Request, operations: tuple[str, ...],
                      params: dict, source: str, value: str) -> TokenAuth:
        now, found = self._clock(), None
        try:
            found = self._keys.verify(source, value, now)
            _check_scope(req, found, operations, params)
            grant = found.grant
            if grant.one_time or not self._cache.known_live(grant, now):
                await self._check_live(grant)
        except signing.InvalidToken as ex:
            audit("refuse", reason=ex.reason, kid=_kid_or_dash(source, value),
                  jti=found.grant.jti if found else "-", method=req.method,
                  queue=params.get("queue_name", "-"), client=req.remote_addr)
            raise TokenRefused() from None
        await self._count_use(req, grant.jti, found.kid, operations, grant.project,
                              grant.queue, now)
        return found.auth

    async def _count_use(self, req: falcon.Request, jti: str, kid: str | None,
                         operations: tuple[str, ...], project: str, queue: str,
                         now: float) -> None:
        if not await self._uses.within(jti, self._settings.requests_per_minute, now):
            audit("refuse", reason="rate", kid=kid or "-", jti=jti,
                  client=req.remote_addr)
            raise TooManyRequests("This signed URL has made too many requests;"
                                  " try again in a minute.")
        rate = self._settings.audit_use_sample_rate
        if rate and random.random() < rate:
            audit("use", kid=kid or "-", jti=jti, op=",".join(operations),
                  project=project, queue=queue, client=req.remote_addr)

    async def _check_live(self, grant: signing.Grant) -> None:
        """Not re-keyed, not revoked, and (one-time tokens) not used before."""
        if await self._cache.generation(grant.project, grant.queue) != grant.gen:
            raise signing.InvalidToken("revoked")
        if await self._cache.is_revoked(grant.jti):
            raise signing.InvalidToken("revoked")
        if grant.one_time and not await self._storage.grants.consume(grant.jti,
                                                                     grant.exp):
            raise signing.InvalidToken("reused")

    async def _zaqar(self, req: falcon.Request, operations: tuple[str, ...],
                     params: dict) -> TokenAuth:
        """Zaqar's URL-* headers: any failure is a bare 404, as in Zaqar."""
        ring, project = self._keys.current(), req.get_header("X-Project-ID")
        queue = params.get("queue_name")
        signature = req.get_header("URL-Signature") or ""
        try:
            if ring is None or not operations or not project or queue is None:
                raise signing.InvalidToken("scope")
            methods = [m for m in (req.get_header("URL-Methods") or "").split(",") if m]
            paths = [p for p in (req.get_header("URL-Paths") or "").split(",") if p]
            generation = await self._cache.generation(project, queue)
            _verify_zaqar_any_key(ring, project, queue, generation, signature, paths,
                                  methods, req.get_header("URL-Expires"), self._clock())
            if req.method not in methods or not signing.zaqar_path_allowed(paths,
                                                                           req.path):
                raise signing.InvalidToken("scope")
        except signing.InvalidToken as ex:
            audit("refuse", form="zaqar", reason=ex.reason, method=req.method,
                  path=req.path, client=req.remote_addr)
            raise SignatureRejected() from None
        signature_id = zaqar_signature_id(signature)
        await self._count_use(req, signature_id, None, operations, project, queue,
                              self._clock())
        return TokenAuth("zaqar", project, signature_id, None, _client_id(signature_id))


def _verify_zaqar_any_key(ring: signing.KeyRing, project: str, queue: str,
                          generation: int, signature: str, paths: list[str],
                          methods: list[str], expires: str | None, now: float) -> None:
    """Accept a signature made with any active or verify-state key."""
    failure = signing.InvalidToken("bad_signature")
    for kid in ring.kids:
        key = ring.get(kid)
        if key is None or key.state == signing.KeyState.RETIRED:
            continue
        derived = signing.zaqar_queue_key(key.secret, project, queue, generation)
        try:
            signing.verify_zaqar_headers(derived, signature, paths, methods, project,
                                         expires, now, max_lifetime=signing.HARD_MAX_TTL)
            return
        except signing.InvalidToken as ex:
            failure = ex
    raise failure


def zaqar_signature_id(signature: str) -> str:
    """A stable id for a Zaqar-form signature (rate limits, audit)."""
    return "z-" + hashlib.sha256(signature.encode()).hexdigest()[:22]


def required_operations(resource: object, req: falcon.Request) -> tuple[str, ...]:
    """The operations a token needs for this route and method (none: not
    token-accessible). ``grant_ops`` values are an operation, or a function
    of the request for routes whose effect depends on the query."""
    needed = getattr(resource, "grant_ops", {}).get(req.method)
    if callable(needed):
        needed = needed(req)
    if needed is None:
        return ()
    return (needed,) if isinstance(needed, str) else tuple(needed)


@functools.lru_cache(maxsize=4096)
def _client_id(seed: str) -> str:
    """Signed requests may omit Client-ID; echo rules then use one per token."""
    return str(uuid.uuid5(_CLIENT_NAMESPACE, seed))


_TOKEN_IN_TEXT = re.compile(r"((?:^|[?&\s])token=)[^&\s\"']+")


def redact(text: str) -> str:
    """Hide query-string tokens (``token=...``) in a log line."""
    return _TOKEN_IN_TEXT.sub(r"\1REDACTED", text)


class RedactTokens(logging.Filter):
    """A logging filter that removes query-string tokens from every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "token=" in record.msg:
            record.msg = redact(record.msg)
        if isinstance(record.args, dict):
            record.args = {k: _redact_value(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_redact_value(a) for a in record.args)
        return True


def _redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) and "token=" in value else value


def install_log_redaction() -> None:
    """Attach ``RedactTokens`` to every logger that may see a request line."""
    for name in ("", "uvicorn", "uvicorn.access", "uvicorn.error", "gunicorn.access",
                 "gunicorn.error", "mailslot.api", "mailslot.audit"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
        for handler in logger.handlers:
            if not any(isinstance(f, RedactTokens) for f in handler.filters):
                handler.addFilter(RedactTokens())
