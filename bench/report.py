"""`python -m bench.report`: docs/benchmarks.md and its charts from bench results.

Reads one throughput result (``python -m bench``: ``bench/results/<stamp>.json``)
and one delivery result (``python -m bench.delivery``:
``bench/results/<stamp>-delivery.json``), by default the newest of each, and
writes a Markdown report with one table per scenario (Mailslot's stores beside
Zaqar), the targets exactly as the run recorded them, the delivery latencies
and their checks, plus PNG charts (matplotlib, Agg backend) in a folder named
after the report (``docs/benchmarks/`` for ``docs/benchmarks.md``).

Nothing is measured or re-judged here: verdicts are copied from the results.
Older result files lack some keys; a missing figure prints as ``–``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import pathlib
import re
import shlex
import sys
from collections.abc import Iterable, Sequence

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEFAULT_OUT = ROOT / "docs" / "benchmarks.md"
THROUGHPUT_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{6}\.json$")
DELIVERY_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{6})-delivery\.json$")
DASH = "–"

# Table order; scenarios found in a file but not listed here follow them.
SCENARIO_ORDER = ["ping", "post_1x1KB", "post_10x1KB", "claim_delete", "list_10",
                  "post_1x1KB_signed", "signed_interleaved", "signed_pair", "flat_post_1x1KB",
                  "flat_claim_delete"]
# Scenarios run as ABBA pairs of labelled runs; their target compares the means.
PAIRED_ABOUT = {
    "signed_interleaved": "POST 1 x 1 KB through a signed URL (`Authorization: Signed ...`,"
                          " no account headers) vs with account headers, interleaved in"
                          " time within one wrk run: phases in U S S U blocks, each counted"
                          " after a guard (`bench/interleaved.py`). A row is one kind over"
                          " its phases; p50/p99 are wrk's, of both kinds together",
    "signed_pair": "POST 1 x 1 KB to one queue through a signed URL (`Authorization:"
                   " Signed ...`, no account headers) vs with account headers (ABBA"
                   " order, `--flat-seconds` each)",
    "flat_post_1x1KB": "POST 1 x 1 KB: fresh queues vs a deep queue (ABBA order,"
                       " `--flat-seconds` each)",
    "flat_claim_delete": "claim 10 + DELETE each + POST 10 back (constant depth):"
                         " a small vs a deep queue (ABBA order)",
}
# Packages whose versions shape Mailslot's figures (not recorded by the run).
PACKAGES = ["mailslot", "falcon", "gunicorn", "uvicorn", "uvicorn-worker", "uvloop",
            "httptools", "orjson", "redis", "hiredis", "httpx"]
STACK_COLOURS = {"mailslot-redis": "#1f77b4", "mailslot-sqlite": "#2ca02c",
                 "zaqar-redis": "#d62728"}
PNG_METADATA = {"Software": None}   # byte-identical PNGs for identical input


# ---------------------------------------------------------------- inputs

def newest(directory: pathlib.Path, pattern: re.Pattern[str]) -> pathlib.Path | None:
    """The file in ``directory`` whose name matches ``pattern`` and sorts last
    (names are UTC stamps, so that is the newest run)."""
    if not directory.is_dir():
        return None
    names = sorted(p.name for p in directory.iterdir() if pattern.match(p.name))
    return directory / names[-1] if names else None


def load(path: pathlib.Path | None) -> dict | None:
    return None if path is None else json.loads(path.read_text())


def shown(path: pathlib.Path) -> str:
    """A path relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def parse_date(text: str | None) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def stamp_date(path: pathlib.Path) -> datetime.datetime | None:
    """The UTC time in a result file's name (written when the run ended)."""
    match = re.match(r"^(\d{4}-\d{2}-\d{2}T\d{6})", path.name)
    if not match:
        return None
    return datetime.datetime.strptime(match.group(1), "%Y-%m-%dT%H%M%S").replace(
        tzinfo=datetime.timezone.utc)


# ---------------------------------------------------------------- formatting

def num(value: float | int | None, digits: int = 0) -> str:
    """A figure with thousands separators, or a dash when missing."""
    if value is None or isinstance(value, bool):
        return DASH
    return f"{value:,.{digits}f}"


def raw(value: object) -> str:
    """A recorded value as it is in the JSON (None as a dash)."""
    if value is None:
        return DASH
    return json.dumps(value) if isinstance(value, (list, dict, bool)) else str(value)


def cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


