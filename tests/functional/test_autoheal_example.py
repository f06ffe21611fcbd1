"""The auto-heal example (examples/autoheal) runs end to end in CI: an Aodh
event alarm posted through a POST-only signed URL makes the workflow mark the
server unhealthy, then update the root stack, and the Heat stand-in replaces
the server; a repeated alarm for the old instance finds it already gone."""

from __future__ import annotations

from examples.autoheal import run


def test_the_example_replaces_the_stopped_server(capsys):
    summary = run.run([])
    [(resource, old, new)] = summary["replaced"]
    assert resource == "server" and old == summary["old_server"] != new
    methods = [(method, status) for method, _, status in summary["heat_calls"]]
    assert methods == [("PATCH", 200), ("PATCH", 202), ("PATCH", 404)]
    mark, update, again = summary["heat_calls"]
    assert mark[1].endswith(f"/resources/{old}") and again[1] == mark[1]
    assert "/stacks/root/" in update[1]
    printed = capsys.readouterr().out
    assert "'Aodh' posted" in printed and "Heat replaced server" in printed


def test_heat_standin_validates_like_heat():
    from examples.autoheal.heat_standin import HeatStandIn

    heat = HeatStandIn()
    heat.close()  # handle() is called directly: no socket needed
    stack = heat.add_stack("member", {"server": "p1"})
    base = f"/v1/demo/stacks/member/{stack.id}"
    assert heat.handle("PATCH", f"{base}/resources/p1", {"x": 1})[0] == 400
    assert heat.handle("PATCH", f"{base}/resources/p1",
                       {"mark_unhealthy": "maybe"})[0] == 400
    assert heat.handle("PATCH", f"{base}/resources/nope",
                       {"mark_unhealthy": True})[0] == 404
    assert heat.handle("PATCH", f"{base}/resources/server",
                       {"mark_unhealthy": "TRUE"})[0] == 200
    assert heat.handle("PATCH", base, {})[0] == 202
    assert heat.handle("PATCH", base, {})[0] == 409  # update in progress
    assert heat.handle("GET", "/v1/other/stacks/member/x", None)[0] == 404
