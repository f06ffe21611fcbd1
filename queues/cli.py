"""The ``mailslot`` command."""

from __future__ import annotations

import os
import sys
import time

import click
import yaml

from queues.config import configure_logging, load_settings, settings_as_dict
from queues.errors import ConfigError, MailslotError

APP_FACTORY = "queues.api.app:get_app()"


@click.group()
@click.version_option(package_name="mailslot")
def main() -> None:
    """Mailslot: a Zaqar v2-compatible message queue service."""


def _settings_or_exit(config: str | None):
    try:
        return load_settings(config)
    except ConfigError as ex:
        raise click.ClickException(f"invalid configuration: {ex.description}") from None


@main.command()
@click.option("--config", "config", type=click.Path(dir_okay=False),
              envvar="MAILSLOT_CONFIG", help="YAML settings file.")
@click.option("--bind", help="host:port to listen on (default 127.0.0.1:8888).")
@click.option("--workers", type=click.IntRange(1, 64),
              help="Number of gunicorn worker processes.")
@click.option("--dispatch/--no-dispatch", default=True, show_default=True,
              help="Also run one subscription dispatcher process.")
def serve(config: str | None, bind: str | None, workers: int | None,
          dispatch: bool) -> None:
    """Run the API under gunicorn with uvicorn workers (and a dispatcher)."""
    settings = _settings_or_exit(config)
    _check_startup(settings)
    if config:
        os.environ["MAILSLOT_CONFIG"] = os.path.abspath(config)
    from queues.gunicorn_app import run

    if dispatch and not hasattr(_storage(settings), "jobs"):
        click.echo("mailslot: this store has no subscription support yet; "
                   "no dispatcher started", err=True)
        dispatch = False
    run(settings, bind=bind or settings.server.bind,
        workers=workers or settings.server.workers, dispatch=dispatch)


@main.command()
@click.option("--config", "config", type=click.Path(dir_okay=False),
              envvar="MAILSLOT_CONFIG", help="YAML settings file.")
def dispatch(config: str | None) -> None:
    """Deliver new messages to subscribers (runs until SIGTERM).

    Any number may run against one store; each delivery is leased, so a
    crashed dispatcher's work is taken over when its leases expire.
    """
    from subscriptions import service

    settings = _settings_or_exit(config)
    _check_startup(settings)
    configure_logging(settings)
    storage = _storage(settings)
    if not hasattr(storage, "jobs"):
        raise click.ClickException("this store does not support subscriptions yet")
    service.run(settings, storage)


def _check_startup(settings) -> None:
    """Fail before forking workers: a bad store URI or key ring stops here."""
    from queues.api.signed import KeySource
    from subscriptions import service

    try:
        _storage(settings)
        KeySource(settings.signing, time.time)
        service.check(settings)
    except MailslotError as ex:
        raise click.ClickException(f"cannot start: {ex.description}") from None


@main.group()
def config() -> None:
    """Inspect configuration."""


@config.command("check")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              envvar="MAILSLOT_CONFIG", help="YAML settings file.")
def config_check(config_path: str | None) -> None:
    """Validate a config file and print the effective settings (secrets masked)."""
    settings = _settings_or_exit(config_path)
    click.echo(f"# {config_path or 'built-in defaults'}: OK")
    click.echo(yaml.safe_dump(settings_as_dict(settings), sort_keys=False).rstrip())


def _storage(settings):
    from queues.api.app import build_storage

    return build_storage(settings)


def _run(coroutine):
    import asyncio

    try:
        return asyncio.run(coroutine)
    except MailslotError as ex:
        raise click.ClickException(ex.description) from None


@main.group()
def keys() -> None:
    """Signing keys."""


@keys.command("generate")
@click.option("--kid", required=True, help="Key id: 1-16 of a-z and 0-9.")
@click.option("--state", type=click.Choice(["active", "verify", "retired"]),
              default="verify", show_default=True,
              help="Add new keys as verify everywhere first, then promote.")
def keys_generate(kid: str, state: str) -> None:
    """Print a new key entry (kid:state:secret) for the key file or env."""
    import signing

    try:
        click.echo(signing.generate_key_entry(kid, state=state))
    except (ValueError, signing.SigningError) as ex:
        raise click.ClickException(str(ex)) from None


