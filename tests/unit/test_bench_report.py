"""bench/report.py: docs/benchmarks.md and its charts from committed bench results."""

from __future__ import annotations

import argparse
import dataclasses
import asyncio
import json
import os
import pathlib

import pytest

from bench import report

RESULTS = pathlib.Path(__file__).parents[2] / "bench" / "results"
THROUGHPUT = RESULTS / "2026-11-24T212529.json"
DELIVERY = RESULTS / "2026-11-24T211119-delivery.json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

try:
    import matplotlib  # noqa: F401
    from PIL import Image
except ImportError:
    if os.environ.get("CI"):
        raise  # CI installs .[test], which includes matplotlib: never skip there
    pytest.skip("matplotlib is not installed (pip install -e '.[bench]')",
                allow_module_level=True)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[str, list[pathlib.Path]]:
    out = tmp_path_factory.mktemp("report") / "benchmarks.md"
    files = report.generate(THROUGHPUT, DELIVERY, out, ["--throughput", "x"])
    return out.read_text(), files


def lines_with(text: str, *parts: str) -> list[str]:
    return [line for line in text.splitlines() if all(p in line for p in parts)]


def test_targets_table_is_the_recorded_one(generated):
    text, _ = generated
    targets = json.loads(THROUGHPUT.read_text())["targets"]
    assert len(targets) == 11
    for t in targets:
        row = (f"| {t['label']} | {report.raw(t['value'])} | {report.raw(t['goal'])} | "
               f"{t['verdict']} | {t['detail']} |")
        assert row in text.splitlines(), row
    assert "| Mailslot/Zaqar single POST req/s | 5.3 | 6 | MISS |" in text
    assert "| Mailslot/Zaqar batch-of-10 msgs/s | 4.05 | 5 | MISS (noisy) |" in text
    assert "| Mailslot/Zaqar claimed-and-deleted msgs/s | 6.53 | 5 | PASS |" in text


def test_every_row_is_in_its_scenario_table(generated):
    text, _ = generated
    data = json.loads(THROUGHPUT.read_text())
    rows = data["results"]
    for row in rows:
        figures = [report.num(row["requests_per_s"]), report.num(row["messages_per_s"]),
                   report.num(row["p50_ms"], 2), report.num(row["p99_ms"], 2),
                   report.num(row["server_cpu_us_per_request"], 1),
                   report.num(row["foreign_cores"], 2)]
        cells = " | ".join(figures[:4])
        assert lines_with(text, f"| {report.row_name(row)} | {cells} |"), row["queue"]
    assert len(report.scenarios_of(data)) >= 7
    for scenario in report.scenarios_of(data):
        assert f"### `{scenario}`" in text


def test_scenario_rows_and_ratios(generated):
    text, _ = generated
    assert ("| mailslot-redis | 7,463 | 7,463 | 7.76 | 48.41 | 197.3 | 197.3 | 0.01"
            " | ok | 5.30x | 5.75x |") in text
    assert "| zaqar-redis | 1,409 | 1,409 | 44.99 | 56.08 | 1,135.2 |" in text
    assert lines_with(text, "| mailslot-redis | 10,099 | 9,180 |", "| 6.53x | 6.40x |")
    # Zaqar ran on Redis only: the SQLite ratio is marked as cross-store
    assert lines_with(text, "| mailslot-sqlite | 13,508 | 134,828 |", "10.70x †")
    # noisy/lopsided flags as recorded, with the worker-count caveat
    assert lines_with(text, "| mailslot-redis | 3,596 | 35,958 |",
                      "NOISY, LOPSIDED ‡ [0.0, 0.0, 0.93], 2 attempts")
    assert lines_with(text, "mailslot-sqlite @deep (depth 108,310)",
                      "NOISY, foreign > 0.3")
    assert "Skipped: repeat of mailslot-sqlite flat_claim_delete (time budget)." in text
    # the signed POST is Mailslot-only: no ratio
    assert lines_with(text, "| mailslot-redis | 6,303 | 6,303 |", "| ok | – | – |")


