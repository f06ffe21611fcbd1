"""Settings: one YAML loader into frozen, typed dataclasses.

Every default is defined once, here, and documented in
``etc/mailslot.yaml.sample`` (a test loads the sample and compares). Any
setting can be overridden by an environment variable
``MAILSLOT_<SECTION>_<KEY>`` (e.g. ``MAILSLOT_STORAGE_URI``); lists are
comma-separated there.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import typing
from typing import Any, Mapping

import yaml

from queues.errors import ConfigError

ENV_PREFIX = "MAILSLOT_"


def default_sqlite_uri() -> str:
    """``sqlite:///`` + a file under the per-user data directory."""
    import platformdirs

    path = pathlib.Path(platformdirs.user_data_dir("mailslot")) / "mailslot.db"
    return f"sqlite:///{path}"


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    bind: str = "127.0.0.1:8888"
    workers: int = 2
    # Seconds gunicorn waits for a silent worker before restarting it.
    timeout: int = 30
    access_log: bool = True
    # Proxy addresses whose X-Forwarded-For/-Proto are believed (client IPs
    # matter for signed URLs bound to networks). None by default.
    trusted_proxies: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class StorageSettings:
    # sqlite:///path, redis://host:port/db, mongodb://host:port/db. Empty
    # means the embedded default: a SQLite file in the user data directory.
    uri: str = ""
    # Seconds before a store operation fails with 503.
    timeout: float = 5.0
    # Namespace for keys (Redis) and database name (MongoDB).
    namespace: str = "mailslot"
    # MongoDB write concern and read preference.
    write_concern: str = "majority"
    read_preference: str = "primary"

    @property
    def effective_uri(self) -> str:
        return self.uri or default_sqlite_uri()


@dataclasses.dataclass(frozen=True)
class TransportSettings:
    """Zaqar's ``[transport]`` limits, with Zaqar's defaults."""

    max_queues_per_page: int = 20
    max_messages_per_page: int = 20
    max_subscriptions_per_page: int = 20
    max_messages_per_claim_or_pop: int = 20
    max_queue_metadata: int = 65536
    max_messages_post_size: int = 262144
    default_message_ttl: int = 3600
    max_message_ttl: int = 1209600
    default_message_delay: int = 0
    max_message_delay: int = 900
    default_claim_ttl: int = 300
    max_claim_ttl: int = 43200
    default_claim_grace: int = 60
    max_claim_grace: int = 43200
    default_subscription_ttl: int = 3600
    subscriber_types: tuple[str, ...] = (
        "http", "https", "mailto", "trust+http", "trust+https",
        "mistral+http", "mistral+https", "heat+http", "heat+https", "workflow",
    )
    client_id_uuid_safe: str = "strict"
    min_length_client_id: int = 10
    max_length_client_id: int = 36
    message_delete_with_claim_id: bool = False


@dataclasses.dataclass(frozen=True)
class ApiSettings:
    # Routes /v2/health (still requires the admin role).
    admin_mode: bool = True
    # Adds "checksum": "MD5:<hex>" to stored messages, as Zaqar's option.
    enable_checksum: bool = False
    # Only "noauth" exists yet: project and roles come from trusted headers.
    auth_strategy: str = "noauth"
    # Seconds a worker may reuse a queue's metadata for message POST and list
    # (defaults for TTL, delay, size): the bound on how late another worker
    # sees a metadata change there. 0 reads it on every request.
    metadata_cache_ttl: float = 1.0


@dataclasses.dataclass(frozen=True)
class SigningSettings:
    """Pre-signed URLs. Keys never live here: they come from ``keys_file`` or
    the ``MAILSLOT_SIGNING_KEYS`` environment variable."""

    # A secret file with one "kid:state:base64secret" entry per line.
    keys_file: str = ""
    # Lifetime of a minted URL when the request names none, and the cap
    # (at most 604800 s = 7 days, whatever is configured).
    default_ttl: int = 3600
    max_ttl: int = 86400
    # Seconds of clock skew tolerated on issue and not-before times.
    leeway: int = 30
    # Seconds a worker may keep using a cached queue generation, deny-list
    # answer or key file: the bound on how late a revocation takes effect.
    revocation_cache_ttl: float = 2.0
    # Requests per minute one token may make, counted across all workers.
    requests_per_minute: int = 600
    # Largest message POST body a token holder may send, in bytes.
    max_post_bytes: int = 65536
    # Fraction of successful token uses written to the audit log (0..1).
    audit_use_sample_rate: float = 1.0
    # Base URL put in front of minted URLs; empty: taken from the request.
    public_url: str = ""


