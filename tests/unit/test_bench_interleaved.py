"""bench/interleaved.py: signed and unsigned POSTs interleaved in one wrk run.

The arithmetic on synthetic phases, and ``scripts/post1_ab.lua`` under a real
wrk against a small HTTP server on 127.0.0.1 that records what arrives when:
each phase must carry one kind only, with that kind's headers and queue, and
wrk's per-phase counts must be the responses of the phase's settled part.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import threading
import time

import pytest

from bench import interleaved, wrk


def phase(p: int, ok: int, cpu_us: float = 100.0) -> dict:
    return {"phase": p, "kind": interleaved.kind_of(p), "ok": ok, "bad": 0,
            "messages_per_s": ok / 0.85, "server_cores": 1.0, "db_cores": 0.2,
            "server_cpu_us_per_message": cpu_us, "db_cpu_us_per_message": 20.0,
            "foreign_cores": 0.1}


def test_phases_follow_abba_blocks():
    assert [interleaved.kind_of(p) for p in range(8)] == [
        "unsigned", "signed", "signed", "unsigned"] * 2


def test_block_ratios_and_summary():
    # blocks: U S S U with signed at 90% then at 100% of unsigned
    counts = [1000, 900, 900, 1000, 800, 800, 800, 800]
    phases = [phase(p, n, cpu_us=110.0 if interleaved.kind_of(p) == "signed" else 100.0)
              for p, n in enumerate(counts)]
    assert interleaved.block_ratios(phases) == pytest.approx([0.9, 1.0])
    signed = interleaved.summary(phases, "signed")
    unsigned = interleaved.summary(phases, "unsigned")
    assert (signed["phases"], signed["ok"]) == (4, 3400)
    assert (unsigned["phases"], unsigned["ok"]) == (4, 3600)
    assert signed["messages_per_s"] == pytest.approx(3400 / 4 / 0.85, abs=0.1)
    assert signed["server_cpu_us_per_message"] == 110.0
    assert unsigned["server_cpu_us_per_message"] == 100.0


def test_interval_brackets_the_ratio_and_narrows_with_agreeing_blocks():
    steady = [phase(p, 950 if interleaved.kind_of(p) == "signed" else 1000)
              for p in range(32)]
    low, high = interleaved.interval(steady)
    assert low == high == pytest.approx(0.95)
    counts = [1000, 800, 1000, 1000, 1000, 1000, 900, 1000] * 4
    mixed = [phase(p, n) for p, n in enumerate(counts)]
    low, high = interleaved.interval(mixed)
    ratio = sum(n for p, n in enumerate(counts) if interleaved.kind_of(p) == "signed") / \
        sum(n for p, n in enumerate(counts) if interleaved.kind_of(p) == "unsigned")
    assert low < ratio < high
    assert interleaved.interval(mixed[:4]) is None  # one block: no interval


def test_plan_covers_warmup_and_every_phase():
    plan = interleaved.Plan(phases=32, period=1.0, guard=0.15, warmup=2)
    assert plan.settled == pytest.approx(0.85)
    assert plan.wrk_seconds >= 2 + 32 * 1.0


# --- post1_ab.lua under a real wrk ---------------------------------------------------

class Recorder:
    """A minimal keep-alive HTTP/1.1 server answering 201 to everything and
    recording (arrival time, method, path, headers) of each request."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str, str, dict[str, str]]] = []
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
                length = int(headers.get("Content-Length", "0"))
                if length:
                    await reader.readexactly(length)
                self.seen.append((time.monotonic(), method, path, headers))
                writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()

    def __enter__(self) -> Recorder:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)


@pytest.fixture
def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("wrk is missing (make test-deps installs it)")
        pytest.skip("wrk is not installed")
    return path


def test_post1_ab_sends_one_kind_per_phase_and_counts_settled_responses(wrk_binary):
    plan = interleaved.Plan(phases=8, period=0.4, guard=0.08, warmup=0.6)
    # The recorder stamps a request when its thread gets to it: a garbage
    # collection of this test process's heap (other tests leave a large one)
    # can hold it past the guard, and it would blame wrk for the delay.
    gc.disable()
    try:
        with Recorder() as server:
            result, t0 = _run_ab(server, plan)
            seen = list(server.seen)
    finally:
        gc.enable()
    _check_phases(plan, result, t0, seen)


def _run_ab(server: Recorder, plan: interleaved.Plan) -> tuple[wrk.WrkResult, float]:
    t0 = time.monotonic() + plan.warmup
    result = wrk.start(
        f"http://127.0.0.1:{server.port}", "post1_ab.lua", seconds=plan.wrk_seconds,
        connections=4,
        env={"BENCH_PROJECT": "proj", "BENCH_QUEUE": "plain-q",
             "BENCH_SIGNED_QUEUE": "signed-q", "BENCH_CREDENTIAL": "k1:tok",
             "BENCH_AB_T0": repr(t0), "BENCH_AB_PERIOD": repr(plan.period),
             "BENCH_AB_GUARD": repr(plan.guard), "BENCH_AB_PHASES": str(plan.phases)},
    ).wait()
    return result, t0


def _check_phases(plan: interleaved.Plan, result: wrk.WrkResult, t0: float,
                  seen: list) -> None:
    assert len(result.phases["ok"]) == plan.phases and set(result.phases["bad"]) == {0}
    settled = [0] * plan.phases
    for at, method, path, headers in seen:
        since = at - t0
        p = int(since // plan.period)
        assert method == "POST"
        # Arrival follows sending, so a request that arrived in a phase's
        # settled part was sent in that phase, unless it took longer than the
        # guard to arrive: the margin the design relies on.
        if 0 <= p < plan.phases and since - p * plan.period >= plan.guard:
            if interleaved.kind_of(p) == "signed":
                assert path == "/v2/queues/signed-q/messages"
                assert headers.get("Authorization") == "Signed k1:tok"
                assert "Client-ID" not in headers and "X-Project-ID" not in headers
            else:
                assert path == "/v2/queues/plain-q/messages"
                assert "Authorization" not in headers
                assert headers.get("X-Project-ID") == "proj" and "Client-ID" in headers
            settled[p] += 1
    assert all(n > 0 for n in result.phases["ok"])
    # wrk counts responses as they arrive, the server requests as they do: the
    # same settled windows, give or take the requests in flight at their edges.
    for counted, arrived in zip(result.phases["ok"], settled):
        assert abs(counted - arrived) <= 4 + 0.02 * arrived, (result.phases, settled)
