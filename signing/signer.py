"""Minting and verifying grant tokens with itsdangerous.

A token is ``URLSafeTimedSerializer`` output (base64url JSON claims, the issue
timestamp, an HMAC-SHA256 signature) made with the ring's active key and a
per-purpose salt, so a queue grant can never be replayed as, say, a
subscription confirmation. It travels next to its key id (``kid:token``, see
:mod:`signing.credential`); the kid selects exactly one key.

Verification, in order: length cap before any decoding; key by kid (unknown
or retired -> refused); signature; strict claim schema; kid claim equals the
presented kid; then times with leeway L: ``iat <= now + L``,
``nbf <= now + L``, ``exp - iat <= max_ttl``, ``now < exp`` (exp is exclusive
and gets no leeway). itsdangerous' own ``max_age`` is not used: it refuses any
timestamp even a second in the future, and ``None`` disables every check.

Clocks are injected: ``mint`` and ``verify`` take ``now`` in epoch seconds.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Iterable
from typing import Any

from itsdangerous import BadData
from itsdangerous import BadPayload
from itsdangerous import TimestampSigner
from itsdangerous import URLSafeTimedSerializer

from signing.errors import BAD_SIGNATURE
from signing.errors import EXPIRED
from signing.errors import ISSUED_IN_FUTURE
from signing.errors import KID_MISMATCH
from signing.errors import LIFETIME
from signing.errors import MALFORMED
from signing.errors import NOT_YET_VALID
from signing.errors import OVERSIZED
from signing.errors import GrantError
from signing.errors import InvalidToken
from signing.errors import SigningConfigError
from signing.grants import JTI_BYTES
from signing.grants import Grant
from signing.grants import grant_from_claims
from signing.grants import grant_to_claims
from signing.grants import is_int
from signing.grants import parse_ops
from signing.keys import KeyRing
from signing.keys import is_valid_kid
from signing.network import normalise_cidrs

QUEUE_GRANT_SALT = "mailslot.queue-grant.v1"
SUBSCRIPTION_CONFIRM_SALT = "mailslot.subscription-confirm.v1"

DEFAULT_TTL = 3600
DEFAULT_MAX_TTL = 86400
HARD_MAX_TTL = 604800  # 7 days, the AWS SigV4 / GCS V4 ceiling
DEFAULT_LEEWAY = 30
MAX_LEEWAY = 900
MAX_TOKEN_LENGTH = 2048


class _ClockedTimestampSigner(TimestampSigner):
    """A TimestampSigner whose clock can be injected, so ``iat == now``."""

    def __init__(self, *args: Any, now: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._now = now

    def get_timestamp(self) -> int:
        return int(time.time()) if self._now is None else self._now


def make_serializer(
    secret: bytes, salt: str, now: int | None = None
) -> URLSafeTimedSerializer:
    """The one serializer configuration: SHA-256, HMAC key derivation, no fallbacks.

    Pinning digest and derivation keeps tokens independent of itsdangerous
    defaults (SHA-1); an empty ``fallback_signers`` means no other digest is
    ever accepted.
    """
    signer_kwargs: dict[str, Any] = {
        "digest_method": hashlib.sha256,
        "key_derivation": "hmac",
    }
    if now is not None:
        signer_kwargs["now"] = now
    return URLSafeTimedSerializer(
        secret,
        salt=salt,
        signer=_ClockedTimestampSigner,
        signer_kwargs=signer_kwargs,
        fallback_signers=[],
    )


def new_jti() -> str:
    """128 random bits, base64url without padding (22 characters)."""
    return secrets.token_urlsafe(JTI_BYTES)


def _epoch(now: object) -> int:
    if is_int(now):
        return now  # type: ignore[return-value]
    if isinstance(now, float) and math.isfinite(now):
        return math.floor(now)
    raise TypeError("now must be epoch seconds (int or finite float)")


class GrantSigner:
    """Mints and verifies grant tokens for one purpose (one salt)."""

    def __init__(
        self,
        keyring: KeyRing,
        *,
        salt: str = QUEUE_GRANT_SALT,
        default_ttl: int = DEFAULT_TTL,
        max_ttl: int = DEFAULT_MAX_TTL,
        leeway: int = DEFAULT_LEEWAY,
        max_token_length: int = MAX_TOKEN_LENGTH,
    ) -> None:
        if not isinstance(salt, str) or not salt:
            raise SigningConfigError("salt must be a non-empty string")
        _check_limits(default_ttl, max_ttl, leeway, max_token_length)
        self._keyring = keyring
        self.salt = salt
        self.default_ttl = default_ttl
        self.max_ttl = max_ttl
        self.leeway = leeway
        self.max_token_length = max_token_length

    def mint(
        self,
        project: str,
        queue: str,
        ops: Iterable[str],
        *,
        now: int | float,
        ttl: int | None = None,
        not_before: int | None = None,
        cidrs: Iterable[str] = (),
        gen: int = 0,
        one_time: bool = False,
    ) -> tuple[str, Grant]:
        """Sign a grant with the active key; raise GrantError on a bad request.

        ``exp`` is ``now + ttl`` computed here, never taken from the client.
        """
        issued = _epoch(now)
        key = self._keyring.active
        grant = Grant(
            project=project,
            queue=queue,
            ops=parse_ops(ops),
            iat=issued,
            exp=issued + self._check_ttl(ttl),
            jti=new_jti(),
            kid=key.kid,
            gen=gen,
            nbf=not_before,
            cidrs=normalise_cidrs(cidrs),
            one_time=one_time,
        )
        serializer = make_serializer(key.secret, self.salt, now=issued)
        token = serializer.dumps(grant_to_claims(grant))
        if len(token) > self.max_token_length:
            raise GrantError("grant is too large to encode as a token")
        return token, grant

    def verify(
        self, kid: str, token: str, *, now: int | float, leeway: int | None = None
    ) -> Grant:
        """Return the grant in ``token`` or raise InvalidToken.

        Scope (project, queue, operation, client IP) is *not* checked here:
        call :func:`signing.scope.authorize` with the router's parameters.
        """
        current = _epoch(now)
        slack = self.leeway if leeway is None else _check_leeway(leeway)
        self._check_shape(kid, token)
        key = self._keyring.verification_key(kid)
        claims, iat = self._load(key.secret, token)
        grant = grant_from_claims(claims, iat)
        if grant.kid != kid:
            raise InvalidToken(KID_MISMATCH)
        self._check_times(grant, current, slack)
        return grant

    def _check_ttl(self, ttl: int | None) -> int:
        if ttl is None:
            return self.default_ttl
        if not is_int(ttl) or not 1 <= ttl <= self.max_ttl:
            raise GrantError(f"ttl must be an integer from 1 to {self.max_ttl}")
        return ttl

    def _check_shape(self, kid: object, token: object) -> None:
        if not isinstance(token, str) or not token or not token.isascii():
            raise InvalidToken(MALFORMED)
        if len(token) > self.max_token_length:
            raise InvalidToken(OVERSIZED)
        if not is_valid_kid(kid):
            raise InvalidToken(MALFORMED)

    def _load(self, secret: bytes, token: str) -> tuple[Any, int]:
        """Verify the signature; exception text (attacker bytes) is dropped."""
        serializer = make_serializer(secret, self.salt)
        try:
            claims, signed_at = serializer.loads(
                token, max_age=None, return_timestamp=True
            )
        except BadPayload:
            raise InvalidToken(MALFORMED) from None
        except BadData:
            raise InvalidToken(BAD_SIGNATURE) from None
        except (ValueError, OverflowError, OSError):  # absurd timestamp
            raise InvalidToken(MALFORMED) from None
        return claims, int(signed_at.timestamp())

    def check_times(self, grant: Grant, *, now: int | float) -> None:
        """Re-run the time checks of :meth:`verify` on an already verified
        grant (for callers that cache verification results)."""
        self._check_times(grant, _epoch(now), self.leeway)

    def valid_window(self, grant: Grant) -> tuple[int, int]:
        """The epoch seconds ``[start, end)`` in which :meth:`check_times`
        accepts ``grant`` (an empty window if never).

        For callers that cache verified grants: ``start <= now < end`` is the
        same decision as :meth:`check_times` (for an int or a float ``now``)
        in two comparisons; call :meth:`check_times` outside the window for
        the reason.
        """
        if grant.exp - grant.iat > self.max_ttl:
            return grant.exp, grant.exp
        earliest = grant.iat if grant.nbf is None else max(grant.iat, grant.nbf)
        return earliest - self.leeway, grant.exp

    def _check_times(self, grant: Grant, now: int, leeway: int) -> None:
        if grant.exp - grant.iat > self.max_ttl:
            raise InvalidToken(LIFETIME)
        if grant.iat > now + leeway:
            raise InvalidToken(ISSUED_IN_FUTURE)
        if grant.nbf is not None and grant.nbf > now + leeway:
            raise InvalidToken(NOT_YET_VALID)
        if now >= grant.exp:
            raise InvalidToken(EXPIRED)

    def __repr__(self) -> str:
        return f"GrantSigner(salt={self.salt!r}, keyring={self._keyring!r})"


def _check_leeway(leeway: object) -> int:
    if not is_int(leeway) or not 0 <= leeway <= MAX_LEEWAY:  # type: ignore[operator]
        raise SigningConfigError(f"leeway must be an integer from 0 to {MAX_LEEWAY}")
    return leeway  # type: ignore[return-value]


def _check_limits(
    default_ttl: object, max_ttl: object, leeway: object, max_token_length: object
) -> None:
    values = (default_ttl, max_ttl, max_token_length)
    if not all(is_int(value) for value in values):
        raise SigningConfigError("ttl caps and token length must be integers")
    if not 1 <= max_ttl <= HARD_MAX_TTL:  # type: ignore[operator]
        raise SigningConfigError(f"max_ttl must be from 1 to {HARD_MAX_TTL}")
    if not 1 <= default_ttl <= max_ttl:  # type: ignore[operator]
        raise SigningConfigError("default_ttl must be from 1 to max_ttl")
    if max_token_length < 64:  # type: ignore[operator]
        raise SigningConfigError("max_token_length is too small")
    _check_leeway(leeway)