OPS = click.Choice(["read", "post", "claim", "delete"])


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              envvar="MAILSLOT_CONFIG", help="YAML settings file.")
@click.option("--project", required=True)
@click.option("--queue", required=True)
@click.option("--ops", required=True, help="Comma-separated: read,post,claim,delete.")
@click.option("--ttl", type=int, help="Seconds (default: signing.default_ttl).")
@click.option("--one-time", is_flag=True, help="The URL works for one request only.")
@click.option("--cidr", "cidrs", multiple=True, help="Client networks allowed.")
@click.option("--url", "base_url", help="Base URL (default: signing.public_url or "
              "http://<server.bind>).")
def sign(config_path, project, queue, ops, ttl, one_time, cidrs, base_url) -> None:
    """Mint a signed URL for one queue and print it."""
    import signing
    from queues.api.signed import TOKEN_PARAM, KeySource
    from queues.validation import valid_queue_name

    settings = _settings_or_exit(config_path)
    if not valid_queue_name(queue):
        raise click.ClickException("invalid queue name")
    signer = KeySource(settings.signing, time.time).signer()
    if signer is None:
        raise click.ClickException("no signing keys: set signing.keys_file or "
                                   "MAILSLOT_SIGNING_KEYS")
    storage = _storage(settings)

    async def generation() -> int:
        try:
            return await storage.grants.generation(project, queue)
        finally:
            await storage.close()

    try:
        token, grant = signer.mint(
            project, queue, [o.strip() for o in ops.split(",")], now=time.time(),
            ttl=ttl, cidrs=cidrs, gen=_run(generation()), one_time=one_time)
    except signing.SigningError as ex:
        raise click.ClickException(str(ex)) from None
    base = (base_url or settings.signing.public_url
            or f"http://{settings.server.bind}").rstrip("/")
    credential = signing.format_credential(grant.kid, token)
    click.echo(f"{base}/v2/queues/{queue}/messages?{TOKEN_PARAM}={credential}")
    click.echo(f"# jti={grant.jti} expires={grant.exp} ops={','.join(sorted(grant.ops))}",
               err=True)


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              envvar="MAILSLOT_CONFIG", help="YAML settings file.")
@click.option("--jti", help="Revoke one token by its id.")
@click.option("--project", help="With --queue: revoke every token of the queue.")
@click.option("--queue")
def revoke(config_path, jti, project, queue) -> None:
    """Revoke one token (--jti) or every token of a queue (--project --queue).

    Takes effect on every worker within signing.revocation_cache_ttl seconds.
    To retire a signing key, set its state to "retired" in the key file.
    """
    if bool(jti) == bool(project and queue):
        raise click.UsageError("give either --jti or both --project and --queue")
    settings = _settings_or_exit(config_path)
    storage = _storage(settings)

    async def apply() -> str:
        try:
            if jti:
                # No token outlives the lifetime cap, so that bounds the entry.
                await storage.grants.revoke(jti, time.time() + settings.signing.max_ttl
                                            + settings.signing.leeway)
                return f"revoked token {jti}"
            generation = await storage.grants.bump_generation(project, queue)
            return f"revoked every token of {project}/{queue} (generation {generation})"
        finally:
            await storage.close()

    message = _run(apply())
    from queues.api.signed import audit

    audit("revoke", jti=jti or "-", project=project or "-", queue=queue or "-")
    click.echo(message)


# --- credential rotation -----------------------------------------------------

CONFIG_OPTION = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                             envvar="MAILSLOT_CONFIG", help="YAML settings file.")
TEMPLATES_OPTION = click.option("--templates", "templates_dir",
                                type=click.Path(file_okay=False),
                                help="Template directory (default: "
                                "rotation.templates_dir).")
URL_OPTION = click.option("--url", "base_url", help="Base URL of the API in the "
                          "documents (default: signing.public_url).")


def _rotation_setup(obj: dict, config_path: str | None, templates_dir: str | None):
    """Settings and targets, sub-command options over the group's."""
    from queues.rotation import service

    settings = _settings_or_exit(config_path or obj.get("config_path"))
    try:
        targets = service.load_targets(settings,
                                       templates_dir or obj.get("templates_dir"))
    except MailslotError as ex:
        raise click.ClickException(ex.description) from None
    return settings, targets


