"""Zaqar v2 pre-signed URL signatures (the ``URL-*`` headers), byte-compatible.

Zaqar signs ``HMAC-SHA256(key, paths \\n methods \\n project \\n expires)``
as lowercase hex, where:

- ``paths`` and ``methods`` are each sorted (plain string sort) and
  comma-joined;
- each ``\\n`` separator is the *two characters* backslash and ``n`` (a
  raw-string quirk in Zaqar that interop requires us to reproduce);
- ``project`` ``None`` is the text ``None``;
- ``expires`` is normalised to naive UTC and formatted ``%Y-%m-%dT%H:%M:%S``.

Unlike Zaqar, verification compares with ``hmac.compare_digest``, refuses an
empty signature or project instead of skipping the check, and (optionally)
caps the remaining lifetime. Path matching is exact or whole-segment prefix,
never a regex. Prefer :mod:`signing.signer` grants for anything new.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from datetime import datetime
from datetime import timedelta
from datetime import timezone

from signing.errors import BAD_SIGNATURE
from signing.errors import EXPIRED
from signing.errors import LIFETIME
from signing.errors import MALFORMED
from signing.errors import GrantError
from signing.errors import InvalidToken

ZAQAR_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
_SEPARATOR = "\\n"  # backslash + "n", NOT a newline

# ASCII digits only ([0-9], not \d, which also matches other scripts' digits).
_ISO_RE = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"(?:[Tt ](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:[.,](?P<fraction>[0-9]{1,9}))?)?"
    r"(?P<tz>[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
)


def parse_expires(value: str) -> datetime:
    """Parse a client-supplied ISO 8601 expiry into naive UTC.

    Accepts offsets (``Z``, ``+02:00``, ``-0530``) and fractions, as Zaqar's
    ``/share`` does. Raises GrantError for all-digit strings (Zaqar bug
    1561311: ``"3600"`` once meant the year 3600) and anything unparsable.
    Whether the time is in the future is for the caller to decide.
    """
    if not isinstance(value, str):
        raise GrantError("`expires` must be a string")
    if value.isdigit():
        raise GrantError(
            "`expires` should be date format, for example 2016-01-01T00:00:00, "
            f"not integer value: {value[:32]}"
        )
    match = _ISO_RE.fullmatch(value)
    if match is None:
        raise GrantError("`expires` is not an ISO 8601 date")
    try:
        return _to_naive_utc(_build_datetime(match))
    except (ValueError, OverflowError):
        raise GrantError("`expires` is not a valid date") from None


def _build_datetime(match: re.Match[str]) -> datetime:
    parts = match.groupdict()
    fraction = (parts["fraction"] or "0")[:6].ljust(6, "0")
    return datetime(
        int(parts["year"]),
        int(parts["month"]),
        int(parts["day"]),
        int(parts["hour"] or 0),
        int(parts["minute"] or 0),
        int(parts["second"] or 0),
        int(fraction),
        tzinfo=_parse_offset(parts["tz"]),
    )


def _parse_offset(text: str | None) -> timezone | None:
    if text is None:
        return None
    if text in ("Z", "z"):
        return timezone.utc
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError("offset out of range")
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if text[0] == "-" else offset)


def _to_naive_utc(moment: datetime | int | float) -> datetime:
    """Aware -> UTC without tzinfo; naive is taken as UTC; numbers are epochs."""
    if isinstance(moment, (int, float)) and not isinstance(moment, bool):
        return datetime.fromtimestamp(moment, tz=timezone.utc).replace(tzinfo=None)
    if not isinstance(moment, datetime):
        raise TypeError("expected a datetime or epoch seconds")
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def _as_list(values: Iterable[str] | str, label: str) -> list[str]:
    """A header value is split on commas like Zaqar does; lists are copied."""
    items = values.split(",") if isinstance(values, str) else list(values)
    if not all(isinstance(item, str) for item in items):
        raise TypeError(f"{label} must be strings")
    return items


def zaqar_signature(
    key: bytes | str,
    paths: Iterable[str] | str,
    methods: Iterable[str] | str,
    project: str | None,
    expires: datetime | str,
) -> str:
    """Zaqar's ``URL-Signature`` for these values (64 lowercase hex chars).

    ``paths``/``methods`` may be lists or comma-separated header strings; the
    caller's lists are never mutated (Zaqar once sorted them in place).
    """
    secret = key.encode("utf-8") if isinstance(key, str) else key
    if not isinstance(secret, bytes) or not secret:
        raise ValueError("the key must be non-empty")
    when = parse_expires(expires) if isinstance(expires, str) else expires
    body = _SEPARATOR.join(
        [
            ",".join(sorted(_as_list(paths, "paths"))),
            ",".join(sorted(_as_list(methods, "methods"))),
            str(project),
            _to_naive_utc(when).strftime(ZAQAR_DATE_FORMAT),
        ]
    )
    return hmac.new(secret, body.encode("utf-8"), hashlib.sha256).hexdigest()


def verify_zaqar_headers(
    key: bytes | str,
    signature: str | None,
    paths: Iterable[str] | str,
    methods: Iterable[str] | str,
    project: str | None,
    expires_str: str | None,
    now: datetime | int | float,
    *,
    max_lifetime: int | None = None,
) -> None:
    """Raise InvalidToken unless the ``URL-*`` header values carry a valid signature.

    Every header must be present and non-empty: presence never selects an
    auth path, and an empty ``URL-Signature`` is a refusal, not a skip.
    ``max_lifetime`` (seconds) optionally refuses expiries too far ahead,
    since Zaqar signatures have no issue time and no cap of their own.
    Scope (method, request path) is checked separately.
    """
    _check_present(signature, paths, methods, project, expires_str)
    try:
        expires = parse_expires(expires_str)  # type: ignore[arg-type]
    except GrantError:
        raise InvalidToken(MALFORMED) from None
    expected = zaqar_signature(key, paths, methods, project, expires)
    presented = signature.encode()  # type: ignore[union-attr]
    if not hmac.compare_digest(expected.encode(), presented):
        raise InvalidToken(BAD_SIGNATURE)
    current = _to_naive_utc(now)
    if expires <= current:
        raise InvalidToken(EXPIRED)
    if max_lifetime is not None and expires - current > timedelta(seconds=max_lifetime):
        raise InvalidToken(LIFETIME)


def _check_present(
    signature: object, paths: object, methods: object, project: object, expires: object
) -> None:
    if not isinstance(signature, str) or not signature or not signature.isascii():
        raise InvalidToken(MALFORMED)
    if not isinstance(project, str) or not project:
        raise InvalidToken(MALFORMED)
    if not isinstance(expires, str) or not expires:
        raise InvalidToken(MALFORMED)
    for values in (paths, methods):
        if values is None:
            raise InvalidToken(MALFORMED)
        items = _as_list(values, "values")  # type: ignore[arg-type]
        if not items or not all(items):
            raise InvalidToken(MALFORMED)


ZAQAR_KEY_CONTEXT = b"mailslot.zaqar-url.v1"


def zaqar_queue_key(secret: bytes, project: str, queue: str, generation: int) -> bytes:
    """The key Mailslot signs one queue's Zaqar-form URLs with.

    The scheme stays Zaqar's HMAC-SHA256 over paths, methods, project and
    expiry; only its key is derived from a ring key's secret, the queue and
    the queue's signing generation, so bumping the generation (or retiring
    the key) revokes Zaqar-form URLs too, which Zaqar's single global key
    cannot do.
    """
    context = b"\0".join([ZAQAR_KEY_CONTEXT, project.encode(), queue.encode(),
                          str(generation).encode()])
    return hmac.new(secret, context, hashlib.sha256).digest()


def zaqar_path_allowed(paths: Iterable[str] | str, request_path: str) -> bool:
    """Is ``request_path`` one of ``paths`` or below one, by whole segments?

    Replaces Zaqar's unanchored ``re.search``: ``/v2/queues/a.b/messages``
    covers ``/v2/queues/a.b/messages/123`` but never ``/v2/queues/aXb/...``,
    and a request path with empty, ``.`` or ``..`` segments never matches.
    """
    if not isinstance(request_path, str) or not request_path.startswith("/"):
        return False
    if any(seg in ("", ".", "..") for seg in request_path[1:].split("/")):
        return False
    for granted in _as_list(paths, "paths"):
        if granted and (
            request_path == granted or request_path.startswith(granted + "/")
        ):
            return True
    return False
