"""Type checks on subscription options, shared by the action validators.

Each raises ``InvalidSubscriberOptions`` naming the option (dotted for a
nested one, e.g. ``params.env``) so the API can answer 400 with a message the
user can act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from subscriptions.errors import InvalidSubscriberOptions


def optional_str(options: Mapping[str, Any], key: str, *, label: str | None = None,
                 max_length: int = 255) -> str | None:
    """``options[key]`` when given: a non-empty string of at most
    ``max_length`` characters."""
    value = options.get(key)
    if value is None:
        return None
    name = label or key
    if not isinstance(value, str) or not value:
        raise InvalidSubscriberOptions(f"Option {name} must be a non-empty string.")
    if len(value) > max_length:
        raise InvalidSubscriberOptions(
            f"Option {name} must be at most {max_length} characters.")
    return value


def required_str(options: Mapping[str, Any], key: str, *, max_length: int = 255,
                 why: str = "") -> str:
    value = optional_str(options, key, max_length=max_length)
    if value is None:
        raise InvalidSubscriberOptions(f"Option {key} is required{why}.")
    return value


def optional_object(options: Mapping[str, Any], key: str, *,
                    label: str | None = None) -> dict[str, Any]:
    """``options[key]`` when given (a JSON object), else ``{}``."""
    value = options.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidSubscriberOptions(
            f"Option {label or key} must be an object.")
    return value


def optional_int(options: Mapping[str, Any], key: str, default: int) -> int:
    """``options[key]`` when given: a non-negative integer (not a bool)."""
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidSubscriberOptions(
            f"Option {key} must be a non-negative integer (seconds).")
    return value
