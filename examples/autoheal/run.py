"""The auto-heal loop on one machine, in one command:

    .venv/bin/python -m examples.autoheal.run        (or: make autoheal)

1. starts a Heat stand-in (loopback) holding a member stack with a server
   resource and a root stack, and ``mailslot serve`` (SQLite, its dispatcher,
   ``etc/workflows/``) on a free port;
2. creates ``alarm_queue`` with a ``workflow:autoheal`` subscription (the
   local workflow in etc/workflows/autoheal.yaml) whose params point at the
   stand-in, and mints a POST-only signed URL for the queue;
3. "Aodh" posts an event alarm (the exact Aodh body shape) for the server's
   instance through that signed URL and nothing else;
4. waits until the stand-in has seen mark-unhealthy then the stack update,
   and the server has a new physical id; posts the same alarm again and shows
   that the second heal finds the old instance gone (404: already replaced);
5. prints each step as it happens and a summary; exit status 0 on success.

No credentials, no Keystone: the stand-in and Mailslot listen on 127.0.0.1
only, and everything started is stopped at the end.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import httpx
import yaml

from examples.autoheal.heat_standin import HeatStandIn

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROJECT = "demo"
QUEUE = "alarm_queue"
HEADERS = {"X-Project-ID": PROJECT, "Client-ID": str(uuid.uuid4())}


def say(step: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {step}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def aodh_event_alarm(instance_id: str, state: str = "stopped") -> dict:
    """An Aodh event-alarm notification body (integration.md §1.3)."""
    return {
        "alarm_name": "stop_event_alarm", "alarm_id": str(uuid.uuid4()),
        "severity": "low", "previous": "insufficient data", "current": "alarm",
        "reason": "Event <event_type=compute.instance.update> hits the query",
        "reason_data": {"type": "event", "event": {
            "message_id": str(uuid.uuid4()), "event_type": "compute.instance.update",
            "generated": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "traits": [["instance_id", 1, instance_id], ["state", 1, state]],
            "raw": {}}},
    }


class Mailslot:
    """``mailslot serve`` with its dispatcher on a temp SQLite store."""

    def __init__(self, workdir: pathlib.Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "server": {"bind": f"127.0.0.1:{self.port}", "workers": 1,
                       "access_log": False},
            "storage": {"uri": f"sqlite:///{workdir}/mailslot.db"},
            "dispatch": {"allow_cidrs": ["127.0.0.1/32"],
                         "workflows_dir": str(ROOT / "etc" / "workflows")},
            "logging": {"level": "WARNING"},
        }
        path = workdir / "mailslot.yaml"
        path.write_text(yaml.safe_dump(config))
        key = base64.urlsafe_b64encode(os.urandom(32)).decode()
        env = {**os.environ, "MAILSLOT_SIGNING_KEYS": f"demo:active:{key}"}
        mailslot = pathlib.Path(sys.executable).parent / "mailslot"
        self.process = subprocess.Popen(
            [str(mailslot), "serve", "--config", str(path)], env=env,
            stdout=open(workdir / "mailslot.log", "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("mailslot serve exited; see mailslot.log")
            try:
                if httpx.get(f"{self.url}/v2/ping", headers=HEADERS,
                             trust_env=False, timeout=1).status_code == 204:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("mailslot serve did not become ready")

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)


def wait_for(what: str, predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def setup(api: httpx.Client, heat: HeatStandIn, member, root) -> str:
    """The subscription and the POST-only URL; returns the URL."""
    response = api.post(f"/v2/queues/{QUEUE}/subscriptions", json={
        "subscriber": "workflow:autoheal", "ttl": 3600,
        "options": {"params": {"heat": heat.url, "stack": f"{member.name}/{member.id}",
                               "root_stack": f"{root.name}/{root.id}"}}})
    response.raise_for_status()
    say(f"subscription {response.json()['subscription_id']}: workflow:autoheal")
    minted = api.post(f"/v2/queues/{QUEUE}/share", json={
        "paths": ["messages"], "methods": ["POST"], "ttl": 600})
    minted.raise_for_status()
    say("minted a POST-only signed URL for the alarm source")
    return minted.json()["url"]


def heal_once(alarm_url: str, heat: HeatStandIn, instance_id: str) -> None:
    before = len(heat.calls)
    posted = httpx.post(alarm_url, json={"messages": [
        {"body": aodh_event_alarm(instance_id), "ttl": 3600}]}, trust_env=False)
    posted.raise_for_status()
    say(f"'Aodh' posted a stopped-instance alarm for {instance_id[:12]} "
        "(signed URL only)")
    seen = before
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        calls = list(heat.calls)
        for call in calls[seen:]:
            say(f"Heat: {call['method']} {call['path']} -> {call['status']}")
        seen = len(calls)
        patches = [c for c in calls[before:] if c["method"] == "PATCH"]
        if patches and patches[-1]["status"] in (202, 404):
            return
        time.sleep(0.05)
    raise TimeoutError("no heal reached the Heat stand-in")


def run(argv: list[str] | None = None) -> dict:
    """Run the demo; returns the summary (raises on failure)."""
    argparse.ArgumentParser(prog="python -m examples.autoheal.run",
                            description="The auto-heal loop on one machine."
                            ).parse_args(argv)
    heat = HeatStandIn().start()
    member = heat.add_stack("member", {"server": uuid.uuid4().hex})
    root = heat.add_stack("root", {"group": uuid.uuid4().hex})
    old_id = member.resources["server"].physical_id
    with tempfile.TemporaryDirectory(prefix="autoheal-") as tmp:
        mailslot = Mailslot(pathlib.Path(tmp))
        try:
            say(f"mailslot serve on {mailslot.url}; Heat stand-in on {heat.url}")
            with httpx.Client(base_url=mailslot.url, headers=HEADERS,
                              trust_env=False, timeout=10) as api:
                alarm_url = setup(api, heat, member, root)
                heal_once(alarm_url, heat, old_id)
                wait_for("the replacement server", lambda: heat.replaced)
                new_id = member.resources["server"].physical_id
                say(f"Heat replaced server {old_id[:12]} with {new_id[:12]}")
                heal_once(alarm_url, heat, old_id)  # a repeated alarm
        finally:
            mailslot.stop()
            heat.stop()
    summary = {"old_server": old_id, "new_server": new_id, "replaced": heat.replaced,
               "heat_calls": [(c["method"], c["path"], c["status"]) for c in heat.calls]}
    say("summary: " + json.dumps({"replaced": len(heat.replaced),
                                  "heat_calls": len(heat.calls)}))
    return summary


if __name__ == "__main__":
    try:
        run(sys.argv[1:])
    except Exception as ex:  # a demo: one line, not a traceback
        print(f"auto-heal demo failed: {ex}", file=sys.stderr)
        sys.exit(1)
