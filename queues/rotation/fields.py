"""Field readers for template validation: every error names where it is.

A ``Where`` carries the file and the path to the value being read
(``targets[0] (web-1).grants[1].queue``), so a template author sees exactly
which field of which target is wrong.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from queues.errors import ConfigError
from queues.validation import valid_queue_name


@dataclasses.dataclass(frozen=True)
class Where:
    """A position in a template file."""

    source: str
    path: str = ""

    def at(self, field: str | int) -> Where:
        """The position of a key (str) or list index (int) under this one."""
        if isinstance(field, int):
            return Where(self.source, f"{self.path}[{field}]")
        return Where(self.source, f"{self.path}.{field}" if self.path else field)

    def error(self, message: str) -> ConfigError:
        where = f"{self.source}: {self.path}" if self.path else self.source
        return ConfigError(f"{where}: {message}")


def mapping(where: Where, value: Any, known: set[str],
            required: set[str] = frozenset()) -> dict[str, Any]:
    """A mapping with only ``known`` keys and every ``required`` one."""
    if not isinstance(value, dict):
        raise where.error("must be a mapping")
    unknown = sorted(str(key) for key in set(value) - known)
    if unknown:
        raise where.error(f"unknown key(s): {', '.join(unknown)}")
    missing = sorted(required - set(value))
    if missing:
        raise where.error(f"missing key(s): {', '.join(missing)}")
    return value


def items(where: Where, value: Any, *, empty_ok: bool = False) -> list[Any]:
    """A list (non-empty unless ``empty_ok``)."""
    if not isinstance(value, list):
        raise where.error("must be a list")
    if not value and not empty_ok:
        raise where.error("must not be empty")
    return value


def string(where: Where, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise where.error("must be a non-empty string")
    if not value.isprintable():
        raise where.error("must not contain control characters")
    return value


def strings(where: Where, value: Any, allowed: frozenset[str]) -> tuple[str, ...]:
    """A non-empty list of distinct strings, each one of ``allowed``."""
    values = items(where, value)
    for index, item in enumerate(values):
        if not isinstance(item, str) or item not in allowed:
            raise where.at(index).error(
                f"{item!r} is not one of {', '.join(sorted(allowed))}")
    return tuple(sorted(set(values)))


def seconds(where: Where, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error("must be an integer (seconds)")
    if value < minimum:
        raise where.error(f"must be at least {minimum}")
    return value


def queue_name(where: Where, value: Any) -> str:
    name = string(where, value)
    if not valid_queue_name(name):
        raise where.error(f"{name!r} is not a valid queue name (1-64 of "
                          "ASCII letters, digits, '_', '-' and '.')")
    return name
