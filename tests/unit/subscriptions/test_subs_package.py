"""Dependency rules of the subscriptions package."""

from __future__ import annotations

import subprocess
import sys

MODULES = ["actions", "apicall", "classify", "cooldown", "errors", "heat", "http",
           "mailto", "mistral", "options", "payload", "result", "retry", "ssrf",
           "webhook", "workflow_render", "workflow_run", "workflow_spec", "workflows"]


def imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True,
                         capture_output=True, text=True, timeout=60)
    return set(out.stdout.split())


def test_no_module_imports_the_api():
    loaded = imported_after("; ".join(f"import subscriptions.{m}" for m in MODULES))
    assert not {m for m in loaded if m == "queues.api" or m.startswith("queues.api.")}


def test_validation_modules_do_not_pull_in_the_http_client():
    """The API validates policies and URLs without loading the HTTP stack."""
    loaded = imported_after("import subscriptions.retry, subscriptions.ssrf, "
                            "subscriptions.classify")
    assert "aiohttp" not in loaded
    assert "smtplib" not in loaded
