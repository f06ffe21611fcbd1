"""Credential-rotation templates (integration.md §6.3), loaded and validated.

A template declares *targets*, usually one per VM: the grants each must
always hold and the channels that deliver them::

    version: 1
    kind: credential-rotation
    project: demo                  # default project of targets and grants
    queues: [alarms, jobs]         # optional: grants may name only these
    alerts_queue: rotation.alerts  # missed pickups are posted here (default)
    defaults: {ttl: 3600, rotate_before: 1200, min_overlap: 300}
    targets:
      - name: web-1
        rotate_before: 900         # per-target override of any default
        grants:
          - {queue: alarms, ops: [post]}
          - {queue: jobs, paths: [messages, claims], methods: [GET, POST, DELETE]}
        deliver:
          - {kind: queue}          # creds.web-1 by default
          - {kind: file, path: /var/lib/mailslot/creds/web-1.json, mode: "0600"}
          - {kind: webhook, url: https://agent.example.com/credentials}

Loading refuses, naming the file, target and field: unknown keys, a
timing where not ``ttl > rotate_before >= min_overlap``, invalid or unlisted
queue names, operations a signed URL cannot carry, a grant on any target's
credentials queue (the daemon grants those itself), duplicate target names
across files, and deliveries that cannot work (relative paths, bad modes,
non-HTTP webhooks, two credentials queues).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import urllib.parse
from typing import Any

import yaml

from queues.errors import ConfigError
from queues.rotation import fields
from queues.rotation.fields import Where
from queues.rotation.operations import (
    GRANTABLE_PATHS, METHODS, OPERATIONS, ops_from_paths,
)
from queues.validation import valid_project, valid_queue_name

KIND = "credential-rotation"
VERSION = 1
CREDENTIALS_PREFIX = "creds."
LEDGER_PREFIX = "rotation.ledger."
DEFAULT_ALERTS_QUEUE = "rotation.alerts"
# The ledger queue (rotation.ledger.<name>) must be a valid queue name.
MAX_TARGET_NAME = 64 - len(LEDGER_PREFIX)
HARD_MAX_TTL = 604800  # signing's absolute cap (7 days)
TIMING_KEYS = {"ttl", "rotate_before", "min_overlap"}
TOP_KEYS = {"version", "kind", "project", "queues", "alerts_queue", "defaults",
            "targets"}
TARGET_KEYS = {"name", "project", "grants", "deliver"} | TIMING_KEYS
GRANT_KEYS = {"project", "queue", "ops", "paths", "methods"}
DELIVERY_KEYS = {"queue": {"kind", "queue"}, "file": {"kind", "path", "mode"},
                 "webhook": {"kind", "url"}}


@dataclasses.dataclass(frozen=True)
class Timing:
    """Seconds: grant lifetime, how early to re-issue, the overlap to keep."""

    ttl: int = 3600
    rotate_before: int = 1200
    min_overlap: int = 300


@dataclasses.dataclass(frozen=True)
class GrantSpec:
    """One grant a target must always hold."""

    project: str
    queue: str
    ops: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One channel: ``queue`` (credentials queue), ``file`` or ``webhook``."""

    kind: str
    queue: str = ""
    path: str = ""
    mode: int = 0o600
    url: str = ""


