"""Key ring loading, validation, lookup and secrecy."""

from __future__ import annotations

import base64
import os
import re

import pytest

from signing import InvalidToken
from signing import Key
from signing import KeyConfigError
from signing import KeyRing
from signing import KeyState
from signing import generate_key_entry
from signing.keys import encode_secret


def secret_text(raw: bytes | None = None) -> str:
    return encode_secret(raw if raw is not None else os.urandom(32))


def entry(kid: str, state: str = "verify", raw: bytes | None = None) -> str:
    return f"{kid}:{state}:{secret_text(raw)}"


def load_env(text: str) -> KeyRing:
    return KeyRing.from_env(text)


@pytest.fixture(params=["env", "file"])
def load(request, tmp_path):
    """Run each load-error case through both loaders."""
    if request.param == "env":
        return load_env

    def from_file(text: str) -> KeyRing:
        path = tmp_path / "signing.keys"
        path.write_text(text)
        return KeyRing.from_file(path)

    return from_file


# --- happy paths -------------------------------------------------------------


def test_one_line_env_value_with_commas(load):
    s1, s2 = os.urandom(32), os.urandom(32)
    ring = load(f"k2:active:{secret_text(s2)},k1:verify:{secret_text(s1)}")
    assert ring.kids == ("k2", "k1")
    assert ring.active.kid == "k2"
    assert ring.active.secret == s2
    assert ring.get("k1").secret == s1
    assert ring.get("k1").state is KeyState.VERIFY


def test_multi_line_file_with_comments_and_blank_lines(load):
    text = "\n".join(
        [
            "# rotated 2026-01-01",
            entry("new", "active"),
            "",
            "   # old key, verify only",
            entry("old", "verify"),
            entry("dead", "retired"),
        ]
    )
    ring = load(text)
    assert sorted(ring.kids) == ["dead", "new", "old"]
    assert [k.kid for k in ring if k.can_sign] == ["new"]
    assert len(ring) == 3


def test_standard_base64_alphabet_and_padding_accepted(load):
    raw = bytes([0xFB, 0xFF, 0xBF]) * 2 + os.urandom(27)
    text = base64.b64encode(raw).decode()
    assert "+" in text or "/" in text
    ring = load(f"k1:active:{text}")
    assert ring.active.secret == raw


def test_verification_key_refuses_unknown_and_retired():
    ring = KeyRing.from_env(
        ",".join([entry("k3", "active"), entry("k2", "verify"), entry("k1", "retired")])
    )
    assert ring.verification_key("k3").kid == "k3"
    assert ring.verification_key("k2").kid == "k2"
    with pytest.raises(InvalidToken) as info:
        ring.verification_key("k1")
    assert info.value.reason == "retired_kid"
    with pytest.raises(InvalidToken) as info:
        ring.verification_key("k9")
    assert info.value.reason == "unknown_kid"


# --- refusals at load ---------------------------------------------------------


LOAD_ERRORS = [
    (entry("k1", "active", os.urandom(31)), "shorter than 32 bytes"),
    (entry("k1", "active", b"changeme-changeme-changeme-changeme"), "placeholder"),
    (entry("k1", "active", b"test-secret-test-secret-test-secret"), "placeholder"),
    (entry("k1", "active", b"an-example-key-for-the-docs-0123456"), "placeholder"),
    ("k1:active:changemechangemechangemechangemechangemeXXXX", "placeholder"),
    (entry("k1", "active", b"a" * 48), "placeholder"),
    (entry("k1", "active", b"\x00" * 32), "placeholder"),
    (entry("k1", "active", b"abcd" * 12), "placeholder"),
    (entry("k1", "active") + "," + entry("k1", "verify"), "duplicate kid k1"),
    (entry("k1", "active") + "," + entry("k2", "active"), "found 2"),
    (entry("k1", "verify") + "," + entry("k2", "retired"), "found 0"),
    (entry("K1", "active"), "kid must match"),
    (entry("k_1", "active"), "kid must match"),
    (entry("k" * 17, "active"), "kid must match"),
    (":active:" + secret_text(), "kid must match"),
    (entry("k1", "primary"), "unknown state"),
    ("k1:active", "expected kid:state:secret"),
    ("k1:active:" + secret_text() + ":extra", "expected kid:state:secret"),
    ("k1:active:" + "@" * 44, "not base64url"),
    ("k1:active:" + secret_text()[:-1] + "=" * 3, "not base64url"),
    ("# only a comment\n", "no keys"),
]


@pytest.mark.parametrize(
    ("text", "message"),
    LOAD_ERRORS,
    ids=[f"{n}-{message}" for n, (_, message) in enumerate(LOAD_ERRORS)],
)
def test_load_refuses(load, text, message):
    with pytest.raises(KeyConfigError, match=re.escape(message)) as info:
        load(text)
    # Whatever went wrong, the message never echoes secret material.
    for part in re.split(r"[,\s]+", text):
        if part.count(":") == 2:
            assert part.split(":")[2] not in str(info.value)


def test_empty_or_missing_env_value():
    for value in (None, "", "   \n"):
        with pytest.raises(KeyConfigError, match="MAILSLOT_SIGNING_KEYS"):
            KeyRing.from_env(value)


def test_missing_key_file(tmp_path):
    with pytest.raises(KeyConfigError, match="cannot read key file"):
        KeyRing.from_file(tmp_path / "absent")


def test_oversized_key_file_refused(tmp_path):
    path = tmp_path / "keys"
    path.write_text(entry("k1", "active") + "\n" + "#" * 70_000)
    with pytest.raises(KeyConfigError, match="too large"):
        KeyRing.from_file(path)


def test_key_constructor_validates_too():
    with pytest.raises(KeyConfigError, match="shorter"):
        Key("k1", b"x1y2z3" * 5, KeyState.ACTIVE)
    with pytest.raises(KeyConfigError, match="must be bytes"):
        Key("k1", "a-string-is-not-bytes-0123456789abcdef", KeyState.ACTIVE)
    with pytest.raises(KeyConfigError, match="kid must match"):
        Key("bad kid", os.urandom(32), KeyState.ACTIVE)
    assert Key("k1", os.urandom(32), "retired").state is KeyState.RETIRED


def test_ring_needs_keys():
    with pytest.raises(KeyConfigError, match="no keys"):
        KeyRing([])


# --- secrecy -----------------------------------------------------------------


def test_secrets_absent_from_repr_and_str():
    raw = os.urandom(32)
    text = secret_text(raw)
    ring = KeyRing.from_env(f"k1:active:{text}")
    key = ring.active
    rendered = [repr(key), str(key), repr(ring), str(ring), f"{ring}", repr([key])]
    for out in rendered:
        assert text not in out
        assert repr(raw) not in out
        assert raw.hex() not in out
        assert "k1" in out
    assert "active" in repr(key)


# --- generation --------------------------------------------------------------


def test_generate_key_entry_loads_and_is_random():
    first = generate_key_entry("k7", state="active")
    second = generate_key_entry("k8")
    assert re.fullmatch(r"k7:active:[A-Za-z0-9_-]{43}", first)
    assert second.startswith("k8:verify:")
    ring = KeyRing.from_env(f"{first}\n{second}")
    assert len(ring.active.secret) == 32
    assert ring.active.secret != ring.get("k8").secret


def test_generate_key_entry_refuses_bad_input():
    with pytest.raises(KeyConfigError):
        generate_key_entry("Bad")
    with pytest.raises(KeyConfigError):
        generate_key_entry("k1", state="primary")
