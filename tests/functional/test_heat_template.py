"""Heat interop: ``etc/templates/mailslot-queue.yaml`` against ``mailslot serve``.

No Heat runs here, so the test replays what Heat's OS::Zaqar::* resource
plugins do for the template's resources, with the same python-zaqarclient
calls (heat/engine/resources/openstack/zaqar/{queue,subscription}.py):
Queue -> ``queue(name, auto_create=False).metadata(new_meta=...)``;
SignedQueueURL -> ``queue(q).signed_url(paths, ttl_seconds=, methods=)`` and
its ``query_str`` attribute; Subscription -> ``subscription(queue_name,
subscriber=, ttl=, options=)``. Then a "VM" posts with only what
``query_str`` carries, and can do nothing else.
"""

from __future__ import annotations

import pathlib
import urllib.parse
import uuid

import httpx
import pytest
import yaml
from zaqarclient.queues import client as zclient

import signing
from tests.fixtures.server import running_server

TEMPLATE = pathlib.Path(__file__).resolve().parents[2] / "etc" / "templates" \
    / "mailslot-queue.yaml"


class Stack:
    """Just enough HOT to resolve this template: get_param, get_resource."""

    def __init__(self, template: dict, params: dict | None = None) -> None:
        self.template = template
        self.params = {name: spec.get("default")
                       for name, spec in template["parameters"].items()}
        self.params.update(params or {})
        self.physical: dict[str, str] = {}

    def resolve(self, value):
        if isinstance(value, dict) and len(value) == 1:
            (function, argument), = value.items()
            if function == "get_param":
                return self.params[argument]
            if function == "get_resource":
                return self.physical[argument]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def properties(self, name: str) -> dict:
        return self.resolve(self.template["resources"][name]["properties"])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("heat-template")
    keys = signing.generate_key_entry("h1", state="active")
    with running_server(workdir, env={signing.ENV_VAR: keys}) as running:
        yield running


def query_str(queue: str, signed: dict) -> str:
    """OS::Zaqar::SignedQueueURL's query_str attribute, as Heat builds it."""
    return urllib.parse.urlencode({
        "queue_name": queue, "project_id": signed["project"],
        "signature": signed["signature"], "expires": signed["expires"],
        "paths": ",".join(signed["paths"]), "methods": ",".join(signed["methods"])})


def vm_headers(query: str) -> dict:
    fields = dict(urllib.parse.parse_qsl(query))
    return {"URL-Signature": fields["signature"], "URL-Expires": fields["expires"],
            "URL-Paths": fields["paths"], "URL-Methods": fields["methods"],
            "X-Project-ID": fields["project_id"], "Client-ID": str(uuid.uuid4())}


def test_template_resources_work_against_mailslot(server):
    project = f"heat-{uuid.uuid4().hex[:8]}"
    client = zclient.Client(server.url, version=2, conf={"auth_opts": {
        "backend": "noauth", "options": {"os_project_id": project}}})
    stack = Stack(yaml.safe_load(TEMPLATE.read_text()))

    events = stack.properties("events")
    queue = client.queue(events["name"], auto_create=False)
    queue.metadata(new_meta=events["metadata"])
    stack.physical["events"] = events["name"]

    url = stack.properties("post_only_url")
    signed = client.queue(url["queue"]).signed_url(
        paths=url["paths"], ttl_seconds=url["ttl"], methods=url["methods"])
    query = query_str(url["queue"], signed)

    forward = stack.properties("forward")
    sub = client.subscription(forward["queue_name"], subscriber=forward["subscriber"],
                              ttl=forward["ttl"], options=forward["options"])

    stored = client.queue(events["name"], auto_create=False).metadata(force_reload=True)
    assert stored["_retry_policy"]["retry_backoff_function"] == "exponential"
    assert client.subscription(events["name"], id=sub.id).options == {
        "post_headers": {"X-Source": "heat-stack"}}

    base = f"/v2/queues/{events['name']}"
    with httpx.Client(base_url=server.url, timeout=10.0, trust_env=False) as vm:
        posted = vm.post(f"{base}/messages", headers=vm_headers(query),
                         json={"messages": [{"body": {"vm": "up"}, "ttl": 300}]})
        assert posted.status_code == 201, posted.text
        # POST-only: the VM can read nothing and reach no other queue.
        assert vm.get(f"{base}/messages", headers=vm_headers(query)).status_code == 404
        assert vm.post("/v2/queues/other/messages", headers=vm_headers(query),
                       json={"messages": [{"body": 1}]}).status_code == 404
    assert [m.body for m in queue.messages(echo=True)] == [{"vm": "up"}]
