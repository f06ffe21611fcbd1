"""Real loopback servers for the subscription delivery tests.

``http_sink`` starts minimal HTTP/1.1 servers on 127.0.0.1 (asyncio streams)
whose behaviour each test scripts with a ``respond`` coroutine; every server
and every connection handler is stopped at teardown. ``make_cert`` issues a
throw-away self-signed certificate for TLS tests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ipaddress
import pathlib
import socket
import ssl
from collections.abc import Awaitable, Callable

import pytest

from queues.models import DeliveryJob, Subscription
from subscriptions.ssrf import Guard, SsrfPolicy

LOOPBACK_ONLY = SsrfPolicy.from_config(["127.0.0.1/32"])


@dataclasses.dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


Respond = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]


def response(status: int, body: bytes = b"", headers: dict[str, str] | None = None
             ) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def ok(request: Request, writer: asyncio.StreamWriter) -> None:
    writer.write(response(200, b"ok"))


class HttpSink:
    """One server; ``requests`` records what it received, ``connections``
    counts accepted TCP connections."""

    def __init__(self, respond: Respond, ssl_context: ssl.SSLContext | None) -> None:
        self.respond = respond
        self.ssl_context = ssl_context
        self.requests: list[Request] = []
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}/hook"

    async def start(self) -> HttpSink:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while (request := await _read_request(reader)) is not None:
                self.requests.append(request)
                await self.respond(request, writer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers = {}
    for line in filter(None, lines):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, target, headers, body)


@pytest.fixture
async def http_sink():
    """``await http_sink(respond=ok, ssl_context=None) -> HttpSink``."""
    sinks: list[HttpSink] = []

    async def start(respond: Respond = ok, ssl_context: ssl.SSLContext | None = None
                    ) -> HttpSink:
        sink = await HttpSink(respond, ssl_context).start()
        sinks.append(sink)
        return sink

    yield start
    for sink in sinks:
        await sink.stop()


def static_resolver(*answers: list[str]):
    """A resolver returning ``answers[i]`` on call ``i`` (the last one
    repeats); ``resolver.calls`` records the (host, port) asked."""
    calls: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return answers[min(len(calls), len(answers)) - 1]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def loopback_guard(resolver=None) -> Guard:
    return Guard(LOOPBACK_ONLY, resolver or static_resolver(["127.0.0.1"]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_cert(directory: pathlib.Path, dns_names: list[str],
              ips: tuple[str, ...] = ()) -> tuple[pathlib.Path, pathlib.Path]:
    """A self-signed certificate and key (PEM files) for the given names."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailslot test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt = [x509.DNSName(n) for n in dns_names]
    alt += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                           critical=True)
            .sign(key, hashes.SHA256()))
    cert_path = directory / f"{dns_names[0] if dns_names else ips[0]}.crt"
    key_path = cert_path.with_suffix(".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


def server_tls(cert: pathlib.Path, key: pathlib.Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def client_tls(cert: pathlib.Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def make_subscription(subscriber: str, *, options: dict | None = None,
                      secret: str = "", sub_id: str = "sub-1") -> Subscription:
    return Subscription(id=sub_id, project="p1", queue="orders",
                        subscriber=subscriber, ttl=3600, created=0.0,
                        expires=3600.0, options=options or {}, confirmed=True,
                        secret=secret)


def make_job(message: bytes = b'{"ttl": 300, "body": {"event": "E1"}}', *,
             message_id: str = "msg-1", sub_id: str = "sub-1") -> DeliveryJob:
    return DeliveryJob(id="job-1", subscription_id=sub_id, project="p1",
                       queue="orders", message_id=message_id, message=message,
                       created=0.0, due=0.0, attempts=1)
