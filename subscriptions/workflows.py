"""Local workflows: ``workflow:<name>`` subscribers.

The operator puts definitions in ``dispatch.workflows_dir``, one per
``<name>.yaml`` file whose ``name`` must equal ``<name>`` (so names are
unique by construction and a subscriber names a file). The format is in
``subscriptions.workflow_spec``; ``load_workflows`` reads the directory once
(API start, dispatcher start, ``service.check``), so a bad file stops
``mailslot serve``/``dispatch`` at start-up with a ``ConfigError`` naming
the file and the step.

A subscription's options: ``params`` (an object of strings filling the
workflow's non-var placeholders, e.g. ``heat``, ``stack``, ``root_stack``)
and ``credentials`` (the name of a server-side token sent as
``X-Auth-Token`` on every step; every step's URL must be one of its hosts).
``validate_options`` is what the API runs at creation (unknown workflow,
missing parameter -> 400); the dispatcher runs it again per delivery.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Mapping
from typing import Any

import yaml

from queues.errors import ConfigError
from subscriptions.errors import InvalidSubscriberOptions
from subscriptions.options import optional_object, optional_str
from subscriptions.workflow_render import sample_url
from subscriptions.workflow_spec import NAME, Workflow, parse_workflow

SCHEME = "workflow"
MAX_FILE_BYTES = 65536
MAX_PARAM = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Workflows:
    """Name -> workflow, loaded once."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Mapping[str, Workflow] | None = None) -> None:
        self._entries = dict(entries or {})

    def __repr__(self) -> str:
        return f"Workflows(names={self.names})"

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> Workflow | None:
        return self._entries.get(name)


def load_workflows(directory: str) -> Workflows:
    """Every ``*.yaml`` in ``directory`` (none when ``directory`` is empty);
    raises ``ConfigError``."""
    if not directory:
        return Workflows()
    path = pathlib.Path(directory)
    if not path.is_dir():
        raise ConfigError(f"workflows directory {directory} is not a directory")
    workflows = [load_file(file) for file in sorted(path.glob("*.yaml"))]
    return Workflows({w.name: w for w in workflows})


def load_file(path: pathlib.Path) -> Workflow:
    """One definition; its ``name`` must equal the file's stem."""
    label = path.name
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as ex:
        raise ConfigError(f"cannot read workflow file {path}: "
                          f"{ex.strerror or ex}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"workflow file {label}: larger than {MAX_FILE_BYTES} bytes")
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as ex:
        mark = getattr(ex, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"workflow file {label} is not valid YAML{line}") from None
    workflow = parse_workflow(data, label)
    if workflow.name != path.stem:
        raise ConfigError(f"workflow file {label}: name {workflow.name!r} must equal"
                          f" the file name without .yaml ({path.stem!r})")
    return workflow


def workflow_name(subscriber: str) -> str:
    """``workflow:<name>`` -> ``<name>``; raises ``InvalidSubscriberOptions``."""
    scheme, _, name = subscriber.partition(":")
    if scheme.lower() != SCHEME or not NAME.fullmatch(name):
        raise InvalidSubscriberOptions(
            "Subscriber must be workflow:<name>, the name of a workflow defined"
            " on the server.")
    return name


def resolve(subscriber: str, options: Mapping[str, Any], workflows: Workflows
            ) -> tuple[Workflow, dict[str, str]]:
    """The subscription's workflow and parameters, checked: the workflow
    exists, every placeholder has a parameter, every step URL is an http(s)
    URL whose host no message can choose. Raises ``InvalidSubscriberOptions``."""
    name = workflow_name(subscriber)
    workflow = workflows.get(name)
    if workflow is None:
        raise InvalidSubscriberOptions(
            f"Workflow {name!r} is not defined on this server.")
    optional_str(options, "credentials", max_length=64)
    params = _params(workflow, options)
    for step in workflow.steps:
        sample_url(step, params, workflow.var_names)
    return workflow, params


def validate_options(subscriber: str, options: Mapping[str, Any],
                     workflows: Workflows) -> None:
    """The API's creation check (see ``resolve``). Pure: it does not check
    that the named credential exists (the caller knows the names)."""
    resolve(subscriber, options, workflows)


def target_urls(subscriber: str, options: Mapping[str, Any],
                workflows: Workflows) -> list[str]:
    """Every step's URL, vars stood in for: what the SSRF guard and the
    credential's host binding are checked against at creation."""
    workflow, params = resolve(subscriber, options, workflows)
    return [sample_url(step, params, workflow.var_names) for step in workflow.steps]


def _params(workflow: Workflow, options: Mapping[str, Any]) -> dict[str, str]:
    params = optional_object(options, "params")
    for key, value in params.items():
        if key in workflow.var_names:
            raise InvalidSubscriberOptions(
                f"Option params.{key} is a var of workflow {workflow.name!r}"
                " (selected from each message); it cannot be set.")
        if (not isinstance(value, str) or not value or len(value) > MAX_PARAM
                or _CONTROL.search(value)):
            raise InvalidSubscriberOptions(
                f"Option params.{key} must be a non-empty string of at most"
                f" {MAX_PARAM} characters without control characters.")
    missing = sorted(workflow.params - params.keys())
    if missing:
        raise InvalidSubscriberOptions(
            f"Workflow {workflow.name!r} needs options.params:"
            f" {', '.join(missing)}.")
    return params
