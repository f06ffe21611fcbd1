"""Local workflows (``workflow:<name>``): the loader's validation, the
placeholder rules that keep message data data, creation checks, and single
runs against loopback servers (deadline, on_error, connection errors)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import pathlib
import textwrap

import pytest

from queues.api.subscription_rules import SubscriptionRules
from queues.config import load_settings
from queues.errors import ConfigError, InvalidInput
from subscriptions import result as r
from subscriptions.actions import (
    is_action_subscriber, target_urls, validate_subscriber_options,
)
from subscriptions.classify import Outcome, classify
from subscriptions.credentials import Credential, Credentials
from subscriptions.errors import InvalidSubscriberOptions
from subscriptions.http import Reply, make_client
from subscriptions.workflow_render import (
    SelectionFailed, fill, fill_json, plan, segment, select_vars,
)
from subscriptions.workflow_run import Runtime, deliver, judge
from subscriptions.workflow_spec import Retry, Step
from subscriptions.workflows import Workflows, load_file, load_workflows
from tests.unit.subscriptions.conftest import (  # noqa: F401
    free_port, http_sink, loopback_guard, make_job, make_subscription, response,
)

EXAMPLES = pathlib.Path(__file__).parents[3] / "etc" / "workflows"
HEAT_PARAMS = {"heat": "https://heat.example:8004/v1/demo",
               "stack": "member-stack/abc", "root_stack": "root/def"}
VALID = """\
name: {name}
vars:
  instance_id: {{jmespath: "body.instance"}}
steps:
  - name: first
    http: {{method: PATCH, url: "{{base}}/things/{{instance_id}}",
           json: {{id: "{{instance_id}}"}}}}
