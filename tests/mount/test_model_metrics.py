"""The mount server's metrics of a branch's versions (POST /repos/.../branches/{b}/metrics) and the
tag of a job's output commit (.../job-tags), with real pipelines on the embedded server created by
the real SDK: metrics.json of each job's output commit per version, running jobs, a metrics.json
that is not flat numbers, and what is kept once it cannot change."""
import json
import time

from pachyderm_sdk.api import pfs, pps
from test_auth import with_config
from test_pipeline_jobs import annotation, cluster  # noqa: F401 - the fixture

from conftest import put, stats

BASE = "/repos/default/labels/branches/master"


def spec(name: str, script: str, repo: str = "labels") -> str:
    """The input is named after the pipeline: several pipelines over the same repo then have datums
    of their own ids (the embedded server's datum folders are named by job and datum id)."""
    return json.dumps({
        "pipeline": {"name": name},
        "transform": {"image": "python:3.11-slim", "cmd": ["python3"],
                      "stdin": script.replace("/pfs/labels", f"/pfs/{name}").splitlines()},
        "input": {"pfs": {"repo": repo, "name": name, "branch": "master", "glob": "/"}},
    })


# accuracy = the number of label files / 10, so each version has its own figure
COUNTING = """import json, pathlib
n = len(list(pathlib.Path("/pfs/labels").rglob("*.json")))
pathlib.Path("/pfs/out/metrics.json").write_text(json.dumps({"accuracy": n / 10, "examples": n}))
"""
NESTED = """import json, pathlib
pathlib.Path("/pfs/out/metrics.json").write_text(json.dumps({"val": {"accuracy": 0.5}}))
"""
NO_METRICS = """import pathlib
pathlib.Path("/pfs/out/model.txt").write_text("weights")
"""
FAILING = "raise SystemExit(3)\n"
SLOW = """import pathlib, time
deadline = time.time() + 60
while not list(pathlib.Path("/pfs/labels").glob("go.json")) and time.time() < deadline:
    time.sleep(0.2)
pathlib.Path("/pfs/out/metrics.json").write_text('{"accuracy": 1}')
"""


def metrics(ms, commits, expect=200):
    r = ms.call("POST", BASE + "/metrics", {"commits": commits})
    assert r.status_code == expect, r.text
    return r.json()


def until_ended(ms, commits, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        answer = metrics(ms, commits)
        if all(c["ended"] for c in answer["commits"]) or time.monotonic() > deadline:
            return answer
        time.sleep(0.5)


def by_pipeline(commit_answer):
    return {j["pipeline"]: j for j in commit_answer["jobs"]}


def test_each_version_has_the_metrics_of_its_jobs_and_a_bad_file_breaks_nothing_else(pach, mount_server):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))
    before = put(pach, "labels@master", {"/1.json": b"{}"})  # made before any pipeline: no job
    for name, script in (("train", COUNTING), ("nested", NESTED), ("plain", NO_METRICS)):
        pach.pps.create_pipeline_v2(create_pipeline_request_json=spec(name, script))
    v1 = put(pach, "labels@master", {"/2.json": b"{}"})
    v2 = put(pach, "labels@master", {"/3.json": b"{}", "/4.json": b"{}"})

    answer = until_ended(mount_server, [v2, v1, before])
    assert answer["state"] == "jobs"
    assert answer["pipelines"] == ["default/nested", "default/plain", "default/train"]
    assert [c["commit"] for c in answer["commits"]] == [v2, v1, before]
    newest, older, first = answer["commits"]
    assert first["jobs"] == [] and first["ended"]
    for commit, figures in ((v2, {"accuracy": 0.4, "examples": 4}), (v1, {"accuracy": 0.2, "examples": 2})):
        jobs = by_pipeline(newest if commit == v2 else older)
        train = jobs["default/train"]
        assert train["state"] == "JOB_SUCCESS" and train["metrics"] == "ok", train
        assert train["values"] == figures and train["output_commit"] == f"default/train@{commit}"
        bad = jobs["default/nested"]
        assert bad["metrics"] == "unreadable" and bad["values"] == {}
        assert bad["path"] == f"default/nested@{commit}:/metrics.json"
        assert '"val" holds a dict, not a number' in bad["problem"]
        assert jobs["default/plain"]["metrics"] == "none"

    # kept: the same page again reads neither jobs nor files
    was = stats(mount_server)
    again = metrics(mount_server, [v2, v1, before])
    now = stats(mount_server)
    spent = {k: now.get(k, 0) - was.get(k, 0) for k in now if now.get(k, 0) != was.get(k, 0)}
    assert again["commits"] == answer["commits"]
    assert set(spent) == {"list_pipeline", "list_branch"}, spent

    # a pipeline made anew under the same name is another pipeline: its old jobs are not shown
    pach.pps.delete_pipeline(pipeline=pps.Pipeline(name="nested"))
    pach.pps.create_pipeline_v2(create_pipeline_request_json=spec("nested", COUNTING))
    jobs = by_pipeline(metrics(mount_server, [v1])["commits"][0])
    assert "default/nested" not in jobs and jobs["default/train"]["values"]["examples"] == 2


