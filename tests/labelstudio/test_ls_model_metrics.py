"""Each label version's model metrics in Label Studio: real Target Syncs start real pipelines on the
embedded server (created with the pachyderm SDK); the Versions API shows what each job's
metrics.json says, the jobs still running, a metrics.json that is not flat numbers; Compare shows
each metric's change; a job's output commit is tagged from the version."""
import json
import time

from ls_helpers import TEXT_CONFIG, make_repo, put, unique
from pachyderm_sdk.api import pfs

COUNTING = """import json, pathlib
n = len([p for p in pathlib.Path("/pfs/{repo}").rglob("*.json")])
pathlib.Path("/pfs/out/metrics.json").write_text(json.dumps({{"accuracy": n / 10, "labels": n}}))
"""
NESTED = """import json, pathlib
pathlib.Path("/pfs/out/metrics.json").write_text(json.dumps({{"val": {{"accuracy": 0.5}}}}))
"""
SLOW = """import json, pathlib, time
time.sleep(8)
pathlib.Path("/pfs/out/metrics.json").write_text(json.dumps({{"accuracy": 1}}))
"""


def pipeline(pach, name, repo, script):
    spec = {"pipeline": {"name": name},
            "transform": {"image": "python:3.11-slim", "cmd": ["python3"],
                          "stdin": script.format(repo=name).splitlines()},
            # the input named after the pipeline: datums of their own ids (the embedded server names
            # its datum folders by job and datum id, and these jobs share their commit's id)
            "input": {"pfs": {"repo": repo, "name": name, "branch": "master", "glob": "/"}}}
    pach.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))
    return f"default/{name}"


