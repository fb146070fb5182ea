"""The reliability report: every test here says what fault or input it tried and what happened.

    @pytest.mark.reliability("Hostile input", "storage form with `..` in the prefix: {prefix}")
    def test_x(outcome, prefix):
        ...
        outcome("400: 'prefix must not contain ..'; nothing written")

- `@pytest.mark.reliability(kind, case)`: kind is one of KINDS, case a short text of what was tried.
  `case` may name the test's parameters as `{name}` (str.format over `item.callspec.params`); a
  parametrized test whose case names none of them gets the parameter id appended, `case [id]`, so
  each parameter has its own row.
- `outcome(text)`: a fixture, a callable; appends what was observed (called several times, the
  texts are joined with "; "). A failing test's row keeps what was recorded up to the failure.
- At the end of the session (when any marked test ran) it writes test-artifacts/reliability.json
  (a list of {kind, case, database, outcome, result, nodeid, duration}) and test-artifacts/reliability.md
  (a Markdown table Kind | What was tried | Database | What happened | Result, headed by a comment
  with the date and commit of the run), which scripts/reliability-report puts into the README.
- Database: Label Studio's database in the test, from its `database` parameter (`sqlite` or
  `postgresql`, see the `on_database` fixture), else SQLite, the appliance's default. A test run
  on both databases has a row for each.

Every test in tests/reliability also gets the `image` marker: they all run on the built image.
Tests marked `heavy` (32 clients of load) run only with PACHSTUDIO_RELIABILITY_HEAVY=1, as the
README's report command sets it; CI's default run leaves them out (deselected, not skipped), and
its load test saves 400 annotations instead of 2,000 (tests/reliability/test_load.py).
"""
import datetime
import json
import os
import pathlib
import subprocess

import pytest

from .databases import NAMES

KINDS = ("Fault", "Hostile input", "Security", "Load")
HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
ARTIFACTS = REPO / "test-artifacts"

_rows = pytest.StashKey[dict]()


HEAVY = "PACHSTUDIO_RELIABILITY_HEAVY"  # =1: also the `heavy` variants (minutes each; not in CI's default run)


def pytest_configure(config):
    config.addinivalue_line("markers", f"heavy: a heavier variant of a reliability case, run only with {HEAVY}=1")
    config.addinivalue_line(
        "markers", "reliability(kind, case): a row of the README's Reliability table; kind is one of "
        + ", ".join(KINDS) + "; case says what was tried ({param} names a parameter)")


def _case_text(item, case: str) -> str:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return case
    params = {k: (v if isinstance(v, (str, int, float)) else str(v)) for k, v in callspec.params.items()}
    if set(params) == {"database"}:
        return case  # the database has a column of its own
    try:
        text = case.format(**params)
    except (KeyError, IndexError, ValueError):
        text = case
    return text if text != case or "{" in case else f"{case} [{callspec.id}]"


def _database(item) -> str:
    """Label Studio's database in the test: its `database` parameter, else the appliance's default."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return NAMES.get(params.get("database"), "SQLite")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: `-m "not image"` must leave these out
def pytest_collection_modifyitems(config, items):
    if os.environ.get(HEAVY) != "1":
        heavy = [item for item in items if HERE in item.path.parents and item.get_closest_marker("heavy")]
        if heavy:
            config.hook.pytest_deselected(items=heavy)
            items[:] = [item for item in items if item not in heavy]
    for item in items:
        if HERE not in item.path.parents:
            continue
        item.add_marker(pytest.mark.image)
        mark = item.get_closest_marker("reliability")
        if mark is None:
            continue
        kind = mark.args[0] if mark.args else mark.kwargs.get("kind")
        case = mark.args[1] if len(mark.args) > 1 else mark.kwargs.get("case")
        if kind not in KINDS or not case:
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.reliability(kind, case) needs kind in "
                                    f"{KINDS} and a case text, got {mark.args} {mark.kwargs}")
        item.stash[_rows] = {"kind": kind, "case": _case_text(item, case), "database": _database(item), "outcome": [],
                             "result": None, "nodeid": item.nodeid, "duration": 0.0, "failure": ""}


@pytest.fixture
def outcome(request):
    """`outcome(text)`: record what was observed, for the test's row of the Reliability table."""
    row = request.node.stash.get(_rows, None)

    def record(text: str):
        if row is not None:
            row["outcome"].append(str(text))

    return record


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    row = item.stash.get(_rows, None)
    if row is None:
        return report
    row["duration"] += report.duration
    if report.skipped:
        row["result"] = row["result"] or "skipped"
    elif report.failed:
        row["result"] = "failed" if report.when == "call" else "error"
        if not row["failure"]:
            message = getattr(report.longrepr, "reprcrash", None)
            row["failure"] = (message.message if message else str(report.longrepr)).splitlines()[0][:300] \
                if (message or report.longrepr) else ""
    elif report.when == "call":
        row["result"] = "passed"
    return report


def _git(*args) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:  # noqa: BLE001 - no git: the report says unknown
        return ""


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def pytest_sessionfinish(session):
    rows = [_report_row(item.stash[_rows]) for item in session.items
            if _rows in item.stash and item.stash[_rows]["result"]]
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: the controller writes its workers' rows together
        workeroutput["reliability_rows"] = rows
    elif rows:
        write_report(rows)


def _report_row(row: dict) -> dict:
    text = "; ".join(row["outcome"])
    if row["result"] in ("failed", "error") and row["failure"]:
        text = f"{text}; " if text else ""
        text += f"({row['result']}: {row['failure']})"
    return {"kind": row["kind"], "case": row["case"], "database": row["database"], "outcome": text,
            "result": row["result"], "nodeid": row["nodeid"], "duration": round(row["duration"], 1)}


def write_report(out: list) -> None:
    """test-artifacts/reliability.json and reliability.md from the rows of a run."""
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "reliability.json").write_text(json.dumps(out, indent=1) + "\n")
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    commit = _git("rev-parse", "--short=12", "HEAD") or "unknown"
    dirty = "yes" if _git("status", "--porcelain", "--untracked-files=no") else "no"
    lines = [f"<!-- reliability-run: date={date}; commit={commit}; uncommitted-changes={dirty}; "
             f"tests={len(out)} -->",
             "| Kind | What was tried | Database | What happened | Result |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {_cell(r['kind'])} | {_cell(r['case'])} | {r['database']} | {_cell(r['outcome']) or '-'} | "
              f"{r['result']} |" for r in out]
    (ARTIFACTS / "reliability.md").write_text("\n".join(lines) + "\n")


@pytest.fixture
def on_database(database, docker_client, test_network):
    """appliance_factory's keywords for Label Studio on `database` (a test's parameter): nothing for
    SQLite; for PostgreSQL a fresh server on the test's network, removed after the test."""
    from .databases import appliance_env, remove, start_postgres

    if database == "sqlite":
        yield {}
        return
    pg = start_postgres(docker_client, test_network)
    yield {"network": test_network, "env": appliance_env(pg)}
    remove(pg)
