"""Workflow and orchestration subscribers: option validation, request
building, resource selection and the cooldown map (pure functions)."""

from __future__ import annotations

import pytest

from queues.errors import InvalidInput
from subscriptions import heat, mistral
from subscriptions.actions import (
    is_action_subscriber, target_url, validate_subscriber_options,
)
from subscriptions.apicall import base_url
from subscriptions.cooldown import Cooldowns
from subscriptions.errors import InvalidSubscriberOptions

MISTRAL = "mistral+https://mistral.example:8989/v2"
HEAT = "heat+https://heat.example:8004/v1/demo"
HEAL = {"action": "mark_unhealthy_and_update", "stack": "member-stack/abc-123",
        "resource": "body.instance"}


def refused(subscriber: str, options: dict, fragment: str,
            validate=validate_subscriber_options) -> None:
    with pytest.raises(InvalidSubscriberOptions) as caught:
        validate(subscriber, options)
    assert isinstance(caught.value, InvalidInput)
    assert fragment in caught.value.description


# --- mistral -----------------------------------------------------------------

@pytest.mark.parametrize("options", [
    {"workflow_id": "3c2bd5b2"},
    {"workflow_name": "autoheal", "workflow_namespace": "ops"},
    {"workflow_id": "w", "input": {"a": 1}, "credentials": "mistral-demo",
     "params": {"env": {"k": "v"}, "task_name": "t", "evaluate_env": False}},
])
def test_mistral_accepts(options):
    validate_subscriber_options(MISTRAL, options)
    validate_subscriber_options("mistral+http://10.0.0.5:8989/workflow/v2/", options)


@pytest.mark.parametrize("options, fragment", [
    ({}, "workflow_id or workflow_name is required"),
    ({"workflow_id": None}, "workflow_id or workflow_name is required"),
    ({"workflow_id": "a", "workflow_name": "b"}, "not both"),
    ({"workflow_id": ""}, "workflow_id must be a non-empty string"),
    ({"workflow_name": 7}, "workflow_name must be a non-empty string"),
    ({"workflow_id": "a", "workflow_namespace": []}, "workflow_namespace"),
    ({"workflow_id": "a", "input": "{}"}, "input must be an object"),
    ({"workflow_id": "a", "params": []}, "params must be an object"),
    ({"workflow_id": "a", "params": {"env": "stored-env"}}, "params.env must be"),
    ({"workflow_id": "a", "params": {"evaluate_env": True}}, "cannot be enabled"),
    ({"workflow_id": "a", "credentials": 5}, "credentials must be"),
])
def test_mistral_refuses(options, fragment):
    refused(MISTRAL, options, fragment)


@pytest.mark.parametrize("subscriber, fragment", [
    ("mistral+https://m.example/v1", "v2 API"),
    ("mistral+https://m.example/", "v2 API"),
    ("mistral+ftp://m.example/v2", "mistral+http:// or mistral+https://"),
    ("mistral+https:///v2", "valid host"),
    ("mistral+https://m.example:99999/v2", "valid host"),
    ("mistral+https://user:pw@m.example/v2", "must not carry credentials"),
    ("mistral+https://m.example/v2?x=1", "query string"),
])
def test_mistral_refuses_subscribers(subscriber, fragment):
    refused(subscriber, {"workflow_id": "a"}, fragment, mistral.validate_options)


def test_execution_request_merges_params_and_forces_evaluate_env_off():
    options = {"workflow_name": "autoheal", "workflow_namespace": "ops",
               "params": {"env": {"k": "v", "notification": "spoofed"},
                          "task_name": "t"}}
    payload = {"body": {"x": "<% 6 * 7 %>"}, "Message_Type": "Notification"}
    request = mistral.execution_request(options, payload, execution_id="e-1",
                                        message_id="m-1")
    assert request == {
        "id": "e-1", "workflow_name": "autoheal", "workflow_namespace": "ops",
        "input": {},
        "params": {"env": {"k": "v", "notification": payload,
                           "notification_id": "m-1"},
                   "task_name": "t", "evaluate_env": False}}
    assert options["params"]["env"]["notification"] == "spoofed"  # not mutated


# --- heat --------------------------------------------------------------------

@pytest.mark.parametrize("options", [
    HEAL,
    {**HEAL, "root_stack": "root/def", "reason": "VM stopped", "cooldown": 0,
     "credentials": "heat-demo"},
    {"action": "signal", "stack": "asg/f00d", "resource": "'scale_up'"},
    {**HEAL, "resource": "body.reason_data.event.traits[?[0]=='instance_id'] | [0][2]"},
])
def test_heat_accepts(options):
    validate_subscriber_options(HEAT, options)
    validate_subscriber_options("heat+http://10.0.0.5/orchestration/v1/t-1", options)


