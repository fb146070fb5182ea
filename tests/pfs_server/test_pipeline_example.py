"""The README's "Try a pipeline": examples/label-counts run as the README shows it, against the
embedded server holding labels as a Label Studio Target Sync writes them."""

import json
import os
import subprocess
import sys

from pachyderm_sdk.api import pfs, pps

from .conftest import put, read

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "label-counts")


def annotation(*classes, kind="choices"):
    return json.dumps(
        {"id": 1, "result": [{"type": kind, "from_name": "label", "value": {kind: list(classes)}}], "task": {"id": 7}}
    ).encode()


def test_the_spec_runs_the_script_shipped_beside_it():
    with open(os.path.join(EXAMPLE, "pipeline.json")) as f:
        spec = json.load(f)
    with open(os.path.join(EXAMPLE, "count.py")) as f:
        assert spec["transform"]["stdin"] == f.read().splitlines()


def test_try_a_pipeline_counts_the_labels_and_follows_a_new_sync(pfs_server, pach):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))
    put(
        pach,
        "labels@master",
        {
            "/1.json": annotation("cat"),
            "/2.json": annotation("dog"),
            "/3.json": annotation("cat", "car", kind="rectanglelabels"),
            "/broken.json": b"{not json",
        },
    )
    cmd = [sys.executable, os.path.join("examples", "label-counts", "try.py"), pfs_server.address]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "JOB_SUCCESS" in out.stdout
    assert json.loads(out.stdout.split("\n", 1)[1]) == {"cat": 2, "dog": 1, "car": 1}
    # a later Sync (a new commit on labels) starts a job by itself; the output follows it
    c = put(pach, "labels@master", {"/2.json": None, "/4.json": annotation("dog", "dog")})
    job = pach.pps.inspect_job(job=pps.Job(pipeline=pps.Pipeline(name="label-counts"), id=c.id), wait=True)
    assert job.state == pps.JobState.JOB_SUCCESS
    assert json.loads(read(pach, "label-counts@master:/counts.json")) == {"cat": 2, "dog": 2, "car": 1}
    logs = [m.message for m in pach.pps.get_logs(pipeline=pps.Pipeline(name="label-counts")) if m.user]
    assert any(m.startswith("skipped ") and m.endswith("broken.json: not JSON") for m in logs)
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)  # the README twice: an update
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.split("\n", 1)[1]) == {"cat": 2, "dog": 2, "car": 1}


def test_the_benchmark_runs_and_prints_its_ratios():
    """scripts/bench-pipelines as the README shows it, on 30 files instead of 1,000."""
    cmd = [sys.executable, os.path.join("scripts", "bench-pipelines"), "30"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "ratio pipeline / SDK script:" in out.stdout and "ratio second job / first job:" in out.stdout
