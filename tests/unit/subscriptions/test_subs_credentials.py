"""The credentials file for trust+ and action subscribers: tokens bound to
destinations and projects."""

from __future__ import annotations

import pytest

from queues.errors import ConfigError
from subscriptions.credentials import load_credentials

GOOD = """\
# ops credentials
heat:
  token: abc.DEF-123
  hosts: [heat.example.com, "10.0.0.5:8004", "[::1]:9000"]
mistral:
  token: "tok:with:colons"
  hosts: [mistral.example]
  projects: [demo]
"""


def load(tmp_path, text: str):
    path = tmp_path / "creds"
    path.write_text(text)
    return load_credentials(str(path))


def test_tokens_go_only_to_their_hosts(tmp_path):
    creds = load(tmp_path, GOOD)
    assert creds.names == ["heat", "mistral"]
    assert creds.token_for("heat", "https://heat.example.com/v1/t", "any") == "abc.DEF-123"
    assert creds.token_for("heat", "http://HEAT.example.com:1234/", "any") == "abc.DEF-123"
    assert creds.token_for("heat", "http://10.0.0.5:8004/v1", "p") == "abc.DEF-123"
    assert creds.token_for("heat", "http://[::1]:9000/", "p") == "abc.DEF-123"
    for url in ("http://10.0.0.5:8005/v1", "http://10.0.0.5/v1",
                "https://heat.example.com.evil.example/", "https://evil.example/",
                "http://user@evil.example/", "not a url", "http://[::1]:9001/"):
        assert creds.token_for("heat", url, "p") is None, url
    assert creds.token_for("nope", "https://heat.example.com/", "p") is None


def test_project_binding(tmp_path):
    creds = load(tmp_path, GOOD)
    assert creds.token_for("mistral", "http://mistral.example:8989/v2", "demo") \
        == "tok:with:colons"
    assert creds.token_for("mistral", "http://mistral.example:8989/v2", "other") is None


def test_tokens_never_show_in_reprs(tmp_path):
    creds = load(tmp_path, GOOD)
    assert "abc.DEF" not in repr(creds)
    assert "heat" in creds


def test_no_file_or_empty_file_means_no_credentials(tmp_path):
    assert load_credentials("").names == []
    assert load(tmp_path, "").names == []


@pytest.mark.parametrize("text", [
    "- a list\n",
    "x: {token: t}\n",                                  # no hosts
    "x: {token: t, hosts: []}\n",
    "x: {token: t, hosts: ['evil.example/path']}\n",
    "x: {token: 'tök', hosts: [a.example]}\n",
    "x: {token: 'a b', hosts: [a.example]}\n",
    "x: {token: 7, hosts: [a.example]}\n",
    "x: {token: t, hosts: [a.example], projects: demo}\n",
    "x: {token: t, hosts: [a.example], extra: 1}\n",
    "'bad name': {token: t, hosts: [a.example]}\n",
    "x: [unclosed\n",
])
def test_malformed_files_are_refused_without_echoing_tokens(tmp_path, text):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert "tök" not in caught.value.description
    assert "a b" not in caught.value.description


def test_unreadable_files_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_credentials(str(tmp_path / "missing"))
