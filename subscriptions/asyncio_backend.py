"""An httpcore network backend on plain asyncio streams.

httpcore's default backend on asyncio goes through anyio: every read and
write opens a cancel scope, and the pool's per-request "is the idle
connection still usable?" check builds anyio's whole socket-attribute
mapping (a ``getpeername`` call included). Under py-spy that was about a
fifth of the dispatcher's CPU per webhook delivery. This backend implements
the same ``httpcore.AsyncNetworkBackend`` interface (the extension point
httpcore documents) on ``asyncio.open_connection`` and ``asyncio.timeout``,
with httpcore's exception classes for every failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import typing
from collections.abc import Iterable, Iterator

import httpcore
# httpcore's own readability check, the one its anyio and sync streams use.
from httpcore._utils import is_socket_readable

SocketOption = typing.Any


@contextlib.contextmanager
def _mapped(timeout_error: type[Exception], other_error: type[Exception]) -> Iterator[None]:
    """Timeouts become ``timeout_error``, socket and TLS errors ``other_error``."""
    try:
        yield
    except TimeoutError as ex:
        raise timeout_error(str(ex) or "timed out") from ex
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError, EOFError) as ex:
        raise other_error(str(ex) or type(ex).__name__) from ex


# get_extra_info names httpcore asks for -> asyncio transport names.
_EXTRA_INFO = {"ssl_object": "ssl_object", "client_addr": "sockname",
               "server_addr": "peername", "socket": "socket"}


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _mapped(httpcore.ReadTimeout, httpcore.ReadError):
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        with _mapped(httpcore.WriteTimeout, httpcore.WriteError):
            self._writer.write(buffer)
            async with asyncio.timeout(timeout):
                await self._writer.drain()

    async def aclose(self) -> None:
        self._writer.close()  # the transport closes once its buffer is sent

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        try:
            with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
                async with asyncio.timeout(timeout):
                    await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except Exception:
            await self.aclose()
            raise
        return self

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable":  # asyncio may have read the EOF already
            return (self._reader.at_eof() or self._writer.is_closing()
                    or is_socket_readable(self._writer.get_extra_info("socket")))
        key = _EXTRA_INFO.get(info)
        return self._writer.get_extra_info(key) if key else None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[SocketOption] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        local = (local_address, 0) if local_address else None
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            async with asyncio.timeout(timeout):
                # asyncio sets TCP_NODELAY on TCP transports itself.
                reader, writer = await asyncio.open_connection(host, port, local_addr=local)
            for option in socket_options or ():
                writer.get_extra_info("socket").setsockopt(*option)
        return AsyncioStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
