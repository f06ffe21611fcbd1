"""uvicorn's httptools protocol, sending each response in one socket write.

uvicorn writes a response's status line and headers as soon as the app sends
``http.response.start``, then the body as a second write: two ``send``
syscalls per request, about a tenth of a small POST's CPU under load.
``CoalescingHttpToolsProtocol`` gives uvicorn a transport that gathers writes
and sends them when the response is complete, in one write and without delay
(a 204 is not held back a loop turn: deferring every response to the next
turn cost claim+delete, all small 204s, 17% of its rate). Writes outside a
response (``100 Continue``) leave at the end of the loop turn at the latest,
and closing the transport sends what is gathered first. Everything else is
the real transport's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """A transport proxy that joins the writes of one event-loop turn."""

    def __init__(self, transport: asyncio.Transport,
                 loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:  # at the latest at the end of this loop turn
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def writelines(self, lines: list[bytes]) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        """Send what was gathered (nothing once the transport is closing)."""
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending = []
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` on a ``CoalescingTransport``, flushed as each
    response completes."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(
            CoalescingTransport(transport, asyncio.get_running_loop()))  # type: ignore[arg-type]

    def on_response_complete(self) -> None:
        self.transport.flush()  # type: ignore[attr-defined]
        super().on_response_complete()
