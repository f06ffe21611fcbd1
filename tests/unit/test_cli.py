"""The mailslot command (in-process, through click's runner)."""

from __future__ import annotations

from click.testing import CliRunner

from queues.cli import main


def test_config_check_prints_effective_settings_masked(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILSLOT_CONFIG", raising=False)
    path = tmp_path / "m.yaml"
    path.write_text("storage: {uri: 'redis://:s3cret@127.0.0.1:6379/0'}\n")
    result = CliRunner().invoke(main, ["config", "check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output
    assert "redis://***@127.0.0.1:6379/0" in result.output
    assert "s3cret" not in result.output
    assert "max_messages_post_size: 262144" in result.output


def test_config_check_rejects_bad_file(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("transport: {max_message_ttl: nope}\n")
    result = CliRunner().invoke(main, ["config", "check", "--config", str(path)])
    assert result.exit_code != 0
    assert "max_message_ttl must be an integer" in result.output
    assert "Traceback" not in result.output
