"""The one exception hierarchy of :mod:`signing`.

``InvalidToken`` is deliberately uniform: its message is the same for every
refusal, so nothing derived from ``str(ex)`` can tell a client which check
failed (bad signature vs. unknown key vs. wrong queue). The ``reason`` attribute
carries a short code for audit logs only; it must never reach a response body.
"""

from __future__ import annotations

# Reason codes carried by InvalidToken (audit logs only).
MALFORMED = "malformed"
OVERSIZED = "oversized"
UNKNOWN_KID = "unknown_kid"
RETIRED_KID = "retired_kid"
BAD_SIGNATURE = "bad_signature"
KID_MISMATCH = "kid_mismatch"
ISSUED_IN_FUTURE = "issued_in_future"
NOT_YET_VALID = "not_yet_valid"
EXPIRED = "expired"
LIFETIME = "lifetime"
SCOPE = "scope"
CIDR = "cidr"
REVOKED = "revoked"
REUSED = "reused"

REASONS = frozenset(
    {
        MALFORMED,
        OVERSIZED,
        UNKNOWN_KID,
        RETIRED_KID,
        BAD_SIGNATURE,
        KID_MISMATCH,
        ISSUED_IN_FUTURE,
        NOT_YET_VALID,
        EXPIRED,
        LIFETIME,
        SCOPE,
        CIDR,
        REVOKED,
        REUSED,
    }
)


class SigningError(Exception):
    """Base class of every error :mod:`signing` raises on purpose."""


class InvalidToken(SigningError):
    """A token or signature was refused; the reason is for audit logs only.

    ``str(ex)`` is always the same text. Callers (including the revocation
    checks done against storage, which use ``reason="revoked"``) raise this so
    that every refusal looks identical from the outside.
    """

    MESSAGE = "invalid token"

    def __init__(self, reason: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown InvalidToken reason: {reason!r}")
        super().__init__(self.MESSAGE)
        self.reason = reason

    def __repr__(self) -> str:
        return f"InvalidToken(reason={self.reason!r})"

    def __reduce__(self) -> tuple[type[InvalidToken], tuple[str]]:
        # args holds the uniform message, not the reason: rebuild from reason.
        return (type(self), (self.reason,))


class SigningConfigError(SigningError):
    """Signing is misconfigured (bad TTL caps, salt...): refuse to start."""


class KeyConfigError(SigningConfigError):
    """The key ring configuration is unusable: refuse to start.

    Messages name kids and entry positions, never secret material.
    """


class GrantError(SigningError):
    """A mint request is invalid (ttl, cidrs, ops, names...).

    The message is safe to return to the authenticated caller who asked for
    the grant.
    """