def utc(moment: datetime.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else DASH


# ---------------------------------------------------------------- rows

def stack(row: dict) -> str:
    """The row's stack; the oldest files only name the (Mailslot) store."""
    if row.get("stack"):
        return row["stack"]
    return f"{row.get('server') or 'mailslot'}-{row.get('store', '?')}"


def is_zaqar(row: dict) -> bool:
    return row.get("server") == "zaqar" or stack(row).startswith("zaqar")


def scenarios_of(data: dict) -> list[str]:
    """Scenarios with rows or asked for, in table order."""
    present = [r.get("scenario") for r in data.get("results", []) if r.get("scenario")]
    asked = (data.get("settings") or {}).get("scenarios") or []
    names = list(dict.fromkeys([*asked, *present]))
    known = [s for s in SCENARIO_ORDER if s in names]
    return known + [s for s in names if s not in known]


def rows_of(data: dict, scenario: str) -> list[dict]:
    """Rows of one scenario: Mailslot stacks in file order, then Zaqar."""
    rows = [r for r in data.get("results", []) if r.get("scenario") == scenario]
    return [r for r in rows if not is_zaqar(r)] + [r for r in rows if is_zaqar(r)]


def phases_of(rows: list[dict]) -> list[dict]:
    """The phases an interleaved run's rows carry (``ab.phases``), in time order."""
    return sorted((p for r in rows for p in (r.get("ab") or {}).get("phases", [])),
                  key=lambda p: p["phase"])


def zaqar_row(data: dict, scenario: str) -> dict | None:
    return next((r for r in rows_of(data, scenario) if is_zaqar(r)), None)


def rate_key(row: dict, other: dict) -> str:
    """msgs/s where both rows carry messages (everything but ping), else req/s."""
    both = row.get("messages_per_s") and other.get("messages_per_s")
    return "messages_per_s" if both else "requests_per_s"


def divide(a: float | None, b: float | None) -> float | None:
    if a is None or not b:
        return None
    return a / b


def zaqar_ratios(row: dict, zaqar: dict | None) -> tuple[str, str]:
    """(this ÷ Zaqar in msgs/s, Zaqar ÷ this in server CPU per message);
    a dagger marks a Mailslot store other than Zaqar's."""
    if zaqar is None or is_zaqar(row) or row.get("depth_label"):
        return DASH, DASH
    mark = "" if row.get("store") == zaqar.get("store") else " †"
    key = rate_key(row, zaqar)
    rate = divide(row.get(key), zaqar.get(key))
    cpu_key = ("server_cpu_us_per_message" if key == "messages_per_s"
               else "server_cpu_us_per_request")
    cpu = divide(zaqar.get(cpu_key), row.get(cpu_key))
    return ((f"{rate:.2f}x{mark}" if rate is not None else DASH),
            (f"{cpu:.2f}x{mark}" if cpu is not None else DASH))


def extra_processes(row: dict) -> bool:
    """More `worker_cores` entries than workers: recorded while the runner still
    counted Mailslot's dispatcher process as an HTTP worker."""
    cores, workers = row.get("worker_cores"), row.get("workers")
    return isinstance(cores, list) and isinstance(workers, int) and len(cores) > workers


EXTRA_NOTE = ("‡ `worker_cores` lists more processes than `--workers`: the run"
              " counted a process that answers no HTTP (Mailslot's dispatcher, idle"
              " at ~0 cores) as a worker, so a LOPSIDED flag whose only idle entry is"
              " that one is likely false. Flags and verdicts are kept as recorded.")


def flags(row: dict, max_foreign: float) -> str:
    """Why a row is not to be trusted alone (as recorded by the run)."""
    out = []
    foreign = row.get("foreign_cores")
    if row.get("noisy"):
        out.append("NOISY")
    if foreign is not None and foreign > max_foreign:
        out.append(f"foreign > {max_foreign:g}")
    if row.get("lopsided"):
        mark = " ‡" if extra_processes(row) else ""
        out.append(f"LOPSIDED{mark} {raw(row.get('worker_cores'))}")
    if row.get("ran_dry"):
        out.append("RAN DRY")
    if row.get("p99_above_guard"):
        out.append("p99 above the phase guard")
    if row.get("db_server") == "secantusdb":
        out.append(f"SecantusDB test server, {row.get('connections')} connections")
    for key in ("non_2xx", "errors"):
        if row.get(key):
            out.append(f"{key.replace('_', '-')} {row[key]}")
    attempts = row.get("attempts") or []
    if len(attempts) > 1:
        out.append(f"{len(attempts)} attempts")
    return ", ".join(out) or "ok"


def row_name(row: dict) -> str:
    name = stack(row)
    if row.get("depth_label") and row.get("scenario", "").startswith("flat_"):
        name += f" @{row['depth_label']} (depth {num(row.get('depth_before'))})"
    elif row.get("depth_label"):
        name += f" @{row['depth_label']}"
    return name


THROUGHPUT_HEADERS = ["stack", "req/s", "msgs/s", "p50 ms", "p99 ms",
                      "server CPU µs/req", "server CPU µs/msg", "foreign cores",
                      "flags", "msgs/s ÷ Zaqar", "CPU/msg Zaqar ÷ this"]


def throughput_cells(row: dict, zaqar: dict | None, max_foreign: float) -> list[str]:
    rate, cpu = zaqar_ratios(row, zaqar)
    figures = [num(row.get("requests_per_s")), num(row.get("messages_per_s")),
               num(row.get("p50_ms"), 2), num(row.get("p99_ms"), 2),
               num(row.get("server_cpu_us_per_request"), 1),
               num(row.get("server_cpu_us_per_message"), 1),
               num(row.get("foreign_cores"), 2)]
    return [row_name(row), *figures, flags(row, max_foreign), rate, cpu]


# ---------------------------------------------------------------- sections

def scenario_about() -> dict[str, str]:
    """What each scenario does, from the runner itself."""
    try:
        from bench.__main__ import SCENARIOS
    except ImportError:  # pragma: no cover - the runner is in this package
        return dict(PAIRED_ABOUT)
    return {name: s.about for name, s in SCENARIOS.items()} | PAIRED_ABOUT


def skipped_for(data: dict, scenario: str) -> list[str]:
    return [s for s in data.get("skipped") or []
            if re.search(rf"(^|\s){re.escape(scenario)}(\s|$)", s)]


def scenario_section(data: dict, scenario: str, about: dict[str, str]) -> list[str]:
    max_foreign = (data.get("settings") or {}).get("max_foreign", 0.3)
    rows = rows_of(data, scenario)
    zaqar = zaqar_row(data, scenario)
    lines = [f"### `{scenario}`", ""]
    if about.get(scenario):
        lines += [about[scenario] + ".", ""]
    if rows:
        lines += table(THROUGHPUT_HEADERS,
                       [throughput_cells(r, zaqar, max_foreign) for r in rows])
    else:
        lines.append("No row: this scenario was not measured in this run.")
    notes = []
    if rows and zaqar is None and scenario not in PAIRED_ABOUT:
        notes.append("No Zaqar row (Mailslot-only scenario, or Zaqar not run).")
    if any("†" in c for r in rows for c in zaqar_ratios(r, zaqar)):
        notes.append("† Zaqar ran on Redis only: a cross-store ratio, measured in the"
                     " same run but not back to back.")
    if any(r.get("lopsided") and extra_processes(r) for r in rows):
        notes.append(EXTRA_NOTE)
    notes += [f"Skipped: {s}." for s in skipped_for(data, scenario)]
    return lines + ([""] + notes if notes else []) + [""] + phases_section(rows)


def phases_section(rows: list[dict]) -> list[str]:
    """The phases of an interleaved run, in time order, and its block ratios."""
    phases = phases_of(rows)
    if not phases:
        return []
    signed = next((r["ab"] for r in rows if r.get("depth_label") == "signed"), {})
    lines = [f"Phases of the interleaved run ({signed.get('period_s')} s each, the first"
             f" {signed.get('guard_s')} s of each not counted):", ""]
    lines += table(["phase", "kind", "msgs/s", "server CPU µs/msg", "redis CPU µs/msg",
                    "server cores", "foreign cores"],
                   [[p["phase"], p["kind"], num(p["messages_per_s"]),
                     num(p.get("server_cpu_us_per_message"), 1),
                     num(p.get("db_cpu_us_per_message"), 1), num(p.get("server_cores"), 2),
                     num(p.get("foreign_cores"), 2)] for p in phases])
    blocks = ", ".join(f"{b:.3f}" for b in signed.get("blocks", []))
    lines += ["", f"Signed/unsigned messages per U S S U block: {blocks or DASH}; the ratio"
              f" of the means {raw(signed.get('ratio'))}, 95% interval"
              f" {raw(signed.get('interval'))} (resampling whole blocks).", ""]
    return lines


def targets_section(data: dict) -> list[str]:
    targets = data.get("targets")
    lines = ["## Targets", ""]
    if not targets:
        return lines + ["This result file records no targets.", ""]
    lines += ["As recorded by the run (`targets` in the JSON); ratios between rows of"
              " the same run. A goal of 0 marks an information line.", ""]
    lines += table(["target", "value", "goal", "verdict", "detail"],
                   [[t.get("label", DASH), raw(t.get("value")), raw(t.get("goal")),
                     raw(t.get("verdict")), raw(t.get("detail"))] for t in targets])
    return lines + [""]


FIXES = ROOT / "bench" / "fixes.json"


def target_value(path: pathlib.Path, label: str) -> str:
    """A target's recorded value and verdict in one result file (a throughput
    file's targets, or a delivery file's checks), or a dash."""
    try:
        data = load(path)
    except (OSError, ValueError):
        return DASH
    for target in data.get("targets") or []:
        if target.get("label") == label and target.get("value") is not None:
            return f"{target['value']:.2f} ({target.get('verdict', '?')})"
    for check in data.get("checks") or []:
        if check.get("check") == label and check.get("value") is not None:
            return f"{check['value']:.2f} ({check_verdict(check)})"
    return DASH


def fixes_section(fixes_path: pathlib.Path = FIXES, results: pathlib.Path = RESULTS
                  ) -> list[str]:
    """Targets missed, what profiling found, what changed: each target's
    value before and after as recorded in the two named result files."""
    try:
        fixes = load(fixes_path)
    except (OSError, ValueError):
        return []
    lines = ["## Profiled and fixed (before → after)", "",
             "From `bench/fixes.json`; the values are read from the named result files"
             " (each a whole run, so a ratio moves with that run's noise too).", ""]
    rows = []
    for fix in fixes:
        before, after = (results / fix["before"], results / fix["after"])
        for label in fix["targets"]:
            rows.append([fix["change"], label, f"{target_value(before, label)} `{fix['before']}`",
                         f"{target_value(after, label)} `{fix['after']}`"])
    lines += table(["change", "target", "before", "after"], rows)
    lines += [""] + [f"- **{fix['change']}** ({fix['commit']}): {fix['found_by']}."
                     for fix in fixes]
    return lines + [""]


DELIVERY_HEADERS = ["store", "offered /s", "posted /s", "delivered", "missing",
                    "duplicates", "p50 ms", "p90 ms", "p99 ms", "max ms",
                    "server CPU s", "foreign cores", "flags"]


def delivery_flags(row: dict) -> str:
    """How the run was kept: repeated once for foreign load, still noisy."""
    out = [name for name in ("repeated", "noisy") if row.get(name)]
    return ", ".join(out) or DASH


def delivery_cells(row: dict) -> list[str]:
    latencies = [num(row.get(key), 2)
                 for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms")]
    return [raw(row.get("store")), num(row.get("rate")), num(row.get("post_rate"), 1),
            f"{num(row.get('delivered'))} / {num(row.get('ok'))}",
            num(row.get("missing")), num(row.get("duplicates")), *latencies,
            num(row.get("server_cpu_s"), 2), num(row.get("foreign_cores"), 2),
            delivery_flags(row)]


def check_verdict(check: dict) -> str:
    """PASS/MISS as `bench.delivery` prints it from the recorded `pass`."""
    if check.get("pass") is None:
        return DASH
    return "PASS" if check["pass"] else "MISS"


def delivery_section(data: dict | None, path: pathlib.Path | None,
                     chart: str | None) -> list[str]:
    lines = ["## Delivery latency (post -> webhook)", ""]
    if data is None:
        return lines + ["No delivery result file.", ""]
    lines += [f"From `{shown(path)}`. Open loop: single-message POSTs at a fixed"
              " offered rate, each body carrying its scheduled send time; latency ="
              " webhook receive time − scheduled time.", ""]
    rows = data.get("rows") or []
    lines += table(DELIVERY_HEADERS, [delivery_cells(r) for r in rows]) if rows else [
        "No rows."]
    checks = data.get("checks") or []
    lines += ["", "Checks (as recorded):", ""]
    lines += table(["check", "value", "verdict"],
                   [[c.get("check", DASH), raw(c.get("value")), check_verdict(c)]
                    for c in checks]) if checks else ["No checks recorded."]
    if chart:
        lines += ["", f"![delivery latency vs offered rate]({chart})"]
    return lines + [""]


# ---------------------------------------------------------------- context

Span = tuple[datetime.datetime, datetime.datetime]


def span(path: pathlib.Path, data: dict) -> Span | None:
    """(start, end) of a run. Throughput: end = `date`, minus `wall_s`. Delivery:
    end = the name's stamp, minus its measured seconds (a lower bound)."""
    if DELIVERY_NAME.match(path.name):
        end = stamp_date(path)
        seconds = sum(r.get("elapsed") or r.get("seconds") or 0
                      for r in data.get("rows") or [])
    else:
        end = parse_date(data.get("date")) or stamp_date(path)
        seconds = data.get("wall_s") or 0
    if end is None or not seconds:
        return None
    return end - datetime.timedelta(seconds=seconds), end


def overlapping(path: pathlib.Path, data: dict) -> list[str]:
    """Other runs in the same folder whose time overlapped this one: their
    load shows in this run as foreign load."""
    mine = span(path, data)
    if mine is None or not path.parent.is_dir():
        return []
    out = []
    for other in sorted(path.parent.iterdir()):
        if other.resolve() == path.resolve() or not (
                THROUGHPUT_NAME.match(other.name) or DELIVERY_NAME.match(other.name)):
            continue
        try:
            theirs = span(other, load(other) or {})
        except (OSError, ValueError):
            continue
        if theirs and theirs[0] < mine[1] and mine[0] < theirs[1]:
            out.append(f"`{other.name}` ran {theirs[0]:%H:%M:%S}–"
                       f"{theirs[1]:%H:%M:%S} UTC, overlapping this run: its load"
                       " counts as foreign load here")
    return out


def installed_versions() -> str:
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return ", ".join(found) or DASH


def recorded_versions(data: dict) -> str:
    versions = dict(data.get("versions") or {})
    zaqar = versions.pop("zaqar", None)
    # e.g. {"wrk": "wrk debian/4.1.0-3+b2"}: the name once is enough
    parts = [f"{k} {str(v).removeprefix(k).strip()}" for k, v in versions.items()]
    if zaqar:
        # `bench` records "<zaqar> <gunicorn>" from the peer's venv.
        words = zaqar.split()
        parts.append(f"Zaqar {words[0]}" + (f" (its gunicorn {words[1]})"
                                             if len(words) > 1 else ""))
    return ", ".join(parts) or DASH


def settings_summary(settings: dict) -> str:
    get = settings.get
    parts = []
    if get("workers") is not None:
        parts.append(f"Mailslot {get('workers')} uvicorn workers")
    if get("zaqar") is not False and get("zaqar_workers") is not None:
        parts.append(f"Zaqar {get('zaqar_workers')} gunicorn sync workers")
    if get("connections") is not None:
        parts.append(f"wrk -t1 -c{get('connections')}")
    if get("seconds") is not None:
        warmup = f"{get('warmup')} s warm-up + " if get("warmup") is not None else ""
        parts.append(f"{warmup}{get('seconds')} s measured")
    if get("flat") and get("flat_seconds") is not None:
        warmup = (f"{get('flat_warmup')} s warm-up + " if get("flat_warmup") is not None
                  else "")
        parts.append(f"flat-cost runs {warmup}{get('flat_seconds')} s")
    if get("mongodb_seconds") is not None and "mongodb" in (get("stores") or []):
        parts.append(f"MongoDB-wire runs {get('mongodb_seconds')} s")
    if get("signed") and get("signed_phases") is not None:
        parts.append(f"signed/unsigned interleaved: {get('signed_phases')} phases of"
                     f" {get('signed_period')} s")
    if get("max_foreign") is not None:
        parts.append(f"noisy above {get('max_foreign')} foreign cores")
    return "; ".join(parts) or DASH


def bench_argv(data: dict) -> list[str]:
    """The run's argv when recorded, else every recorded setting spelled out
    (which replays the run whatever the runner's defaults are now)."""
    if isinstance(data.get("argv"), list):
        return [str(a) for a in data["argv"]]
    argv: list[str] = []
    for key, value in (data.get("settings") or {}).items():
        flag = "--" + key.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            argv.append(flag if value else f"--no-{key.replace('_', '-')}")
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


def commands_section(data: dict | None, delivery: dict | None, report_argv: list[str]
                     ) -> list[str]:
    lines = ["## Reproduce", "", "```bash", "cd /work/main",
             "make bench   # defaults: python -m bench, python -m bench.delivery, then"
             " this report"]
    if data is not None:
        lines.append("# the throughput run with its own settings:")
        lines.append(shlex.join([".venv/bin/python", "-m", "bench", *bench_argv(data)]))
    if delivery is not None:
        lines.append("# the delivery run as invoked:")
        lines.append(shlex.join([".venv/bin/python", "-m", "bench.delivery",
                                 *map(str, delivery.get("argv") or [])]))
    lines.append("# this report:")
    lines.append(shlex.join([".venv/bin/python", "-m", "bench.report", *report_argv]))
    lines += ["```", ""]
    if data is not None and not isinstance(data.get("argv"), list):
        lines += ["The throughput run does not record its argv: the command above sets"
                  " every setting the run recorded (any it did not record take the"
                  " runner's current defaults).", ""]
    return lines


def run_rows(data: dict, path: pathlib.Path) -> list[list[str]]:
    """Context of the throughput run: when, where, with what."""
    settings = data.get("settings") or {}
    end = parse_date(data.get("date")) or stamp_date(path)
    wall = data.get("wall_s")
    start = end - datetime.timedelta(seconds=wall) if end and wall else None
    return [
        ["throughput result", f"`{shown(path)}`"],
        ["finished (file written)", utc(end)],
        ["started (finished − wall time)", utc(start)],
        ["wall time", f"{wall} s" if wall is not None else DASH],
        ["host, CPUs", f"{data.get('host', DASH)}, {data.get('cpus', DASH)} CPUs"],
        ["Python", raw(data.get("python"))],
        ["recorded versions", recorded_versions(data)],
        ["settings", settings_summary(settings)],
        ["stores, scenarios", f"{raw(settings.get('stores'))}, "
                              f"{raw(settings.get('scenarios'))}"],
        ["skipped", "; ".join(data.get("skipped") or []) or "nothing"],
    ]


def delivery_run_rows(data: dict, path: pathlib.Path) -> list[list[str]]:
    return [["delivery result", f"`{shown(path)}`"],
            ["delivery finished (file name)", utc(stamp_date(path))],
            ["delivery argv", raw(data.get("argv"))]]


def data_notes(runs: list[tuple[pathlib.Path | None, dict | None]]) -> list[str]:
    """Overlapping runs, and throughput rows that count a process too many."""
    notes: list[str] = []
    for path, data in runs:
        if path is not None and data is not None:
            notes += overlapping(path, data)
    throughput = runs[0][1] or {}
    if any(extra_processes(r) for r in throughput.get("results") or []):
        notes.append("this run's `worker_cores` list one process more than `--workers`"
                     " (see ‡ in the tables)")
    return notes


def settings_details(settings: dict) -> list[str]:
    if not settings:
        return []
    return (["", "<details><summary>All recorded settings</summary>", ""]
            + table(["setting", "value"],
                    [[f"`{k}`", raw(v)] for k, v in settings.items()])
            + ["", "</details>"])


def context_section(data: dict | None, path: pathlib.Path | None,
                    delivery: dict | None,
                    delivery_path: pathlib.Path | None) -> list[str]:
    rows: list[list[str]] = []
    if data is not None and path is not None:
        rows += run_rows(data, path)
    if delivery is not None and delivery_path is not None:
        rows += delivery_run_rows(delivery, delivery_path)
    rows.append(["packages where this report was generated (not recorded by the run)",
                 installed_versions()])
    lines = ["## The run", ""] + table(["", ""], rows)
    notes = data_notes([(path, data), (delivery_path, delivery)])
    if notes:
        lines += ["", "**Notes on the recorded data:**", ""]
        lines += [f"- {n}." for n in notes]
    return lines + settings_details((data or {}).get("settings") or {}) + [""]


HOW_TO_READ = """\
## How to read this

Every comparison is a ratio between rows of the **same run**: this shared
2-core machine's absolute rates move by tens of percent from one run to the
next, while Mailslot and Zaqar are measured back to back on the same
`redis-server` (taking turns per scenario). A row is flagged **NOISY** when it
stays suspect after one repeat: either other work on the machine used more
than `--max-foreign` cores during it (*foreign load*: box CPU minus every
process the bench started), or it was **LOPSIDED**: wrk opens its keep-alive
connections in one burst, one uvicorn worker sometimes accepts all of them and
runs at one core while the other idles, so the rate says more about that
accept race than about the request path (the worker CPU split is shown).
Zaqar's sync workers take one request per connection and never show this.
Server CPU per message moves far less with foreign load than rates do, hence
the CPU ratio column; under foreign load the rate ratio is biased towards
Zaqar (4 workers get a larger share of the cores than Mailslot's 2). A target
computed from a noisy row reads `PASS (noisy)` / `MISS (noisy)`: rerun that
subset before trusting it. See `bench/README.md` for the accounting.
"""


# ---------------------------------------------------------------- charts

def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def chart_scenarios(data: dict) -> list[str]:
    """Scenarios that carry messages and are not flat-cost runs."""
    return [s for s in scenarios_of(data) if s not in PAIRED_ABOUT
            and any(r.get("messages_per_s") for r in rows_of(data, s))]


Bar = tuple[float, float, str, bool]   # x, msgs/s, stack, noisy


def msgs_bars(data: dict, scenarios: list[str], stacks: list[str]) -> list[Bar]:
    """One bar per (scenario, stack) with messages, grouped around x = scenario."""
    width = 0.8 / len(stacks)
    bars = []
    for i, name in enumerate(stacks):
        offset = (i - (len(stacks) - 1) / 2) * width
        for j, scenario in enumerate(scenarios):
            row = next((r for r in rows_of(data, scenario) if stack(r) == name), None)
            if row and row.get("messages_per_s"):
                bars.append((j + offset, row["messages_per_s"], name,
                             bool(row.get("noisy"))))
    return bars


def chart_msgs(data: dict, path: pathlib.Path) -> bool:
    """Grouped bars: msgs/s per scenario, one bar per stack; hatched = noisy."""
    scenarios = chart_scenarios(data)
    if not scenarios:
        return False
    stacks = list(dict.fromkeys(stack(r) for s in scenarios for r in rows_of(data, s)))
    bars = msgs_bars(data, scenarios, stacks)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 5))
    for x, value, name, noisy in bars:
        ax.bar(x, value, 0.8 / len(stacks), edgecolor="white",
               hatch="//" if noisy else "",
               color=STACK_COLOURS.get(name, f"C{stacks.index(name)}"))
        ax.annotate(f"{value:,.0f}", (x, value), ha="center", va="bottom", fontsize=7)
    values = [value for _, value, _, _ in bars]
    if max(values) / min(values) >= 20:
        ax.set_yscale("log")
        ax.set_ylim(min(values) / 2, max(values) * 1.5)
    ax.set_xticks(range(len(scenarios)), scenarios)
    ax.set_ylabel("messages / s")
    ax.set_title("Messages per second by scenario")
    _stack_legend(ax, stacks)
    return _save(plt, fig, path)


