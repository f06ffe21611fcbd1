"""The local workflow format and its validation (``workflow:<name>``).

A definition is a small YAML mapping: what the auto-heal workflow needs and
nothing more (integration.md §6.1)::

    name: autoheal                    # must equal the file name without .yaml
    vars:                             # selected from the notification payload
      instance_id:
        jmespath: "body.reason_data.event.traits[?[0]=='instance_id'] | [0][2]"
    steps:                            # run in order, at most 10
      - name: mark_unhealthy
        http: {method: PATCH, url: "{heat}/stacks/{stack}/resources/{instance_id}",
               json: {mark_unhealthy: true, resource_status_reason: Marked by alarm}}
        expect: [200]                 # default: any 2xx
        retry: {count: 5, delay: 3, on_status: [409, 429, 500, 502, 503, 504]}
        on_error: fail                # fail (default) | continue | stop
        on_status: {404: stop}        # stop | continue, checked before expect

Placeholders ``{name}`` appear only in ``url`` and header values; a name is
a var (message data, percent-encoded as one segment when rendered) or else
a parameter the subscription's ``options.params`` must supply. In ``json`` a
string that is exactly ``"{var}"`` becomes the var's JSON value; nothing else
in a body is substituted. Message data is never evaluated as a template.

``parse_workflow`` raises ``ConfigError`` naming the file and the step.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import jmespath
import jmespath.exceptions

from queues.errors import ConfigError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
STEP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
PLACEHOLDER = re.compile(r"\{(" + IDENTIFIER + r")\}")
_VAR_NAME = re.compile(IDENTIFIER)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
FAIL, CONTINUE, STOP = "fail", "continue", "stop"
ON_ERROR = (FAIL, CONTINUE, STOP)
ON_STATUS = (STOP, CONTINUE)
DEFAULT_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Set by the dispatcher on every step, or meaningless to override.
RESERVED_HEADERS = frozenset({
    "host", "content-length", "content-type", "transfer-encoding", "connection",
    "x-auth-token", "idempotency-key",
})

MAX_STEPS = 10
MAX_VARS = 20
MAX_HEADERS = 20
MAX_RETRIES = 10
MAX_DELAY = 60.0
MAX_URL = 2048
MAX_HEADER_VALUE = 1024
MAX_EXPRESSION = 1024
MAX_JSON_BYTES = 65536
MAX_JSON_DEPTH = 32

_TOP_KEYS = frozenset({"name", "vars", "steps"})
_STEP_KEYS = frozenset({"name", "http", "expect", "retry", "on_error", "on_status"})
_HTTP_KEYS = frozenset({"method", "url", "headers", "json"})
_RETRY_KEYS = frozenset({"count", "delay", "on_status"})


@dataclasses.dataclass(frozen=True)
class Retry:
    """Inline retries of one step: ``count`` more tries, ``delay`` apart,
    when the reply's status is in ``on_status`` (or the request raised a
    retryable error)."""

    count: int
    delay: float
    on_status: frozenset[int] = DEFAULT_RETRY_STATUSES


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    method: str
    url: str                                   # a template
    headers: tuple[tuple[str, str], ...] = ()  # lower-case names; templates
    has_body: bool = False
    body: Any = None                           # literal JSON, "{var}" values
    expect: frozenset[int] | None = None       # None: any 2xx
    retry: Retry | None = None
    on_error: str = FAIL
    on_status: Mapping[int, str] = dataclasses.field(default_factory=dict)

    def expected(self, status: int) -> bool:
        if self.expect is None:
            return 200 <= status <= 299
        return status in self.expect


@dataclasses.dataclass(frozen=True)
class Var:
    name: str
    expression: str  # JMESPath over the notification payload
    compiled: Any = dataclasses.field(repr=False, compare=False)


@dataclasses.dataclass(frozen=True)
class Workflow:
    name: str
    vars: tuple[Var, ...]
    steps: tuple[Step, ...]
    params: frozenset[str]  # placeholders options.params must fill

    @property
    def var_names(self) -> frozenset[str]:
        return frozenset(var.name for var in self.vars)


def parse_workflow(data: Any, label: str) -> Workflow:
    """The workflow in ``data`` (a loaded YAML document from file ``label``)."""
    where = f"workflow file {label}"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping with name, vars and steps")
    _known_keys(where, data, _TOP_KEYS)
    name = data.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(f"{where}: name must be 1-64 of A-Z, a-z, 0-9, '_', '.',"
                          " '-' (starting with a letter or digit)")
    variables = _vars(where, data.get("vars"))
    steps = _steps(where, data.get("steps"), frozenset(variables))
    used = {p for step in steps for p in placeholders(step)}
    return Workflow(name, tuple(variables.values()), steps,
                    frozenset(used - set(variables)))


def placeholders(step: Step) -> set[str]:
    """The placeholder names in a step's url and header values."""
    names = set(PLACEHOLDER.findall(step.url))
    for _, value in step.headers:
        names.update(PLACEHOLDER.findall(value))
    return names


