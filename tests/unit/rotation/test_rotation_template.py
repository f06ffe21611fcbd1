"""Credential-rotation templates: the example loads, and every mistake is
refused with an error naming the file, the target and the field."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from queues.api.resources import share
from queues.errors import ConfigError
from queues.rotation import operations
from queues.rotation.template import Timing, load_dir, load_file

EXAMPLE_DIR = pathlib.Path(__file__).parents[3] / "etc" / "rotation"


def template(**changes) -> dict:
    base = {
        "version": 1, "kind": "credential-rotation", "project": "demo",
        "defaults": {"ttl": 60, "rotate_before": 20, "min_overlap": 5},
        "targets": [{"name": "vm-1",
                     "grants": [{"queue": "events", "ops": ["post"]}],
                     "deliver": [{"kind": "queue"}]}],
    }
    base.update(changes)
    return base


def target(**changes) -> dict:
    base = template()["targets"][0]
    base.update(changes)
    return base


def write(tmp_path: pathlib.Path, document, name: str = "t.yaml") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document) if not isinstance(document, str)
                    else document)
    return path


def refused(tmp_path, document, *fragments: str) -> str:
    path = write(tmp_path, document)
    with pytest.raises(ConfigError) as caught:
        load_file(path)
    message = caught.value.description
    assert message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_example_template_loads():
    targets = load_dir(EXAMPLE_DIR)
    assert [t.name for t in targets] == ["web-1", "worker-7"]
    web = targets[0]
    assert web.project == "demo"
    assert web.timing == Timing(3600, 1200, 300)
    assert [(g.queue, g.ops) for g in web.grants] == [
        ("alarms", ("post",)), ("jobs", ("claim", "delete", "read"))]
    assert web.credentials_queue == "creds.web-1"
    assert [d.kind for d in web.deliver] == ["queue", "file"]
    assert web.deliver[1].mode == 0o600
    worker = targets[1]
    assert worker.timing == Timing(7200, 1800, 300)
    assert worker.deliver[1].url.startswith("https://")
    assert web.alerts_queue == "rotation.alerts"


def test_defaults_and_overrides(tmp_path):
    document = template(
        alerts_queue="ops.alerts", queues=["events", "jobs"],
        targets=[target(project="other", rotate_before=30,
                        grants=[{"queue": "events", "ops": ["post"]},
                                {"queue": "jobs", "project": "third",
                                 "paths": ["messages", "claims"],
                                 "methods": ["GET", "POST", "PATCH", "DELETE"]}],
                        deliver=[{"kind": "queue", "queue": "my.creds"},
                                 {"kind": "file", "path": "/tmp/x.json",
                                  "mode": "0640"},
                                 {"kind": "webhook", "url": "https://h.example/c"}])])
    (loaded,) = load_file(write(tmp_path, document))
    assert loaded.project == "other"
    assert loaded.timing == Timing(60, 30, 5)
    assert loaded.grants[0].project == "other"
    assert loaded.grants[1].project == "third"
    assert loaded.grants[1].ops == ("claim", "delete", "post", "read")
    assert loaded.credentials_queue == "my.creds"
    assert loaded.deliver[1].mode == 0o640
    assert loaded.alerts_queue == "ops.alerts"
    assert loaded.ledger_queue == "rotation.ledger.vm-1"


def test_zaqar_paths_map_as_share_does():
    """The table is share.py's, repeated to keep the API out of this package."""
    assert operations.PATH_METHOD_OPS == share._OPERATIONS
    assert operations.GRANTABLE_PATHS == share.GRANTABLE_PATHS - {"subscriptions"}


def test_digest_changes_with_the_grants(tmp_path):
    (one,) = load_file(write(tmp_path, template(), "a.yaml"))
    timing = {"ttl": 90, "rotate_before": 20, "min_overlap": 5}
    (same,) = load_file(write(tmp_path, template(defaults=timing), "b.yaml"))
    (other,) = load_file(write(tmp_path, template(targets=[target(
        grants=[{"queue": "events", "ops": ["post", "read"]}])]), "c.yaml"))
    assert one.digest() == same.digest() != other.digest()


@pytest.mark.parametrize("changes, fragments", [
    ({"version": 2}, ["version: must be 1"]),
    ({"kind": "stack"}, ["kind: must be 'credential-rotation'"]),
    ({"extra": 1}, ["unknown key(s): extra"]),
    ({"targets": []}, ["targets: must not be empty"]),
    ({"defaults": {"ttl": 10, "rotate_before": 10}},
     ["defaults: ttl (10) must be greater than rotate_before (10)"]),
    ({"defaults": {"ttl": 60, "rotate_before": 20, "min_overlap": 30}},
     ["defaults: rotate_before (20) must be at least min_overlap (30)"]),
    ({"defaults": {"ttl": "1h"}}, ["defaults.ttl: must be an integer"]),
    ({"defaults": {"ttl": 10**7}}, ["defaults.ttl: must be at most 604800"]),
    ({"defaults": {"ttl": 60, "grace": 1}}, ["defaults: unknown key(s): grace"]),
    ({"alerts_queue": "bad name"}, ["alerts_queue: 'bad name' is not a valid queue"]),
    ({"queues": ["ok", "no/slash"]}, ["queues[1]: 'no/slash' is not a valid queue"]),
    ({"project": None}, ["targets[0] (vm-1).project: is required"]),
])
def test_template_errors(tmp_path, changes, fragments):
    refused(tmp_path, template(**changes), *fragments)


