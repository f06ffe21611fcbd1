"""Turning a workflow's steps into requests for one message.

The rules that keep message data data (integration.md §6.1, point 4):

* a var (selected from the payload with JMESPath) enters a URL or header
  value only percent-encoded as ONE path segment: ``/``, ``?``, ``#``, ``%``
  and ``..`` in message data cannot change the path, the query or the host;
  ``.`` and ``..`` themselves are refused;
* parameters (``options.params``, chosen by whoever created the
  subscription) are inserted as written: they carry base URLs and canonical
  ``name/id`` stack paths;
* the host of every step URL must not depend on a var: it is checked with
  two different stand-in values, so a template or parameter that would put
  message data into the authority is refused;
* a json body is the literal YAML value, except that a string that is
  exactly ``"{var}"`` becomes the var's JSON value. Nothing is rendered as
  a template, so ``{{ }}`` or ``<% %>`` in a message reach the target as-is.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

import jmespath.exceptions

from subscriptions.errors import InvalidSubscriberOptions
from subscriptions.workflow_spec import PLACEHOLDER, Step, Workflow

MAX_SEGMENT = 255
MAX_BODY_BYTES = 262144
_MARKERS = ("a", "b")


class SelectionFailed(ValueError):
    """This message gives a var no usable value (final for the delivery)."""


@dataclasses.dataclass(frozen=True)
class Call:
    """One step's request for one message (without the credential)."""

    step: Step
    url: str
    headers: tuple[tuple[str, str], ...]
    content: bytes | None  # JSON, when the step has a body


def select_vars(workflow: Workflow, payload: dict[str, Any]) -> dict[str, Any]:
    """Every var's value in ``payload``; raises ``SelectionFailed`` when one
    selects nothing (use JMESPath's ``||`` for a default)."""
    values: dict[str, Any] = {}
    for var in workflow.vars:
        try:
            value = var.compiled.search(payload)
        except jmespath.exceptions.JMESPathError as ex:
            raise SelectionFailed(f"var {var.name} failed on this message: {ex}"
                                  ) from None
        if value is None:
            raise SelectionFailed(f"var {var.name} selected nothing from this message")
        values[var.name] = value
    return values


def segment(name: str, value: Any) -> str:
    """A var's value as one percent-encoded path segment."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SelectionFailed(f"var {name} selected a {type(value).__name__}; a"
                              " URL or header needs a string or an integer")
    text = str(value)
    if not text or text in (".", "..") or len(text) > MAX_SEGMENT:
        raise SelectionFailed(f"var {name} selected an unusable path segment")
    return urllib.parse.quote(text, safe="")


def fill(template: str, params: Mapping[str, str], values: Mapping[str, Any]) -> str:
    """Single pass: vars as encoded segments, parameters as written (a value
    is never scanned for placeholders again)."""

    def one(match: Any) -> str:
        name = match.group(1)
        if name in values:
            return segment(name, values[name])
        return params[name]

    return PLACEHOLDER.sub(one, template)


def sample_url(step: Step, params: Mapping[str, str], var_names: frozenset[str]
               ) -> str:
    """The step's URL with a stand-in for every var, checked: an absolute
    http(s) URL whose host no var can choose. Raises
    ``InvalidSubscriberOptions`` (the subscription's parameters are wrong)."""
    first, second = (fill(step.url, params, dict.fromkeys(var_names, marker))
                     for marker in _MARKERS)
    check_url(step, first)
    if origin(first) != origin(second):
        raise InvalidSubscriberOptions(
            f"Step {step.name}: the host of its URL would come from message data;"
            " check options.params.")
    return first


def check_url(step: Step, url: str) -> None:
    problem = url_problem(url)
    if problem:
        raise InvalidSubscriberOptions(
            f"Step {step.name}: its URL {problem}; check options.params.")


def url_problem(url: str) -> str:
    """Why ``url`` cannot be a step's target ("" when it can)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "is not an absolute http(s) URL"
    if not port_ok:
        return "has an invalid port"
    if parts.username is not None or parts.password is not None:
        return "carries credentials (name one in options.credentials)"
    if parts.fragment:
        return "has a fragment"
    return ""


def origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def fill_json(document: Any, values: Mapping[str, Any]) -> Any:
    """The literal body with each exactly-``"{var}"`` string replaced."""
    if isinstance(document, str):
        whole = PLACEHOLDER.fullmatch(document)
        if whole and whole.group(1) in values:
            return values[whole.group(1)]
        return document
    if isinstance(document, list):
        return [fill_json(item, values) for item in document]
    if isinstance(document, dict):
        return {key: fill_json(item, values) for key, item in document.items()}
    return document


def plan(workflow: Workflow, params: Mapping[str, str],
         values: Mapping[str, Any]) -> list[Call]:
    """Every step's request for this message; raises ``SelectionFailed`` or
    ``InvalidSubscriberOptions`` before anything is sent."""
    return [_call(step, params, values, workflow.var_names)
            for step in workflow.steps]


def _call(step: Step, params: Mapping[str, str], values: Mapping[str, Any],
          var_names: frozenset[str]) -> Call:
    sample = sample_url(step, params, var_names)
    url = fill(step.url, params, values)
    if origin(url) != origin(sample):
        raise SelectionFailed(f"step {step.name}: message data changed the host")
    headers = tuple((name, fill(value, params, values))
                    for name, value in step.headers)
    content = None
    if step.has_body:
        content = json.dumps(fill_json(step.body, values)).encode()
        if len(content) > MAX_BODY_BYTES:
            raise SelectionFailed(f"step {step.name}: the request body would exceed"
                                  f" {MAX_BODY_BYTES} bytes")
    return Call(step, url, headers, content)
