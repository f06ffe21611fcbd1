"""Implicit pipelining: the script calls of one event-loop turn share one write.

Under load a worker has dozens of requests in flight, and each used to pay a
pooled connection, a socket write, a read wake-up and two timeout contexts
for its one script call: about a quarter of a single-message POST's CPU.
``AutoPipeline`` queues the packed commands issued during one turn of the
event loop and, at the next turn, sends them in one write on one pooled
connection and reads the replies in order. Redis runs them one after the
other as before (each script stays atomic on its own; the batch is not a
transaction), so the only change a caller sees is fewer syscalls. A caller
may queue a MULTI ... EXEC unit as one command: ``replies`` says how many
replies it answers with, and the caller gets the last one, EXEC's.

An error reply fails only its own command. Anything else (a dead socket, a
timeout of the whole batch) fails every command of that batch that is still
waiting and drops the connection, so the pool opens a fresh one next time.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, Iterable, Sequence

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, ResponseError

# Commands sent per write at most; a larger turn is split over connections.
MAX_BATCH = 64


def encode(arg: Any) -> bytes:
    """One argument as redis-py's ``Encoder`` would send it: str as UTF-8,
    int and float by ``repr``, bytes as they are; bool and others refused."""
    kind = type(arg)
    if kind is str:
        return arg.encode()
    if kind is bytes:
        return arg
    if kind is int or kind is float:
        return repr(arg).encode()
    if isinstance(arg, (bytes, bytearray, memoryview)):
        return bytes(arg)
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, bool) or not isinstance(arg, (int, float)):
        raise DataError(f"Invalid input of type: '{type(arg).__name__}'.")
    return repr(arg).encode()


class RespArgs:
    """Several arguments packed into RESP once (``$<len>\\r\\n<bytes>\\r\\n``
    each) and spliced into commands as they are: a batch of messages, or a
    script's KEYS reused call after call."""

    __slots__ = ("chunk", "count")

    def __init__(self, values: Iterable[Any]) -> None:
        parts = [b"$%d\r\n%b\r\n" % (len(value), value) for value in map(encode, values)]
        self.chunk = b"".join(parts)
        self.count = len(parts)


def pack_command(args: Iterable[Any]) -> bytes:
    """One command in RESP (arguments as ``encode`` gives them); ``RespArgs``
    are spliced in as they are."""
    parts: list[bytes] = []
    count = 0
    for arg in args:
        if type(arg) is RespArgs:
            parts.append(arg.chunk)
            count += arg.count
            continue
        value = encode(arg)
        parts.append(b"$%d\r\n%b\r\n" % (len(value), value))
        count += 1
    return b"*%d\r\n%b" % (count, b"".join(parts))


class AutoPipeline:
    """Batch the commands issued in one event-loop turn into one round trip."""

    def __init__(self, pool: ConnectionPool, timeout: float) -> None:
        self._pool = pool
        self._timeout = timeout
        self._pending: list[tuple[bytes, int, asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def execute(self, packed: bytes, replies: int = 1) -> asyncio.Future[Any]:
        """Queue packed command(s) that answer with ``replies`` replies; the
        future resolves to the last of them."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._pending:  # the first of this turn: flush at the next one
            loop.call_soon(self._flush, loop)
        self._pending.append((packed, replies, future))
        return future

    async def close(self) -> None:
        """Cancel the batches in flight (their callers get an error)."""
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), MAX_BATCH):
            task = loop.create_task(self._round_trip(pending[start:start + MAX_BATCH]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _round_trip(self, batch: Sequence[tuple[bytes, int, asyncio.Future[Any]]]) -> None:
        connection: AbstractConnection | None = None
        try:
            connection = await self._pool.get_connection()
            async with asyncio.timeout(self._timeout):
                await connection.send_packed_command([p for p, _, _ in batch],
                                                     check_health=False)
                for _, replies, future in batch:
                    await _read_into(connection, future, replies)
        except BaseException as ex:  # noqa: BLE001 - every waiter must hear of it
            if connection is not None:
                await connection.disconnect(nowait=True)
            _fail_waiting(batch, ex)
            if isinstance(ex, asyncio.CancelledError):
                raise
        finally:
            if connection is not None:
                await self._pool.release(connection)


async def _read_into(connection: AbstractConnection, future: asyncio.Future[Any],
                     replies: int) -> None:
    """Read a unit's ``replies`` replies (all of them, so the stream stays in
    step); its future gets the last, or the last's error reply."""
    for _ in range(replies):
        # math.inf: no per-read timeout context; the batch has one.
        try:
            reply = await connection.read_response(timeout=math.inf)
        except ResponseError as ex:  # an error reply: this unit only
            reply = ex
    if future.done():
        return
    if isinstance(reply, ResponseError):
        future.set_exception(reply)
    else:
        future.set_result(reply)


def _fail_waiting(batch: Sequence[tuple[bytes, int, asyncio.Future[Any]]],
                  cause: BaseException) -> None:
    error: Exception
    if isinstance(cause, Exception) and not isinstance(cause, ResponseError):
        error = cause
    else:
        error = RedisConnectionError("the Redis round trip was interrupted")
    for _, _, future in batch:
        if not future.done():
            future.set_exception(error)
