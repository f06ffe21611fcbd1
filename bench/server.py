"""Start and stop the processes a benchmark runs against.

- :class:`RedisServer`: a dedicated ``redis-server`` on a free loopback port,
  no persistence (``--save "" --appendonly no``), its own temp dir. The
  system Redis on 6379 is never used.
- :class:`SecantusServer`: the MongoDB-wire test server (SecantusDB, a
  one-node replica set) on a free loopback port, for the ``mongodb`` store.
- :class:`MailslotServer` (alias :class:`Server`): a real ``mailslot serve``
  (gunicorn + uvicorn workers) with a storage URI.
- :class:`ZaqarServer`: the real Zaqar 23.0.1 peer (``/work/shared/peer``),
  its WSGI app under gunicorn with sync workers, the way the peer's
  ``start-zaqar-peer.sh gunicorn`` runs it, but pointed at a Redis we give it.

Every process is started with a direct ``Popen`` in its own session and
stopped by that pid (its process group), never by name.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from bench import cpu

HEADERS = {"Client-ID": "3b1f3e2c-6c2a-4d5e-9f00-000000000002", "X-Project-ID": "bench"}
PEER_DIR = pathlib.Path(os.environ.get("BENCH_PEER_DIR", "/work/shared/peer"))
ZAQAR_VENV = pathlib.Path(os.environ.get("BENCH_ZAQAR_VENV", "/tmp/zaqar-venv"))
ROOT = pathlib.Path(__file__).resolve().parents[1]
# The MongoDB-wire test server's own venv (`make test-deps` builds it).
MONGO_PYTHON = ROOT / ".venv-mongo" / "bin" / "python"
SECANTUS_LAUNCHER = ROOT / "tests" / "run_secantus.py"


def _is_dispatcher(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return b"queues.cli" in argv and b"dispatch" in argv


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Managed:
    """A process we started (in its own session); stopped by its pid."""

    name = "process"
    process: subprocess.Popen

    def _spawn(self, argv: list[str], log: pathlib.Path, env: dict | None = None,
               cwd: str | None = None) -> None:
        self.log = log
        self.process = subprocess.Popen(
            argv, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=cwd,
            stdin=subprocess.DEVNULL, start_new_session=True)

    def pids(self) -> list[int]:
        """The process and its descendants (gunicorn master + workers)."""
        return cpu.children(self.process.pid)

    def http_workers(self) -> list[int]:
        """The processes that answer HTTP: every descendant but the master
        and Mailslot's dispatcher (which ``mailslot serve`` also starts)."""
        return [pid for pid in self.pids()
                if pid != self.process.pid and not _is_dispatcher(pid)]

    def _check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        # Workers of a master that died first would keep the group alive.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer(Managed):
    name = "redis-server"

    def __init__(self, workdir: str, extra_args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.dir = pathlib.Path(workdir) / f"redis-{self.port}"
        self.dir.mkdir(parents=True)
        self._spawn(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--daemonize", "no",
                     "--dir", str(self.dir), "--protected-mode", "yes", *extra_args],
                    self.dir / "redis.log")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if self.command("PING") == "PONG":
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def uri(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def command(self, *args: str) -> str:
        """One inline command (RESP), first line of the reply without its type byte."""
        payload = f"*{len(args)}\r\n" + "".join(
            f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(payload.encode())
            reply = sock.recv(65536).decode(errors="replace")
        return reply.split("\r\n", 1)[0][1:]

    def pids(self) -> list[int]:
        return [self.process.pid]


class SecantusServer(Managed):
    """SecantusDB (the MongoDB-wire test server, GPL, in its own venv) as a
    one-node replica set on a free loopback port, started with the tests'
    launcher. It is a Python server over WiredTiger, not mongod: its rows show
    Mailslot's MongoDB driver path on this box, not what MongoDB can do."""

    name = "secantusdb"

    def __init__(self, workdir: str) -> None:
        self.port = free_port()
        self.dir = pathlib.Path(workdir) / f"secantus-{self.port}"
        self.dir.mkdir(parents=True)
        self._spawn([str(MONGO_PYTHON), str(SECANTUS_LAUNCHER), str(self.port),
                     str(self.dir / "data")], self.dir / "secantus.log")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self._check_alive()
            if "mongodb://" in self.log.read_text(errors="replace"):
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"SecantusDB did not start; see {self.log}")

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?replicaSet=secantus"

    def pids(self) -> list[int]:
        return [self.process.pid]


def secantus_installed() -> bool:
    return MONGO_PYTHON.exists()


class HttpServer(Managed):
    url: str

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                request = urllib.request.Request(self.url + "/v2/ping", headers=HEADERS)
                with urllib.request.urlopen(request, timeout=1) as response:
                    if 200 <= response.status < 300:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready; see {self.log}")


class MailslotServer(HttpServer):
    name = "mailslot"

    def __init__(self, storage_uri: str, workers: int = 2, log_dir: str = "/tmp",
                 extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        key = base64.urlsafe_b64encode(os.urandom(32)).decode()
        env = {**os.environ, "MAILSLOT_STORAGE_URI": storage_uri,
               "MAILSLOT_SERVER_ACCESS_LOG": "false", "MAILSLOT_LOGGING_LEVEL": "WARNING",
               # The load is the point here: no rate limit, no per-use audit.
               "MAILSLOT_SIGNING_KEYS": f"bench:active:{key}",
               "MAILSLOT_SIGNING_REQUESTS_PER_MINUTE": str(10**9),
               "MAILSLOT_SIGNING_MAX_POST_BYTES": "262144",
               "MAILSLOT_SIGNING_AUDIT_USE_SAMPLE_RATE": "0", **(extra_env or {})}
        mailslot = pathlib.Path(sys.executable).parent / "mailslot"
        self._spawn([str(mailslot), "serve", "--bind", f"127.0.0.1:{self.port}",
                     "--workers", str(workers)],
                    pathlib.Path(log_dir) / f"mailslot-bench-{self.port}.log", env=env)
        self._wait_ready(30)

    def mint(self, queue: str, ttl: int) -> str:
        """A post-only credential (kid:token) for ``queue``."""
        request = urllib.request.Request(
            f"{self.url}/v2/queues/{queue}/share", method="POST",
            headers={**HEADERS, "Content-Type": "application/json"},
            data=json.dumps({"paths": ["messages"], "methods": ["POST"],
                             "ttl": ttl}).encode())
        with urllib.request.urlopen(request, timeout=5) as response:
            answer = json.load(response)
        return f"{answer['kid']}:{answer['token']}"


Server = MailslotServer  # the name earlier bench code used


def zaqar_installed(venv: pathlib.Path = ZAQAR_VENV) -> bool:
    return (venv / "bin" / "gunicorn").exists() and (venv / "bin" / "zaqar-server").exists()


def install_zaqar(venv: pathlib.Path = ZAQAR_VENV) -> None:
    """The peer's own setup script (idempotent; a few minutes the first time)."""
    print(f"installing the Zaqar peer into {venv} (peer setup script)...", flush=True)
    subprocess.run(["bash", str(PEER_DIR / "setup-zaqar-peer.sh")], check=True,
                   env={**os.environ, "VENV": str(venv)}, timeout=1800,
                   stdout=subprocess.DEVNULL)


class ZaqarServer(HttpServer):
    """Zaqar 23.0.1 under gunicorn (sync workers), Redis message + management store.

    Like ``start-zaqar-peer.sh gunicorn``: the peer's zaqar.conf, found through
    ``HOME/.zaqar/zaqar.conf`` (the WSGI app reads oslo.config's default
    places only), with the Redis URI replaced by ``redis_uri``. No access log
    (Mailslot runs without one too).
    """

    name = "zaqar"

    def __init__(self, redis_host: str, redis_port: int, workdir: str, workers: int = 4,
                 dbid: int = 0, venv: pathlib.Path = ZAQAR_VENV) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        home = pathlib.Path(workdir) / f"zaqar-{self.port}"
        (home / ".zaqar").mkdir(parents=True)
        conf = (PEER_DIR / "zaqar.conf").read_text()
        redis_uri = f"redis://{redis_host}:{redis_port}?socket_timeout=5&dbid={dbid}"
        conf, n = re.subn(r"^uri = redis://\S+", f"uri = {redis_uri}", conf, flags=re.M)
        if n != 2:
            raise RuntimeError("unexpected peer zaqar.conf: expected two redis uri lines")
        conf = re.sub(r"^port = \d+", f"port = {self.port}", conf, flags=re.M)
        (home / ".zaqar" / "zaqar.conf").write_text(conf)
        shutil.copy(home / ".zaqar" / "zaqar.conf", home / "zaqar.conf")
        env = {**os.environ, "HOME": str(home)}
        env.pop("VIRTUAL_ENV", None)
        self._spawn([str(venv / "bin" / "gunicorn"), "--workers", str(workers),
                     "--bind", f"127.0.0.1:{self.port}", "--no-control-socket",
                     "zaqar.transport.wsgi.app:application"],
                    home / "zaqar.log", env=env, cwd=str(home))
        self._wait_ready(60)
