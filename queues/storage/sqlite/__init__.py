"""The embedded SQLite driver: the zero-setup default store.

``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``; the query
string may set ``synchronous=normal|full`` (default ``normal``: a commit
survives a crash of any Mailslot process, ``full`` also survives power loss).
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Callable

from queues.errors import ConfigError
from queues.storage.sqlite.driver import SqliteDriver

__all__ = ["SqliteDriver", "from_uri"]

_SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}


def from_uri(
    uri: str,
    *,
    timeout: float = 5.0,
    namespace: str = "mailslot",
    options: dict[str, str] | None = None,
    clock: Callable[[], float] = time.time,
) -> SqliteDriver:
    parsed = urllib.parse.urlsplit(uri)
    path = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
    if parsed.netloc or not path:
        raise ConfigError("SQLite URIs look like sqlite:///path/to/mailslot.db")
    query = dict(urllib.parse.parse_qsl(parsed.query))
    synchronous = query.pop("synchronous", "normal").lower()
    if synchronous not in _SYNCHRONOUS or query:
        raise ConfigError("SQLite URI options: synchronous=normal|full")
    return SqliteDriver(
        path, timeout=timeout, synchronous=_SYNCHRONOUS[synchronous], clock=clock
    )
