"""Named server-side credentials for ``trust+``, ``mistral+`` and ``heat+``
subscribers.

A subscription never carries a secret: its ``options.credentials`` names an
entry of the operator's credentials file (``dispatch.credentials_file``), a
YAML mapping::

    heat-demo:
      token: "..."                      # sent as X-Auth-Token
      hosts: [heat.example.com, "10.0.0.5:8004"]
      projects: [demo]                  # optional

Each credential is bound to the destinations it may be sent to (``hosts``:
a host matches any port, ``host:port`` only that port) and, optionally, to
the projects whose subscriptions may name it. Without that binding any
project could create ``trust+https://attacker/`` naming the credential and
receive the token. Tokens are never logged or shown, and nothing here has a
repr that includes one.
"""

from __future__ import annotations

import dataclasses
import os
import re
import urllib.parse
from typing import Any

import yaml

from queues.errors import ConfigError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Tokens travel in an HTTP header: visible ASCII only.
_TOKEN = re.compile(r"[\x21-\x7e]+")
_HOST = re.compile(r"[A-Za-z0-9.\-\[\]:]+")
OPTION = "credentials"


@dataclasses.dataclass(frozen=True)
class Credential:
    token: str = dataclasses.field(repr=False)
    hosts: frozenset[str]
    projects: frozenset[str] | None = None

    def allows(self, url: str, project: str) -> bool:
        """May this token be sent to ``url`` for a subscription of ``project``?"""
        if self.projects is not None and project not in self.projects:
            return False
        try:
            parts = urllib.parse.urlsplit(url)
            host, port = (parts.hostname or "").lower(), parts.port
        except ValueError:
            return False
        if not host:
            return False
        if port is None:
            port = 443 if parts.scheme.endswith("https") else 80
        bracketed = f"[{host}]" if ":" in host else host
        return host in self.hosts or f"{bracketed}:{port}" in self.hosts


class Credentials:
    """Name -> bound credential, read once from a secret file."""

    __slots__ = ("_entries",)

    def __init__(self, entries: dict[str, Credential] | None = None) -> None:
        self._entries = dict(entries or {})

    def __repr__(self) -> str:
        return f"Credentials(names={sorted(self._entries)})"

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    @property
    def names(self) -> list[str]:
        return sorted(self._entries)

    def token_for(self, name: object, url: str, project: str) -> str | None:
        """The token of ``name`` if it may go to ``url`` for ``project``."""
        entry = self._entries.get(name) if isinstance(name, str) else None
        if entry is None or not entry.allows(url, project):
            return None
        return entry.token


def load_credentials(path: str) -> Credentials:
    """The credentials in ``path`` (none when ``path`` is empty).

    Raises ``ConfigError`` for an unreadable file or a malformed entry (the
    message names the entry, never its token).
    """
    if not path:
        return Credentials()
    label = os.path.basename(path)
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as ex:
        raise ConfigError(f"cannot read credentials file {path}: "
                          f"{ex.strerror or ex}") from None
    except yaml.YAMLError:
        raise ConfigError(f"credentials file {label} is not valid YAML") from None
    if data is None:
        return Credentials()
    if not isinstance(data, dict):
        raise ConfigError(f"credentials file {label} must be a mapping of names")
    return Credentials({str(name): _entry(label, name, value)
                        for name, value in data.items()})


def _entry(label: str, name: Any, value: Any) -> Credential:
    where = f"credentials file {label}, entry {name!r}"
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"credentials file {label}: invalid credential name")
    if not isinstance(value, dict) or set(value) - {"token", "hosts", "projects"}:
        raise ConfigError(f"{where}: expected token, hosts and optional projects")
    token = value.get("token")
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise ConfigError(f"{where}: token must be a string of visible ASCII")
    hosts = _strings(where, "hosts", value.get("hosts"))
    if not hosts or not all(_HOST.fullmatch(h) for h in hosts):
        raise ConfigError(f"{where}: hosts must list the host or host:port"
                          " destinations the token may be sent to")
    projects = value.get("projects")
    return Credential(token, frozenset(h.lower() for h in hosts),
                      None if projects is None
                      else frozenset(_strings(where, "projects", projects)))


def _strings(where: str, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: {key} must be a list of strings")
    return value
