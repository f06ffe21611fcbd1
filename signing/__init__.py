"""Mailslot's signing library: scoped, expiring access to one queue.

- :mod:`signing.keys` loads a key ring (``kid`` -> secret, state
  active/verify/retired) from ``MAILSLOT_SIGNING_KEYS`` or a secret file and
  refuses weak keys at start-up.
- :mod:`signing.signer` mints and verifies grant tokens: itsdangerous
  ``URLSafeTimedSerializer`` with HMAC-SHA256, a salt per purpose, the key
  picked by ``kid``, strict claims, explicit clock and leeway.
- :mod:`signing.scope` is the one ``authorize`` check every transport runs
  against the router's parsed project, queue and operation (exact equality).
- :mod:`signing.zaqar` reproduces Zaqar's ``URL-Signature`` HMAC for
  wire compatibility, with constant-time comparison.

Refusals are ``InvalidToken`` with one uniform message; ``reason`` is for
audit logs. Revocation (jti deny-list, queue generation, one-time use) needs
storage and stays with the caller. This package imports nothing else of
Mailslot's: only the standard library and itsdangerous.
"""

from signing.credential import AUTH_SCHEME
from signing.credential import format_authorization
from signing.credential import format_credential
from signing.credential import is_signed_scheme
from signing.credential import parse_authorization
from signing.credential import parse_credential
from signing.errors import GrantError
from signing.errors import InvalidToken
from signing.errors import KeyConfigError
from signing.errors import SigningConfigError
from signing.errors import SigningError
from signing.grants import Grant
from signing.grants import Operation
from signing.keys import ENV_VAR
from signing.keys import Key
from signing.keys import KeyRing
from signing.keys import KeyState
from signing.keys import generate_key_entry
from signing.scope import authorize
from signing.signer import DEFAULT_LEEWAY
from signing.signer import DEFAULT_MAX_TTL
from signing.signer import DEFAULT_TTL
from signing.signer import HARD_MAX_TTL
from signing.signer import MAX_TOKEN_LENGTH
from signing.signer import QUEUE_GRANT_SALT
from signing.signer import SUBSCRIPTION_CONFIRM_SALT
from signing.signer import GrantSigner
from signing.zaqar import parse_expires
from signing.zaqar import verify_zaqar_headers
from signing.zaqar import zaqar_path_allowed
from signing.zaqar import zaqar_queue_key
from signing.zaqar import zaqar_signature

__all__ = [
    "AUTH_SCHEME",
    "DEFAULT_LEEWAY",
    "DEFAULT_MAX_TTL",
    "DEFAULT_TTL",
    "ENV_VAR",
    "HARD_MAX_TTL",
    "MAX_TOKEN_LENGTH",
    "QUEUE_GRANT_SALT",
    "SUBSCRIPTION_CONFIRM_SALT",
    "Grant",
    "GrantError",
    "GrantSigner",
    "InvalidToken",
    "Key",
    "KeyConfigError",
    "KeyRing",
    "KeyState",
    "Operation",
    "SigningConfigError",
    "SigningError",
    "authorize",
    "format_authorization",
    "format_credential",
    "generate_key_entry",
    "is_signed_scheme",
    "parse_authorization",
    "parse_credential",
    "parse_expires",
    "verify_zaqar_headers",
    "zaqar_path_allowed",
    "zaqar_queue_key",
    "zaqar_signature",
]