def result(label):
    return [{"from_name": "choice", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def versions_until_ended(labelstudio, target, timeout=180):
    deadline = time.monotonic() + timeout
    while True:
        answer = labelstudio.api("GET", f"/api/storages/export/pachyderm/{target}/versions", expect=200).json()
        if all(v["jobs"]["state"] != "running" for v in answer["versions"]) or time.monotonic() > deadline:
            return answer
        time.sleep(0.5)


def test_versions_show_their_jobs_metrics_compare_their_change_and_tag_a_model(labelstudio, ls_pach):
    source_repo = make_repo(ls_pach)
    put(ls_pach, source_repo, {f"t{i}.json": json.dumps({"text": f"text {i}"}) for i in range(4)})
    project = labelstudio.create_project(title="metrics", label_config=TEXT_CONFIG)
    source = labelstudio.create_source(project["id"], repo=source_repo)
    assert labelstudio.sync(source["id"])["last_sync_count"] == 4
    tasks = sorted(labelstudio.tasks(project["id"]), key=lambda t: t["data"]["pachyderm_path"])
    labels = make_repo(ls_pach)
    target = labelstudio.create_target(project["id"], repo=labels, prefix="ann")
    labelstudio.wait_storage(target["id"], target=True)
    labelstudio.api("POST", f"/api/tasks/{tasks[0]['id']}/annotations", json={"result": result("cat")}, expect=201)
    before = labelstudio.sync(target["id"], target=True)["meta"]["commit"]  # no pipeline yet
    train = pipeline(ls_pach, unique("train"), labels, COUNTING)
    nested = pipeline(ls_pach, unique("nested"), labels, NESTED)
    labelstudio.api("POST", f"/api/tasks/{tasks[1]['id']}/annotations", json={"result": result("dog")}, expect=201)
    v1 = labelstudio.sync(target["id"], target=True)["meta"]["commit"]
    for task in tasks[2:]:
        labelstudio.api("POST", f"/api/tasks/{task['id']}/annotations", json={"result": result("cat")}, expect=201)
    v2 = labelstudio.sync(target["id"], target=True)["meta"]["commit"]

    answer = versions_until_ended(labelstudio, target["id"])
    assert answer["pipelines"]["state"] == "jobs" and answer["pipelines"]["names"] == sorted([train, nested])
    assert answer["metric_columns"] == [{"pipeline": train, "key": "accuracy"}, {"pipeline": train, "key": "labels"}]
    rows = {v["commit"]: v for v in answer["versions"]}
    assert rows[v2]["metrics"] == {train: {"accuracy": 0.4, "labels": 4}}, (answer["pipelines"], rows[v2]["jobs"])
    assert rows[v1]["metrics"] == {train: {"accuracy": 0.2, "labels": 2}}
    assert rows[before]["metrics"] == {} and rows[before]["jobs"]["state"] == "none"
    for commit in (v1, v2):
        assert rows[commit]["jobs"]["failed"] == [], rows[commit]["jobs"]["failed"]
        assert rows[commit]["jobs"]["state"] == "ended" and rows[commit]["jobs"]["running"] == []
        assert rows[commit]["metrics_unreadable"] == [{
            "pipeline": nested, "path": f"{nested}@{commit}:/metrics.json",
            "reason": '"val" holds a dict, not a number: keys must be flat, values numbers'}]
        outputs = {o["pipeline"]: o for o in rows[commit]["jobs"]["outputs"]}
        assert outputs[train] == {"pipeline": train, "job": commit, "state": "JOB_SUCCESS",
                                  "output_commit": f"{train}@{commit}", "metrics": "ok", "tags": []}
        assert outputs[nested]["metrics"] == "unreadable"

    diff = labelstudio.api("GET", f"/api/storages/export/pachyderm/{target['id']}/diff",
                           params={"from": v1, "to": v2}, expect=200).json()
    assert diff["counts"]["gained"] == 2  # the labels' diff is still there
    assert diff["metrics"]["state"] == "jobs" and diff["metrics"]["running"] == []
    assert diff["metrics"]["metrics"] == {train: {"accuracy": {"from": 0.2, "to": 0.4, "change": 0.2},
                                                  "labels": {"from": 2, "to": 4, "change": 2}}}

    url = f"/api/storages/export/pachyderm/{target['id']}/job-tags"
    made = labelstudio.api("POST", url, json={"name": "best-model", "commit": v1, "pipeline": train}, expect=201)
    name = train.split("/")[1]
    assert made.json() == {"name": "best-model", "repo": train, "commit": v1, "pipeline": train, "version": v1}
    head = ls_pach.pfs.inspect_branch(branch=pfs.Branch.from_uri(f"{name}@best-model")).head.id
    assert head == v1
    again = labelstudio.api("GET", f"/api/storages/export/pachyderm/{target['id']}/versions", expect=200).json()
    tagged = {v["commit"]: {o["pipeline"]: o["tags"] for o in v["jobs"]["outputs"]} for v in again["versions"]}
    assert tagged[v1][train] == ["best-model"] and tagged[v2][train] == []
    moved = labelstudio.api("POST", url, json={"name": "best-model", "commit": v2, "pipeline": train}, expect=409)
    assert f"already exists at commit {v1}" in moved.json()["detail"]
    refused = labelstudio.api("POST", url, json={"name": "x", "commit": v1}, expect=400)
    assert '"pipeline"' in refused.json()["detail"]
    labelstudio.api("POST", "/api/storages/export/pachyderm/999999/job-tags",
                    json={"name": "x", "commit": v1, "pipeline": train}, expect=404)


def test_a_version_whose_jobs_still_run_says_so(labelstudio, ls_pach):
    source_repo = make_repo(ls_pach)
    put(ls_pach, source_repo, {"t.json": json.dumps({"text": "a text"})})
    project = labelstudio.create_project(title="running", label_config=TEXT_CONFIG)
    source = labelstudio.create_source(project["id"], repo=source_repo)
    labelstudio.sync(source["id"])
    [task] = labelstudio.tasks(project["id"])
    labels = make_repo(ls_pach)
    target = labelstudio.create_target(project["id"], repo=labels)
    labelstudio.wait_storage(target["id"], target=True)
    slow = pipeline(ls_pach, unique("slow"), labels, SLOW)
    labelstudio.api("POST", f"/api/tasks/{task['id']}/annotations", json={"result": result("cat")}, expect=201)
    v1 = labelstudio.sync(target["id"], target=True)["meta"]["commit"]

    answer = labelstudio.api("GET", f"/api/storages/export/pachyderm/{target['id']}/versions", expect=200).json()
    [version] = [v for v in answer["versions"] if v["commit"] == v1]
    assert version["jobs"]["state"] == "running" and version["jobs"]["running"] == [slow]
    assert version["metrics"] == {} and "have not ended yet" in answer["pipelines"]["message"]
    done = versions_until_ended(labelstudio, target["id"])
    [version] = [v for v in done["versions"] if v["commit"] == v1]
    assert version["jobs"]["state"] == "ended" and version["metrics"] == {slow: {"accuracy": 1}}
