"""``mailslot rotate``: settings and templates -> a checked ``Rotator``, and
the loop that runs its passes until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Callable

from queues.config import Settings
from queues.errors import ConfigError
from queues.rotation.daemon import Report, Rotator
from queues.rotation.delivery import Deliverer
from queues.rotation.document import Minter
from queues.rotation.template import Target, load_dir
from queues.storage.base import Driver

LOG = logging.getLogger("mailslot.rotation")


def load_targets(settings: Settings, templates_dir: str | None = None) -> list[Target]:
    """The targets of ``templates_dir`` (default ``rotation.templates_dir``)."""
    directory = templates_dir or settings.rotation.templates_dir
    if not directory:
        raise ConfigError("no templates: set rotation.templates_dir or give"
                          " --templates")
    return load_dir(directory)


def base_url_for(settings: Settings, override: str | None) -> str:
    """``--url``, else ``signing.public_url``: documents carry absolute URLs."""
    base = (override or settings.signing.public_url).rstrip("/")
    if not base:
        raise ConfigError("signing.public_url is empty: set it (the base URL VMs"
                          " reach the API at) or give --url")
    if not base.startswith(("http://", "https://")):
        raise ConfigError(f"the base URL must start with http:// or https://: {base}")
    return base


def build(settings: Settings, storage: Driver, targets: list[Target], base_url: str,
          clock: Callable[[], float] = time.time) -> Rotator:
    """A Rotator after the start-up checks (raises ``ConfigError``)."""
    from queues.api.signed import KeySource

    keys = KeySource(settings.signing, clock)
    signer = keys.signer()
    if signer is None:
        raise ConfigError("no signing keys: set signing.keys_file or "
                          "MAILSLOT_SIGNING_KEYS")
    check(settings, targets, signer.max_ttl)
    minter = Minter(storage, keys.signer, base_url)
    return Rotator(settings, storage, targets, minter, Deliverer(storage, settings),
                   clock)


def check(settings: Settings, targets: list[Target], max_ttl: int) -> None:
    """Refuse what would break the guarantees: a ttl capped to or below
    rotate_before (re-issue on every pass), passes too far apart to keep
    min_overlap, webhooks the SSRF guard refuses outright."""
    interval = settings.rotation.check_interval
    if interval <= 0:
        raise ConfigError("rotation.check_interval must be above 0")
    for target in targets:
        timing = target.timing
        if min(timing.ttl, max_ttl) <= timing.rotate_before:
            raise ConfigError(
                f"{target.source}: target {target.name!r}: ttl capped by"
                f" signing.max_ttl ({max_ttl}) is not greater than rotate_before")
        if timing.rotate_before - timing.min_overlap < interval:
            raise ConfigError(
                f"{target.source}: target {target.name!r}: rotate_before -"
                f" min_overlap ({timing.rotate_before - timing.min_overlap} s) is"
                f" shorter than rotation.check_interval ({interval:g} s)")
        _check_webhooks(settings, target)


def _check_webhooks(settings: Settings, target: Target) -> None:
    urls = [d.url for d in target.deliver if d.kind == "webhook"]
    if not urls:
        return
    from subscriptions.errors import BlockedDestination
    from subscriptions.service import guard_for

    guard = guard_for(settings)
    for url in urls:
        try:
            guard.check_url(url)
        except BlockedDestination as ex:
            raise ConfigError(f"{target.source}: target {target.name!r}: webhook"
                              f" refused by the SSRF guard ({ex})") from None


async def serve(rotator: Rotator, interval: float, stop: asyncio.Event,
                once: bool = False) -> Report:
    """Run passes every ``interval`` seconds until ``stop`` (or one pass)."""
    LOG.info("rotation started: %d target(s), a pass every %g s",
             len(rotator.targets), interval)
    try:
        while True:
            started = time.monotonic()
            report = await rotator.run_pass()
            if report.issued or report.alerts or report.errors:
                LOG.info("pass: %s", report)
            if once or stop.is_set():
                break
            delay = max(0.0, interval - (time.monotonic() - started))
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
            if stop.is_set():
                break
    finally:
        await rotator.close()
    LOG.info("rotation stopped: %s", rotator.totals)
    return rotator.totals


async def run_until_signalled(rotator: Rotator, interval: float,
                              once: bool = False) -> Report:
    """``serve`` that stops cleanly on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        return await serve(rotator, interval, stop, once)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
