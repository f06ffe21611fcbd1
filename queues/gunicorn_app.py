"""Run the ASGI app under gunicorn with ``uvicorn_worker.UvicornWorker``."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

from queues.config import Settings

FACTORY = "queues.api.app:get_app()"


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
        "worker_class": "uvicorn_worker.UvicornWorker",
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


def run(settings: Settings, bind: str, workers: int) -> None:
    MailslotGunicorn(gunicorn_options(settings, bind, workers)).run()
