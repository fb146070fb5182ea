"""scripts/reliability-report: the README's Reliability table from a run's table, with the Database
column (a case run on SQLite and on PostgreSQL has a row for each)."""

import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.fast
SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "reliability-report"
HEADER = "<!-- reliability-run: date=2026-12-01 03:00 UTC; commit=abc123def456; uncommitted-changes=no; tests=3 -->"
README = "# x\n\n## Reliability\n<!-- reliability:start -->\nold table\n<!-- reliability:end -->\n\n## After\n"


def report(tmp_path, table_lines, *args):
    table, readme = tmp_path / "reliability.md", tmp_path / "README.md"
    table.write_text("\n".join(table_lines) + "\n")
    readme.write_text(README)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--table", str(table), "--readme", str(readme), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done, readme.read_text()


def rows(*results):
    kill = "`docker kill` of the appliance mid-labeling"
    cases = [
        ("Fault", kill, "SQLite"),
        ("Fault", kill, "PostgreSQL"),
        ("Load", "8 clients, a \\| in text", "PostgreSQL"),
    ]
    head = [HEADER, "| Kind | What was tried | Database | What happened | Result |", "| --- | --- | --- | --- | --- |"]
    return head + [
        f"| {kind} | {case} | {db} | 1 commit | {result} |" for (kind, case, db), result in zip(cases, results)
    ]


def test_the_table_goes_into_the_readme_with_a_row_per_database(tmp_path):
    done, readme = report(tmp_path, rows("passed", "passed", "passed"))
    assert done.returncode == 0, done.stderr
    section = readme.split("<!-- reliability:start -->")[1].split("<!-- reliability:end -->")[0]
    assert "old table" not in section
    assert "3 cases, 3 passed (2 on PostgreSQL, 1 on SQLite)" in section
    assert "| Kind | What was tried | Database | What happened | Result |" in section
    assert "| Fault | `docker kill` of the appliance mid-labeling | SQLite |" in section
    assert "| Fault | `docker kill` of the appliance mid-labeling | PostgreSQL |" in section
    assert readme.endswith("<!-- reliability:end -->\n\n## After\n")


def test_a_failed_row_is_refused_unless_allowed(tmp_path):
    done, readme = report(tmp_path, rows("passed", "failed", "passed"))
    assert done.returncode == 1 and "1 of 3 rows did not pass" in done.stderr
    assert "| PostgreSQL | 1 commit | failed |" in done.stderr
    assert "old table" in readme, "nothing written"
    done, readme = report(tmp_path, rows("passed", "failed", "passed"), "--allow-failures")
    assert done.returncode == 0 and "3 cases, 2 passed, 1 did not pass" in readme


def test_a_table_without_the_database_column_is_refused(tmp_path):
    old = [
        HEADER,
        "| Kind | What was tried | What happened | Result |",
        "| --- | --- | --- | --- |",
        "| Fault | x | y | passed |",
    ]
    done, readme = report(tmp_path, old)
    assert done.returncode == 1 and "no Database column" in done.stderr and "run it again" in done.stderr
    assert "old table" in readme


def test_merge_replaces_the_rows_of_the_cases_run_and_keeps_the_others(tmp_path):
    done, readme = report(tmp_path, rows("passed", "passed", "passed"))
    assert done.returncode == 0, done.stderr
    run = [HEADER.replace("03:00", "04:00"), "| Kind | What was tried | Database | What happened | Result |",
           "| --- | --- | --- | --- | --- |",
           "| Fault | `docker kill` of the appliance mid-labeling | SQLite | 2 commits | passed |",
           "| Security | a datum reads the root token | SQLite | not found | passed |"]  # fmt: skip
    table = tmp_path / "reliability.md"
    table.write_text("\n".join(run) + "\n")
    done = subprocess.run([sys.executable, str(SCRIPT), "--table", str(table), "--readme", str(tmp_path / "README.md"),
                           "--merge"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    section = (tmp_path / "README.md").read_text().split("<!-- reliability:start -->")[1]
    table_rows = [line for line in section.splitlines() if line.startswith("| ") and line[2:5] not in ("Kin", "---")]
    assert table_rows[0] == "| Fault | `docker kill` of the appliance mid-labeling | SQLite | 2 commits | passed |"
    assert "| PostgreSQL | 1 commit | passed |" in table_rows[1] and len(table_rows) == 4
    assert table_rows[-1].startswith("| Security | a datum reads the root token |")
    assert "3 cases, 3 passed" in section and "Merged in: run of 2026-12-01 04:00 UTC" in section
