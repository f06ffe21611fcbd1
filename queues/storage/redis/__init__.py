"""The Redis driver (redis.asyncio with the hiredis parser).

URIs:

- ``redis://[[user]:password@]host[:port][/db]`` and ``rediss://`` (TLS);
  redis-py's query options (e.g. ``?ssl_ca_certs=...``) are accepted;
- ``unix://[[user]:password@]/path/to/redis.sock[?db=N]``;
- ``redis+sentinel://[[user]:password@]host:port[,host2:port2]/service[/db]``:
  the primary Sentinel reports for ``service`` (port 26379 by default); the
  credentials are the data node's.

Stores: queues, messages, claims, signed-URL state, push subscriptions and
their delivery outbox (jobs written by the post script itself, leases,
breakers, dead letters, delivery log). ``keys.py`` documents every key;
standalone Redis and Sentinel only (no Cluster: some scripts span slots).

``options`` (strings, from the storage settings): ``max_connections``
(default 64), ``sweep_interval`` (seconds between background sweeps of
expired data, default 60, 0 disables), ``sentinel_username`` and
``sentinel_password`` (for Sentinels that require auth). Other options are
ignored: they belong to other drivers.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Any, Callable

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from queues.errors import ConfigError
from queues.storage.redis.driver import RedisDriver

__all__ = ["RedisDriver", "from_uri"]

_OPTIONS = {"max_connections", "sweep_interval", "sentinel_username",
            "sentinel_password"}
SENTINEL_PORT = 26379


def from_uri(
    uri: str,
    *,
    timeout: float = 5.0,
    namespace: str = "mailslot",
    options: dict[str, str] | None = None,
    clock: Callable[[], float] = time.time,
) -> RedisDriver:
    # The settings hand every driver the same options; other drivers' ones
    # (e.g. MongoDB's write_concern) are ignored here.
    options = {k: v for k, v in (options or {}).items() if k in _OPTIONS}
    if not namespace:
        raise ConfigError("the Redis storage needs a non-empty namespace")
    try:
        max_connections = int(options.get("max_connections", 64))
        sweep_interval = float(options.get("sweep_interval", 60))
    except ValueError:
        raise ConfigError(
            "max_connections and sweep_interval must be numbers") from None
    connection = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        # No retries: a retried script could apply twice. Dead pooled
        # connections are detected and replaced before a command is sent.
        "retry": Retry(NoBackoff(), 0),
        "client_name": "mailslot",
    }
    if uri.lower().startswith("redis+sentinel://"):
        client = _sentinel_client(uri, connection, max_connections, options)
    else:
        _check_uri(uri)
        try:
            pool = BlockingConnectionPool.from_url(
                uri, max_connections=max_connections, timeout=timeout, **connection)
        except ValueError as ex:
            raise ConfigError(f"invalid Redis URI: {ex}") from None
        client = Redis.from_pool(pool)
    return RedisDriver(client, namespace=namespace, timeout=timeout, clock=clock,
                       sweep_interval=sweep_interval)


def _check_uri(uri: str) -> None:
    """Reject what redis-py would only notice at the first connection."""
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme.lower() == "unix":
        if not parsed.path:
            raise ConfigError("unix URIs look like unix:///path/to/redis.sock?db=N")
        return
    db = parsed.path.strip("/")
    if parsed.netloc.endswith(":"):  # redis-py would silently use 6379
        raise ConfigError("the Redis URI has an empty port")
    try:
        parsed.port  # noqa: B018 - raises ValueError for a bad port
        if db:
            int(db)
    except ValueError:
        raise ConfigError(
            "Redis URIs look like redis://[:password@]host:port/db") from None


def _sentinel_client(uri: str, connection: dict[str, Any], max_connections: int,
                     options: dict[str, str]) -> Redis:
    parsed = parse_sentinel_uri(uri)
    sentinel_auth = {
        "username": options.get("sentinel_username"),
        "password": options.get("sentinel_password"),
    }
    sentinel = Sentinel(
        parsed["sentinels"],
        sentinel_kwargs={**connection, **sentinel_auth},
        **connection,
    )
    return sentinel.master_for(
        parsed["service"], db=parsed["db"], username=parsed["username"],
        password=parsed["password"], max_connections=max_connections)


def parse_sentinel_uri(uri: str) -> dict[str, Any]:
    """Split ``redis+sentinel://[user:pw@]h:p[,h:p]/service[/db]``."""
    rest = uri.split("://", 1)[1]
    if "?" in rest or "#" in rest:
        raise ConfigError("redis+sentinel URIs take no query string")
    netloc, _, path = rest.partition("/")
    credentials, _, hosts = netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    sentinels = []
    for item in hosts.split(","):
        host, port = _host_port(item)
        sentinels.append((host, port))
    parts = [p for p in path.split("/") if p]
    if not sentinels or not 1 <= len(parts) <= 2:
        raise ConfigError(
            "Sentinel URIs look like"
            " redis+sentinel://host:port[,host:port]/service[/db]")
    try:
        db = int(parts[1]) if len(parts) == 2 else 0
    except ValueError:
        raise ConfigError("the database of a Sentinel URI must be a number") from None
    return {
        "sentinels": sentinels,
        "service": urllib.parse.unquote(parts[0]),
        "db": db,
        "username": urllib.parse.unquote(username) or None,
        "password": urllib.parse.unquote(password) or None,
    }


def _host_port(item: str) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):  # [ipv6]:port
        host, _, tail = item[1:].partition("]")
        port = tail.lstrip(":")
    else:
        host, _, port = item.partition(":")
    if not host:
        raise ConfigError("a Sentinel address is missing its host")
    try:
        return host, int(port) if port else SENTINEL_PORT
    except ValueError:
        raise ConfigError(f"invalid Sentinel port in {item!r}") from None
