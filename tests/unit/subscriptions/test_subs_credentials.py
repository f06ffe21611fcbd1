"""The credentials file for trust+ and action subscribers."""

from __future__ import annotations

import pytest

from queues.errors import ConfigError
from subscriptions.credentials import load_credentials


def test_reads_names_and_tokens_skipping_comments(tmp_path):
    path = tmp_path / "creds"
    path.write_text("# ops\nheat:abc.DEF-123\n\nmistral: tok:with:colons \n")
    creds = load_credentials(str(path))
    assert creds.names == ["heat", "mistral"]
    assert creds.token("heat") == "abc.DEF-123"
    assert creds.token("mistral") == "tok:with:colons"
    assert "abc" not in repr(creds) and "heat" in creds


def test_no_file_means_no_credentials():
    assert load_credentials("").names == []


@pytest.mark.parametrize("line", ["no-colon", ":token", "bad name:tok", "x:",
                                  "x:tök", "x:a b", "x:\x07bell"])
def test_malformed_lines_are_refused_without_echoing_them(tmp_path, line):
    path = tmp_path / "creds"
    path.write_text(f"ok:fine\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        load_credentials(str(path))
    assert "line 2" in caught.value.description
    assert "tök" not in caught.value.description and "bell" not in caught.value.description


def test_duplicates_and_unreadable_files_are_refused(tmp_path):
    path = tmp_path / "creds"
    path.write_text("a:1\na:2\n")
    with pytest.raises(ConfigError, match="duplicate"):
        load_credentials(str(path))
    with pytest.raises(ConfigError, match="cannot read"):
        load_credentials(str(tmp_path / "missing"))
