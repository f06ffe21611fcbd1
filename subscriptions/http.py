"""An httpx client that can reach only addresses the SSRF guard judged.

The pinning happens inside httpcore's connection pool: ``GuardedBackend`` is
its network backend, so every new TCP connection resolves the host through
``Guard.resolve`` (once) and connects to one of the addresses just judged,
never to a second resolution (through ``asyncio_backend``, plain asyncio
streams rather than anyio's). The URL keeps its host name, so the ``Host``
header, TLS SNI and certificate verification all stay on the name.

Also: redirects are never followed, proxies and ``SSL_CERT_*`` are not taken
from the environment, every phase has a timeout, and ``post`` reads at most
``max_response_bytes`` of the reply (raw, so a compressed bomb cannot grow).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import typing
from collections.abc import Iterable, Mapping

import httpcore
import httpx

from subscriptions import result as r
from subscriptions.asyncio_backend import AsyncioBackend
from subscriptions.errors import BlockedDestination, ResolutionFailed
from subscriptions.ssrf import Guard, IPAddress

USER_AGENT = "Mailslot-Webhooks/1.0"
SocketOption = typing.Any


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves through the guard, then connects to a judged address.

    The addresses are tried in the resolver's order; all were judged, so
    falling back to the next one is safe. Unix sockets are refused.
    """

    def __init__(self, guard: Guard,
                 inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._guard = guard
        self._inner = inner or AsyncioBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[SocketOption] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolve(host, port, timeout)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout,
                    local_address=local_address, socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as ex:
                failure = ex
        assert failure is not None  # resolve() never returns an empty list
        raise failure

    async def _resolve(self, host: str, port: int, timeout: float | None
                       ) -> list[IPAddress]:
        try:
            async with asyncio.timeout(timeout):
                return await self._guard.resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[SocketOption] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise BlockedDestination("unix-socket", path)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``AsyncHTTPTransport`` over a pool whose backend is ``GuardedBackend``.

    NOTE: httpx 0.28 offers no public way to pass a network backend, so this
    builds the pool itself and relies on the parent keeping it in ``_pool``
    (``test_subs_http`` fails loudly if that changes). Every request is also
    checked for scheme and port before it reaches the pool.
    """

    def __init__(self, guard: Guard, *, ssl_context: ssl.SSLContext | None = None,
                 limits: httpx.Limits = httpx.Limits(max_connections=100,
                                                     max_keepalive_connections=20,
                                                     keepalive_expiry=30.0),
                 ) -> None:
        # The parent's __init__ would build an unguarded pool; skip it.
        self._guard = guard
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True, http2=False,
            network_backend=GuardedBackend(guard),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._guard.check_target(request.url.scheme, request.url.host, request.url.port)
        return await super().handle_async_request(request)


def make_client(guard: Guard, *, connect_timeout: float, read_timeout: float,
                ssl_context: ssl.SSLContext | None = None,
                max_connections: int = 100) -> httpx.AsyncClient:
    """The dispatcher's client: guarded, no redirects, no environment."""
    limits = httpx.Limits(max_connections=max_connections,
                          max_keepalive_connections=min(20, max_connections))
    return httpx.AsyncClient(
        transport=GuardedTransport(guard, ssl_context=ssl_context, limits=limits),
        timeout=httpx.Timeout(connect=connect_timeout, read=read_timeout,
                              write=read_timeout, pool=connect_timeout),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: httpx.Headers
    body: bytes  # at most max_response_bytes
    truncated: bool


async def post(client: httpx.AsyncClient, url: str, *, content: bytes,
               headers: Mapping[str, str], max_response_bytes: int,
               deadline: float) -> Reply:
    """POST and read a bounded reply, all within ``deadline`` seconds (which
    also bounds a server dripping bytes slower than the read timeout)."""
    return await send(client, "POST", url, content=content, headers=headers,
                      max_response_bytes=max_response_bytes, deadline=deadline)


async def send(client: httpx.AsyncClient, method: str, url: str, *,
               content: bytes, headers: Mapping[str, str],
               max_response_bytes: int, deadline: float) -> Reply:
    """``post`` for any method (the Heat actions PATCH)."""
    async with asyncio.timeout(deadline):
        async with client.stream(method, url, content=content,
                                 headers=dict(headers)) as response:
            body, truncated = await read_bounded(response, max_response_bytes)
    return Reply(response.status_code, response.headers, body, truncated)


async def read_bounded(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` raw bytes of the body, and whether there were more.
    Stops reading at the limit; closing the response drops the connection."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        if size + len(chunk) > limit:
            chunks.append(chunk[: limit - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


def error_class(ex: BaseException) -> str:
    """The ``subscriptions.result`` error class of a failed request."""
    if isinstance(ex, BlockedDestination):
        return r.BLOCKED
    if isinstance(ex, ResolutionFailed):
        return r.DNS
    if isinstance(ex, (httpx.TimeoutException, TimeoutError)):
        return r.TIMEOUT
    if isinstance(ex, (httpx.UnsupportedProtocol, httpx.InvalidURL,
                       httpx.LocalProtocolError)):
        return r.INVALID_REQUEST
    if isinstance(ex, httpx.ConnectError):
        return r.TLS if _caused_by_ssl(ex) else r.CONNECT
    if isinstance(ex, (httpx.RemoteProtocolError, httpx.DecodingError)):
        return r.PROTOCOL
    if isinstance(ex, httpx.TransportError):
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
