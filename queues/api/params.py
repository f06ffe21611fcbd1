"""Query-string helpers with Zaqar's messages and limits."""

from __future__ import annotations

import falcon

from typing import Any

from queues.errors import InvalidInput

LIMIT_NO_GREATER = "Limit must be at least 1 and no greater than {0}."
LIMIT_MAY_NOT = "Limit must be at least 1 and may not be greater than {0}."


def limit(req: falcon.Request, maximum: int, default: int = 10,
          message: str = LIMIT_MAY_NOT) -> int:
    """``?limit=`` within 1..maximum (falcon raises "Invalid parameter")."""
    value = req.get_param_as_int("limit")
    if value is None:
        return default
    if not 0 < value <= maximum:
        raise InvalidInput(message.format(maximum))
    return value


def flag(req: falcon.Request, name: str, default: bool = False) -> bool:
    value = req.get_param_as_bool(name)
    return default if value is None else value


def id_list(req: falcon.Request, name: str) -> list[str] | None:
    """A comma-separated (or repeated) parameter, without empty items."""
    values = req.get_param_as_list(name)
    if values is None:
        return None
    return [v for v in values if v]


def echoed(req: falcon.Request, names: dict[str, type]) -> dict[str, Any]:
    """The listed parameters the client sent, typed, in ``names`` order.

    Zaqar builds its ``next`` links from exactly these, then adds the marker.
    """
    found: dict[str, Any] = {}
    for name, kind in names.items():
        if req.get_param(name) is None:
            continue
        if kind is int:
            found[name] = req.get_param_as_int(name)
        elif kind is bool:
            found[name] = req.get_param_as_bool(name)
        else:
            found[name] = req.get_param(name)
    return found