def test_delivery_table_and_checks(generated):
    text, _ = generated
    assert ("| redis | 500 | 500.0 | 5,000 / 5,000 | 0 | 0 | 4.03 | 7.80 | 10.45"
            " | 33.52 |") in text
    assert ("| sqlite | 500 | 500.0 | 5,000 / 5,000 | 0 | 0 | 4.14 | 17.38 | 93.46"
            " | 107.98 |") in text
    assert "| redis 500 msg/s: p50 < 10 ms | 4.03 | PASS |" in text
    assert "| redis 500 msg/s: p99 < 50 ms | 10.45 | PASS |" in text
    assert "| redis 500 msg/s: nothing missing | 0 | PASS |" in text


def test_context_and_commands(generated):
    text, _ = generated
    for part in ["| finished (file written) | 2026-11-24 21:25:29 UTC |",
                 "| wall time | 533.5 s |", "| host, CPUs | vm, 2 CPUs |",
                 "| Python | 3.11.7 |", "Zaqar 23.0.1 (its gunicorn 27.0.1)",
                 "Mailslot 2 uvicorn workers; Zaqar 4 gunicorn sync workers;"
                 " wrk -t1 -c64",
                 "make bench",
                 ".venv/bin/python -m bench.delivery --rates 100 500",
                 ".venv/bin/python -m bench.report --throughput x",
                 "## How to read this"]:
        assert part in text, part
    command = lines_with(text, ".venv/bin/python -m bench --stores redis sqlite")[0]
    assert ("--scenarios ping post_1x1KB post_10x1KB claim_delete list_10"
            " post_1x1KB_signed") in command
    assert "--flat-seconds 5" in command and "--sqlite-uri" not in command


def test_charts_are_valid_pngs_linked_from_the_report(generated):
    text, files = generated
    pngs = [f for f in files if f.suffix == ".png"]
    assert sorted(f.name for f in pngs) == [
        "delivery-latency.png", "targets.png", "throughput-msgs.png"]
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(png) as image:
            image.verify()
        with Image.open(png) as image:
            assert image.width > 300 and image.height > 200
        assert f"](benchmarks/{png.name})" in text


def test_old_and_partial_result_files_render():
    """Every committed result file, older layouts included, renders."""
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        if path.name.endswith("-delivery.json"):
            text = report.render(None, None, data, path, {}, [])
        else:
            text = report.render(data, path, None, None, {}, [])
        assert "## How to read this" in text, path


def test_missing_keys_and_rows(tmp_path):
    throughput = tmp_path / "2026-01-01T000100.json"
    throughput.write_text(json.dumps({
        "results": [{"scenario": "ping", "store": "sqlite"},
                    {"scenario": "post_1x1KB", "stack": "mailslot-redis",
                     "messages_per_s": 10.0, "requests_per_s": 10.0},
                    {"scenario": "post_1x1KB", "stack": "zaqar-redis",
                     "server": "zaqar", "messages_per_s": 0.0,
                     "requests_per_s": 0.0}],
        "settings": {"scenarios": ["ping", "claim_delete"], "flat": False},
        "targets": [{"label": "x", "value": None, "goal": 5, "verdict": "n/a",
                     "detail": "missing run"}, {"label": "y"}]}))
    delivery = tmp_path / "2026-01-01T000200-delivery.json"
    delivery.write_text(json.dumps({
        "rows": [{"store": "redis", "rate": 100, "p50_ms": None}, {"store": "x"}],
        "checks": [{"check": "c"}]}))
    out = tmp_path / "out" / "r.md"
    files = report.generate(throughput, delivery, out)
    text = out.read_text()
    assert "| x | – | 5 | n/a | missing run |" in text
    assert "| y | – | – | – | – |" in text
    # claim_delete was asked for but has no row
    assert "No row: this scenario was not measured in this run." in text
    assert "| mailslot-sqlite | – | – | – |" in text
    assert "--no-flat" in text
    assert all(f.exists() for f in files)


def test_only_one_kind_of_result(tmp_path):
    out = tmp_path / "r.md"
    report.generate(None, DELIVERY, out)
    text = out.read_text()
    assert "## Throughput by scenario" not in text and "| redis | 500 |" in text
    with pytest.raises(SystemExit):
        report.generate(None, None, tmp_path / "none.md")


