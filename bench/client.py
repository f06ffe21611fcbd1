"""A small HTTP client for the bench's bookkeeping: fill queues, read stats.

Works against Mailslot and Zaqar alike (same v2 wire format and headers).
Filling goes through the public API (POST batches of ``batch`` messages,
``threads`` keep-alive connections), so every store is filled the same way.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import threading
import time
import urllib.parse

from bench.server import HEADERS

PAD = "x" * 990

# Retries of a set-up request (fill, stats) answered 503.
RETRIES_503 = 5


def message(i: int, ttl: int = 3600) -> str:
    """The ~1 KB message the wrk scripts post (scripts/common.lua)."""
    return f'{{"ttl": {ttl}, "body": {{"n": {i}, "pad": "{PAD}"}}}}'


class Client:
    def __init__(self, url: str, project: str = "bench", timeout: float = 30) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname, parsed.port
        self.headers = {**HEADERS, "X-Project-ID": project,
                        "Content-Type": "application/json"}
        self.timeout = timeout
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, bytes]:
        for attempt in range(3):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=self.headers)
                response = conn.getresponse()
                data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()  # gunicorn sync workers: one request per connection
                return response.status, data
            except (http.client.HTTPException, ConnectionError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.1)
        raise AssertionError("unreachable")

    def request_patiently(self, method: str, path: str, body: str | None = None
                          ) -> tuple[int, bytes]:
        """``request``, retrying a 503 (a store still busy with the load just
        run, e.g. the MongoDB-wire test server) a few times, as a client would."""
        for attempt in range(RETRIES_503):
            status, data = self.request(method, path, body)
            if status != 503:
                return status, data
            time.sleep(0.5 * (attempt + 1))
        return self.request(method, path, body)

    def stats(self, queue: str) -> dict:
        """``{"free", "claimed", "total"}`` of the queue (zeros if it does not exist)."""
        status, data = self.request_patiently("GET", f"/v2/queues/{queue}/stats")
        if status == 404:
            return {"free": 0, "claimed": 0, "total": 0}
        if status != 200:
            raise RuntimeError(f"stats {queue}: HTTP {status} {data[:200]!r}")
        counts = json.loads(data)["messages"]
        return {k: counts[k] for k in ("free", "claimed", "total")}

    def fill(self, queue: str, count: int, batch: int = 50, threads: int = 6,
             ttl: int = 3600) -> float:
        """POST ``count`` messages to ``queue``; returns the seconds it took."""
        if count <= 0:
            return 0.0
        body = '{"messages": [' + ", ".join(message(i, ttl) for i in range(batch)) + "]}"
        full, rest = divmod(count, batch)
        jobs = [body] * full
        if rest:
            jobs.append('{"messages": [' + ", ".join(
                message(i, ttl) for i in range(rest)) + "]}")
        path = f"/v2/queues/{queue}/messages"

        def post(payload: str) -> None:
            status, data = self.request_patiently("POST", path, payload)
            if status != 201:
                raise RuntimeError(f"fill {queue}: HTTP {status} {data[:200]!r}")

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            for future in [pool.submit(post, job) for job in jobs]:
                future.result()
        return time.monotonic() - started