def _stack_legend(ax, stacks: list[str]) -> None:
    """One patch per stack, plus what the hatching means."""
    from matplotlib.patches import Patch
    handles = [Patch(color=STACK_COLOURS.get(name, f"C{i}"), label=name)
               for i, name in enumerate(stacks)]
    handles.append(Patch(facecolor="#bbbbbb", hatch="//", edgecolor="white",
                         label="noisy row"))
    ax.legend(handles=handles, fontsize=8)


def _save(plt, fig, path: pathlib.Path) -> bool:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata=PNG_METADATA)
    plt.close(fig)
    return True


VERDICT_COLOURS = {"PASS": "#2ca02c", "MISS": "#d62728"}


def target_colour(target: dict) -> str:
    """Green PASS, red MISS (as recorded); grey for information lines and n/a."""
    words = str(target.get("verdict") or "").split()
    if not target.get("goal") or not words:
        return "#7f7f7f"
    return VERDICT_COLOURS.get(words[0], "#7f7f7f")


def chart_targets(data: dict, path: pathlib.Path) -> bool:
    """Horizontal bars: each target's recorded value, its goal as a black tick."""
    targets = [t for t in data.get("targets") or [] if t.get("label")]
    if not targets:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(targets) + 1.5))
    _ratio_axis(ax, [t.get("value") or 0 for t in targets]
                + [t.get("goal") or 0 for t in targets])
    left = ax.get_xlim()[0]
    for y, target in enumerate(targets):
        value, goal = target.get("value"), target.get("goal") or 0
        if value:
            ax.barh(y, value - left, left=left, height=0.8, color=target_colour(target),
                    hatch="//" if target.get("noisy") else "", edgecolor="white")
        if goal:
            ax.plot([goal, goal], [y - 0.45, y + 0.45], color="black", linewidth=2)
        ax.annotate(f" {raw(value)} {raw(target.get('verdict'))}",
                    (max(value or left, goal), y),
                    va="center", fontsize=8)
    ax.set_yticks(range(len(targets)), [t["label"] for t in targets], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ratio (log scale); black tick = goal; grey = information only;"
                  " hatched = noisy")
    ax.set_title("Targets: recorded ratio vs goal")
    return _save(plt, fig, path)


