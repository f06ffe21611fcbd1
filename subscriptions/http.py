"""An HTTP client (aiohttp) that can reach only addresses the SSRF guard judged.

Every request's scheme, port and any IP-literal host are checked first
(``Guard.check_target``). Names are resolved by the connector through
``GuardResolver``, i.e. ``Guard.resolve``, once per new TCP connection (the
connector keeps no DNS cache of its own), and the connection goes to one of
the addresses just judged, tried in the resolver's order: never to a second,
unjudged resolution. The URL keeps its host name, so the ``Host`` header, TLS
SNI and certificate verification all stay on the name.

Also: redirects are never followed, proxies, netrc and ``SSL_CERT_*`` are not
taken from the environment, cookies are not kept, every phase has a timeout
(connect, each read, and the whole request's deadline), and ``send`` reads at
most ``max_response_bytes`` of the reply, raw (a compressed bomb cannot grow).

Why aiohttp: per POST to a loopback receiver on a 2-core VM the client's own
CPU was ~950 us with httpx, ~720 us with httpcore alone and ~290 us with
aiohttp. The dispatcher spent 68% of its CPU in httpx and httpcore (2.9 ms a
delivery) and could not deliver 500 messages/s there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
import ssl
from collections.abc import Mapping

import aiohttp
import certifi
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from subscriptions import result as r
from subscriptions.errors import BlockedDestination, ResolutionFailed
from subscriptions.ssrf import Guard

USER_AGENT = "Mailslot-Webhooks/1.0"
KEEPALIVE_SECONDS = 30.0


class GuardResolver(AbstractResolver):
    """The connector's resolver: the guard's resolution, every address judged
    (it raises ``BlockedDestination`` if any is refused)."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        addresses = await self._guard.resolve(host, port)
        return [ResolveResult(hostname=host, host=str(address), port=port,
                              family=socket.AF_INET6 if address.version == 6
                              else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST)
                for address in addresses]

    async def close(self) -> None:
        return None


def default_ssl_context() -> ssl.SSLContext:
    """Certificate checks against certifi's roots, never the environment's."""
    return ssl.create_default_context(cafile=certifi.where())


class Client:
    """The dispatcher's client. The aiohttp session is made on first use,
    inside the event loop it belongs to; ``aclose`` (or ``async with``)
    closes it."""

    def __init__(self, guard: Guard, *, connect_timeout: float, read_timeout: float,
                 ssl_context: ssl.SSLContext | None = None,
                 max_connections: int = 100) -> None:
        self.guard = guard
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout,
                                              sock_connect=connect_timeout,
                                              sock_read=read_timeout)
        self._ssl = ssl_context or default_ssl_context()
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, use_dns_cache=False,
                resolver=GuardResolver(self.guard), ssl=self._ssl,
                keepalive_timeout=KEEPALIVE_SECONDS)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, auto_decompress=False,
                trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def make_client(guard: Guard, *, connect_timeout: float, read_timeout: float,
                ssl_context: ssl.SSLContext | None = None,
                max_connections: int = 100) -> Client:
    """The dispatcher's client: guarded, no redirects, no environment."""
    return Client(guard, connect_timeout=connect_timeout, read_timeout=read_timeout,
                  ssl_context=ssl_context, max_connections=max_connections)


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # case-insensitive (a CIMultiDictProxy)
    body: bytes  # at most max_response_bytes
    truncated: bool


async def post(client: Client, url: str, *, content: bytes,
               headers: Mapping[str, str], max_response_bytes: int,
               deadline: float) -> Reply:
    """POST and read a bounded reply, all within ``deadline`` seconds (which
    also bounds a server dripping bytes slower than the read timeout)."""
    return await send(client, "POST", url, content=content, headers=headers,
                      max_response_bytes=max_response_bytes, deadline=deadline)


async def send(client: Client, method: str, url: str, *,
               content: bytes, headers: Mapping[str, str],
               max_response_bytes: int, deadline: float) -> Reply:
    """``post`` for any method (the Heat actions PATCH)."""
    target = _target(url)
    client.guard.check_target(target.scheme, target.host or "", target.port)
    async with asyncio.timeout(deadline):
        # No Content-Type unless the caller sends one (aiohttp would add
        # application/octet-stream for bytes).
        async with client.session().request(
                method, target, data=content, headers=dict(headers),
                allow_redirects=False, skip_auto_headers=("Content-Type",)) as response:
            body, truncated = await read_bounded(response, max_response_bytes)
            if truncated:
                response.close()  # the rest is unread: the connection goes
    return Reply(response.status, response.headers, body, truncated)


def _target(url: str) -> URL:
    """The URL to request. One already in URL form is sent exactly as given:
    yarl's parsing would also normalize it (``%2A`` back to ``*``, which a
    target may read differently); anything else is encoded by yarl."""
    try:
        parsed = URL(url)
        if url.isascii() and not _NEEDS_ENCODING.search(url):
            return URL(url, encoded=True)
        return parsed
    except (ValueError, TypeError):
        raise aiohttp.InvalidURL(url) from None


# Characters a URL may not carry as they are (RFC 3986: controls, space and
# the excluded set), so a URL holding one is not "already in URL form".
_NEEDS_ENCODING = re.compile(r'[\x00-\x20\x7f"<>\\^`{|}]')


async def read_bounded(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` raw bytes of the body, and whether there were more."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        if size + len(chunk) > limit:
            chunks.append(chunk[: limit - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


def describe(ex: BaseException) -> str:
    """``Class: text`` of a failed request for the delivery log, without the
    URL some aiohttp errors quote (a subscriber URL may carry a secret)."""
    if isinstance(ex, aiohttp.ClientResponseError):
        text = ex.message
    elif isinstance(ex, aiohttp.InvalidURL):
        text = "the URL could not be parsed"
    else:
        text = str(ex)
    return f"{type(ex).__name__}: {text}"[:500]


def error_class(ex: BaseException) -> str:
    """The ``subscriptions.result`` error class of a failed request."""
    if isinstance(ex, BlockedDestination):
        return r.BLOCKED
    if isinstance(ex, ResolutionFailed):
        return r.DNS
    if isinstance(ex, (TimeoutError, asyncio.TimeoutError)):  # aiohttp's timeouts too
        return r.TIMEOUT
    if isinstance(ex, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)):
        return r.INVALID_REQUEST
    if isinstance(ex, (aiohttp.ClientSSLError, aiohttp.ServerFingerprintMismatch)):
        return r.TLS
    if isinstance(ex, aiohttp.ClientConnectorError):
        return r.TLS if _caused_by_ssl(ex) else r.CONNECT
    if isinstance(ex, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
                       aiohttp.ClientResponseError)):
        return r.PROTOCOL
    if isinstance(ex, (aiohttp.ClientError, OSError)):
        return r.NETWORK
    return r.INTERNAL


def _caused_by_ssl(ex: BaseException) -> bool:
    seen: BaseException | None = ex
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
