"""Run the ASGI app under gunicorn with uvicorn workers (``MailslotWorker``)."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from gunicorn.app.base import BaseApplication
from uvicorn_worker import UvicornWorker

from queues.config import Settings
from queues.http_protocol import CoalescingHttpToolsProtocol

LOG = logging.getLogger("mailslot.serve")
PR_SET_PDEATHSIG = 1
RESTART_DELAY = 1.0
STOP_TIMEOUT = 15.0

FACTORY = "queues.api.app:get_app()"


class MailslotWorker(UvicornWorker):
    """uvicorn's gunicorn worker, sending each response in one write."""

    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "http": CoalescingHttpToolsProtocol}


class MailslotGunicorn(BaseApplication):
    def __init__(self, options: dict) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from gunicorn.util import import_app

        return import_app(FACTORY)


def gunicorn_options(settings: Settings, bind: str, workers: int) -> dict:
    return {
        "bind": bind,
        "workers": workers,
        "worker_class": "queues.gunicorn_app.MailslotWorker",
        "timeout": settings.server.timeout,
        "graceful_timeout": 10,
        "keepalive": 5,
        "accesslog": "-" if settings.server.access_log else None,
        "errorlog": "-",
        "loglevel": settings.logging.level.lower(),
        # gunicorn's control socket defaults to one path per user, which two
        # instances on a host would share; Mailslot does not use it.
        "control_socket_disable": True,
        # Trust no forwarding headers unless configured (gunicorn would trust
        # 127.0.0.1, letting a local caller spoof a signed URL's client IP).
        "forwarded_allow_ips": ",".join(settings.server.trusted_proxies),
    }


def _die_with_parent() -> None:
    """In the dispatcher child: get SIGTERM if the gunicorn master dies,
    even by SIGKILL (Linux prctl; elsewhere the child outlives it)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class DispatcherProcess:
    """``mailslot dispatch`` beside the API, started when gunicorn is ready,
    restarted if it dies, stopped when gunicorn exits. It is in gunicorn's
    process group, so a stop or kill of the group reaches it too."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._stopping = threading.Event()

    def start(self, server=None) -> None:
        self._spawn()
        threading.Thread(target=self._watch, name="dispatcher-watch",
                         daemon=True).start()

    def _spawn(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "queues.cli", "dispatch"],
            env=dict(os.environ), preexec_fn=_die_with_parent)
        LOG.info("dispatcher process %d started", self._proc.pid)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            proc = self._proc
            if proc is not None and proc.poll() is not None:
                LOG.error("dispatcher process %d exited with %s; restarting",
                          proc.pid, proc.returncode)
                time.sleep(RESTART_DELAY)
                if not self._stopping.is_set():
                    self._spawn()
            self._stopping.wait(0.5)

    def stop(self, server=None) -> None:
        self._stopping.set()
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(settings: Settings, bind: str, workers: int, dispatch: bool = True) -> None:
    options = gunicorn_options(settings, bind, workers)
    if dispatch:
        dispatcher = DispatcherProcess()
        options["when_ready"] = dispatcher.start
        options["on_exit"] = dispatcher.stop
    MailslotGunicorn(options).run()
