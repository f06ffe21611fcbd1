"""Storage drivers, chosen by the scheme of one URI.

``load_driver`` maps ``sqlite://``, ``redis://`` (also ``rediss://``,
``unix://``, ``redis+sentinel://``) and ``mongodb://`` (``mongodb+srv://``) to
lazily imported drivers, so a deployment only needs the client library of the
store it uses. A missing library gives an error naming the extra to install.
"""

from __future__ import annotations

import importlib
import time
from typing import Callable

from queues.errors import ConfigError
from queues.storage.base import ClaimStore, Driver, GrantStore, MessageStore, QueueStore

__all__ = [
    "ClaimStore", "Driver", "GrantStore", "MessageStore", "QueueStore", "load_driver",
]

# scheme -> (module, factory function, pip extra)
_DRIVERS = {
    "sqlite": ("queues.storage.sqlite", "from_uri", None),
    "redis": ("queues.storage.redis", "from_uri", "redis"),
    "rediss": ("queues.storage.redis", "from_uri", "redis"),
    "unix": ("queues.storage.redis", "from_uri", "redis"),
    "redis+sentinel": ("queues.storage.redis", "from_uri", "redis"),
    "mongodb": ("queues.storage.mongodb", "from_uri", "mongodb"),
    "mongodb+srv": ("queues.storage.mongodb", "from_uri", "mongodb"),
}


def load_driver(
    uri: str,
    *,
    timeout: float = 5.0,
    namespace: str = "mailslot",
    options: dict[str, str] | None = None,
    clock: Callable[[], float] = time.time,
) -> Driver:
    """Build the driver for ``uri``. Raises ``ConfigError`` for bad URIs."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme not in _DRIVERS:
        raise ConfigError(
            f"unsupported storage URI scheme {scheme!r}; "
            f"use one of: {', '.join(sorted(_DRIVERS))}"
        )
    module_name, factory, extra = _DRIVERS[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as ex:
        if extra is None or module_name.startswith(str(ex.name)):
            raise
        raise ConfigError(
            f"the {scheme} store needs extra packages: pip install 'mailslot[{extra}]'"
        ) from None
    return getattr(module, factory)(
        uri, timeout=timeout, namespace=namespace, options=options or {}, clock=clock
    )