RATIO_TICKS = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]


def _ratio_axis(ax, values: list[float]) -> None:
    """A log x axis with plain tick labels and room for the bar labels."""
    shown_values = [v for v in values if v > 0] or [1.0]
    low, high = min(shown_values) / 1.5, max(shown_values) * 3
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ticks = [t for t in RATIO_TICKS if low <= t <= high]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()


def check_thresholds(checks: list[dict]) -> list[tuple[str, float, str]]:
    """(percentile, ms, check) from recorded check names like 'p99 < 50 ms'."""
    found = []
    for check in checks:
        match = re.search(r"\b(p\d+) < ([\d.]+) ms", str(check.get("check", "")))
        if match:
            found.append((match.group(1), float(match.group(2)), check["check"]))
    return found


Series = tuple[str, str, list[tuple[float, float]]]


def latency_series(rows: list[dict]) -> list[Series]:
    """(store, percentile key, [(offered rate, ms)]) for every line with points."""
    series = []
    for store in dict.fromkeys(r.get("store") for r in rows):
        mine = sorted((r for r in rows if r.get("store") == store),
                      key=lambda r: r["rate"])
        for key in ("p50_ms", "p99_ms"):
            points = [(r["rate"], r[key]) for r in mine if r.get(key)]
            if points:
                series.append((str(store), key, points))
    return series


