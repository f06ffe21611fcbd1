"""The MongoDB driver: ``mongodb://`` and ``mongodb+srv://`` URIs.

Runs on pymongo's native asyncio client. The database is ``namespace`` (a
database named in the URI path is only the authentication default). Options:
``write_concern`` (``majority``, a number of nodes, or a tag-set name;
default ``majority``) and ``read_preference`` (``primary``,
``primaryPreferred``, ``secondary``, ``secondaryPreferred``, ``nearest``;
default ``primary``). ``journal``/``wtimeoutMS`` set in the URI are kept.
Connect, socket and server-selection timeouts come from ``timeout``, which
also bounds every storage call as a whole. See ``docs/mongodb.md``.

Push subscriptions need a replica set or a sharded cluster: a post writes one
delivery job per subscription in the same transaction as its messages, and a
standalone server has no transactions, so creating a subscription there fails
with ``NotSupported`` (503). Everything else works on a standalone server.
"""

from __future__ import annotations

import time
from typing import Callable

from pymongo import AsyncMongoClient
from pymongo.errors import ConfigurationError, InvalidName
from pymongo.read_preferences import ReadPreference
from pymongo.write_concern import WriteConcern

from queues.errors import ConfigError
from queues.storage.mongodb.driver import MongoDriver

__all__ = ["MongoDriver", "from_uri"]

_READ_PREFERENCES = {
    "primary": ReadPreference.PRIMARY,
    "primarypreferred": ReadPreference.PRIMARY_PREFERRED,
    "secondary": ReadPreference.SECONDARY,
    "secondarypreferred": ReadPreference.SECONDARY_PREFERRED,
    "nearest": ReadPreference.NEAREST,
}

# Characters MongoDB refuses in database names.
_BAD_DB_CHARS = set('/\\. "$*<>:|?\0')


def from_uri(
    uri: str,
    *,
    timeout: float = 5.0,
    namespace: str = "mailslot",
    options: dict[str, str] | None = None,
    clock: Callable[[], float] = time.time,
) -> MongoDriver:
    options = options or {}
    if not namespace or len(namespace) > 63 or set(namespace) & _BAD_DB_CHARS:
        raise ConfigError(f"invalid MongoDB database name {namespace!r}")
    if timeout <= 0:
        raise ConfigError("the storage timeout must be positive")
    read_preference = _read_preference(options.get("read_preference", "primary"))
    millis = max(1, int(timeout * 1000))
    try:
        client: AsyncMongoClient = AsyncMongoClient(
            uri,
            serverSelectionTimeoutMS=millis,
            connectTimeoutMS=millis,
            socketTimeoutMS=millis,
            appname="mailslot",
        )
    except (ConfigurationError, ValueError, TypeError) as ex:
        raise ConfigError(f"invalid MongoDB URI: {ex}") from None
    # The async client connects on first use: nothing to close on errors.
    write_concern = _write_concern(
        options.get("write_concern", "majority"), client.write_concern)
    try:
        return MongoDriver(
            client, database=namespace, timeout=timeout,
            write_concern=write_concern, read_preference=read_preference,
            clock=clock)
    except InvalidName as ex:
        raise ConfigError(f"invalid MongoDB database name: {ex}") from None


def _write_concern(value: str, from_uri: WriteConcern) -> WriteConcern:
    """``w`` from the options; journal and wtimeout from the URI, if set."""
    text = str(value).strip()
    if not text:
        raise ConfigError("write_concern must not be empty")
    w: int | str = int(text) if text.isdigit() else text
    if text.lower() == "majority":
        w = "majority"
    extra = {k: v for k, v in from_uri.document.items() if k in ("j", "wtimeout")}
    try:
        return WriteConcern(w=w, j=extra.get("j"), wtimeout=extra.get("wtimeout"))
    except (ConfigurationError, ValueError, TypeError) as ex:
        raise ConfigError(f"invalid MongoDB write_concern {value!r}: {ex}") from None


def _read_preference(value: str):
    key = str(value).replace("_", "").replace("-", "").lower()
    if key not in _READ_PREFERENCES:
        raise ConfigError(
            f"invalid MongoDB read_preference {value!r}; use one of: primary, "
            "primaryPreferred, secondary, secondaryPreferred, nearest")
    return _READ_PREFERENCES[key]
