"""Queue metadata: reserved keys, their validation, and Zaqar's JSON patch."""

from __future__ import annotations

import re
from typing import Any

from queues import models
from queues.config import TransportSettings
from queues.errors import Conflict, InvalidBody, InvalidInput
from queues.validation import valid_queue_name

PATCH_MEDIA_TYPE = "application/openstack-messaging-v2.0-json-patch"
OPERATIONS = ("add", "remove", "replace")


def reserved_defaults(limits: TransportSettings) -> dict[str, Any]:
    return {
        models.MAX_MESSAGES_POST_SIZE: limits.max_messages_post_size,
        models.DEFAULT_MESSAGE_TTL: limits.default_message_ttl,
        models.DEFAULT_MESSAGE_DELAY: limits.default_message_delay,
        models.DEAD_LETTER_QUEUE: None,
        models.DEAD_LETTER_QUEUE_MESSAGES_TTL: None,
        models.MAX_CLAIM_COUNT: None,
        models.ENABLE_ENCRYPT_MESSAGES: False,
    }


def with_defaults(metadata: dict[str, Any], limits: TransportSettings) -> dict[str, Any]:
    """Stored metadata with reserved keys filled in when absent or falsy."""
    shown = dict(metadata)
    for key, default in reserved_defaults(limits).items():
        if not shown.get(key):
            shown[key] = default
    return shown


def _int_in(metadata: dict, key: str, low: int, high: int, message: str) -> None:
    value = metadata.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{key} must be integer.")
    if not low <= value <= high:
        raise InvalidInput(message)


def validate(metadata: dict[str, Any], limits: TransportSettings) -> None:
    """Reserved-key rules; raises ``InvalidInput`` with Zaqar's messages."""
    ttl_range = (f"can not exceed {limits.max_message_ttl} seconds, and must be"
                 " at least 60 seconds long.")
    _int_in(metadata, models.DEFAULT_MESSAGE_TTL, 60, limits.max_message_ttl,
            f"_default_message_ttl {ttl_range}")
    _int_in(metadata, models.MAX_MESSAGES_POST_SIZE, 1, limits.max_messages_post_size,
            f"_max_messages_post_size can not exceed {limits.max_messages_post_size},"
            "  and must be at least greater than 0.")
    _int_in(metadata, models.DEFAULT_MESSAGE_DELAY, 0, limits.max_message_delay,
            f"_default_message_delay can not exceed {limits.max_message_delay}"
            " seconds, and must be at least 0 seconds long.")
    _int_in(metadata, models.DEAD_LETTER_QUEUE_MESSAGES_TTL, 60,
            limits.max_message_ttl, f"_dead_letter_queue_messages_ttl {ttl_range}")
    _int_in(metadata, models.MAX_CLAIM_COUNT, 0, 2**31, "_max_claim_count must be"
            " at least 0.")
    dlq = metadata.get(models.DEAD_LETTER_QUEUE)
    if dlq is not None and not (isinstance(dlq, str) and valid_queue_name(dlq)):
        raise InvalidInput("_dead_letter_queue must be a valid queue name.")
    encrypt = metadata.get(models.ENABLE_ENCRYPT_MESSAGES)
    if encrypt is not None and not isinstance(encrypt, bool):
        raise InvalidInput("_enable_encrypt_messages must be boolean.")
    if encrypt:
        raise InvalidInput("_enable_encrypt_messages is not supported by this"
                           " server; encrypt the store's volume instead.")


_BAD_TILDE = re.compile(r"~[^01]")
_ADJACENT = re.compile(r"/\s*?/")


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str):
        raise InvalidBody("The path of a change must be a string.")
    if not path.startswith("/"):
        raise InvalidBody(f'Pointer `{path}` does not start with "/".')
    if _ADJACENT.search(path[1:]):
        raise InvalidBody(f'Pointer `{path}` contains adjacent "/".')
    if len(path) > 1 and path.endswith("/"):
        raise InvalidBody(f'Pointer `{path}` end with "/".')
    if _BAD_TILDE.search(path) or path.endswith("~"):
        raise InvalidBody(f'Pointer `{path}` contains "~" not part of a recognized'
                          " escape sequence.")
    return [part.replace("~1", "/").replace("~0", "~").strip()
            for part in path.lstrip("/").split("/")]


def parse_patch(document: Any) -> list[tuple[str, str, Any]]:
    """Validate a json-patch document into ``(op, key, value)`` changes."""
    if not isinstance(document, list):
        raise InvalidBody("Request body must be a JSON array of operation objects.")
    changes = []
    for raw in document:
        if not isinstance(raw, dict):
            raise InvalidBody("Operations must be JSON objects.")
        op = raw.get("op")
        if op is None:
            raise InvalidBody("Unable to find `op` in JSON Schema change. It must be"
                              " one of the following: add, remove, replace.")
        if op not in OPERATIONS:
            raise InvalidBody(f"Invalid operation: `{op}`. It must be one of the"
                              " following: add, remove, replace.")
        if "path" not in raw:
            raise InvalidBody("Unable to find 'path' in JSON Schema change")
        path = _pointer(raw["path"])
        if len(path) != 2:
            raise InvalidBody("Invalid JSON pointer for this resource: "
                              f"'/{'/'.join(path)}, e.g /metadata/key'")
        if op != "remove" and "value" not in raw:
            raise InvalidBody(f'Operation "{op}" requires a member named "value".')
        if op != "remove" and path[0].lower() != "metadata":
            raise InvalidBody("The root of path must be metadata, e.g /metadata/key.")
        changes.append((op, path[1], raw.get("value")))
    return changes


def apply_patch(metadata: dict[str, Any], changes: list[tuple[str, str, Any]],
                reserved: set[str]) -> dict[str, Any]:
    """Zaqar's semantics: replace needs an existing or reserved key; removing a
    reserved key that is not stored is a no-op."""
    result = dict(metadata)
    for op, key, value in changes:
        if op == "add":
            result[key] = value
        elif op == "replace":
            if key not in result and key not in reserved:
                raise Conflict(f"Can't replace non-existent object {key}.")
            result[key] = value
        elif key in result:
            del result[key]
        elif key not in reserved:
            raise Conflict(f"Can't remove non-existent object {key}.")
    return result