@pytest.mark.parametrize("changes, fragments", [
    ({"rotate_before": 60}, ["targets[0] (vm-1): ttl (60) must be greater than"
                             " rotate_before (60)"]),
    ({"min_overlap": 21}, ["(vm-1): rotate_before (20) must be at least min_overlap"]),
    ({"name": "a" * 49}, ["targets[0].name:", "must be 1-48"]),
    ({"name": "has space"}, ["targets[0].name:"]),
    ({"grants": []}, ["(vm-1).grants: must not be empty"]),
    ({"grants": [{"queue": "q%"}]}, ["(vm-1).grants[0].queue: 'q%' is not a valid"]),
    ({"grants": [{"queue": "q"}]}, ["(vm-1).grants[0]: needs ops, or both paths"]),
    ({"grants": [{"queue": "q", "ops": ["admin"]}]},
     ["(vm-1).grants[0].ops[0]: 'admin' is not one of claim, delete, post, read"]),
    ({"grants": [{"queue": "q", "ops": "post"}]}, ["grants[0].ops: must be a list"]),
    ({"grants": [{"queue": "q", "ops": ["post"], "paths": ["messages"]}]},
     ["grants[0]: give either ops or paths+methods"]),
    ({"grants": [{"queue": "q", "paths": ["subscriptions"], "methods": ["POST"]}]},
     ["grants[0].paths[0]: subscriptions are never grantable"]),
    ({"grants": [{"queue": "q", "paths": ["messages"], "methods": ["PATCH"]}]},
     ["grants[0]: these paths and methods grant nothing"]),
    ({"grants": [{"queue": "q", "paths": ["messages"], "methods": ["FETCH"]}]},
     ["grants[0].methods[0]: 'FETCH' is not one of"]),
    ({"grants": [{"queue": "q", "ops": ["post"], "ttl": 5}]},
     ["grants[0]: unknown key(s): ttl"]),
    ({"deliver": [{"kind": "carrier-pigeon"}]},
     ["(vm-1).deliver[0].kind: must be one of file, queue, webhook"]),
    ({"deliver": [{"kind": "queue"}, {"kind": "queue", "queue": "x"}]},
     ["(vm-1).deliver: at most one delivery of kind queue"]),
    ({"deliver": [{"kind": "file", "path": "relative/creds.json"}]},
     ["deliver[0].path: 'relative/creds.json' must be an absolute file path"]),
    ({"deliver": [{"kind": "file", "path": "/x", "mode": "rw"}]},
     ["deliver[0].mode: 'rw' is not an octal mode"]),
    ({"deliver": [{"kind": "file", "path": "/x", "mode": "0200"}]},
     ["deliver[0].mode: must let the owner read"]),
    ({"deliver": [{"kind": "file", "path": "/x", "url": "http://h/"}]},
     ["deliver[0]: unknown key(s): url"]),
    ({"deliver": [{"kind": "webhook", "url": "ftp://h/x"}]},
     ["deliver[0].url: 'ftp://h/x' must be an http(s) URL"]),
    ({"deliver": [{"kind": "webhook", "url": "https://u:p@h/x"}]},
     ["deliver[0].url: must not carry credentials"]),
    ({"deliver": [{"kind": "queue", "queue": "bad queue"}]},
     ["deliver[0].queue: 'bad queue' is not a valid queue name"]),
])
def test_target_errors(tmp_path, changes, fragments):
    refused(tmp_path, template(targets=[target(**changes)]), *fragments)


def test_grant_must_name_a_listed_queue(tmp_path):
    refused(tmp_path, template(queues=["alarms"]),
            "targets[0] (vm-1).grants[0].queue: 'events' is not one of the"
            " template's queues: alarms")


def test_no_grant_on_a_credentials_queue(tmp_path):
    """A target must not read another's credentials (nor its own: the daemon
    grants that itself)."""
    document = template(targets=[
        target(), target(name="vm-2", grants=[{"queue": "creds.vm-1",
                                               "ops": ["read"]}])])
    refused(tmp_path, document, "target 'vm-2': grant on 'creds.vm-1', the"
            " credentials queue of target 'vm-1'")


def test_duplicate_targets_across_files(tmp_path):
    write(tmp_path, template(), "a.yaml")
    write(tmp_path, template(), "b.yml")
    with pytest.raises(ConfigError, match=r"b\.yml: target 'vm-1' is also defined in"
                       r" .*a\.yaml"):
        load_dir(tmp_path)


def test_unreadable_and_invalid_files(tmp_path):
    refused(tmp_path, "targets: [unclosed\n", "not valid YAML")
    refused(tmp_path, "- a\n", "must be a mapping")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no \\*.yaml file"):
        load_dir(tmp_path / "empty")
    with pytest.raises(ConfigError, match="is not a directory"):
        load_dir(tmp_path / "missing")