def _known_keys(where: str, data: Mapping[Any, Any], known: frozenset[str]) -> None:
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}"
                          f" (expected: {', '.join(sorted(known))})")


def _vars(where: str, value: Any) -> dict[str, Var]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_VARS:
        raise ConfigError(f"{where}: vars must be a mapping of at most {MAX_VARS}"
                          " names to {jmespath: expression}")
    return {_var_name(where, k): _expression(where, k, v) for k, v in value.items()}


def _var_name(where: str, name: Any) -> str:
    if not isinstance(name, str) or not _VAR_NAME.fullmatch(name):
        raise ConfigError(f"{where}: var name {name!r} must be an identifier"
                          " (A-Z, a-z, 0-9, '_'; at most 64)")
    return name


def _expression(where: str, name: str, value: Any) -> Var:
    at = f"{where}, var {name!r}"
    if not isinstance(value, dict) or set(value) != {"jmespath"}:
        raise ConfigError(f"{at}: must be {{jmespath: expression}}")
    text = value["jmespath"]
    if not isinstance(text, str) or not text or len(text) > MAX_EXPRESSION:
        raise ConfigError(f"{at}: jmespath must be a non-empty string of at most"
                          f" {MAX_EXPRESSION} characters")
    try:
        return Var(name, text, jmespath.compile(text))
    except jmespath.exceptions.JMESPathError as ex:
        raise ConfigError(f"{at}: invalid JMESPath expression: {ex}") from None


def _steps(where: str, value: Any, var_names: frozenset[str]) -> tuple[Step, ...]:
    if not isinstance(value, list) or not value or len(value) > MAX_STEPS:
        raise ConfigError(f"{where}: steps must be a list of 1 to {MAX_STEPS} steps")
    steps: list[Step] = []
    for index, item in enumerate(value, 1):
        step = _step(where, index, item, var_names)
        if any(s.name == step.name for s in steps):
            raise ConfigError(f"{where}, step {step.name!r}: duplicate step name")
        steps.append(step)
    return tuple(steps)


def _step(where: str, index: int, item: Any, var_names: frozenset[str]) -> Step:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}, step {index}: must be a mapping")
    name = item.get("name")
    if not isinstance(name, str) or not STEP_NAME.fullmatch(name):
        raise ConfigError(f"{where}, step {index}: name must be 1-64 of A-Z, a-z,"
                          " 0-9, '_', '-' (starting with a letter)")
    at = f"{where}, step {name!r}"
    _known_keys(at, item, _STEP_KEYS)
    http = _http(at, item.get("http"), var_names)
    expect = _statuses(at, "expect", item["expect"]) if "expect" in item else None
    on_status = _on_status(at, item.get("on_status"))
    retry = _retry(at, item.get("retry"), (expect or frozenset()) | set(on_status))
    on_error = item.get("on_error", FAIL)
    if on_error not in ON_ERROR:
        raise ConfigError(f"{at}: on_error must be one of: {', '.join(ON_ERROR)}")
    _no_overlap(at, expect, retry, on_status)
    return Step(name=name, expect=expect, retry=retry, on_error=on_error,
                on_status=on_status, **http)


