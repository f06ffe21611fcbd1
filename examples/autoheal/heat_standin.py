"""A Heat-compatible stand-in for the auto-heal example (loopback only).

It implements the four calls the heal makes (integration.md §1.4, §4.2) on an
in-memory set of stacks, validating them as Heat does:

- ``GET /v1/{tenant}/stacks/{name}/{id}``: ``{"stack": {"stack_status": ...}}``;
- ``PATCH .../stacks/{name}/{id}/resources/{resource}`` with exactly
  ``mark_unhealthy`` (bool, or "true"/"false") and ``resource_status_reason``:
  200, 400 for other keys, 404 for an unknown resource (by name or physical
  id), 409 while the stack is being updated;
- ``PATCH /v1/{tenant}/stacks/{name}/{id}`` with ``{}``: 202; the update
  "replaces" every CHECK_FAILED resource of the tenant's stacks with a new
  physical id after ``update_seconds``;
- ``POST .../resources/{resource}/signal``: 200.

Every call is appended to ``calls`` (and, if given, a JSON-lines log).
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import re
import threading
import time
import uuid
from typing import Any

_STACK = re.compile(r"^/v1/(?P<tenant>[^/]+)/stacks/(?P<name>[^/]+)/(?P<id>[^/]+)"
                    r"(?:/resources/(?P<res>[^/]+)(?P<signal>/signal)?)?$")


@dataclasses.dataclass
class Resource:
    name: str
    physical_id: str
    status: str = "CREATE_COMPLETE"
    reason: str = ""


@dataclasses.dataclass
class Stack:
    name: str
    id: str
    status: str = "CREATE_COMPLETE"
    resources: dict[str, Resource] = dataclasses.field(default_factory=dict)

    def find(self, key: str) -> Resource | None:
        return self.resources.get(key) or next(
            (r for r in self.resources.values() if r.physical_id == key), None)


class HeatStandIn:
    def __init__(self, tenant: str = "demo", update_seconds: float = 0.3,
                 log_path: str | None = None) -> None:
        self.tenant = tenant
        self.update_seconds = update_seconds
        self.stacks: dict[str, Stack] = {}
        self.calls: list[dict[str, Any]] = []
        self.replaced: list[tuple[str, str, str]] = []  # (resource, old, new id)
        self._log_path = log_path
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1/{tenant}"

    def add_stack(self, name: str, resources: dict[str, str]) -> Stack:
        stack = Stack(name, uuid.uuid4().hex[:8],
                      resources={r: Resource(r, pid) for r, pid in resources.items()})
        self.stacks[f"{name}/{stack.id}"] = stack
        return stack

    def start(self) -> "HeatStandIn":
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         kwargs={"poll_interval": 0.05}).start()
        return self

    def stop(self) -> None:
        """Stop serving (after ``start``) and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def close(self) -> None:
        """Close the socket of a stand-in that was never started."""
        self._server.server_close()

    # --- the API -------------------------------------------------------------

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        match = _STACK.match(path)
        if match is None or match["tenant"] != self.tenant:
            return 404, {"error": "not found"}
        stack = self.stacks.get(f"{match['name']}/{match['id']}")
        if stack is None:
            return 404, {"error": "stack not found"}
        if match["res"] is None:
            return self._stack_call(method, stack, body)
        if match["signal"]:
            return (200, None) if method == "POST" else (405, None)
        if method != "PATCH":
            return 405, None
        return self._mark(stack, match["res"], body)

    def _stack_call(self, method: str, stack: Stack, body: Any) -> tuple[int, Any]:
        if method == "GET":
            return 200, {"stack": {"id": stack.id, "stack_name": stack.name,
                                   "stack_status": stack.status}}
        if method != "PATCH" or not isinstance(body, dict):
            return 400, {"error": "bad request"}
        if stack.status == "UPDATE_IN_PROGRESS":
            return 409, {"error": "ActionInProgress"}
        stack.status = "UPDATE_IN_PROGRESS"
        timer = threading.Timer(self.update_seconds, self._finish_update, [stack])
        timer.daemon = True
        timer.start()
        return 202, None

    def _mark(self, stack: Stack, key: str, body: Any) -> tuple[int, Any]:
        allowed = {"mark_unhealthy", "resource_status_reason"}
        if not isinstance(body, dict) or "mark_unhealthy" not in body \
                or set(body) - allowed:
            return 400, {"error": "only mark_unhealthy and resource_status_reason"}
        flag = body["mark_unhealthy"]
        if isinstance(flag, str) and flag.lower() in ("true", "false"):
            flag = flag.lower() == "true"
        if not isinstance(flag, bool):
            return 400, {"error": "mark_unhealthy must be a boolean"}
        if stack.status == "UPDATE_IN_PROGRESS":
            return 409, {"error": "ActionInProgress"}
        resource = stack.find(key)
        if resource is None:
            return 404, {"error": f"resource {key} not found"}
        resource.status = "CHECK_FAILED" if flag else "CHECK_COMPLETE"
        resource.reason = str(body.get("resource_status_reason", ""))
        return 200, None

    def _finish_update(self, stack: Stack) -> None:
        with self._lock:
            for each in self.stacks.values():
                for resource in each.resources.values():
                    if resource.status == "CHECK_FAILED":
                        old, resource.physical_id = (resource.physical_id,
                                                     uuid.uuid4().hex)
                        resource.status = "CREATE_COMPLETE"
                        self.replaced.append((resource.name, old, resource.physical_id))
            stack.status = "UPDATE_COMPLETE"

    def _record(self, method: str, path: str, body: Any, status: int) -> None:
        call = {"at": time.time(), "method": method, "path": path, "body": body,
                "status": status}
        with self._lock:
            self.calls.append(call)
        if self._log_path:
            with open(self._log_path, "a", encoding="utf-8") as log:
                log.write(json.dumps(call) + "\n")

    def _handler(self):
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                status, answer = standin.handle(self.command, self.path, body)
                standin._record(self.command, self.path, body, status)
                data = json.dumps(answer).encode() if answer is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PATCH = do_POST = _serve  # noqa: N815

            def log_message(self, *args) -> None:
                pass

        return Handler
