"""The signing key ring: which key signs, which keys still verify, which are dead.

Text format, identical for the ``MAILSLOT_SIGNING_KEYS`` environment variable
and for a secret file (``KeyRing.from_file``)::

    # lines starting with '#' are comments
    k2:active:<base64url of 32+ random bytes>
    k1:verify:<base64url of 32+ random bytes>

Each entry is ``kid:state:secret``. Entries are separated by newlines, commas
or spaces, so the variable can also be one line:
``MAILSLOT_SIGNING_KEYS=k2:active:...,k1:verify:...``.

- ``kid`` matches ``^[a-z0-9]{1,16}$`` and is unique in the ring.
- ``state`` is ``active`` (signs and verifies; exactly one per ring),
  ``verify`` (verifies only) or ``retired`` (tokens under it are refused).
- ``secret`` is base64url (the standard ``+/`` alphabet and ``=`` padding are
  accepted too) of at least 32 bytes; ``generate_key_entry`` makes one from
  32 random bytes.

Rotation: add the new key as ``verify`` on every node, then flip it to
``active`` and the old one to ``verify``, then after the maximum token
lifetime plus leeway mark the old one ``retired`` (or delete it). Retiring a
kid immediately invalidates every token it signed (emergency revocation).

Loading refuses short secrets and placeholder-looking ones, so a service never
starts with ``changeme``. Secrets never appear in ``repr``/``str`` or in error
messages.
"""

from __future__ import annotations

import base64
import binascii
import enum
import os
import re
import secrets
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass

from signing.errors import RETIRED_KID
from signing.errors import UNKNOWN_KID
from signing.errors import InvalidToken
from signing.errors import KeyConfigError

ENV_VAR = "MAILSLOT_SIGNING_KEYS"
MIN_SECRET_BYTES = 32
GENERATED_SECRET_BYTES = 32
MAX_KEY_FILE_BYTES = 64 * 1024

_KID_RE = re.compile(r"[a-z0-9]{1,16}")
_SECRET_TEXT_RE = re.compile(r"[A-Za-z0-9_+/-]+={0,2}")
_ENTRY_SEPARATORS = re.compile(r"[,\s]+")

# Substrings that betray a sample value copied from docs or a test. Kept to six
# characters or more so that random base64 text practically never matches.
_PLACEHOLDER_WORDS = (
    "changeme",
    "change-me",
    "change_me",
    "replaceme",
    "secret",
    "example",
    "password",
    "placeholder",
    "default",
    "insecure",
)
# 32 random bytes have ~30 distinct values; fewer than this means a pattern.
_MIN_DISTINCT_BYTES = 8


class KeyState(enum.StrEnum):
    """What a key may do."""

    ACTIVE = "active"
    VERIFY = "verify"
    RETIRED = "retired"


def is_valid_kid(kid: object) -> bool:
    """True if ``kid`` is a string matching ``^[a-z0-9]{1,16}$``."""
    return isinstance(kid, str) and _KID_RE.fullmatch(kid) is not None


def looks_like_placeholder(data: bytes) -> bool:
    """True for sample-looking secrets: known words or very low diversity."""
    lowered = data.lower()
    if any(word.encode() in lowered for word in _PLACEHOLDER_WORDS):
        return True
    return len(set(data)) < _MIN_DISTINCT_BYTES


@dataclass(frozen=True, repr=False)
class Key:
    """One HMAC key. ``secret`` is raw bytes and never shown by repr/str."""

    kid: str
    secret: bytes
    state: KeyState

    def __post_init__(self) -> None:
        if not is_valid_kid(self.kid):
            raise KeyConfigError("kid must match ^[a-z0-9]{1,16}$")
        try:
            object.__setattr__(self, "state", KeyState(self.state))
        except ValueError:
            raise KeyConfigError(f"key {self.kid}: unknown state") from None
        _check_secret(self.kid, self.secret)

    @property
    def can_sign(self) -> bool:
        return self.state is KeyState.ACTIVE

    @property
    def can_verify(self) -> bool:
        return self.state is not KeyState.RETIRED

    def __repr__(self) -> str:
        return f"Key(kid={self.kid!r}, state={self.state.value!r})"

    __str__ = __repr__


def _check_secret(kid: str, secret: object) -> None:
    if not isinstance(secret, bytes):
        raise KeyConfigError(f"key {kid}: secret must be bytes")
    if len(secret) < MIN_SECRET_BYTES:
        raise KeyConfigError(
            f"key {kid}: secret shorter than {MIN_SECRET_BYTES} bytes"
        )
    if looks_like_placeholder(secret):
        raise KeyConfigError(
            f"key {kid}: secret looks like a placeholder; generate a random one"
        )