def chart_delivery(data: dict, path: pathlib.Path) -> bool:
    """Lines: p50 (solid) and p99 (dashed) latency vs offered rate, per store."""
    rows = [r for r in data.get("rows") or [] if r.get("rate") is not None]
    series = latency_series(rows)
    if not series:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    stores = list(dict.fromkeys(store for store, _, _ in series))
    for store, key, points in series:
        colour = STACK_COLOURS.get(f"mailslot-{store}", f"C{stores.index(store)}")
        ax.plot(*zip(*points), "-o" if key == "p50_ms" else "--s", color=colour,
                label=f"{store} {key.split('_')[0]}")
    for _, ms, text in check_thresholds(data.get("checks") or []):
        ax.axhline(ms, color="grey", linestyle=":", linewidth=1)
        ax.annotate(f"check: {text}", (0.01, ms), xycoords=("axes fraction", "data"),
                    va="bottom", fontsize=7, color="grey")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate (messages / s)")
    ax.set_ylabel("post -> webhook latency (ms, log scale)")
    ax.set_xticks(sorted({r["rate"] for r in rows}))
    ax.set_title("Delivery latency vs offered rate (solid p50, dashed p99)")
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


KIND_COLOURS = {"unsigned": "#1f77b4", "signed": "#ff7f0e"}