def test_overlapping_runs_are_noted(tmp_path):
    def write(name: str, date: str, wall: float) -> pathlib.Path:
        path = tmp_path / name
        path.write_text(json.dumps({"date": date, "wall_s": wall, "results": []}))
        return path

    mine = write("2026-01-01T001000.json", "2026-01-01T00:10:00+00:00", 300)
    write("2026-01-01T000800.json", "2026-01-01T00:08:00+00:00", 120)   # overlaps
    write("2026-01-01T000400.json", "2026-01-01T00:04:00+00:00", 60)    # before
    notes = report.overlapping(mine, json.loads(mine.read_text()))
    assert len(notes) == 1 and "2026-01-01T000800.json" in notes[0]


def test_newest_picks_by_stamp(tmp_path):
    for name in ["2026-01-02T000000.json", "2026-01-01T000000.json",
                 "2026-01-03T000000-delivery.json", "notes.json"]:
        (tmp_path / name).write_text("{}")
    newest = report.newest(tmp_path, report.THROUGHPUT_NAME)
    assert newest.name == "2026-01-02T000000.json"
    assert report.newest(tmp_path, report.DELIVERY_NAME).name == \
        "2026-01-03T000000-delivery.json"
    assert report.newest(tmp_path / "missing", report.DELIVERY_NAME) is None


def test_fixes_show_recorded_values_before_and_after(tmp_path):
    """The before/after table reads each target from the named result files."""
    for name, value in (("before.json", 5.03), ("after.json", 9.42)):
        (tmp_path / name).write_text(json.dumps({"targets": [
            {"label": "Mailslot/Zaqar single POST req/s", "value": value, "verdict":
             "PASS" if value >= 6 else "MISS"}]}))
    fixes = tmp_path / "fixes.json"
    fixes.write_text(json.dumps([{
        "change": "pipelining", "commit": "abc1234", "found_by": "py-spy",
        "before": "before.json", "after": "after.json",
        "targets": ["Mailslot/Zaqar single POST req/s", "a target nobody recorded"]}]))
    text = "\n".join(report.fixes_section(fixes, tmp_path))
    assert ("| pipelining | Mailslot/Zaqar single POST req/s | 5.03 (MISS) `before.json`"
            " | 9.42 (PASS) `after.json` |") in text
    assert f"| pipelining | a target nobody recorded | {report.DASH} `before.json`" in text
    assert "- **pipelining** (abc1234): py-spy." in text


def test_fixes_read_a_delivery_file_from_its_checks(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps({"rows": [], "checks": [
        {"check": "redis 500 msg/s: p99 < 50 ms", "value": 8.1, "pass": True}]}))
    assert report.target_value(tmp_path / "d.json",
                               "redis 500 msg/s: p99 < 50 ms") == "8.10 (PASS)"
    assert report.target_value(tmp_path / "d.json", "other") == report.DASH


def test_the_committed_fixes_name_result_files_that_exist():
    for fix in json.loads(report.FIXES.read_text()):
        for key in ("before", "after"):
            path = report.RESULTS / fix[key]
            assert path.exists(), path
            for label in fix["targets"]:
                assert report.target_value(path, label) != report.DASH, (path, label)


def test_delivery_rows_say_how_they_were_kept(tmp_path):
    delivery = tmp_path / "2026-01-01T000200-delivery.json"
    delivery.write_text(json.dumps({"rows": [
        {"store": "redis", "rate": 100, "foreign_cores": 0.05},
        {"store": "redis", "rate": 500, "foreign_cores": 0.12, "repeated": True,
         "noisy": False},
        {"store": "sqlite", "rate": 500, "foreign_cores": 0.41, "repeated": True,
         "noisy": True}], "checks": []}))
    out = tmp_path / "r.md"
    report.generate(None, delivery, out)
    text = out.read_text()
    assert lines_with(text, "| redis | 100 |", "| 0.05 | – |")
    assert lines_with(text, "| redis | 500 |", "| 0.12 | repeated |")
    assert lines_with(text, "| sqlite | 500 |", "| 0.41 | repeated, noisy |")


