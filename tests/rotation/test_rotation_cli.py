"""``mailslot rotate`` (daemon, --once, --dry-run, status, revoke) through
click's runner, on a SQLite store in the test's directory."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import yaml
from click.testing import CliRunner

import signing
from queues.cli import main

MAILSLOT_BIN = pathlib.Path(sys.executable).parent / "mailslot"


@pytest.fixture
def setup(tmp_path: pathlib.Path, monkeypatch):
    monkeypatch.delenv("MAILSLOT_CONFIG", raising=False)
    monkeypatch.delenv(signing.ENV_VAR, raising=False)
    keys = tmp_path / "keys"
    keys.write_text(signing.generate_key_entry("k1", state="active") + "\n")
    templates = tmp_path / "rotation"
    templates.mkdir()
    (templates / "vms.yaml").write_text(yaml.safe_dump({
        "version": 1, "kind": "credential-rotation", "project": "demo",
        "defaults": {"ttl": 600, "rotate_before": 200, "min_overlap": 50},
        "targets": [{"name": "vm-1", "grants": [{"queue": "events", "ops": ["post"]}],
                     "deliver": [{"kind": "queue"}, {"kind": "file", "path": str(
                         tmp_path / "vm-1.json")}]}],
    }))
    config = tmp_path / "mailslot.yaml"
    settings = {"storage": {"uri": f"sqlite:///{tmp_path}/m.db"},
                "signing": {"keys_file": str(keys), "public_url": "https://q.example"},
                "rotation": {"templates_dir": str(templates)}}
    config.write_text(yaml.safe_dump(settings))
    return tmp_path, config, settings


def rotate(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["rotate", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_dry_run_once_status_and_revoke(setup):
    tmp_path, config, _ = setup
    code, output = rotate("--config", str(config), "--dry-run")
    assert code == 0, output
    assert "vm-1: would issue generation 1 (first issue), ttl 600 s: post on" \
        " demo/events; delete+read on demo/creds.vm-1" in output
    assert not (tmp_path / "vm-1.json").exists()

    code, output = rotate("--config", str(config), "--once")
    assert code == 0, output
    assert "issued 1, alerts 0, delivery failures 0, errors 0" in output
    document = json.loads((tmp_path / "vm-1.json").read_text())
    assert document["grants"][0]["url"].startswith(
        "https://q.example/v2/queues/events/")
    assert document["grants"][0]["token"] not in output

    code, output = rotate("--config", str(config), "--dry-run")
    assert "vm-1: generation 1 is current; next rotation" in output

    code, output = rotate("status", "--config", str(config))
    assert code == 0, output
    assert "vm-1 (demo, " in output and ": generation 1" in output
    assert "delivered    file#1, queue#0" in output
    assert document["grants"][0]["token"] not in output

    code, output = rotate("--config", str(config), "revoke", "vm-1")
    assert code == 0, output
    assert "revoked every live grant of vm-1; generation 2 issued" in output
    assert json.loads((tmp_path / "vm-1.json").read_text())["generation"] == 2
    code, output = rotate("status", "--config", str(config))
    assert "live         1 (revoked), 2" in output


def test_public_url_is_required_unless_given(setup):
    tmp_path, config, settings = setup
    settings["signing"]["public_url"] = ""
    config.write_text(yaml.safe_dump(settings))
    code, output = rotate("--config", str(config), "--once")
    assert code != 0 and "signing.public_url is empty" in output
    code, output = rotate("--config", str(config), "--once", "--url",
                          "http://10.0.0.1:8888")
    assert code == 0, output
    document = json.loads((tmp_path / "vm-1.json").read_text())
    assert document["grants"][0]["url"].startswith("http://10.0.0.1:8888/v2/")


def test_mistakes_are_reported_without_a_traceback(setup, tmp_path):
    _, config, _ = setup
    code, output = rotate("--config", str(config), "revoke", "vm-9")
    assert code != 0 and "no target named 'vm-9'" in output
    code, output = rotate("--config", str(config), "--once", "status")
    assert code != 0 and "--once and --dry-run apply to the daemon only" in output
    code, output = rotate("--config", str(config), "--templates",
                          str(tmp_path / "nowhere"), "--once")
    assert code != 0 and "is not a directory" in output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "t.yaml").write_text("version: 1\nkind: credential-rotation\ntargets: []\n")
    code, output = rotate("status", "--config", str(config), "--templates", str(bad))
    assert code != 0 and "t.yaml: targets: must not be empty" in output


def test_daemon_runs_passes_until_sigterm(setup):
    """``mailslot rotate`` alone is the daemon; SIGTERM stops it cleanly."""
    tmp_path, config, _ = setup
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSLOT_")}
    process = subprocess.Popen(
        [str(MAILSLOT_BIN), "rotate", "--config", str(config)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not (tmp_path / "vm-1.json").exists():
            assert process.poll() is None, process.stdout.read().decode()
            assert time.monotonic() < deadline, "no document written"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=10)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "rotation stopped" in output and "issued=1" in output
    document = json.loads((tmp_path / "vm-1.json").read_text())
    assert document["grants"][0]["token"] not in output