def chart_interleaved(data: dict, path: pathlib.Path) -> bool:
    """One bar per phase of the interleaved run, coloured by kind, with each
    kind's mean as a line: the ratio in the context of the noise."""
    phases = phases_of(rows_of(data, "signed_interleaved"))
    if not phases:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    for p in phases:
        ax.bar(p["phase"], p["messages_per_s"], 0.8, color=KIND_COLOURS[p["kind"]])
    for kind, colour in KIND_COLOURS.items():
        rates = [p["messages_per_s"] for p in phases if p["kind"] == kind]
        mean = sum(rates) / len(rates)
        ax.axhline(mean, color=colour, linestyle="--", linewidth=1,
                   label=f"{kind}: mean {mean:,.0f} msgs/s")
    ax.set_xlabel("phase (U S S U blocks, in time order)")
    ax.set_ylabel("POST messages / s")
    ax.set_title("Signed vs unsigned POST, interleaved in one wrk run")
    ax.legend(fontsize=8, loc="lower right")
    return _save(plt, fig, path)


# ---------------------------------------------------------------- report

def render(data: dict | None, path: pathlib.Path | None, delivery: dict | None,
           delivery_path: pathlib.Path | None, charts: dict[str, str],
           report_argv: list[str]) -> str:
    """The Markdown report; ``charts`` maps a chart name to its relative link."""
    lines = ["# Mailslot benchmarks", "",
             "Generated by `python -m bench.report` from the result files named below;"
             " do not edit by hand.", ""]
    lines += context_section(data, path, delivery, delivery_path)
    lines += commands_section(data, delivery, report_argv)
    lines += HOW_TO_READ.splitlines() + [""]
    if data is not None:
        about = scenario_about()
        lines += ["## Throughput by scenario", "",
                  "Mailslot/Zaqar ratios: msgs/s (req/s for `ping`); CPU ratio:"
                  " Zaqar's server CPU per message ÷ this row's (higher is better for"
                  " Mailslot).",
                  ""]
        if "msgs" in charts:
            lines += [f"![messages per second by scenario]({charts['msgs']})", ""]
        for scenario in scenarios_of(data):
            lines += scenario_section(data, scenario, about)
            if scenario == "signed_interleaved" and "interleaved" in charts:
                lines += [f"![signed vs unsigned phases]({charts['interleaved']})", ""]
        lines += targets_section(data)
        if "targets" in charts:
            lines += [f"![targets: ratio vs goal]({charts['targets']})", ""]
        lines += fixes_section()
    lines += delivery_section(delivery, delivery_path, charts.get("delivery"))
    return "\n".join(lines).rstrip("\n") + "\n"