def test_a_noisy_delivery_run_is_repeated_once_and_the_quieter_kept(monkeypatch):
    from bench import delivery as bench_delivery
    loads = iter([0.5, 0.2])

    async def fake_measure(server, rate, seconds, receiver):
        return {"rate": rate, "foreign_cores": next(loads)}

    async def no_wait(server, max_foreign, wait):
        return 0.0

    monkeypatch.setattr(bench_delivery, "measure", fake_measure)
    monkeypatch.setattr(bench_delivery, "wait_quiet", no_wait)
    args = argparse.Namespace(max_foreign=0.3, quiet_wait=0, seconds=1)
    row = asyncio.run(bench_delivery.measure_quiet(None, 500, args, None))
    assert row == {"foreign_before": 0.0, "rate": 500, "foreign_cores": 0.2,
                   "repeated": True, "noisy": False}


def _interleaved_rows() -> list[dict]:
    """Rows as bench.__main__._signed_rows writes them (the keys the report
    and the check read), from 8 synthetic U S S U phases."""
    from bench import interleaved

    counts = [1000, 940, 960, 1000, 980, 930, 950, 990]
    phases = [{"phase": p, "kind": interleaved.kind_of(p), "ok": n, "bad": 0,
               "messages_per_s": round(n / 0.85, 1), "server_cores": 1.4,
               "db_cores": 0.3, "server_cpu_us_per_message": 120.0,
               "db_cpu_us_per_message": 30.0, "foreign_cores": 0.05}
              for p, n in enumerate(counts)]
    rows = []
    for kind in interleaved.KINDS:
        figures = interleaved.summary(phases, kind)
        rows.append({"stack": "mailslot-redis", "store": "redis", "server": "mailslot",
                     "scenario": "signed_interleaved", "depth_label": kind,
                     "requests_per_s": figures["messages_per_s"],
                     "messages_per_s": figures["messages_per_s"], "p50_ms": 6.0,
                     "p99_ms": 15.0, "server_cpu_us_per_request": 120.0,
                     "server_cpu_us_per_message": 120.0 if kind == "unsigned" else 126.0,
                     "foreign_cores": 0.05, "noisy": False, "lopsided": False,
                     "ab": {"period_s": 1.0, "guard_s": 0.15,
                            "phases": [p for p in phases if p["kind"] == kind],
                            "ratio": None, "blocks": interleaved.block_ratios(phases),
                            "interval": interleaved.interval(phases)}})
    signed, unsigned = rows[1], rows[0]
    signed["ab"]["ratio"] = round(signed["messages_per_s"] / unsigned["messages_per_s"], 3)
    return rows


def test_interleaved_signed_run_is_judged_and_reported(tmp_path):
    from bench.__main__ import checks

    rows = _interleaved_rows()
    [check] = [c for c in checks(rows, ["redis"]) if "signed" in c.label]
    assert check.label == "mailslot-redis signed / unsigned POST msgs/s"
    assert check.value == pytest.approx((940 + 960 + 930 + 950) / (1000 + 1000 + 980 + 990),
                                        abs=0.001)
    assert check.verdict() == "PASS" and "2 ABBA blocks" in check.detail
    assert "server CPU/msg signed/unsigned 1.05" in check.detail
    throughput = tmp_path / "2026-01-01T000100.json"
    throughput.write_text(json.dumps({
        "results": rows, "settings": {"scenarios": ["ping"]},
        "targets": [dataclasses.asdict(check) | {"verdict": check.verdict()}]}))
    out = tmp_path / "r.md"
    files = report.generate(throughput, None, out)
    text = out.read_text()
    assert "### `signed_interleaved`" in text
    assert lines_with(text, "| mailslot-redis @signed |")
    # every phase in time order, each with its kind
    phase_lines = [line for line in text.splitlines() if line.startswith("| ")
                   and ("| unsigned |" in line or "| signed |" in line)]
    assert [line.split(" | ")[1] for line in phase_lines] == [
        "unsigned", "signed", "signed", "unsigned"] * 2
    assert f"ratio of the means {check.value}" in text
    assert "![signed vs unsigned phases](r/signed-interleaved.png)" in text
    chart = tmp_path / "r" / "signed-interleaved.png"
    assert chart in files and chart.read_bytes().startswith(PNG_SIGNATURE)