@dataclasses.dataclass(frozen=True)
class Target:
    """A validated target; ``source`` is the template file it came from."""

    name: str
    project: str
    timing: Timing
    grants: tuple[GrantSpec, ...]
    deliver: tuple[Delivery, ...]
    alerts_queue: str
    source: str

    @property
    def credentials_queue(self) -> str | None:
        """The queue channel's queue, if the target has one."""
        return next((d.queue for d in self.deliver if d.kind == "queue"), None)

    @property
    def ledger_queue(self) -> str:
        return LEDGER_PREFIX + self.name

    def digest(self) -> str:
        """Identifies what the target must hold: a changed template gets a
        new generation at once."""
        shape = {"grants": [dataclasses.asdict(g) for g in self.grants],
                 "credentials": self.credentials_queue}
        text = json.dumps(shape, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_dir(directory: str | pathlib.Path) -> list[Target]:
    """Every target of ``*.yaml``/``*.yml`` in ``directory`` (sorted by file)."""
    path = pathlib.Path(directory)
    if not path.is_dir():
        raise ConfigError(f"rotation templates: {path} is not a directory")
    files = sorted(p for p in path.iterdir()
                   if p.suffix in (".yaml", ".yml") and p.is_file())
    if not files:
        raise ConfigError(f"rotation templates: no *.yaml file in {path}")
    targets = [t for file in files for t in load_file(file)]
    check_unique(targets)
    return targets


def load_file(path: str | pathlib.Path) -> list[Target]:
    """The targets of one template file."""
    where = Where(str(path))
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8")
    except OSError as ex:
        raise where.error(f"cannot read: {ex.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as ex:
        raise where.error(f"not valid YAML: {ex}") from None
    targets = parse(document, where)
    check_unique(targets)
    return targets


def parse(document: Any, where: Where) -> list[Target]:
    """Validate one template document."""
    top = fields.mapping(where, document, TOP_KEYS, {"version", "kind", "targets"})
    if top["version"] != VERSION or isinstance(top["version"], bool):
        raise where.at("version").error(f"must be {VERSION}")
    if top["kind"] != KIND:
        raise where.at("kind").error(f"must be {KIND!r}")
    context = _Context(
        project=_project(where.at("project"), top.get("project")),
        queues=_listed_queues(where.at("queues"), top.get("queues")),
        alerts_queue=fields.queue_name(where.at("alerts_queue"),
                                       top.get("alerts_queue", DEFAULT_ALERTS_QUEUE)),
        timing=_timing(where.at("defaults"), fields.mapping(
            where.at("defaults"), top.get("defaults", {}), TIMING_KEYS), Timing()))
    entries = fields.items(where.at("targets"), top["targets"])
    return [_target(where.at("targets").at(i), entry, context)
            for i, entry in enumerate(entries)]


@dataclasses.dataclass(frozen=True)
class _Context:
    """Template-level values targets inherit."""

    project: str | None
    queues: frozenset[str] | None
    alerts_queue: str
    timing: Timing


def _project(where: Where, value: Any) -> str | None:
    if value is None:
        return None
    project = fields.string(where, value)
    if not valid_project(project):
        raise where.error("is longer than 256 characters")
    return project


def _listed_queues(where: Where, value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    names = fields.items(where, value)
    return frozenset(fields.queue_name(where.at(i), n) for i, n in enumerate(names))


def _timing(where: Where, values: dict[str, Any], base: Timing) -> Timing:
    """``base`` with the timing keys of ``values`` applied, then checked."""
    timing = dataclasses.replace(base, **{
        key: fields.seconds(where.at(key), v, minimum=0 if key == "min_overlap" else 1)
        for key, v in values.items()})
    if timing.ttl > HARD_MAX_TTL:
        raise where.at("ttl").error(f"must be at most {HARD_MAX_TTL} (7 days)")
    if not timing.ttl > timing.rotate_before:
        raise where.error(f"ttl ({timing.ttl}) must be greater than rotate_before"
                          f" ({timing.rotate_before})")
    if not timing.rotate_before >= timing.min_overlap:
        raise where.error(f"rotate_before ({timing.rotate_before}) must be at least"
                          f" min_overlap ({timing.min_overlap})")
    return timing


def _target(where: Where, value: Any, context: _Context) -> Target:
    entry = fields.mapping(where, value, TARGET_KEYS, {"name", "grants", "deliver"})
    name = _target_name(where.at("name"), entry["name"])
    where = Where(where.source, f"{where.path} ({name})")
    project = _project(where.at("project"), entry.get("project")) or context.project
    if project is None:
        raise where.at("project").error(
            "is required (on the target or at the template's top level)")
    grants = fields.items(where.at("grants"), entry["grants"])
    deliveries = fields.items(where.at("deliver"), entry["deliver"])
    return Target(
        name=name, project=project,
        timing=_timing(where, {k: v for k, v in entry.items() if k in TIMING_KEYS},
                       context.timing),
        grants=tuple(_grant(where.at("grants").at(i), g, project, context.queues)
                     for i, g in enumerate(grants)),
        deliver=_deliveries(where.at("deliver"), deliveries, name),
        alerts_queue=context.alerts_queue, source=where.source)


def _target_name(where: Where, value: Any) -> str:
    name = fields.string(where, value)
    if len(name) > MAX_TARGET_NAME or not valid_queue_name(LEDGER_PREFIX + name):
        raise where.error(f"{name!r} must be 1-{MAX_TARGET_NAME} of ASCII letters,"
                          " digits, '_', '-' and '.'")
    return name


def _grant(where: Where, value: Any, project: str,
           listed: frozenset[str] | None) -> GrantSpec:
    entry = fields.mapping(where, value, GRANT_KEYS, {"queue"})
    queue = fields.queue_name(where.at("queue"), entry["queue"])
    if listed is not None and queue not in listed:
        raise where.at("queue").error(
            f"{queue!r} is not one of the template's queues:"
            f" {', '.join(sorted(listed))}")
    grant_project = _project(where.at("project"), entry.get("project")) or project
    return GrantSpec(project=grant_project, queue=queue, ops=_ops(where, entry))


def _ops(where: Where, entry: dict[str, Any]) -> tuple[str, ...]:
    """Mailslot ``ops``, or Zaqar ``paths`` + ``methods`` (as share maps them)."""
    if "ops" in entry:
        if "paths" in entry or "methods" in entry:
            raise where.error("give either ops or paths+methods, not both")
        return fields.strings(where.at("ops"), entry["ops"], OPERATIONS)
    if "paths" not in entry or "methods" not in entry:
        raise where.error("needs ops, or both paths and methods")
    paths = _paths(where.at("paths"), entry["paths"])
    methods = fields.strings(where.at("methods"), entry["methods"], METHODS)
    ops = ops_from_paths(paths, methods)
    if not ops:
        raise where.error("these paths and methods grant nothing a signed URL may"
                          " do (read, post or delete messages; claims)")
    return ops


def _paths(where: Where, value: Any) -> tuple[str, ...]:
    for index, path in enumerate(fields.items(where, value)):
        if path == "subscriptions":
            raise where.at(index).error("subscriptions are never grantable")
    return fields.strings(where, value, GRANTABLE_PATHS)


def _deliveries(where: Where, entries: list[Any], target: str
                ) -> tuple[Delivery, ...]:
    result = tuple(_delivery(where.at(i), entry, target)
                   for i, entry in enumerate(entries))
    if sum(d.kind == "queue" for d in result) > 1:
        raise where.error("at most one delivery of kind queue")
    return result


def _delivery(where: Where, value: Any, target: str) -> Delivery:
    kind = value.get("kind") if isinstance(value, dict) else None
    if kind not in DELIVERY_KEYS:
        raise where.at("kind").error(
            f"must be one of {', '.join(sorted(DELIVERY_KEYS))}")
    entry = fields.mapping(where, value, DELIVERY_KEYS[kind])
    if kind == "queue":
        return Delivery(kind, queue=fields.queue_name(
            where.at("queue"), entry.get("queue", CREDENTIALS_PREFIX + target)))
    if kind == "file":
        return Delivery(kind, path=_file_path(where.at("path"), entry.get("path")),
                        mode=_mode(where.at("mode"), entry.get("mode", "0600")))
    return Delivery(kind, url=_webhook_url(where.at("url"), entry.get("url")))


def _file_path(where: Where, value: Any) -> str:
    path = fields.string(where, value)
    if not pathlib.PurePosixPath(path).is_absolute() or path.endswith("/"):
        raise where.error(f"{path!r} must be an absolute file path")
    return path


def _mode(where: Where, value: Any) -> int:
    """``"0600"`` (YAML keeps it a string) or an int such as ``0o600``."""
    if isinstance(value, str):
        try:
            value = int(value, 8)
        except ValueError:
            raise where.error(f"{value!r} is not an octal mode") from None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
        raise where.error("must be an octal file mode such as \"0600\"")
    if not value & 0o400:
        raise where.error("must let the owner read the file")
    return value


def _webhook_url(where: Where, value: Any) -> str:
    url = fields.string(where, value)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise where.error(f"{url!r} must be an http(s) URL")
    if parts.username or parts.password:
        raise where.error("must not carry credentials")
    return url


def check_unique(targets: list[Target]) -> None:
    """Target names are unique; no grant names a credentials queue."""
    seen: dict[str, str] = {}
    for target in targets:
        if target.name in seen:
            raise ConfigError(f"{target.source}: target {target.name!r} is also "
                              f"defined in {seen[target.name]}")
        seen[target.name] = target.source
    credentials = {(t.project, t.credentials_queue): t.name for t in targets
                   if t.credentials_queue}
    for target in targets:
        for grant in target.grants:
            owner = credentials.get((grant.project, grant.queue))
            if owner is not None:
                raise ConfigError(
                    f"{target.source}: target {target.name!r}: grant on {grant.queue!r}"
                    f", the credentials queue of target {owner!r} (the daemon grants"
                    " it itself)")
