"""Settings: the sample file, env overrides and validation."""

from __future__ import annotations

import pathlib

import pytest

from queues.config import Settings, load_settings, mask_secrets, settings_as_dict
from queues.errors import ConfigError

SAMPLE = pathlib.Path(__file__).parents[2] / "etc" / "mailslot.yaml.sample"


def test_sample_documents_exactly_the_defaults():
    assert load_settings(SAMPLE, env={}) == Settings()


def test_sample_names_every_setting():
    text = SAMPLE.read_text()
    for section, values in settings_as_dict(Settings()).items():
        assert f"\n{section}:" in text
        for key in values:
            assert f"  {key}:" in text, f"{section}.{key} is not documented"


def test_env_overrides_file(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("storage: {uri: 'sqlite:///a.db'}\ntransport: {max_message_ttl: 100}\n")
    settings = load_settings(path, env={
        "MAILSLOT_STORAGE_URI": "redis://127.0.0.1:1/0",
        "MAILSLOT_TRANSPORT_SUBSCRIBER_TYPES": "http, https",
        "MAILSLOT_API_ENABLE_CHECKSUM": "yes",
        "MAILSLOT_STORAGE_TIMEOUT": "0.5",
    })
    assert settings.storage.uri == "redis://127.0.0.1:1/0"
    assert settings.transport.max_message_ttl == 100
    assert settings.transport.subscriber_types == ("http", "https")
    assert settings.api.enable_checksum is True
    assert settings.storage.timeout == 0.5


def test_settings_are_frozen():
    with pytest.raises(Exception):
        Settings().storage.uri = "x"  # type: ignore[misc]


@pytest.mark.parametrize("text, fragment", [
    ("bogus: {}\n", "unknown section"),
    ("storage: {nope: 1}\n", "unknown key"),
    ("transport: {max_message_ttl: 'a lot'}\n", "must be an integer"),
    ("transport: {max_message_ttl: true}\n", "must be an integer"),
    ("transport: {max_message_ttl: -1}\n", "must not be negative"),
    ("api: {admin_mode: 'yes'}\n", "true or false"),
    ("transport: {client_id_uuid_safe: maybe}\n", "must be one of"),
    ("transport: {subscriber_types: http}\n", "list of strings"),
    ("storage: [1, 2]\n", "must be a mapping"),
    ("- a\n- b\n", "mapping of sections"),
    ("storage: {uri: [unclosed\n", "not valid YAML"),
])
def test_invalid_files_are_refused_clearly(tmp_path, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_settings(path, env={})


def test_invalid_env_value():
    with pytest.raises(ConfigError, match="MAILSLOT_SERVER_WORKERS"):
        load_settings(env={"MAILSLOT_SERVER_WORKERS": "many"})


def test_missing_file():
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings("/nonexistent/mailslot.yaml", env={})


def test_default_store_is_a_sqlite_file():
    assert Settings().storage.effective_uri.startswith("sqlite:////")


def test_secrets_masked():
    assert mask_secrets("redis://:hunter2@h:6379/0") == "redis://***@h:6379/0"
    assert mask_secrets("mongodb://u:p@h1,h2/db") == "mongodb://***@h1,h2/db"
    masked = settings_as_dict(load_settings(env={
        "MAILSLOT_STORAGE_URI": "redis://user:hunter2@h/0"}))
    assert "hunter2" not in str(masked)


def test_debug_logging_never_reaches_libraries_that_log_secrets():
    import logging

    from queues.config import CHATTY_LOGGERS, configure_logging, load_settings

    configure_logging(load_settings(env={"MAILSLOT_LOGGING_LEVEL": "DEBUG"}))
    for name in CHATTY_LOGGERS:
        assert logging.getLogger(name).getEffectiveLevel() >= logging.INFO, name
