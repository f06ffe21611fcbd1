"""queues/http_protocol.py: one socket write per response, over real sockets."""

from __future__ import annotations

import asyncio
import socket

from queues.http_protocol import CoalescingTransport


class Recorder(asyncio.Protocol):
    """The receiving end: every chunk as it arrived."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set_result(True)


async def _pair():
    """A real connected transport pair on a socketpair, and a write counter."""
    loop = asyncio.get_running_loop()
    left, right = socket.socketpair()
    sent, _ = await loop.connect_accepted_socket(asyncio.Protocol, left)
    receiver = Recorder()
    await loop.connect_accepted_socket(lambda: receiver, right)
    writes: list[bytes] = []
    real_write = sent.write

    def counting(data: bytes) -> None:
        writes.append(data)
        real_write(data)

    sent.write = counting  # type: ignore[method-assign]
    return sent, receiver, writes


async def test_writes_of_one_turn_leave_in_one_write():
    sent, receiver, writes = await _pair()
    transport = CoalescingTransport(sent, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"{}")
    assert writes == []
    await asyncio.sleep(0.05)
    assert writes == [b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}"]
    assert b"".join(receiver.chunks).endswith(b"\r\n\r\n{}")
    transport.write(b"next")
    await asyncio.sleep(0.05)
    assert writes[-1] == b"next"
    transport.close()
    await asyncio.wait_for(receiver.closed, 2)


async def test_close_sends_what_was_gathered_first():
    sent, receiver, writes = await _pair()
    transport = CoalescingTransport(sent, asyncio.get_running_loop())
    transport.write(b"last words")
    transport.close()
    await asyncio.wait_for(receiver.closed, 2)
    assert b"".join(receiver.chunks) == b"last words"


async def test_nothing_is_written_once_the_peer_is_gone():
    sent, receiver, writes = await _pair()
    transport = CoalescingTransport(sent, asyncio.get_running_loop())
    transport.write(b"too late")
    sent.abort()
    await asyncio.sleep(0.05)
    assert writes == []
    assert transport.is_closing()  # the rest is the real transport's


async def test_uvicorn_sends_each_response_in_one_write(monkeypatch):
    """A real uvicorn server on the protocol: head and body of a response
    leave in one write, at response completion (no loop turn later)."""
    import uvicorn

    from queues.http_protocol import CoalescingHttpToolsProtocol
    from tests.fixtures.common import free_port

    sent: list[bytes] = []
    flush = CoalescingTransport.flush

    def recording(self) -> None:
        if self._pending:
            sent.append(b"".join(self._pending))
        flush(self)

    monkeypatch.setattr(CoalescingTransport, "flush", recording)

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        status = 204 if scope["method"] == "DELETE" else 201
        headers = [(b"content-type", b"application/json")]
        if status == 201:
            headers.append((b"content-length", b"2"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if status == 204 else b"{}"})

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                                           http=CoalescingHttpToolsProtocol, log_level="error"))
    serving = asyncio.ensure_future(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for method in ("POST", "DELETE"):
            writer.write(f"{method} / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            if method == "POST":
                assert await asyncio.wait_for(reader.readexactly(2), 2) == b"{}"
            assert head.startswith(b"HTTP/1.1 " + (b"201" if method == "POST" else b"204"))
        writer.close()
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 5)
    assert len(sent) == 2
    assert sent[0].startswith(b"HTTP/1.1 201") and sent[0].endswith(b"\r\n\r\n{}")
    assert sent[1].startswith(b"HTTP/1.1 204") and sent[1].endswith(b"\r\n\r\n")