def write_charts(data: dict | None, delivery: dict | None,
                 folder: pathlib.Path, link_base: str) -> dict[str, str]:
    """Draw every chart there is data for; returns name -> relative link."""
    plans = [("msgs", "throughput-msgs.png", data, chart_msgs),
             ("targets", "targets.png", data, chart_targets),
             ("interleaved", "signed-interleaved.png", data, chart_interleaved),
             ("delivery", "delivery-latency.png", delivery, chart_delivery)]
    links = {}
    for name, filename, source, draw in plans:
        if source is not None and draw(source, folder / filename):
            links[name] = f"{link_base}/{filename}"
    return links


def generate(throughput: pathlib.Path | None, delivery: pathlib.Path | None,
             out: pathlib.Path, report_argv: Sequence[str] = ()) -> list[pathlib.Path]:
    """Write the report and its charts; returns the files written."""
    data, delivery_data = load(throughput), load(delivery)
    if data is None and delivery_data is None:
        raise SystemExit("bench.report: no throughput or delivery result file found")
    folder = out.parent / out.stem
    charts = write_charts(data, delivery_data, folder, out.stem)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data, throughput, delivery_data, delivery, charts,
                          list(report_argv)))
    return [out] + [folder / pathlib.PurePosixPath(link).name
                    for link in charts.values()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--throughput", type=pathlib.Path,
                        help="a `python -m bench` result (default: the newest in"
                             " bench/results/)")
    parser.add_argument("--delivery", type=pathlib.Path,
                        help="a `python -m bench.delivery` result"
                             " (default: the newest)")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT,
                        help="the Markdown file; charts go to a folder named after it"
                             " (default: docs/benchmarks.md)")
    args = parser.parse_args(argv)
    throughput = args.throughput or newest(RESULTS, THROUGHPUT_NAME)
    delivery = args.delivery or newest(RESULTS, DELIVERY_NAME)
    # Recorded in the report: the inputs as resolved, so it can be regenerated.
    report_argv = []
    if throughput:
        report_argv += ["--throughput", shown(throughput)]
    if delivery:
        report_argv += ["--delivery", shown(delivery)]
    if args.out.resolve() != DEFAULT_OUT:
        report_argv += ["--out", shown(args.out)]
    for path in generate(throughput, delivery, args.out, report_argv):
        print(f"wrote {shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