def _http(at: str, value: Any, var_names: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{at}: http must be a mapping with method and url")
    _known_keys(f"{at}, http", value, _HTTP_KEYS)
    method = value.get("method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise ConfigError(f"{at}: http.method must be one of: {', '.join(METHODS)}")
    fields: dict[str, Any] = {
        "method": method.upper(),
        "url": _url(at, value.get("url"), var_names),
        "headers": _headers(at, value.get("headers")),
    }
    if "json" in value:
        if fields["method"] == "GET":
            raise ConfigError(f"{at}: a GET step takes no json body")
        fields["has_body"] = True
        fields["body"] = _json_body(at, value["json"], var_names)
    return fields


def _url(at: str, value: Any, var_names: frozenset[str]) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_URL:
        raise ConfigError(f"{at}: http.url must be a string of at most {MAX_URL}"
                          " characters")
    _template(at, "http.url", value)
    lowered = value.lower()
    if lowered.startswith(("http://", "https://")):
        authority = re.split(r"[/?#]", value.split("://", 1)[1], maxsplit=1)[0]
        if set(PLACEHOLDER.findall(authority)) & var_names:
            raise ConfigError(f"{at}: http.url must not take its host from a var"
                              " (message data)")
        return value
    first = PLACEHOLDER.match(value)
    if first is None or first.group(1) in var_names:
        raise ConfigError(f"{at}: http.url must start with http://, https:// or a"
                          " parameter such as {heat} (not a var)")
    return value


def _template(at: str, key: str, text: str) -> None:
    """Braces only as ``{name}`` placeholders; no control characters."""
    rest = PLACEHOLDER.sub("", text)
    if "{" in rest or "}" in rest:
        raise ConfigError(f"{at}: {key} has a brace that is not a {{name}}"
                          " placeholder")
    if _CONTROL.search(text):
        raise ConfigError(f"{at}: {key} contains a control character")


def _headers(at: str, value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict) or len(value) > MAX_HEADERS:
        raise ConfigError(f"{at}: http.headers must be a mapping of at most"
                          f" {MAX_HEADERS} names to strings")
    headers: dict[str, str] = {}
    for name, text in value.items():
        lower = name.lower() if isinstance(name, str) else ""
        if not _HEADER_NAME.fullmatch(lower) or lower in headers:
            raise ConfigError(f"{at}: invalid or duplicate header name {name!r}")
        if lower in RESERVED_HEADERS:
            raise ConfigError(f"{at}: header {name} is set by the dispatcher")
        if not isinstance(text, str) or len(text) > MAX_HEADER_VALUE:
            raise ConfigError(f"{at}: header {name} must be a string of at most"
                              f" {MAX_HEADER_VALUE} characters")
        _template(at, f"header {name}", text)
        headers[lower] = text
    return tuple(headers.items())


def _json_body(at: str, value: Any, var_names: frozenset[str]) -> Any:
    _json_value(at, value, var_names, 0)
    try:
        size = len(json.dumps(value, allow_nan=False).encode())
    except ValueError:
        raise ConfigError(f"{at}: http.json must not contain NaN or infinity") from None
    if size > MAX_JSON_BYTES:
        raise ConfigError(f"{at}: http.json must be at most {MAX_JSON_BYTES} bytes")
    return value


def _json_value(at: str, value: Any, var_names: frozenset[str], depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ConfigError(f"{at}: http.json nests deeper than {MAX_JSON_DEPTH}")
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole and whole.group(1) not in var_names:
            raise ConfigError(f"{at}: http.json value {value!r} names no var (only"
                              " whole-string vars are substituted in json)")
    elif isinstance(value, list):
        for item in value:
            _json_value(at, item, var_names, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{at}: http.json keys must be strings ({key!r})")
            _json_value(at, item, var_names, depth + 1)
    elif not (value is None or isinstance(value, (bool, int, float))):
        raise ConfigError(f"{at}: http.json holds a {type(value).__name__}, which"
                          " is not JSON (quote dates and times)")


def _statuses(at: str, key: str, value: Any) -> frozenset[int]:
    if (not isinstance(value, list) or not value
            or not all(_is_status(v) for v in value)):
        raise ConfigError(f"{at}: {key} must be a non-empty list of HTTP statuses"
                          " (100-599)")
    return frozenset(value)


def _is_status(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)
            and 100 <= value <= 599)


def _retry(at: str, value: Any, elsewhere: set[int] | frozenset[int]
           ) -> Retry | None:
    """The retry block; without ``on_status`` it retries the default
    statuses except those the step's expect or on_status already reads."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{at}: retry must be a mapping with count, delay and"
                          " on_status")
    _known_keys(f"{at}, retry", value, _RETRY_KEYS)
    count = value.get("count")
    if (isinstance(count, bool) or not isinstance(count, int)
            or not 1 <= count <= MAX_RETRIES):
        raise ConfigError(f"{at}: retry.count must be an integer from 1 to"
                          f" {MAX_RETRIES}")
    delay = value.get("delay", 1)
    if (isinstance(delay, bool) or not isinstance(delay, (int, float))
            or not math.isfinite(delay) or not 0 <= delay <= MAX_DELAY):
        raise ConfigError(f"{at}: retry.delay must be a number of seconds from 0"
                          f" to {MAX_DELAY:g}")
    statuses = (_statuses(at, "retry.on_status", value["on_status"])
                if "on_status" in value else DEFAULT_RETRY_STATUSES - elsewhere)
    return Retry(count, float(delay), statuses)


def _on_status(at: str, value: Any) -> dict[int, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"{at}: on_status must be a mapping of statuses to"
                          f" {' or '.join(ON_STATUS)}")
    for status, action in value.items():
        if not _is_status(status) or action not in ON_STATUS:
            raise ConfigError(f"{at}: on_status {status!r}: {action!r} must map an"
                              f" HTTP status (100-599) to {' or '.join(ON_STATUS)}")
    return dict(value)


def _no_overlap(at: str, expect: frozenset[int] | None, retry: Retry | None,
                on_status: Mapping[int, str]) -> None:
    """A status may appear in at most one of expect, retry.on_status and
    on_status: one reading per status."""
    sets = {"expect": expect or frozenset(),
            "retry.on_status": retry.on_status if retry else frozenset(),
            "on_status": frozenset(on_status)}
    names = list(sets)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            both = sorted(sets[first] & sets[second])
            if both:
                raise ConfigError(f"{at}: status {both[0]} is in both {first} and"
                                  f" {second}")