@dataclasses.dataclass(frozen=True)
class DispatchSettings:
    """Push delivery to subscribers (``mailslot dispatch``)."""

    # Subscribers must confirm through a signed link before they get
    # notifications (Zaqar's [notification] require_confirmation); needs keys.
    require_confirmation: bool = False
    # Deliveries one dispatcher process runs at the same time.
    concurrency: int = 32
    # Seconds a leased job is held before another dispatcher may take it over;
    # must exceed delivery_deadline.
    lease_seconds: float = 60.0
    # Seconds between polls of an idle outbox: starts at the minimum and
    # doubles up to the maximum while nothing is due.
    min_poll_interval: float = 0.005
    max_poll_interval: float = 0.25
    # Live leases one subscription may hold across all dispatchers.
    max_in_flight_per_subscription: int = 8
    # Consecutive retryable failures that open a subscription's breaker, and
    # seconds it stays open (no deliveries to it meanwhile, shared by all).
    breaker_failures: int = 5
    breaker_seconds: float = 30.0
    # HTTP timeouts: connect, each read, and the whole delivery.
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    delivery_deadline: float = 30.0
    # Bytes of a subscriber's reply kept in the delivery log.
    max_response_bytes: int = 4096
    # Networks deliveries may reach although private/loopback/link-local
    # (SSRF guard). Empty: only public addresses.
    allow_cidrs: tuple[str, ...] = ()
    # Refuse plain http:// subscribers.
    https_only: bool = False
    # Delivery log: attempts kept per subscription, and for how long.
    log_keep: int = 100
    log_keep_seconds: float = 604800.0
    # A secret YAML file of {name: {token, hosts, projects}}: trust+, mistral+
    # and heat+ subscribers name one in
    # options.credentials and get it as X-Auth-Token.
    credentials_file: str = ""
    # Directory of local workflow definitions (*.yaml) for "workflow:<name>"
    # subscribers; empty: none.
    workflows_dir: str = ""


@dataclasses.dataclass(frozen=True)
class RotationSettings:
    """``mailslot rotate``: keep VMs supplied with fresh signed URLs."""

    # Directory of credential-rotation templates (*.yaml); empty: none.
    templates_dir: str = ""
    # Seconds between two passes over every target.
    check_interval: float = 5.0
    # Seconds a missed-pickup alert stays on a template's alerts_queue.
    alert_ttl: int = 86400


@dataclasses.dataclass(frozen=True)
class SmtpSettingsSection:
    """The relay for ``mailto:`` subscribers."""

    host: str = "localhost"
    port: int = 25
    # none, starttls or tls (implicit TLS, usually port 465).
    security: str = "none"
    username: str = ""
    # Never logged; masked by "mailslot config check".
    password: str = ""
    timeout: float = 30.0
    sender: str = "mailslot@localhost"


@dataclasses.dataclass(frozen=True)
class LoggingSettings:
    level: str = "INFO"


@dataclasses.dataclass(frozen=True)
class Settings:
    server: ServerSettings = ServerSettings()
    storage: StorageSettings = StorageSettings()
    transport: TransportSettings = TransportSettings()
    api: ApiSettings = ApiSettings()
    signing: SigningSettings = SigningSettings()
    dispatch: DispatchSettings = DispatchSettings()
    rotation: RotationSettings = RotationSettings()
    smtp: SmtpSettingsSection = SmtpSettingsSection()
    logging: LoggingSettings = LoggingSettings()


_CHOICES = {
    ("transport", "client_id_uuid_safe"): {"strict", "off"},
    ("api", "auth_strategy"): {"noauth"},
    ("logging", "level"): {"DEBUG", "INFO", "WARNING", "ERROR"},
    ("smtp", "security"): {"none", "starttls", "tls"},
}