@pytest.mark.parametrize("options, fragment", [
    ({**HEAL, "action": None}, "action must be one of"),
    ({**HEAL, "action": "reboot"}, "action must be one of"),
    ({k: v for k, v in HEAL.items() if k != "stack"}, "stack must be the stack's canonical"),
    ({**HEAL, "stack": "member-stack"}, "canonical name/id"),
    ({**HEAL, "stack": "a/b/c"}, "canonical name/id"),
    ({**HEAL, "stack": "../x/y"}, "canonical name/id"),
    ({**HEAL, "root_stack": "root"}, "root_stack must be"),
    ({k: v for k, v in HEAL.items() if k != "resource"}, "resource is required"),
    ({**HEAL, "resource": ""}, "resource must be a non-empty string"),
    ({**HEAL, "resource": "body.[["}, "not a valid JMESPath expression"),
    ({**HEAL, "resource": "{{ body.x }}"}, "not a valid JMESPath expression"),
    ({**HEAL, "cooldown": -1}, "cooldown must be a non-negative integer"),
    ({**HEAL, "cooldown": 1.5}, "cooldown must be a non-negative integer"),
    ({**HEAL, "cooldown": True}, "cooldown must be a non-negative integer"),
    ({**HEAL, "cooldown": "60"}, "cooldown must be a non-negative integer"),
    ({**HEAL, "reason": 3}, "reason must be"),
    ({**HEAL, "reason": "x" * 256}, "at most 255"),
])
def test_heat_refuses(options, fragment):
    refused(HEAT, options, fragment)


@pytest.mark.parametrize("subscriber, fragment", [
    ("heat+https://h.example/v1", "v1 API of a tenant"),
    ("heat+https://h.example/v1/demo/stacks", "v1 API of a tenant"),
    ("heat+https://h.example/v2/demo", "v1 API of a tenant"),
    ("heat://h.example/v1/demo", "heat+http:// or heat+https://"),
])
def test_heat_refuses_subscribers(subscriber, fragment):
    refused(subscriber, HEAL, fragment, heat.validate_options)


def test_other_schemes_are_left_alone():
    validate_subscriber_options("https://example.com/hook", {"action": "nonsense"})
    validate_subscriber_options("mailto:a@example.com", {"workflow_id": 1})
    assert target_url("https://example.com/hook") is None
    assert not is_action_subscriber("trust+https://example.com/hook")


def test_target_url_strips_the_prefix():
    assert target_url("HEAT+https://h.example:8004/v1/demo/") == \
        "https://h.example:8004/v1/demo"
    assert target_url(MISTRAL) == "https://mistral.example:8989/v2"
    assert is_action_subscriber(MISTRAL) and is_action_subscriber(HEAT)
    assert base_url("mistral+http://[::1]:8989/v2", "mistral") == "http://[::1]:8989/v2"


TRAITS = "body.reason_data.event.traits[?[0]=='instance_id'] | [0][2]"
AODH = {"body": {"reason_data": {"event": {"traits": [
    ["state", 1, "stopped"], ["instance_id", 1, "9f1c-uuid"]]}}}}


@pytest.mark.parametrize("expression, payload, selected", [
    (TRAITS, AODH, "9f1c-uuid"),
    ("'scale_up'", {}, "scale_up"),
    ("body.n", {"body": {"n": 7}}, "7"),
    ("body.name", {"body": {"name": "{{ 6 * 7 }}"}}, "{{ 6 * 7 }}"),  # data, not a template
])
def test_select_resource(expression, payload, selected):
    assert heat.select_resource(expression, payload) == selected


@pytest.mark.parametrize("expression, payload", [
    (TRAITS, {"body": {}}),
    ("body.x", {"body": {"x": True}}),
    ("body.x", {"body": {"x": ["a"]}}),
    ("body.x", {"body": {"x": ""}}),
    ("body.x", {"body": {"x": ".."}}),
    ("body.x", {"body": {"x": "r" * 256}}),
    ("length(body.x)", {"body": {"x": 5}}),  # a JMESPath type error
])
def test_select_resource_refuses(expression, payload):
    with pytest.raises(heat.SelectionFailed):
        heat.select_resource(expression, payload)


def test_paths_quote_every_segment():
    assert heat.resource_path("member-stack/abc", "a/../b c") == \
        "/stacks/member-stack/abc/resources/a%2F..%2Fb%20c"
    assert heat.stack_path("root/def") == "/stacks/root/def"


# --- cooldowns ---------------------------------------------------------------

def test_cooldown_coalesces_in_progress_and_recent_actions():
    cooldowns = Cooldowns()
    key = ("sub", "s/1", "vm-1")
    assert cooldowns.claim(key, 100.0, 60) is None
    assert "in progress" in cooldowns.claim(key, 101.0, 60)
    assert cooldowns.claim(("sub", "s/1", "vm-2"), 101.0, 60) is None
    cooldowns.release(key, 100.0)
    assert "cooldown 60 s" in cooldowns.claim(key, 159.0, 60)
    assert cooldowns.claim(key, 160.0, 60) is None


def test_a_failed_action_does_not_start_the_cooldown():
    cooldowns = Cooldowns()
    key = ("sub", "s/1", "vm-1")
    assert cooldowns.claim(key, 100.0, 60) is None
    cooldowns.release(key, None)
    assert cooldowns.claim(key, 100.5, 60) is None


def test_zero_cooldown_never_coalesces():
    cooldowns = Cooldowns()
    assert cooldowns.claim("k", 1.0, 0) is None
    assert cooldowns.claim("k", 1.0, 0) is None


def test_the_map_is_bounded_oldest_first():
    cooldowns = Cooldowns(max_entries=3)
    for i in range(5):
        assert cooldowns.claim(i, 10.0, 60) is None
        cooldowns.release(i, 10.0)
    assert len(cooldowns) == 3
    assert cooldowns.claim(0, 11.0, 60) is None  # forgotten
    assert cooldowns.claim(4, 11.0, 60) is not None
