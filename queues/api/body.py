"""Reading and parsing request bodies, bounded before parsing."""

from __future__ import annotations

import json
from typing import Any

import falcon
import orjson

from queues.errors import InvalidBody, InvalidInput

INT_MAX = 2**63 - 1
INT_MIN = -(2**63)


async def read(req: falcon.Request, limit: int, too_large: str,
               error: type[InvalidInput] = InvalidInput) -> bytes:
    """The raw body; ``too_large`` (an ``error``) if it exceeds ``limit``.

    Content-Length is checked first; a chunked body is read at most one
    byte past the limit, so an oversized upload is never buffered whole.
    """
    if req.content_length is not None and req.content_length > limit:
        raise error(too_large)
    raw = await req.stream.read(limit + 1)
    if len(raw) > limit:
        raise error(too_large)
    return raw


def parse(raw: bytes) -> Any:
    """JSON with Zaqar's errors: unparsable, and integers beyond 64 bits.

    orjson keeps integers up to 2**64 - 1 and reads larger ones as floats,
    so the parsed document is walked once: an out-of-range int is refused
    at once, and only a float of magnitude >= 2**63 (maybe an integer
    literal) sends the body through the stdlib parser, which keeps ints exact.
    """
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidBody("Request body could not be parsed.") from None
    if _has_huge_number(document):
        _check_ints(json.loads(raw))
    return document


def _has_huge_number(document: Any) -> bool:
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            if not INT_MIN <= value <= INT_MAX:
                raise InvalidBody("JSON contains integer that is too large.")
        elif isinstance(value, float) and abs(value) >= 2.0**63:
            return True
    return False


def _check_ints(document: Any) -> None:
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            if not INT_MIN <= value <= INT_MAX:
                raise InvalidBody("JSON contains integer that is too large.")


def int_field(document: dict, name: str, default: int) -> int:
    """An optional integer field (booleans are not integers)."""
    value = document.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidBody(f'The value of the "{name}" field must be a int.')
    return value


def json_response(resp: falcon.Response, document: Any, status: str = falcon.HTTP_200,
                  ) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = orjson.dumps(document)