def load_settings(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Read YAML (if a path is given), apply env overrides, validate."""
    raw = _read_yaml(path) if path else {}
    env = os.environ if env is None else env
    sections = {}
    for field in dataclasses.fields(Settings):
        section = raw.pop(field.name, None) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"section '{field.name}' must be a mapping")
        sections[field.name] = _build_section(field.name, section, env)
    if raw:
        raise ConfigError(f"unknown section(s): {', '.join(sorted(raw))}")
    return Settings(**sections)


def _read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8")
    except OSError as ex:
        raise ConfigError(f"cannot read config file {path}: {ex.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as ex:
        raise ConfigError(f"config file {path} is not valid YAML: {ex}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections")
    return dict(data)


def _build_section(name: str, values: dict[str, Any], env: Mapping[str, str]) -> Any:
    cls = _SECTION_CLASSES[name]
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown key(s) in '{name}': {', '.join(sorted(unknown))}")
    kwargs = {}
    for key in known:
        env_name = f"{ENV_PREFIX}{name}_{key}".upper()
        if env_name in env:
            kwargs[key] = _from_env(env_name, env[env_name], hints[key])
        elif key in values:
            kwargs[key] = _coerce(f"{name}.{key}", values[key], hints[key])
    for key, value in kwargs.items():
        choices = _CHOICES.get((name, key))
        if choices and value not in choices:
            raise ConfigError(
                f"{name}.{key} must be one of {sorted(choices)}, not {value!r}"
            )
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise ConfigError(f"{name}.{key} must not be negative")
    section = cls(**kwargs)
    _check_section(name, section)
    return section


def _check_section(name: str, section: Any) -> None:
    if name == "signing":
        if not 1 <= section.max_ttl <= 604800:
            raise ConfigError("signing.max_ttl must be from 1 to 604800 (7 days)")
        if not 1 <= section.default_ttl <= section.max_ttl:
            raise ConfigError("signing.default_ttl must be from 1 to signing.max_ttl")
        if not 0 <= section.audit_use_sample_rate <= 1:
            raise ConfigError("signing.audit_use_sample_rate must be from 0 to 1")
    if name == "dispatch":
        if section.lease_seconds <= section.delivery_deadline:
            raise ConfigError(
                "dispatch.lease_seconds must exceed dispatch.delivery_deadline")
        if not 0 < section.min_poll_interval <= section.max_poll_interval:
            raise ConfigError("dispatch.min_poll_interval must be above 0 and at "
                              "most dispatch.max_poll_interval")
        if min(section.concurrency, section.max_in_flight_per_subscription,
               section.breaker_failures) < 1:
            raise ConfigError("dispatch.concurrency, max_in_flight_per_subscription"
                              " and breaker_failures must be at least 1")


def _coerce(where: str, value: Any, hint: Any) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string")
        return value
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings")
        return tuple(value)
    raise ConfigError(f"{where}: unsupported setting type")  # pragma: no cover


_BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True,
               "false": False, "0": False, "no": False, "off": False}


def _from_env(name: str, text: str, hint: Any) -> Any:
    try:
        if hint is bool:
            return _BOOL_WORDS[text.strip().lower()]
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
    except (KeyError, ValueError):
        raise ConfigError(f"environment variable {name} has an invalid value") from None
    if typing.get_origin(hint) is tuple:
        return tuple(p.strip() for p in text.split(",") if p.strip())
    return text


_SECTION_CLASSES = {
    "server": ServerSettings,
    "storage": StorageSettings,
    "transport": TransportSettings,
    "api": ApiSettings,
    "signing": SigningSettings,
    "dispatch": DispatchSettings,
    "rotation": RotationSettings,
    "smtp": SmtpSettingsSection,
    "logging": LoggingSettings,
}

_SECRET_IN_URI = re.compile(r"(?P<scheme>[a-z0-9+.-]+://)(?P<cred>[^@/]*)@", re.I)


def mask_secrets(value: str) -> str:
    """Hide the credentials part of a URI (``redis://:pw@h`` → ``redis://***@h``)."""
    return _SECRET_IN_URI.sub(r"\g<scheme>***@", value)


def settings_as_dict(settings: Settings, masked: bool = True) -> dict[str, Any]:
    """Effective settings as plain data, with secrets masked."""
    data = dataclasses.asdict(settings)
    data["storage"]["uri"] = settings.storage.effective_uri
    if masked:
        data["storage"]["uri"] = mask_secrets(data["storage"]["uri"])
        if data["smtp"]["password"]:
            data["smtp"]["password"] = "***"
    for section in data.values():
        for key, value in section.items():
            if isinstance(value, tuple):
                section[key] = list(value)
    return data



# Libraries whose DEBUG output carries whole commands or requests (message
# bodies, webhook secrets, tokens): never below INFO, whatever the level.
CHATTY_LOGGERS = ("pymongo", "aiohttp", "redis", "aiosmtpd", "mail.log")


def configure_logging(settings: Settings) -> None:
    """The process-wide log format and level, with chatty libraries capped."""
    import logging

    logging.basicConfig(level=settings.logging.level,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for name in CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)
