"""Named server-side credentials for ``trust+http(s)`` subscribers.

A subscription never carries a secret: its ``options.credentials`` names an
entry of the operator's credentials file (``dispatch.credentials_file``), one
``name:token`` line each (blank lines and ``#`` comments ignored). The
dispatcher sends the token as ``X-Auth-Token``. Tokens are never logged, and
``Credentials`` has no repr that shows them.
"""

from __future__ import annotations

import os
import re

from queues.errors import ConfigError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Tokens travel in an HTTP header: visible ASCII only.
_TOKEN = re.compile(r"[\x21-\x7e]+")
OPTION = "credentials"


class Credentials:
    """Name -> token, read once from a secret file."""

    __slots__ = ("_tokens",)

    def __init__(self, tokens: dict[str, str] | None = None) -> None:
        self._tokens = dict(tokens or {})

    def __repr__(self) -> str:
        return f"Credentials(names={sorted(self._tokens)})"

    def __contains__(self, name: object) -> bool:
        return name in self._tokens

    def token(self, name: str) -> str | None:
        return self._tokens.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self._tokens)


def load_credentials(path: str) -> Credentials:
    """The credentials in ``path`` (none when ``path`` is empty).

    Raises ``ConfigError`` for an unreadable file or a malformed line (the
    message names the line number, never its content).
    """
    if not path:
        return Credentials()
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as ex:
        raise ConfigError(f"cannot read credentials file {path}: "
                          f"{ex.strerror or ex}") from None
    tokens: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, sep, token = text.partition(":")
        if not sep or not _NAME.fullmatch(name) or not _TOKEN.fullmatch(token.strip()):
            raise ConfigError(f"credentials file {os.path.basename(path)}, line "
                              f"{number}: expected name:token (token of visible ASCII)")
        if name in tokens:
            raise ConfigError(f"credentials file {os.path.basename(path)}, line "
                              f"{number}: duplicate name {name}")
        tokens[name] = token.strip()
    return Credentials(tokens)
