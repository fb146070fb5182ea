"""The mount server's pipeline reads: the jobs a commit started (GET /repos/.../commits/{id}/jobs)
and a commit's provenance (.../provenance), with the real SDK creating pipelines on the embedded
server; a token that may not see the pipelines gets state `hidden`, not an error."""
import json
import os
import time

import pytest
from pachyderm_sdk.api import auth, pfs
from test_auth import with_config

from conftest import put, read
from plugins.mount import MountServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def label_counts_spec() -> str:
    with open(os.path.join(ROOT, "examples", "label-counts", "pipeline.json")) as f:
        return f.read()


def annotation(*classes) -> bytes:
    return json.dumps({"id": 1, "result": [{"type": "choices", "value": {"choices": list(classes)}}]}).encode()


def jobs_until_ended(ms, uri: str, query: str = "", timeout: float = 120) -> dict:
    """Polls the jobs route as the card does, until every job has ended."""
    deadline = time.monotonic() + timeout
    while True:
        r = ms.call("GET", f"/repos/{uri}/jobs{query}")
        assert r.status_code == 200, r.text
        answer = r.json()
        if answer["ended"] or time.monotonic() > deadline:
            return answer
        time.sleep(0.5)


def test_jobs_of_a_commit_show_the_pipeline_reading_its_branch_until_success(pach, mount_server):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))
    put(pach, "labels@master", {"/1.json": annotation("cat")})
    pach.pps.create_pipeline_v2(create_pipeline_request_json=label_counts_spec())
    commit = put(pach, "labels@master", {"/2.json": annotation("cat", "dog")})

    answer = jobs_until_ended(mount_server, f"default/labels/commits/{commit}", "?branch=master")
    assert answer["state"] == "jobs" and answer["ended"], answer
    assert answer["commit"] == commit and answer["branch"] == "master"
    assert answer["pipelines"] == ["default/label-counts"]
    [job] = answer["jobs"]
    assert job["pipeline"] == "default/label-counts" and job["id"] == commit
    assert job["state"] == "JOB_SUCCESS" and job["reason"] == ""
    assert (job["data_processed"], job["data_total"], job["data_failed"]) == (1, 1, 0)
    assert job["output_commit"] == f"default/label-counts@{commit}"
    assert job["started"] and job["finished"]
    assert json.loads(read(pach, f"label-counts@{commit}:/counts.json")) == {"cat": 2, "dog": 1}

    # the output commit's provenance: pipeline, job and the input commit
    r = mount_server.call("GET", f"/repos/default/label-counts/commits/{commit}/provenance")
    assert r.status_code == 200, r.text
    prov = r.json()
    assert prov["state"] == "output" and prov["pipeline"] == "default/label-counts"
    assert prov["job"]["id"] == commit and prov["job"]["state"] == "JOB_SUCCESS"
    assert f"default/labels@{commit}" in prov["inputs"]
    assert prov["message"] == f"output of pipeline default/label-counts, job {commit} (JOB_SUCCESS)"
    # an input commit is not a pipeline's output
    r = mount_server.call("GET", f"/repos/default/labels/commits/{commit}/provenance")
    assert r.json()["state"] == "none" and "not a pipeline output" in r.json()["message"], r.text


def test_a_branch_no_pipeline_reads_says_so(pach, mount_server):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))
    pach.pps.create_pipeline_v2(create_pipeline_request_json=label_counts_spec())
    commit = put(pach, "labels@review", {"/1.json": annotation("cat")})
    r = mount_server.call("GET", f"/repos/default/labels/commits/{commit}/jobs?branch=review")
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["state"] == "none" and answer["jobs"] == [] and answer["ended"], answer
    assert answer["message"] == "no pipeline reads default/labels@review"


def test_a_failing_pipeline_shows_failure_and_its_reason(pach, mount_server):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))
    spec = {"pipeline": {"name": "fails"}, "transform": {"image": "debian", "cmd": ["sh", "-c", "exit 3"]},
            "datum_tries": 1, "input": {"pfs": {"repo": "labels", "glob": "/*"}}}
    pach.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))
    commit = put(pach, "labels@master", {"/1.json": annotation("cat")})
    answer = jobs_until_ended(mount_server, f"default/labels/commits/{commit}")
    [job] = answer["jobs"]
    assert job["state"] == "JOB_FAILURE" and job["ended"], job
    assert "failed" in job["reason"] and job["data_failed"] == 1, job


def test_bad_names_are_refused_with_the_field(mount_server):
    r = mount_server.call("GET", "/repos/default/labels/commits/not%20a%20commit/jobs")
    assert r.status_code == 400 and "commit" in r.json()["detail"], r.text
    r = mount_server.call("GET", "/repos/default/no-such-repo/commits/" + "a" * 32 + "/jobs")
    assert r.status_code == 404, r.text


@pytest.fixture
def cluster(auth_pfs_server):
    """labels (the robot may write it) read by label-counts (the robot has no role on its output)."""
    root = auth_pfs_server.root()
    root.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))
    put(root, "labels@master", {"/1.json": annotation("cat")})
    root.pps.create_pipeline_v2(create_pipeline_request_json=label_counts_spec())
    token = root.auth.get_robot_token(robot="labeler").token
    root.auth.modify_role_binding(resource=auth.Resource(type=auth.ResourceType.REPO, name="default/labels"),
                                  principal="robot:labeler", roles=["repoWriter"])
    return auth_pfs_server, token


def test_a_token_that_may_not_see_the_jobs_gets_hidden_not_an_error(cluster, tmp_path):
    server, token = cluster
    commit = put(server.root(), "labels@master", {"/2.json": annotation("dog")})
    ms, _ = with_config(tmp_path / "ms", server.address, token)  # its /pfs would hide the server's tmp_path/pfs
    try:
        r = ms.call("GET", f"/repos/default/labels/commits/{commit}/jobs?branch=master")
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["state"] == "hidden" and answer["jobs"] == [] and answer["ended"], answer
        assert answer["message"].startswith("you may not see the pipelines: ")
        assert "robot:labeler is not authorized" in answer["message"]
    finally:
        ms.stop()
    assert token not in ms.log()
    # with no token at all: the same answer, not the 401 of the file routes
    ms = MountServer(tmp_path / "none", server.address).start()
    try:
        r = ms.call("GET", f"/repos/default/labels/commits/{commit}/jobs")
        assert r.status_code == 200 and r.json()["state"] == "hidden", r.text
    finally:
        ms.stop()
