"""The jobs a Target Sync started (GET /api/storages/export/pachyderm/<id>/jobs) and a Source's
provenance (GET /api/storages/pachyderm/<id>/provenance), through Label Studio and the mount
server to the embedded server running examples/label-counts."""
import json
import os
import time

import pytest
from ls_helpers import TEXT_CONFIG, error_text, make_repo, put, read

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def label_counts(pach, repo: str, branch: str = "master") -> str:
    """examples/label-counts reading `repo@branch` (as /pfs/labels); its name, unique to the test."""
    with open(os.path.join(ROOT, "examples", "label-counts", "pipeline.json")) as f:
        spec = json.load(f)
    spec["pipeline"]["name"] = f"counts-{repo}"
    spec["input"]["pfs"].update(repo=repo, branch=branch, name="labels")
    pach.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))
    return spec["pipeline"]["name"]


def labeled_target(ls, pach, labels_repo: str, branch: str, choices=("cat", "dog", "cat")) -> dict:
    """A project of len(choices) tasks from a Source, each labeled, and a Target on labels_repo@branch."""
    source_repo = make_repo(pach)
    put(pach, source_repo, {f"t{i}.json": json.dumps({"text": f"text {i}"}) for i in range(len(choices))})
    project = ls.create_project(label_config=TEXT_CONFIG)
    source = ls.create_source(project["id"], repo=source_repo)
    assert ls.sync(source["id"])["last_sync_count"] == len(choices)
    tasks = sorted(ls.tasks(project["id"]), key=lambda t: t["data"]["pachyderm_path"])
    for task, label in zip(tasks, choices):
        ls.annotate(task["id"], label)
    target = ls.create_target(project["id"], repo=labels_repo, branch=branch, prefix="ann")
    assert ls.wait_storage(target["id"], target=True)["status"] == "completed"
    return target


def jobs_until_ended(ls, target_id: int, timeout: float = 180, **params) -> dict:
    """Polls the jobs endpoint as the Target card does, until nothing is left to wait for."""
    deadline = time.monotonic() + timeout
    while True:
        answer = ls.api("GET", f"/api/storages/export/pachyderm/{target_id}/jobs", expect=200, params=params).json()
        if answer["ended"] or time.monotonic() > deadline:
            return answer
        time.sleep(0.5)


def test_a_sync_shows_the_job_it_started_reach_success_with_its_datums_and_output(labelstudio, ls_pach):
    labels = make_repo(ls_pach)
    pipeline = label_counts(ls_pach, labels)
    target = labeled_target(labelstudio, ls_pach, labels, "master")
    done = labelstudio.sync(target["id"], target=True)
    commit = done["meta"]["commit"]
    assert done["status"] == "completed" and commit, done

    answer = jobs_until_ended(labelstudio, target["id"])
    assert answer["commit"] == commit and answer["state"] == "jobs", answer
    assert answer["pipelines"] == [f"default/{pipeline}"]
    [job] = answer["jobs"]
    assert job["pipeline"] == f"default/{pipeline}" and job["id"] == commit
    assert job["state"] == "JOB_SUCCESS" and job["ended"], job
    assert (job["data_processed"], job["data_skipped"], job["data_failed"], job["data_total"]) == (1, 0, 0, 1)
    assert job["output_commit"] == f"default/{pipeline}@{commit}"
    assert json.loads(read(ls_pach, pipeline, "/counts.json", commit)) == {"cat": 2, "dog": 1}

    # a Source on the pipeline's output repo: its synced commit is that job's output
    project = labelstudio.create_project(label_config=TEXT_CONFIG)
    source = labelstudio.create_source(project["id"], repo=pipeline, use_blob_urls=True)
    synced = labelstudio.sync(source["id"])
    assert synced["synced_commit"] == commit, synced
    prov = labelstudio.api("GET", f"/api/storages/pachyderm/{source['id']}/provenance", expect=200).json()
    assert prov["state"] == "output" and prov["pipeline"] == f"default/{pipeline}", prov
    assert prov["job"]["id"] == commit and prov["job"]["state"] == "JOB_SUCCESS"
    assert f"default/{labels}@{commit}" in prov["inputs"]
    assert prov["message"] == f"output of pipeline default/{pipeline}, job {commit} (JOB_SUCCESS)"


def test_a_target_on_a_branch_no_pipeline_reads_says_so_and_sources_are_no_output(labelstudio, ls_pach):
    labels = make_repo(ls_pach)
    label_counts(ls_pach, labels, branch="master")
    target = labeled_target(labelstudio, ls_pach, labels, "review", choices=("dog",))
    before = labelstudio.api("GET", f"/api/storages/export/pachyderm/{target['id']}/jobs", expect=200).json()
    assert before["state"] == "none" and before["message"] == "no Sync commit yet", before
    commit = labelstudio.sync(target["id"], target=True)["meta"]["commit"]
    answer = labelstudio.api("GET", f"/api/storages/export/pachyderm/{target['id']}/jobs", expect=200).json()
    assert answer == {**answer, "commit": commit, "state": "none", "jobs": [], "ended": True}, answer
    assert answer["message"] == f"no pipeline reads default/{labels}@review"

    project = labelstudio.create_project(label_config=TEXT_CONFIG)
    source = labelstudio.create_source(project["id"], repo=labels, branch="review", use_blob_urls=True)
    labelstudio.sync(source["id"])
    prov = labelstudio.api("GET", f"/api/storages/pachyderm/{source['id']}/provenance", expect=200).json()
    assert prov["state"] == "none" and prov["message"] == f"default/{labels}@{commit} is not a pipeline output"


def test_a_failing_pipeline_shows_failure_and_its_reason(labelstudio, ls_pach):
    labels = make_repo(ls_pach)
    spec = {"pipeline": {"name": f"fails-{labels}"}, "datum_tries": 1,
            "transform": {"image": "debian", "cmd": ["sh", "-c", "echo no model >&2; exit 2"]},
            "input": {"pfs": {"repo": labels, "glob": "/"}}}
    ls_pach.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))
    target = labeled_target(labelstudio, ls_pach, labels, "master", choices=("cat",))
    commit = labelstudio.sync(target["id"], target=True)["meta"]["commit"]
    answer = jobs_until_ended(labelstudio, target["id"], commit=commit)
    [job] = answer["jobs"]
    assert job["state"] == "JOB_FAILURE" and job["data_failed"] == 1, job
    assert job["reason"].startswith("datum ") and "failed" in job["reason"], job


@pytest.mark.parametrize("commit", ["nothex", "A" * 32, "a" * 31])
def test_a_commit_that_is_no_commit_id_is_refused_with_the_field(labelstudio, ls_pach, commit):
    labels = make_repo(ls_pach)
    project = labelstudio.create_project(label_config=TEXT_CONFIG)
    target = labelstudio.create_target(project["id"], repo=labels)
    r = labelstudio.api("GET", f"/api/storages/export/pachyderm/{target['id']}/jobs", params={"commit": commit})
    assert r.status_code == 400 and "is not a commit id" in error_text(r), r.text


def test_storages_of_unknown_ids_are_404(labelstudio):
    assert labelstudio.api("GET", "/api/storages/export/pachyderm/999999/jobs").status_code == 404
    assert labelstudio.api("GET", "/api/storages/pachyderm/999999/provenance").status_code == 404
