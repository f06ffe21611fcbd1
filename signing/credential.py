"""The ``Authorization: Signed <kid>:<token>`` credential.

Routing by the *scheme name* is fine; what must never happen is falling
through to another auth path when a ``Signed`` credential is present but
broken: ``parse_authorization`` raises InvalidToken for every malformed value,
and callers answer 401.
"""

from __future__ import annotations

import re

from signing.errors import MALFORMED
from signing.errors import OVERSIZED
from signing.errors import InvalidToken
from signing.keys import is_valid_kid
from signing.signer import MAX_TOKEN_LENGTH

_WHITESPACE = re.compile(r"\s")

AUTH_SCHEME = "Signed"
# Scheme, one space, a 16-character kid and ':' on top of the token cap.
MAX_AUTHORIZATION_LENGTH = MAX_TOKEN_LENGTH + len(AUTH_SCHEME) + 18


def format_credential(kid: str, token: str) -> str:
    """``kid:token``, e.g. for a confirmation link."""
    if not is_valid_kid(kid):
        raise ValueError("kid must match ^[a-z0-9]{1,16}$")
    return f"{kid}:{token}"


def format_authorization(kid: str, token: str) -> str:
    """The full ``Authorization`` header value."""
    return f"{AUTH_SCHEME} {format_credential(kid, token)}"


def is_signed_scheme(header: str | None) -> bool:
    """True if an ``Authorization`` value uses the Signed scheme (any case)."""
    parts = header.split(None, 1) if isinstance(header, str) else []
    return bool(parts) and parts[0].lower() == AUTH_SCHEME.lower()


def parse_credential(value: object) -> tuple[str, str]:
    """Split ``kid:token`` on the first ``:``; raise InvalidToken if malformed."""
    if not isinstance(value, str) or not value.isascii():
        raise InvalidToken(MALFORMED)
    if len(value) > MAX_AUTHORIZATION_LENGTH:
        raise InvalidToken(OVERSIZED)
    kid, sep, token = value.partition(":")
    if not sep or not is_valid_kid(kid) or not token:
        raise InvalidToken(MALFORMED)
    if _WHITESPACE.search(token):
        raise InvalidToken(MALFORMED)
    return kid, token


def parse_authorization(header: object) -> tuple[str, str]:
    """``Signed kid:token`` -> ``(kid, token)``; anything else is InvalidToken."""
    if not isinstance(header, str):
        raise InvalidToken(MALFORMED)
    if len(header) > MAX_AUTHORIZATION_LENGTH:
        raise InvalidToken(OVERSIZED)
    parts = header.split(" ")
    if len(parts) != 2 or parts[0].lower() != AUTH_SCHEME.lower():
        raise InvalidToken(MALFORMED)
    return parse_credential(parts[1])
