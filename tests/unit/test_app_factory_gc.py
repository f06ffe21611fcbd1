"""``get_app()`` (the gunicorn workers' factory) freezes the startup heap at
lifespan startup; ``create_app()`` (what tests build) does not."""

from __future__ import annotations

import gc

from queues.api import app as app_module
from queues.api.app import create_app
from queues.config import load_settings
from queues.storage import load_driver


async def _lifespan(app) -> list[str]:
    """Drive the app's ASGI lifespan through startup and shutdown."""
    events = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive():
        return next(events)

    async def send(message):
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    return sent


async def test_gunicorn_workers_freeze_the_startup_heap(monkeypatch, tmp_path):
    monkeypatch.delenv("MAILSLOT_CONFIG", raising=False)
    monkeypatch.setenv("MAILSLOT_STORAGE_URI", f"sqlite:///{tmp_path}/q.db")
    # get_app() also configures the process's logging; leave the test run's alone.
    monkeypatch.setattr(app_module, "configure_logging", lambda settings: None)
    gc.unfreeze()
    try:
        app = app_module.get_app()
        assert gc.get_freeze_count() == 0
        assert await _lifespan(app) == ["lifespan.startup.complete",
                                        "lifespan.shutdown.complete"]
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()


async def test_apps_built_for_tests_freeze_nothing(tmp_path):
    gc.unfreeze()
    app = create_app(load_settings(env={}), load_driver(f"sqlite:///{tmp_path}/q.db"))
    assert await _lifespan(app) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert gc.get_freeze_count() == 0