def _rotation_run(settings, targets, base_url: str | None, action):
    """Build a checked Rotator, run ``action(rotator, storage)``, close the store."""
    from queues.rotation import service

    storage = _storage(settings)

    async def main():
        try:
            rotator = service.build(settings, storage, targets,
                                    service.base_url_for(settings, base_url))
            try:
                return await action(rotator, storage)
            finally:
                await rotator.close()
        finally:
            await storage.close()

    return _run(main())


@main.group(invoke_without_command=True)
@CONFIG_OPTION
@TEMPLATES_OPTION
@click.option("--once", is_flag=True, help="Run one pass and exit.")
@click.option("--dry-run", is_flag=True, help="Print what a pass would issue and "
              "alert, without minting, delivering or writing anything.")
@URL_OPTION
@click.pass_context
def rotate(ctx, config_path, templates_dir, once, dry_run, base_url) -> None:
    """Keep rotation targets supplied with fresh signed URLs.

    Without a sub-command: a pass every rotation.check_interval seconds until
    SIGTERM (one with --once): re-issue grants rotate_before seconds before
    they expire, deliver them, alert on missed pickups.
    """
    ctx.obj = {"config_path": config_path, "templates_dir": templates_dir,
               "base_url": base_url}
    if ctx.invoked_subcommand is not None:
        if once or dry_run:
            raise click.UsageError("--once and --dry-run apply to the daemon only")
        return
    settings, targets = _rotation_setup(ctx.obj, None, None)
    configure_logging(settings)
    if dry_run:
        _rotate_dry_run(settings, targets, base_url)
        return
    from queues.api.signed import install_log_redaction
    from queues.rotation import service

    install_log_redaction()
    report = _rotation_run(settings, targets, base_url, lambda rotator, _: (
        service.run_until_signalled(rotator, settings.rotation.check_interval, once)))
    if once:
        click.echo(f"issued {report.issued}, alerts {report.alerts}, delivery "
                   f"failures {report.delivery_failures}, errors {report.errors}")
        if report.errors:
            sys.exit(1)


def _rotate_dry_run(settings, targets, base_url: str | None) -> None:
    from queues.rotation.ledger import LedgerStore
    from queues.rotation.status import plan_lines

    async def plan(rotator, storage):
        return await plan_lines(targets, LedgerStore(storage, time.time),
                                settings.signing.max_ttl, time.time())

    for line in _rotation_run(settings, targets, base_url, plan):
        click.echo(line)


@rotate.command("status")
@CONFIG_OPTION
@TEMPLATES_OPTION
@click.pass_obj
def rotate_status(obj, config_path, templates_dir) -> None:
    """Per target: generation, issued, expires, picked up, next rotation."""
    from queues.rotation.ledger import LedgerStore
    from queues.rotation.status import status_lines

    settings, targets = _rotation_setup(obj, config_path, templates_dir)
    storage = _storage(settings)

    async def lines():
        try:
            return await status_lines(targets, LedgerStore(storage, time.time),
                                      time.time())
        finally:
            await storage.close()

    for line in _run(lines()):
        click.echo(line)


@rotate.command("revoke")
@click.argument("target")
@CONFIG_OPTION
@TEMPLATES_OPTION
@URL_OPTION
@click.option("--keep-channel", is_flag=True, help="Leave the credentials-queue "
              "grants alive, so a VM that reads only that queue gets the new "
              "generation (do not use if those leaked too).")
@click.pass_obj
def rotate_revoke(obj, target, config_path, templates_dir, base_url,
                  keep_channel) -> None:
    """Revoke every live grant of TARGET now and issue a new generation.

    Every API worker refuses the old grants within
    signing.revocation_cache_ttl seconds.
    """
    settings, targets = _rotation_setup(obj, config_path, templates_dir)
    configure_logging(settings)

    async def apply(rotator, storage):
        return await rotator.revoke(target, keep_channel=keep_channel)

    issue = _rotation_run(settings, targets, base_url or obj.get("base_url"), apply)
    click.echo(f"revoked every live grant of {target}; generation "
               f"{issue.generation.number} issued and delivered")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