"""


def write(directory: pathlib.Path, name: str, text: str) -> pathlib.Path:
    path = directory / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def one(tmp_path: pathlib.Path, text: str, name: str = "wf") -> Workflows:
    write(tmp_path, name, text)
    return load_workflows(str(tmp_path))


def step_yaml(body: str) -> str:
    """A workflow named ``wf`` whose only step is ``body`` (YAML lines)."""
    return ("name: wf\nvars: {v: {jmespath: body.v}}\nsteps:\n  - name: s1\n"
            + textwrap.indent(textwrap.dedent(body), "    "))


# --- loading --------------------------------------------------------------------

def test_the_example_autoheal_workflow_loads():
    workflows = load_workflows(str(EXAMPLES))
    autoheal = workflows.get("autoheal")
    assert workflows.names == ["autoheal"] and autoheal is not None
    assert autoheal.params == {"heat", "stack", "root_stack"}
    assert [s.name for s in autoheal.steps] == ["mark_unhealthy", "update"]
    mark, update = autoheal.steps
    assert mark.on_status == {404: "stop"} and mark.expect == {200}
    assert mark.retry == Retry(5, 3.0, frozenset({409, 429, 500, 502, 503, 504}))
    assert update.expect == {202} and update.body == {}


def test_no_directory_means_no_workflows(tmp_path):
    assert len(load_workflows("")) == 0
    assert len(load_workflows(str(tmp_path))) == 0
    with pytest.raises(ConfigError, match="is not a directory"):
        load_workflows(str(tmp_path / "missing"))


def test_only_yaml_files_are_read(tmp_path):
    write(tmp_path, "a", VALID.format(name="a"))
    (tmp_path / "notes.txt").write_text("not a workflow")
    assert load_workflows(str(tmp_path)).names == ["a"]


def test_the_name_must_equal_the_file_stem(tmp_path):
    write(tmp_path, "other", VALID.format(name="wf"))
    with pytest.raises(ConfigError, match=r"workflow file other.yaml: name 'wf'"
                                          r" must equal the file name"):
        load_workflows(str(tmp_path))


@pytest.mark.parametrize("text, fragment", [
    ("[1, 2]", "workflow file wf.yaml: must be a mapping"),
    ("name: wf\nsteps: [\n", "wf.yaml is not valid YAML (line"),
    ("name: wf\nsteps: []\nextra: 1\n", "unknown key(s) extra"),
    ("name: 'w f'\nsteps: []\n", "name must be"),
    ("name: wf\nsteps: []\n", "steps must be a list of 1 to 10 steps"),
    ("name: wf\nvars: {v: body.v}\nsteps: []\n", "var 'v': must be {jmespath:"),
    ("name: wf\nvars: {v: {jmespath: 'a[?'}}\nsteps: []\n",
     "var 'v': invalid JMESPath expression"),
    ("name: wf\nvars: {'a-b': {jmespath: a}}\nsteps: []\n", "var name 'a-b'"),
    ("name: wf\nsteps: [http]\n", "wf.yaml, step 1: must be a mapping"),
    ("name: wf\nsteps: [{name: 1x}]\n", "step 1: name must be"),
])
def test_malformed_files_name_the_file(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as caught:
        one(tmp_path, text)
    assert fragment in caught.value.description


def test_at_most_ten_steps(tmp_path):
    steps = "".join(f"  - {{name: s{i}, http: {{method: GET, url: 'https://h/{i}'}}}}\n"
                    for i in range(11))
    with pytest.raises(ConfigError, match="1 to 10 steps"):
        one(tmp_path, "name: wf\nsteps:\n" + steps)


@pytest.mark.parametrize("body, fragment", [
    ("http: {method: GET, url: 'https://h/'}\nbogus: 1\n", "unknown key(s) bogus"),
    ("http: {method: TRACE, url: 'https://h/'}\n", "http.method must be one of"),
    ("http: {method: GET, url: 'https://h/', json: {}}\n", "GET step takes no json"),
    ("http: {method: GET, url: 'ftp://h/'}\n", "must start with http://, https://"),
    ("http: {method: GET, url: '{v}/x'}\n", "must start with http://, https://"),
    ("http: {method: GET, url: 'https://{v}.example/'}\n",
     "must not take its host from a var"),
    ("http: {method: GET, url: 'https://h:{v}/'}\n",
     "must not take its host from a var"),
    ("http: {method: GET, url: 'https://h/{v'}\n", "brace that is not a {name}"),
    ("http: {method: GET, url: 'https://h/{{v}}'}\n", "brace that is not a {name}"),
    ("http: {method: GET, url: 'https://h/', headers: {X-Auth-Token: t}}\n",
     "header X-Auth-Token is set by the dispatcher"),
    ("http: {method: GET, url: 'https://h/', headers: {'a b': t}}\n",
     "invalid or duplicate header name"),
    ("http: {method: GET, url: 'https://h/', headers: {X-A: 5}}\n",
     "header X-A must be a string"),
    ("http: {method: POST, url: 'https://h/', json: {a: '{nope}'}}\n",
     "'{nope}' names no var"),
    ("http: {method: POST, url: 'https://h/', json: {at: 2024-01-01}}\n",
     "holds a date, which is not JSON"),
    ("http: {method: POST, url: 'https://h/', json: {1: a}}\n",
     "keys must be strings"),
    ("http: {method: POST, url: 'https://h/', json: .nan}\n", "NaN or infinity"),
    ("http: {method: GET, url: 'https://h/'}\nexpect: 200\n",
     "expect must be a non-empty list of HTTP statuses"),
    ("http: {method: GET, url: 'https://h/'}\nexpect: [true]\n", "expect must be"),
    ("http: {method: GET, url: 'https://h/'}\nretry: {count: 0}\n",
     "retry.count must be an integer from 1 to 10"),
    ("http: {method: GET, url: 'https://h/'}\nretry: {count: 11}\n", "retry.count"),
    ("http: {method: GET, url: 'https://h/'}\nretry: {count: 1, delay: 61}\n",
     "retry.delay must be a number of seconds from 0 to 60"),
    ("http: {method: GET, url: 'https://h/'}\nretry: {count: 1, delay: true}\n",
     "retry.delay"),
    ("http: {method: GET, url: 'https://h/'}\nretry: {count: 1, every: 2}\n",
     "retry: unknown key(s) every"),
    ("http: {method: GET, url: 'https://h/'}\non_error: retry\n",
     "on_error must be one of: fail, continue, stop"),
    ("http: {method: GET, url: 'https://h/'}\non_status: {404: fail}\n",
     "on_status 404: 'fail' must map"),
    ("http: {method: GET, url: 'https://h/'}\non_status: {'404': stop}\n",
     "on_status '404'"),
    ("http: {method: GET, url: 'https://h/'}\nexpect: [200, 404]\n"
     "on_status: {404: stop}\n", "status 404 is in both expect and on_status"),
    ("http: {method: GET, url: 'https://h/'}\non_status: {409: continue}\n"
     "retry: {count: 1, on_status: [409]}\n",
     "status 409 is in both retry.on_status and on_status"),
])
def test_malformed_steps_name_the_file_and_the_step(tmp_path, body, fragment):
    with pytest.raises(ConfigError) as caught:
        one(tmp_path, step_yaml(body))
    assert "workflow file wf.yaml, step 's1'" in caught.value.description
    assert fragment in caught.value.description


def test_duplicate_step_names_are_refused(tmp_path):
    step = "  - {name: s, http: {method: GET, url: 'https://h/'}}\n"
    with pytest.raises(ConfigError, match="step 's': duplicate step name"):
        one(tmp_path, "name: wf\nsteps:\n" + step * 2)


def test_a_default_retry_leaves_out_statuses_the_step_reads_otherwise(tmp_path):
    workflows = one(tmp_path, step_yaml(
        "http: {method: GET, url: 'https://h/'}\non_status: {503: stop}\n"
        "expect: [429]\nretry: {count: 2}\n"))
    [step] = workflows.get("wf").steps
    assert step.retry.on_status == {408, 425, 500, 502, 504}
    assert step.retry.delay == 1.0


def test_a_large_file_is_refused(tmp_path):
    path = write(tmp_path, "wf", VALID.format(name="wf") + "#" * 70000 + "\n")
    with pytest.raises(ConfigError, match="larger than 65536 bytes"):
        load_file(path)


def test_placeholders_that_are_not_vars_are_parameters(tmp_path):
    workflows = one(tmp_path, step_yaml(
        "http: {method: POST, url: '{base}/a/{v}?x={q}',\n"
        "       headers: {X-Tenant: '{tenant}'}, json: {}}\n"))
    assert workflows.get("wf").params == {"base", "q", "tenant"}


# --- placeholders -------------------------------------------------------------

@pytest.mark.parametrize("value, encoded", [
    ("vm-1", "vm-1"),
    (42, "42"),
    ("../../root/def", "..%2F..%2Froot%2Fdef"),
    ("/", "%2F"),
    ("a?b#c%2F", "a%3Fb%23c%252F"),
    ("{{ 7*7 }}", "%7B%7B%207%2A7%20%7D%7D"),
    ("<% $.x %>", "%3C%25%20%24.x%20%25%3E"),
    ("{heat}", "%7Bheat%7D"),
    ("\r\nX-Injected: 1", "%0D%0AX-Injected%3A%201"),
])
def test_message_data_is_one_encoded_segment(value, encoded):
    assert segment("v", value) == encoded


@pytest.mark.parametrize("value", [".", "..", "", True, None, 1.5, ["a"], {"a": 1},
                                   "x" * 256])
def test_unusable_segments_are_refused(value):
    with pytest.raises(SelectionFailed, match="var v selected"):
        segment("v", value)


def test_fill_inserts_parameters_as_written_and_is_single_pass():
    params = {"heat": "https://h:8004/v1/demo", "stack": "member/abc"}
    template = "{heat}/stacks/{stack}/resources/{v}"
    assert fill(template, params, {"v": "{stack}/../x"}) == \
        "https://h:8004/v1/demo/stacks/member/abc/resources/%7Bstack%7D%2F..%2Fx"


def test_json_substitutes_only_whole_string_vars():
    body = {"id": "{v}", "note": "id={v}", "{v}": "k", "list": ["{v}", "{w}"],
            "n": 1, "flag": True, "nothing": None}
    values = {"v": {"nested": "{{ x }}"}, "w": "<% $.y %>"}
    assert fill_json(body, values) == {
        "id": {"nested": "{{ x }}"}, "note": "id={v}", "{v}": "k",
        "list": [{"nested": "{{ x }}"}, "<% $.y %>"], "n": 1, "flag": True,
        "nothing": None}


def test_a_var_that_selects_nothing_fails_the_message(tmp_path):
    workflow = one(tmp_path, VALID.format(name="wf")).get("wf")
    selected = select_vars(workflow, {"body": {"instance": "i-1"}})
    assert selected == {"instance_id": "i-1"}
    with pytest.raises(SelectionFailed, match="var instance_id selected nothing"):
        select_vars(workflow, {"body": {}})


def test_plan_renders_url_headers_and_body(tmp_path):
    workflow = one(tmp_path, step_yaml(
        "http: {method: POST, url: '{base}/a/{v}',\n"
        "       headers: {X-Trace: 't-{v}', X-Tenant: '{tenant}'},\n"
        "       json: {v: '{v}', text: 'literal {v}'}}\n")).get("wf")
    [call] = plan(workflow, {"base": "https://h/api", "tenant": "t 1"},
                  {"v": "../{{ a }}"})
    assert call.url == "https://h/api/a/..%2F%7B%7B%20a%20%7D%7D"
    assert dict(call.headers) == {"x-trace": "t-..%2F%7B%7B%20a%20%7D%7D",
                                  "x-tenant": "t 1"}
    assert json.loads(call.content) == {"v": "../{{ a }}", "text": "literal {v}"}


def test_a_body_grown_past_the_bound_by_message_data_is_refused(tmp_path):
    workflow = one(tmp_path, step_yaml(
        "http: {method: POST, url: 'https://h/', json: {v: '{v}'}}\n")).get("wf")
    with pytest.raises(SelectionFailed, match="request body would exceed"):
        plan(workflow, {}, {"v": "x" * 300000})


# --- step verdicts --------------------------------------------------------------

def reply(status: int) -> Reply:
    from multidict import CIMultiDictProxy, CIMultiDict
    return Reply(status, CIMultiDictProxy(CIMultiDict()), b"", False)


def test_on_status_then_expect_then_retry():
    step = Step("s", "PATCH", "https://h/", expect=frozenset({200}),
                retry=Retry(3, 0.0, frozenset({409, 503})),
                on_status={404: "stop", 204: "continue"})
    assert judge(step, reply(404)).verdict == "stop"
    assert judge(step, reply(204)).verdict == "ok"
    assert judge(step, reply(200)).verdict == "ok"
    assert judge(step, reply(201)).verdict == "failed"
    assert judge(step, reply(409)).transient
    assert not judge(step, reply(400)).transient
    assert judge(Step("s", "GET", "https://h/"), reply(299)).verdict == "ok"


# --- creation checks ------------------------------------------------------------

@pytest.fixture
def examples() -> Workflows:
    return load_workflows(str(EXAMPLES))


def test_a_known_workflow_with_its_parameters_is_accepted(examples):
    options = {"params": HEAT_PARAMS, "credentials": "heat-demo"}
    validate_subscriber_options("workflow:autoheal", options, examples)
    assert is_action_subscriber("workflow:autoheal")
    assert target_urls("WORKFLOW:autoheal", options, examples) == [
        "https://heat.example:8004/v1/demo/stacks/member-stack/abc/resources/a",
        "https://heat.example:8004/v1/demo/stacks/root/def"]


@pytest.mark.parametrize("subscriber, options, fragment", [
    ("workflow:nope", {"params": HEAT_PARAMS}, "Workflow 'nope' is not defined"),
    ("workflow:", {}, "Subscriber must be workflow:<name>"),
    ("workflow:a/b", {}, "Subscriber must be workflow:<name>"),
    ("workflow:autoheal", {}, "needs options.params: heat, root_stack, stack"),
    ("workflow:autoheal", {"params": {"heat": "https://h/v1/t"}},
     "needs options.params: root_stack, stack"),
    ("workflow:autoheal", {"params": "heat=x"}, "Option params must be an object"),
    ("workflow:autoheal", {"params": dict(HEAT_PARAMS, stack=5)},
     "Option params.stack must be a non-empty string"),
    ("workflow:autoheal", {"params": dict(HEAT_PARAMS, stack="a\nb")},
     "without control characters"),
    ("workflow:autoheal", {"params": dict(HEAT_PARAMS, instance_id="x")},
     "params.instance_id is a var of workflow 'autoheal'"),
    ("workflow:autoheal", {"params": dict(HEAT_PARAMS, heat="heat.example/v1")},
     "its URL is not an absolute http(s) URL"),
    ("workflow:autoheal", {"params": dict(HEAT_PARAMS, heat="https://u:p@h/v1")},
     "carries credentials"),
    ("workflow:autoheal", {"params": HEAT_PARAMS, "credentials": 7},
     "Option credentials must be"),
])
def test_refused_at_creation(examples, subscriber, options, fragment):
    with pytest.raises(InvalidSubscriberOptions) as caught:
        validate_subscriber_options(subscriber, options, examples)
    assert isinstance(caught.value, InvalidInput)
    assert fragment in caught.value.description


def test_without_loaded_workflows_every_name_is_unknown():
    with pytest.raises(InvalidSubscriberOptions, match="is not defined"):
        validate_subscriber_options("workflow:autoheal", {"params": HEAT_PARAMS})


def test_a_parameter_cannot_hand_the_host_to_message_data(tmp_path):
    workflows = one(tmp_path, step_yaml("http: {method: GET, url: '{base}{v}/x'}\n"))
    with pytest.raises(InvalidSubscriberOptions, match="host of its URL would come"
                                                       " from message data"):
        validate_subscriber_options("workflow:wf", {"params": {"base": "https://h"}},
                                    workflows)
    validate_subscriber_options("workflow:wf", {"params": {"base": "https://h/"}},
                                workflows)


def rules(tmp_path, **dispatch) -> SubscriptionRules:
    base = load_settings(env={})
    settings = dataclasses.replace(
        base, dispatch=dataclasses.replace(base.dispatch,
                                           workflows_dir=str(EXAMPLES), **dispatch))
    credentials = Credentials({"heat-demo": Credential(
        "tok", frozenset({"heat.example"}))})
    return SubscriptionRules(settings, credentials)


def test_the_api_rules_check_the_workflow_the_guard_and_the_credential(tmp_path):
    check = rules(tmp_path).check_destination
    check("workflow:autoheal", {"params": HEAT_PARAMS, "credentials": "heat-demo"},
          "demo")
    for options, fragment in [
        ({"params": HEAT_PARAMS, "credentials": "other"}, "names no credential"),
        ({"params": dict(HEAT_PARAMS, heat="https://127.0.0.1/v1/t")},
         "Destination 127.0.0.1 is not allowed: loopback."),
        ({"params": dict(HEAT_PARAMS, heat="https://169.254.169.254/v1/t")},
         "is not allowed: metadata."),
    ]:
        with pytest.raises(InvalidInput) as caught:
            check("workflow:autoheal", options, "demo")
        assert fragment in caught.value.description
    with pytest.raises(InvalidInput, match="is not defined"):
        check("workflow:nope", {}, "demo")


def test_the_api_rules_apply_https_only_to_every_step(tmp_path):
    check = rules(tmp_path, https_only=True).check_destination
    with pytest.raises(InvalidInput, match="Only https subscribers"):
        check("workflow:autoheal",
              {"params": dict(HEAT_PARAMS, heat="http://heat.example/v1/t")}, "demo")


def test_a_bad_workflows_dir_stops_the_api_rules(tmp_path):
    write(tmp_path, "broken", "name: broken\nsteps: []\n")
    base = load_settings(env={})
    settings = dataclasses.replace(base, dispatch=dataclasses.replace(
        base.dispatch, workflows_dir=str(tmp_path)))
    with pytest.raises(ConfigError, match="workflow file broken.yaml"):
        SubscriptionRules(settings, Credentials())


# --- single runs ------------------------------------------------------------------

@pytest.fixture
async def client():
    async with make_client(loopback_guard(), connect_timeout=1.0,
                           read_timeout=1.0) as http:
        yield http


async def run_once(client, workflows, base: str, *, deadline: float = 2.0,
                   message: bytes = b'{"ttl": 60, "body": {"v": "x"}}'):
    subscription = make_subscription("workflow:wf", options={"params": {"base": base}})
    return await deliver(Runtime(client, Credentials(), 256, deadline), workflows,
                         subscription, make_job(message))


def statuses(*answers: int):
    queue = list(answers)

    async def respond(request, writer):
        writer.write(response(queue.pop(0) if queue else 200, b"reply"))

    return respond


async def test_a_retry_that_would_pass_the_deadline_is_not_started(
        tmp_path, client, http_sink):
    sink = await http_sink(statuses(409, 409))
    workflows = one(tmp_path, step_yaml(
        "http: {method: GET, url: '{base}/{v}'}\n"
        "retry: {count: 5, delay: 30, on_status: [409]}\n"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await run_once(client, workflows, f"http://127.0.0.1:{sink.port}",
                            deadline=1.0)
    assert loop.time() - started < 1.0
    assert len(sink.requests) == 1
    assert (result.status, result.error) == (409, r.BUSY)
    assert classify(result).outcome is Outcome.RETRY
    assert result.response == "s1: 409 (failed)\nreply"


async def test_on_error_continue_and_stop(tmp_path, client, http_sink):
    sink = await http_sink(statuses(500, 400, 500))
    text = ("name: wf\nsteps:\n"
            "  - {name: a, http: {method: GET, url: '{base}/a'}, on_error: continue}\n"
            "  - {name: b, http: {method: GET, url: '{base}/b'}, on_error: stop}\n"
            "  - {name: c, http: {method: GET, url: '{base}/c'}}\n")
    result = await run_once(client, one(tmp_path, text),
                            f"http://127.0.0.1:{sink.port}")
    assert [q.target for q in sink.requests] == ["/a", "/b"]
    assert (result.status, result.error) == (None, None)
    assert result.response == "a: 500 (failed, continue); b: 400 (failed, stop)"
    assert "stopped at step b" in result.detail


async def test_a_connection_error_is_retried_inline_then_left_to_the_dispatcher(
        tmp_path, client):
    workflows = one(tmp_path, step_yaml(
        "http: {method: GET, url: '{base}/{v}'}\nretry: {count: 2, delay: 0}\n"))
    result = await run_once(client, workflows, f"http://127.0.0.1:{free_port()}")
    assert result.error == r.CONNECT and result.status is None
    assert result.response.startswith("s1: connect connect connect (failed)\n"
                                      "step s1: ClientConnectorError")
    assert classify(result).outcome is Outcome.RETRY


async def test_a_hanging_step_ends_at_the_deadline(tmp_path, client, http_sink):
    async def hang(request, writer):
        await asyncio.sleep(30)

    sink = await http_sink(hang)
    workflows = one(tmp_path, step_yaml("http: {method: GET, url: '{base}/{v}'}\n"))
    result = await run_once(client, workflows, f"http://127.0.0.1:{sink.port}",
                            deadline=0.3)
    assert result.error == r.TIMEOUT
    assert "deadline of 0.3s exceeded" in result.response
    assert classify(result).outcome is Outcome.RETRY


async def test_a_missing_parameter_or_var_fails_without_calling(
        tmp_path, client, http_sink):
    sink = await http_sink()
    workflows = one(tmp_path, step_yaml("http: {method: GET, url: '{base}/{v}'}\n"))
    result = await run_once(client, workflows, f"http://127.0.0.1:{sink.port}",
                            message=b'{"ttl": 60, "body": {}}')
    assert result.error == r.INVALID_REQUEST
    assert "var v selected nothing" in result.detail
    subscription = make_subscription("workflow:wf")
    result = await deliver(Runtime(client, Credentials()), workflows, subscription,
                           make_job(b'{"ttl": 60, "body": {"v": 1}}'))
    assert result.error == r.INVALID_REQUEST and "needs options.params" in result.detail
    assert sink.requests == []


async def test_a_confirmation_is_not_run(tmp_path, client, http_sink):
    sink = await http_sink()
    workflows = one(tmp_path, step_yaml("http: {method: GET, url: '{base}/{v}'}\n"))
    control = b'{"Message_Type": "SubscriptionConfirmation", "body": {}}'
    result = await run_once(client, workflows, f"http://127.0.0.1:{sink.port}",
                            message=control)
    assert (result.status, result.error) == (None, None)
    assert "cannot confirm" in result.detail and sink.requests == []


# --- start-up ---------------------------------------------------------------------

@pytest.mark.parametrize("command", ["dispatch", "serve"])
def test_a_bad_workflow_file_stops_serve_and_dispatch(tmp_path, command):
    from click.testing import CliRunner

    from queues.cli import main

    workflows = tmp_path / "workflows"
    workflows.mkdir()
    write(workflows, "broken", step_yaml("http: {method: GET, url: 'https://h/'}\n"
                                         "retry: {count: 99}\n"))
    config = tmp_path / "m.yaml"
    config.write_text(f"storage: {{uri: 'sqlite:///{tmp_path}/db.sqlite'}}\n"
                      f"dispatch: {{workflows_dir: '{workflows}'}}\n")
    result = CliRunner().invoke(main, [command, "--config", str(config)])
    assert result.exit_code != 0
    assert ("cannot start: workflow file broken.yaml, step 's1': retry.count must"
            " be an integer from 1 to 10" in result.output)
