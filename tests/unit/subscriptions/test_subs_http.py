"""The guarded HTTP client (aiohttp) against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from subscriptions import result as r
from subscriptions.errors import BlockedDestination, ResolutionFailed
from subscriptions.http import Client, GuardResolver, error_class, make_client, post
from subscriptions.ssrf import Guard, SsrfPolicy
from tests.unit.subscriptions.conftest import (
    LOOPBACK_ONLY, client_tls, free_port, loopback_guard, make_cert, response,
    server_tls, static_resolver,
)


def client_for(guard: Guard, **kwargs) -> Client:
    kwargs.setdefault("connect_timeout", 2.0)
    kwargs.setdefault("read_timeout", 2.0)
    return make_client(guard, **kwargs)


async def send(client, url, *, limit=65536, deadline=5.0, body=b"{}"):
    return await post(client, url, content=body, headers={"X-Test": "1"},
                      max_response_bytes=limit, deadline=deadline)


async def test_post_reaches_an_allowed_loopback_server(http_sink):
    sink = await http_sink()
    async with client_for(loopback_guard()) as client:
        reply = await send(client, sink.url, body=b'{"a": 1}')
    assert (reply.status, reply.body, reply.truncated) == (200, b"ok", False)
    request = sink.requests[0]
    assert (request.method, request.target) == ("POST", "/hook")
    assert request.body == b'{"a": 1}'
    assert request.headers["x-test"] == "1"
    assert request.headers["accept-encoding"] == "identity"
    assert request.headers["user-agent"].startswith("Mailslot")


async def test_host_header_keeps_the_name_while_connecting_to_the_checked_ip(http_sink):
    sink = await http_sink()
    resolver = static_resolver(["127.0.0.1"])
    async with client_for(loopback_guard(resolver)) as client:
        reply = await send(client, f"http://hooks.test:{sink.port}/hook")
    assert reply.status == 200
    assert sink.requests[0].headers["host"] == f"hooks.test:{sink.port}"
    assert resolver.calls == [("hooks.test", sink.port)]


async def test_default_guard_blocks_loopback_before_connecting(http_sink):
    sink = await http_sink()
    async with client_for(Guard()) as client:
        with pytest.raises(BlockedDestination, match="loopback"):
            await send(client, sink.url)
    assert sink.connections == 0


@pytest.mark.parametrize("host", ["2130706433", "0177.0.0.1", "0x7f.1", "127.1",
                                  "[::ffff:127.0.0.1]"])
async def test_odd_spellings_never_reach_loopback(http_sink, host):
    sink = await http_sink()
    async with client_for(Guard(resolver=static_resolver(["8.8.8.8"]))) as client:
        # the URL parser refuses some spellings (InvalidURL); the guard the rest.
        with pytest.raises((BlockedDestination, aiohttp.InvalidURL)) as info:
            await send(client, f"http://{host}:{sink.port}/")
    if isinstance(info.value, BlockedDestination):
        assert info.value.reason == "loopback"
    assert sink.connections == 0


async def test_odd_spelling_connects_to_the_ip_it_means_when_allowed(http_sink):
    sink = await http_sink()
    async with client_for(loopback_guard(static_resolver(["10.0.0.1"]))) as client:
        reply = await send(client, f"http://0x7f.1:{sink.port}/")
    assert reply.status == 200


async def test_rebinding_answer_with_a_private_address_is_blocked(http_sink):
    sink = await http_sink()
    resolver = static_resolver(["93.184.215.14", "10.0.0.7"])
    async with client_for(loopback_guard(resolver)) as client:
        with pytest.raises(BlockedDestination, match="private"):
            await send(client, f"http://rebind.test:{sink.port}/")
    assert len(resolver.calls) == 1
    assert sink.connections == 0


async def test_rebinding_between_check_and_connect_is_impossible(http_sink):
    """The resolver answers a checked address first and the metadata address
    on every later call: the request goes to the first answer, the name is
    resolved once per connection, and a fresh pool is refused."""
    sink = await http_sink()
    resolver = static_resolver(["127.0.0.1"], ["169.254.169.254"])
    guard = loopback_guard(resolver)
    async with client_for(guard) as client:
        for _ in range(3):  # keep-alive: one connection, one resolution
            reply = await send(client, f"http://rebind.test:{sink.port}/")
            assert reply.status == 200
    assert len(resolver.calls) == 1
    assert sink.connections == 1
    async with client_for(guard) as client:
        with pytest.raises(BlockedDestination, match="metadata"):
            await send(client, f"http://rebind.test:{sink.port}/")
    assert sink.connections == 1


async def test_next_checked_address_is_tried_when_one_refuses(http_sink):
    sink = await http_sink()  # listens on 127.0.0.1 only
    resolver = static_resolver(["127.0.0.2", "127.0.0.1"])
    guard = Guard(SsrfPolicy.from_config(["127.0.0.0/8"]), resolver)
    async with client_for(guard) as client:
        reply = await send(client, f"http://two.test:{sink.port}/")
    assert reply.status == 200
    assert len(resolver.calls) == 1


async def test_connection_refused_is_classified_connect(http_sink):
    async with client_for(loopback_guard()) as client:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await send(client, f"http://127.0.0.1:{free_port()}/")
    assert error_class(info.value) == r.CONNECT


async def test_redirect_is_not_followed(http_sink):
    target = await http_sink()

    async def redirect(request, writer):
        writer.write(response(302, b"", {"Location": target.url}))

    sink = await http_sink(redirect)
    async with client_for(loopback_guard()) as client:
        reply = await send(client, sink.url)
    assert reply.status == 302
    assert reply.headers["location"] == target.url
    assert target.requests == []


async def test_oversized_response_is_truncated(http_sink):
    big = b"x" * (4 * 1024 * 1024)

    async def huge(request, writer):
        writer.write(response(200, big))

    sink = await http_sink(huge)
    async with client_for(loopback_guard()) as client:
        reply = await send(client, sink.url, limit=1000)
        assert (len(reply.body), reply.truncated) == (1000, True)
        exact = await send(client, sink.url, limit=len(big))
    assert (len(exact.body), exact.truncated) == (len(big), False)


async def test_compressed_body_is_not_inflated(http_sink):
    import gzip
    bomb = gzip.compress(b"\0" * 5_000_000)

    async def gzipped(request, writer):
        writer.write(response(200, bomb, {"Content-Encoding": "gzip"}))

    sink = await http_sink(gzipped)
    async with client_for(loopback_guard()) as client:
        reply = await send(client, sink.url, limit=100_000)
    assert (reply.body, reply.truncated) == (bomb, False)  # raw, never inflated


async def test_silent_server_hits_the_read_timeout(http_sink):
    async def hang(request, writer):
        await asyncio.sleep(30)

    sink = await http_sink(hang)
    started = time.monotonic()
    async with client_for(loopback_guard(), read_timeout=0.3) as client:
        with pytest.raises(aiohttp.SocketTimeoutError) as info:
            await send(client, sink.url)
    assert time.monotonic() - started < 2.0
    assert error_class(info.value) == r.TIMEOUT


async def test_dripping_server_hits_the_deadline(http_sink):
    async def drip(request, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(100):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.05)

    sink = await http_sink(drip)
    started = time.monotonic()
    async with client_for(loopback_guard(), read_timeout=1.0) as client:
        with pytest.raises(TimeoutError) as info:
            await send(client, sink.url, deadline=0.5)
    assert time.monotonic() - started < 2.0
    assert error_class(info.value) == r.TIMEOUT


async def test_slow_resolver_hits_the_connect_timeout():
    async def slow(host, port):
        await asyncio.sleep(30)
        return ["127.0.0.1"]

    async with client_for(Guard(LOOPBACK_ONLY, slow), connect_timeout=0.2) as client:
        with pytest.raises(aiohttp.ConnectionTimeoutError) as info:
            await send(client, "http://slow.test:9/")
    assert error_class(info.value) == r.TIMEOUT


async def test_resolution_failure_is_classified_dns():
    async def nxdomain(host, port):
        raise ResolutionFailed(f"{host} did not resolve")

    async with client_for(Guard(LOOPBACK_ONLY, nxdomain)) as client:
        with pytest.raises(ResolutionFailed) as info:
            await send(client, "http://nowhere.test/")
    assert error_class(info.value) == r.DNS


async def test_environment_proxies_are_ignored(http_sink, monkeypatch):
    sink = await http_sink()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{free_port()}")
    async with client_for(loopback_guard()) as client:
        assert (await send(client, sink.url)).status == 200
    assert sink.requests[0].target == "/hook"  # origin-form: no proxy in between


async def test_non_http_schemes_are_refused():
    async with client_for(loopback_guard()) as client:
        with pytest.raises(BlockedDestination, match="scheme"):
            await send(client, "ftp://127.0.0.1/")


async def test_session_resolves_through_the_guard_and_keeps_no_dns_cache():
    """Pins the aiohttp settings the pinning relies on: a name is resolved by
    the guard for every new connection, never from a cache of the connector."""
    async with client_for(loopback_guard()) as client:
        session = client.session()
        connector = session.connector
        assert isinstance(connector._resolver, GuardResolver)
        assert connector.use_dns_cache is False
        assert session.trust_env is False
        assert session.auto_decompress is False
        assert isinstance(session.cookie_jar, aiohttp.DummyCookieJar)


async def test_a_new_connection_resolves_again(http_sink):
    """Each new connection asks the guard afresh: a name that stops
    resolving to an allowed address stops being reached."""
    sink = await http_sink(_answer_then_hang_up)
    resolver = static_resolver(["127.0.0.1"], ["169.254.169.254"])
    async with client_for(loopback_guard(resolver)) as client:
        assert (await send(client, f"http://rebind.test:{sink.port}/")).status == 200
        await asyncio.sleep(0.05)  # the server hung up: the next needs a connection
        with pytest.raises(BlockedDestination, match="metadata"):
            await send(client, f"http://rebind.test:{sink.port}/")
    assert len(resolver.calls) == 2


# --- TLS: SNI and certificate checks stay on the host name ----------------------


async def test_tls_sni_and_certificate_use_the_host_name(http_sink, tmp_path):
    cert, key = make_cert(tmp_path, ["hooks.test"])
    server_ctx = server_tls(cert, key)
    seen_sni: list[str | None] = []
    server_ctx.sni_callback = lambda sslobj, name, ctx: seen_sni.append(name)
    sink = await http_sink(ssl_context=server_ctx)
    resolver = static_resolver(["127.0.0.1"])
    guard = loopback_guard(resolver)
    async with client_for(guard, ssl_context=client_tls(cert)) as client:
        reply = await send(client, f"https://hooks.test:{sink.port}/hook")
    assert reply.status == 200
    assert seen_sni == ["hooks.test"]
    assert sink.requests[0].headers["host"] == f"hooks.test:{sink.port}"


async def test_tls_certificate_for_another_name_is_refused(http_sink, tmp_path):
    cert, key = make_cert(tmp_path, ["other.test"])
    sink = await http_sink(ssl_context=server_tls(cert, key))
    resolver = static_resolver(["127.0.0.1"])
    guard = loopback_guard(resolver)
    async with client_for(guard, ssl_context=client_tls(cert)) as client:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await send(client, f"https://hooks.test:{sink.port}/hook")
    assert error_class(info.value) == r.TLS
    assert sink.requests == []


# --- keep-alive and closed idle connections --------------------------------------


async def test_keep_alive_connection_is_reused(http_sink):
    sink = await http_sink()
    async with client_for(loopback_guard()) as client:
        for _ in range(3):
            assert (await send(client, sink.url)).status == 200
    assert (len(sink.requests), sink.connections) == (3, 1)


async def _answer_then_hang_up(request, writer):
    writer.write(response(200, b"ok"))
    await writer.drain()
    writer.close()


@pytest.mark.parametrize("tls", [False, True])
async def test_idle_connection_the_server_closed_is_not_reused(http_sink, tmp_path, tls):
    """The server answers with keep-alive, then hangs up while the connection
    sits in the pool: the next request sees it closed and opens a new
    connection instead of failing on the dead one."""
    guard, options, host = loopback_guard(), {}, "127.0.0.1"
    if tls:
        cert, key = make_cert(tmp_path, ["hooks.test"])
        sink = await http_sink(_answer_then_hang_up, ssl_context=server_tls(cert, key))
        guard = loopback_guard(static_resolver(["127.0.0.1"]))
        options, host = {"ssl_context": client_tls(cert)}, "hooks.test"
    else:
        sink = await http_sink(_answer_then_hang_up)
    url = f"{'https' if tls else 'http'}://{host}:{sink.port}/hook"
    async with client_for(guard, **options) as client:
        for _ in range(3):
            assert (await send(client, url)).status == 200
            await asyncio.sleep(0.05)  # the hang-up reaches the idle connection
    assert (len(sink.requests), sink.connections) == (3, 3)