def test_a_version_whose_job_runs_says_so_until_it_ends(pach, mount_server):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))
    pach.pps.create_pipeline_v2(create_pipeline_request_json=spec("slow", SLOW))
    v1 = put(pach, "labels@master", {"/1.json": b"{}"})
    answer = metrics(mount_server, [v1])
    [job] = answer["commits"][0]["jobs"]
    assert not answer["commits"][0]["ended"] and job["metrics"] == "running" and not job["ended"]
    assert "have not ended yet" in answer["message"]
    v2 = put(pach, "labels@master", {"/go.json": b"{}"})
    done = until_ended(mount_server, [v2, v1])
    assert [by_pipeline(c)["default/slow"]["values"] for c in done["commits"]] == [{"accuracy": 1}] * 2


def test_a_job_output_is_tagged_as_a_branch_of_the_output_repo(pach, mount_server):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))
    pach.pps.create_pipeline_v2(create_pipeline_request_json=spec("train", COUNTING))
    pach.pps.create_pipeline_v2(create_pipeline_request_json=spec("broken", FAILING))
    v1 = put(pach, "labels@master", {"/1.json": b"{}"})
    v2 = put(pach, "labels@master", {"/2.json": b"{}"})
    until_ended(mount_server, [v1, v2])

    made = mount_server.call("POST", BASE + "/job-tags", {"name": "best-model", "commit": v1, "pipeline": "train"})
    assert made.status_code == 201, made.text
    assert made.json() == {"name": "best-model", "repo": "default/train", "commit": v1,
                           "pipeline": "default/train", "version": v1, "created": True}
    head = pach.pfs.inspect_branch(branch=pfs.Branch.from_uri("train@best-model")).head.id
    assert head == v1
    tags = {c["commit"]: by_pipeline(c)["default/train"]["tags"] for c in metrics(mount_server, [v1, v2])["commits"]}
    assert tags == {v1: ["best-model"], v2: []}

    same = mount_server.call("POST", BASE + "/job-tags",
                             {"name": "best-model", "commit": v1, "pipeline": "default/train"})
    assert same.status_code == 200 and same.json()["created"] is False
    moved = mount_server.call("POST", BASE + "/job-tags", {"name": "best-model", "commit": v2, "pipeline": "train"})
    assert moved.status_code == 409 and f"already exists at commit {v1}" in moved.json()["detail"]
    failed = mount_server.call("POST", BASE + "/job-tags", {"name": "x", "commit": v1, "pipeline": "broken"})
    assert failed.status_code == 409 and "JOB_FAILURE" in failed.json()["detail"]
    missing = mount_server.call("POST", BASE + "/job-tags", {"name": "x", "commit": v1, "pipeline": "nope"})
    assert missing.status_code == 404 and "has no job for version" in missing.json()["detail"]
    bad = mount_server.call("POST", BASE + "/job-tags", {"name": "a b", "commit": v1, "pipeline": "train"})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("name: ")
    master = mount_server.call("POST", BASE + "/job-tags", {"name": "master", "commit": v1, "pipeline": "train"})
    assert master.status_code == 409
    stranger = mount_server.call("POST", BASE + "/job-tags", {"name": "x", "commit": "0" * 32, "pipeline": "train"})
    assert stranger.status_code == 400 and "is not a version of default/labels@master" in stranger.json()["detail"]


def test_commits_that_are_not_versions_are_refused(pach, mount_server):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))
    v1 = put(pach, "labels@master", {"/1.json": b"{}"})
    other = put(pach, "labels@other", {"/2.json": b"{}"})
    assert metrics(mount_server, [v1])["state"] == "none"
    pach.pps.create_pipeline_v2(create_pipeline_request_json=spec("plain", NO_METRICS))
    assert f"{other} is not a version of default/labels@master" in metrics(mount_server, [other], expect=400)["detail"]
    assert "is not a commit id" in metrics(mount_server, ["../x"], expect=400)["detail"]
    assert "is not a version of" in metrics(mount_server, ["a" * 32], expect=400)["detail"]


def test_a_token_that_may_not_see_the_pipelines_gets_hidden_not_an_error(cluster, tmp_path):  # noqa: F811
    server, token = cluster
    commit = put(server.root(), "labels@master", {"/2.json": annotation("dog")})
    ms, _ = with_config(tmp_path / "ms", server.address, token)
    try:
        answer = metrics(ms, [commit])
        assert answer["state"] == "hidden" and answer["message"].startswith("you may not see the pipelines: ")
        assert answer["commits"] == [{"commit": commit, "ended": True, "jobs": []}]
    finally:
        ms.stop()
    assert token not in ms.log()
