"""``mailslot dispatch``: build a dispatcher from settings and run it until
SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

from queues.config import Settings
from queues.storage.base import Driver
from subscriptions.channels import Channels, Limits
from subscriptions.credentials import load_credentials
from subscriptions.dispatcher import Dispatcher
from subscriptions.http import make_client
from subscriptions.mailto import SmtpSettings
from subscriptions.ssrf import Guard, SsrfPolicy
from subscriptions.workflows import load_workflows

LOG = logging.getLogger("mailslot.dispatch")


def smtp_settings(settings: Settings) -> SmtpSettings:
    smtp = settings.smtp
    return SmtpSettings(host=smtp.host, port=smtp.port, security=smtp.security,
                        username=smtp.username, password=smtp.password,
                        timeout=smtp.timeout, sender=smtp.sender)


def guard_for(settings: Settings) -> Guard:
    """The SSRF guard of the API's creation checks and of every delivery."""
    dispatch = settings.dispatch
    return Guard(SsrfPolicy.from_config(dispatch.allow_cidrs,
                                        https_only=dispatch.https_only))


def check(settings: Settings) -> None:
    """Fail fast on unusable dispatch settings (raises ``ConfigError``)."""
    guard_for(settings)
    load_credentials(settings.dispatch.credentials_file)
    load_workflows(settings.dispatch.workflows_dir)


async def serve(settings: Settings, storage: Driver, stop: asyncio.Event) -> None:
    """Run one dispatcher on ``storage`` until ``stop`` is set."""
    dispatch = settings.dispatch
    client = make_client(guard_for(settings), connect_timeout=dispatch.connect_timeout,
                         read_timeout=dispatch.read_timeout,
                         max_connections=dispatch.concurrency)
    channels = Channels(client, smtp_settings(settings),
                        load_credentials(dispatch.credentials_file),
                        Limits(dispatch.max_response_bytes, dispatch.delivery_deadline),
                        workflows=load_workflows(dispatch.workflows_dir))
    dispatcher = Dispatcher(storage, dispatch, channels)
    LOG.info("dispatcher started (concurrency %d)", dispatch.concurrency)
    try:
        await dispatcher.run(stop)
    finally:
        await client.aclose()
        await storage.close()
        LOG.info("dispatcher stopped after %d deliveries", dispatcher.delivered)


def run(settings: Settings, storage: Driver) -> None:
    """The process entry point: stop cleanly on SIGTERM or SIGINT."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        # The imported modules are most of the heap; full collections need
        # not walk them (as the API workers do: queues.api.app.FreezeStartupHeap).
        gc.collect()
        gc.freeze()
        await serve(settings, storage, stop)

    asyncio.run(main())