class KeyRing:
    """An immutable set of keys with exactly one ``active`` key."""

    def __init__(self, keys: Iterable[Key]) -> None:
        ring = tuple(keys)
        _check_ring(ring)
        self._keys = {key.kid: key for key in ring}
        self._active = next(key for key in ring if key.can_sign)

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """Build a ring from the text format described in the module docstring."""
        entries = _split_entries(text)
        return cls(_parse_entry(n, entry) for n, entry in enumerate(entries, 1))

    @classmethod
    def from_env(cls, value: str | None) -> KeyRing:
        """Build a ring from the value of ``MAILSLOT_SIGNING_KEYS``."""
        if value is None or not value.strip():
            raise KeyConfigError(f"{ENV_VAR} is not set or empty")
        return cls.parse(value)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> KeyRing:
        """Build a ring from a secret file in the text format."""
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_KEY_FILE_BYTES + 1)
        except OSError as ex:
            raise KeyConfigError(f"cannot read key file: {ex.strerror}") from None
        if len(data) > MAX_KEY_FILE_BYTES:
            raise KeyConfigError("key file is too large")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise KeyConfigError("key file is not UTF-8 text") from None
        return cls.parse(text)

    @property
    def active(self) -> Key:
        """The one key that signs new tokens."""
        return self._active

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def get(self, kid: str) -> Key | None:
        return self._keys.get(kid)

    def verification_key(self, kid: str) -> Key:
        """The key to verify a token presented under ``kid``.

        Raises InvalidToken (``unknown_kid`` / ``retired_kid``): selecting by
        kid costs one dict lookup, never a trial of every key.
        """
        key = self._keys.get(kid)
        if key is None:
            raise InvalidToken(UNKNOWN_KID)
        if not key.can_verify:
            raise InvalidToken(RETIRED_KID)
        return key

    def __iter__(self) -> Iterator[Key]:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeyRing({list(self._keys.values())!r})"

    __str__ = __repr__


def _check_ring(ring: tuple[Key, ...]) -> None:
    if not ring:
        raise KeyConfigError("the key ring has no keys")
    seen: set[str] = set()
    for key in ring:
        if key.kid in seen:
            raise KeyConfigError(f"duplicate kid {key.kid}")
        seen.add(key.kid)
    actives = sum(1 for key in ring if key.can_sign)
    if actives != 1:
        raise KeyConfigError(f"exactly one active key required, found {actives}")


def _split_entries(text: str) -> list[str]:
    entries: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            entries.extend(e for e in _ENTRY_SEPARATORS.split(stripped) if e)
    return entries


def _parse_entry(position: int, entry: str) -> Key:
    """Parse one ``kid:state:secret``; messages never echo the entry text."""
    parts = entry.split(":")
    if len(parts) != 3:
        raise KeyConfigError(f"entry {position}: expected kid:state:secret")
    kid, state, secret_text = parts
    if not is_valid_kid(kid):
        raise KeyConfigError(f"entry {position}: kid must match ^[a-z0-9]{{1,16}}$")
    secret = _decode_secret(kid, secret_text)
    # The text too: "changemechangeme..." decodes to noise that would pass.
    if looks_like_placeholder(secret_text.encode()):
        raise KeyConfigError(
            f"key {kid}: secret looks like a placeholder; generate a random one"
        )
    return Key(kid, secret, state)  # type: ignore[arg-type]


def _decode_secret(kid: str, text: str) -> bytes:
    if _SECRET_TEXT_RE.fullmatch(text) is None:
        raise KeyConfigError(f"key {kid}: secret is not base64url")
    body = text.rstrip("=").replace("+", "-").replace("/", "_")
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise KeyConfigError(f"key {kid}: secret is not base64url") from None


def encode_secret(secret: bytes) -> str:
    """Unpadded base64url, the form secrets take in the text format."""
    return base64.urlsafe_b64encode(secret).rstrip(b"=").decode("ascii")


def generate_key_entry(kid: str, state: KeyState | str = KeyState.VERIFY) -> str:
    """A new ``kid:state:secret`` entry with 32 random bytes.

    The default state is ``verify``: step one of a rotation is to deploy the
    new key as verify-only everywhere. Pass ``state="active"`` for the first
    key of a fresh install. The entry is re-parsed before it is returned, and
    the (astronomically rare) random secret that trips the placeholder check
    is simply drawn again, so the output always loads.
    """
    if not is_valid_kid(kid):
        raise KeyConfigError("kid must match ^[a-z0-9]{1,16}$")
    try:
        state = KeyState(state)
    except ValueError:
        raise KeyConfigError(f"key {kid}: unknown state") from None
    while True:
        secret = secrets.token_bytes(GENERATED_SECRET_BYTES)
        entry = f"{kid}:{state.value}:{encode_secret(secret)}"
        try:
            _parse_entry(1, entry)
        except KeyConfigError:
            continue
        return entry
