"""A Source's `predictions_from`: a pipeline's `<path>.json` predictions become Label Studio
predictions of the tasks from `<path>`, through Label Studio's REST API as the UI drives it, with
the real mount server and the embedded PFS server written to through the real SDK."""
import json

from ls_helpers import IMAGE_CONFIG, TEXT_CONFIG, error_text, make_repo, put
from pachyderm_sdk.api import pfs

from plugins.labelstudio import unique


def choice(label, to_name="image", **extra):
    return {"result": [{"from_name": "choice", "to_name": to_name, "type": "choices",
                        "value": {"choices": [label]}}], **extra}


def predictions(ls, task_id) -> list:
    return sorted(ls.api("GET", f"/api/predictions/?task={task_id}", expect=200).json(), key=lambda p: p["id"])


def by_path(tasks) -> dict:
    return {t["data"]["pachyderm_path"]: t for t in tasks}


def project_version(ls, project_id) -> str:
    return ls.api("GET", f"/api/projects/{project_id}", expect=200).json()["model_version"]


def images_and_predictions(ls, pach, images: dict, preds: dict, **source_fields):
    repo, pred_repo = make_repo(pach), make_repo(pach, unique("predict"))
    put(pach, repo, images)
    head = put(pach, pred_repo, {path: json.dumps(value) if not isinstance(value, str) else value
                                 for path, value in preds.items()})
    project = ls.create_project(label_config=IMAGE_CONFIG)
    source = ls.create_source(project["id"], repo=repo, use_blob_urls=True, recursive_scan=True,
                              predictions_from=f"{pred_repo}@master", **source_fields)
    return project, source, pred_repo, head


def test_predictions_attach_to_their_tasks_with_the_files_or_the_commits_model_version(labelstudio, ls_pach):
    project, source, pred_repo, head = images_and_predictions(labelstudio, ls_pach, {
        "img/a.png": b"a", "img/b.png": b"b", "img/c.png": b"c",
    }, {
        "img/a.png.json": choice("cat", score=0.9),
        "img/b.png.json": [choice("dog"), choice("cat", model_version="resnet-1", score=0.25)],
        "img/gone.png.json": choice("cat"),  # no such task: nothing to attach it to
    })
    assert source["predictions_from"] == f"{pred_repo}@master" and source["predictions_commit"] is None

    done = labelstudio.sync(source["id"])

    assert done["status"] == "completed", done
    assert done["last_sync_count"] == 3  # the images; no prediction file became a task
    tasks = by_path(labelstudio.tasks(project["id"]))
    assert set(tasks) == {"img/a.png", "img/b.png", "img/c.png"}
    default = f"{pred_repo}@{head}"
    a = predictions(labelstudio, tasks["img/a.png"]["id"])
    assert [(p["model_version"], p["score"], p["result"]) for p in a] == \
        [(default, 0.9, choice("cat")["result"])]
    b = predictions(labelstudio, tasks["img/b.png"]["id"])
    assert [(p["model_version"], p["score"]) for p in b] == [(default, None), ("resnet-1", 0.25)]
    assert predictions(labelstudio, tasks["img/c.png"]["id"]) == []
    # the Data Manager's prediction columns
    assert [tasks[f"img/{n}.png"]["total_predictions"] for n in "abc"] == [1, 2, 0]
    assert "cat" in str(tasks["img/a.png"]["predictions_results"])
    assert tasks["img/a.png"]["predictions_score"] == 0.9
    versions = str(tasks["img/b.png"]["predictions_model_versions"])
    assert default in versions and "resnet-1" in versions
    # the newest predictions are what labelers see: the project's model version
    assert project_version(labelstudio, project["id"]) == default
    meta = done["meta"]["predictions"]
    assert set(meta.pop("seconds")) == {"find", "read", "known", "write"}
    assert meta == {"from": f"default/{pred_repo}@master", "commit": head, "files": 2, "added": 3, "tasks": 2,
                    "skipped": 0, "model_version": default, "project_model_version": default,
                    "message": f"3 prediction(s) added to 2 task(s) from default/{pred_repo}@master at {head[:12]}, "
                               f"model version {default}"}
    assert labelstudio.storage(source["id"])["predictions_commit"] == head


def test_a_new_commit_adds_beside_the_old_and_the_same_commit_adds_nothing(labelstudio, ls_pach):
    project, source, pred_repo, first = images_and_predictions(labelstudio, ls_pach, {
        "a.png": b"a", "b.png": b"b",
    }, {
        "a.png.json": choice("cat"),
        "b.png.json": [choice("cat"), choice("dog", model_version="resnet-1")],
    })
    labelstudio.sync(source["id"])
    tasks = by_path(labelstudio.tasks(project["id"]))
    a, b = tasks["a.png"]["id"], tasks["b.png"]["id"]

    again = labelstudio.sync(source["id"])
    assert again["meta"]["predictions"]["added"] == 0 and again["meta"]["predictions"]["files"] == 0
    assert [len(predictions(labelstudio, t)) for t in (a, b)] == [1, 2]

    second = put(ls_pach, pred_repo, {"a.png.json": json.dumps(choice("dog"))})
    done = labelstudio.sync(source["id"])

    meta = done["meta"]["predictions"]
    assert (meta["commit"], meta["files"], meta["added"], meta["tasks"]) == (second, 2, 2, 2)
    assert [(p["model_version"], p["result"][0]["value"]["choices"]) for p in predictions(labelstudio, a)] == \
        [(f"{pred_repo}@{first}", ["cat"]), (f"{pred_repo}@{second}", ["dog"])]
    # b's file did not change: its predictions come again under the new commit's version, except the
    # one that names its own version, which b has already
    assert [p["model_version"] for p in predictions(labelstudio, b)] == \
        [f"{pred_repo}@{first}", "resnet-1", f"{pred_repo}@{second}"]
    assert project_version(labelstudio, project["id"]) == f"{pred_repo}@{second}"
    assert labelstudio.sync(source["id"])["meta"]["predictions"]["added"] == 0
    assert [len(predictions(labelstudio, t)) for t in (a, b)] == [2, 3]
    counts = {t["id"]: t["total_predictions"] for t in labelstudio.tasks(project["id"])}
    assert (counts[a], counts[b]) == (2, 3)

    # A person picks a version in Settings > Model: later Syncs add predictions and keep that choice.
    labelstudio.api("PATCH", f"/api/projects/{project['id']}", json={"model_version": "resnet-1"}, expect=200)
    third = put(ls_pach, pred_repo, {"a.png.json": json.dumps(choice("cat", score=0.5))})
    done = labelstudio.sync(source["id"])
    assert done["meta"]["predictions"]["added"] == 2 and project_version(labelstudio, project["id"]) == "resnet-1"
    assert done["meta"]["predictions"]["message"].endswith(
        "; the project shows model version resnet-1 (Settings > Model)")
    assert predictions(labelstudio, a)[-1]["model_version"] == f"{pred_repo}@{third}"


def test_tasks_added_later_get_the_predictions_of_the_commit_already_applied(labelstudio, ls_pach):
    project, source, pred_repo, head = images_and_predictions(labelstudio, ls_pach, {"a.png": b"a"}, {
        "a.png.json": choice("cat"), "b.png.json": choice("dog"),
    })
    labelstudio.sync(source["id"])
    put(ls_pach, labelstudio.storage(source["id"])["repo"], {"b.png": b"b"})

    done = labelstudio.sync(source["id"])

    assert done["last_sync_count"] == 1 and done["meta"]["sync_mode"] == "incremental"
    assert (done["meta"]["predictions"]["files"], done["meta"]["predictions"]["added"]) == (1, 1)
    b = by_path(labelstudio.tasks(project["id"]))["b.png"]
    assert [(p["model_version"], p["result"]) for p in predictions(labelstudio, b["id"])] == \
        [(f"{pred_repo}@{head}", choice("dog")["result"])]


def test_bad_prediction_files_are_named_with_why_and_the_others_go_in(labelstudio, ls_pach):
    names = "good list notjson scalar empty from_name to_name type label score version".split()
    project, source, pred_repo, head = images_and_predictions(
        labelstudio, ls_pach, {f"{n}.png": n.encode() for n in names + ["many"]}, {
            "good.png.json": choice("cat"),
            "list.png.json": [choice("cat"), choice("dog", model_version="v2")],
            "notjson.png.json": "{not json",
            "scalar.png.json": "42",
            "empty.png.json": "[]",
            "from_name.png.json": {"result": [{"from_name": "nope", "to_name": "image", "type": "choices",
                                               "value": {"choices": ["cat"]}}]},
            "to_name.png.json": choice("cat", to_name="text"),
            "type.png.json": {"result": [{"from_name": "choice", "to_name": "image", "type": "labels",
                                          "value": {"labels": ["cat"]}}]},
            "label.png.json": [choice("cat"), choice("cow")],
            "score.png.json": choice("cat", score=1.5),
            "version.png.json": choice("cat", model_version=7),
        })

    done = labelstudio.sync(source["id"])

    assert done["status"] == "completed_with_errors", done
    assert done["last_sync_count"] == len(names) + 1  # every image is a task; the bad files only skipped
    meta = done["meta"]["predictions"]
    assert (meta["files"], meta["added"], meta["tasks"], meta["skipped"]) == (11, 3, 2, 9)
    assert meta["message"].endswith("; 9 file(s) skipped (View Logs)")
    log = done["traceback"]
    for reason in ('"notjson.png.json" is not JSON', '"scalar.png.json" holds neither a prediction',
                   '"empty.png.json" holds neither', "'from_name' 'nope' not found in configuration",
                   "'to_name' 'text' not found in configuration",
                   "Type 'labels' does not match expected type 'choices'",
                   '"label.png.json": prediction 1 does not fit the labeling config',
                   "valid labels: ['cat', 'dog']", "Score must be between 0.00 and 1.00 inclusive, got 1.5",
                   '"version.png.json": its prediction does not fit the labeling config: model_version must be '
                   "a non-empty text, not 7"):
        assert reason in log, (reason, log)
    assert "good.png.json" not in log and '"list.png.json"' not in log
    tasks = by_path(labelstudio.tasks(project["id"]))
    assert {p: t["total_predictions"] for p, t in tasks.items() if t["total_predictions"]} == \
        {"good.png": 1, "list.png": 2}
    # a second Sync of the same commit reads nothing again: the card keeps the first one's reasons
    assert labelstudio.sync(source["id"])["meta"]["predictions"]["files"] == 0


def test_predictions_beside_the_data_never_become_tasks(labelstudio, ls_pach):
    repo = make_repo(ls_pach)
    head = put(ls_pach, repo, {"a.png": b"a", "a.png.json": json.dumps(choice("cat")), "b.png": b"b"})
    project = labelstudio.create_project(label_config=IMAGE_CONFIG)
    source = labelstudio.create_source(project["id"], repo=repo, use_blob_urls=True, predictions_from=repo)
    files = labelstudio.api("POST", "/api/storages/pachyderm/files", expect=200, json={
        "project": project["id"], "repo": repo, "use_blob_urls": True, "predictions_from": repo}).json()
    assert [f["key"] for f in files["files"]] == ["a.png", "b.png"]  # the preview says the same

    done = labelstudio.sync(source["id"])

    assert done["last_sync_count"] == 2 and done["meta"]["predictions"]["added"] == 1
    tasks = by_path(labelstudio.tasks(project["id"]))
    assert set(tasks) == {"a.png", "b.png"}
    assert [p["model_version"] for p in predictions(labelstudio, tasks["a.png"]["id"])] == [f"{repo}@{head}"]
    put(ls_pach, repo, {"b.png.json": json.dumps(choice("dog"))})
    again = labelstudio.sync(source["id"])
    assert again["last_sync_count"] == 0 and len(labelstudio.tasks(project["id"])) == 2
    assert again["meta"]["predictions"]["added"] == 2  # the new commit's, for both tasks

    # JSON tasks: the predictions of t.json are t.json.json, and only those are not tasks
    tasks_repo = make_repo(ls_pach)
    put(ls_pach, tasks_repo, {"t.json": json.dumps({"text": "one"}), "u.json": json.dumps({"text": "two"}),
                              "t.json.json": json.dumps(choice("cat", to_name="text")),
                              "many.json": json.dumps([{"text": "x"}, {"text": "y"}]),
                              "many.json.json": json.dumps(choice("dog", to_name="text"))})
    project = labelstudio.create_project(label_config=TEXT_CONFIG)
    source = labelstudio.create_source(project["id"], repo=tasks_repo, predictions_from=f"{tasks_repo}@master")
    done = labelstudio.sync(source["id"])
    assert done["last_sync_count"] == 4 and done["meta"]["predictions"]["added"] == 1, done
    texts = {t["data"]["text"]: t["total_predictions"] for t in labelstudio.tasks(project["id"])}
    assert texts == {"one": 1, "two": 0, "x": 0, "y": 0}
    assert '"many.json.json": "many.json" holds 2 tasks' in done["traceback"]


def test_a_pinned_source_gets_the_predictions_branchs_newest(labelstudio, ls_pach):
    repo = make_repo(ls_pach)
    pinned = put(ls_pach, repo, {"a.png": b"a"})
    put(ls_pach, repo, {"b.png": b"b"})
    pred_repo = make_repo(ls_pach)
    head = put(ls_pach, pred_repo, {"a.png.json": json.dumps(choice("cat")), "b.png.json": json.dumps(choice("dog"))})
    project = labelstudio.create_project(label_config=IMAGE_CONFIG)
    source = labelstudio.create_source(project["id"], repo=repo, commit=pinned, use_blob_urls=True,
                                       predictions_from=f"default/{pred_repo}@master")
    done = labelstudio.sync(source["id"])
    assert done["last_sync_count"] == 1 and done["meta"]["predictions"]["added"] == 1
    [task] = labelstudio.tasks(project["id"])
    assert [p["model_version"] for p in predictions(labelstudio, task["id"])] == [f"{pred_repo}@{head}"]


def test_a_thousand_and_more_files_come_in_one_cluster_call(labelstudio, ls_pach, ls_mount_server):
    n = 1100
    project, source, pred_repo, head = images_and_predictions(
        labelstudio, ls_pach, {f"img/{i:04d}.png": b"x" for i in range(n)},
        {f"img/{i:04d}.png.json": choice("cat" if i % 2 else "dog", score=0.5) for i in range(n)},
        prefix="img")
    before = ls_mount_server.call("GET", "/stats").json()["calls"]

    done = labelstudio.sync(source["id"], timeout=600)

    calls = ls_mount_server.call("GET", "/stats").json()["calls"]
    assert done["status"] == "completed" and done["meta"]["predictions"]["added"] == n, done["meta"]
    assert calls.get("get_file_tar", 0) - before.get("get_file_tar", 0) == 1
    assert calls.get("get_file", 0) - before.get("get_file", 0) < 10
    totals = [t["total_predictions"] for t in labelstudio.tasks(project["id"])]
    assert totals == [1] * n


def test_predictions_from_is_checked_when_the_source_is_saved(labelstudio, ls_pach):
    repo = make_repo(ls_pach)
    put(ls_pach, repo, {"a.png": b"a"})
    pred_repo = make_repo(ls_pach)
    put(ls_pach, pred_repo, {"a.png.json": json.dumps(choice("cat"))})
    project = labelstudio.create_project(label_config=IMAGE_CONFIG)
    base = {"project": project["id"], "repo": repo, "use_blob_urls": True}
    for value, message in (
        ("no-such-repo@master", 'predictions_from: repo "no-such-repo" not found in Pachyderm project "default"'),
        (f"{pred_repo}@no-such-branch", f'predictions_from: branch "no-such-branch" not found in repo '
                                        f"default/{pred_repo} (branches: master)"),
        (f"no-such-project/{pred_repo}@master", 'predictions_from: Pachyderm project "no-such-project" not found'),
        (f"{pred_repo}@", "names no branch after '@': give it as [project/]repo@branch"),
        (f"{pred_repo} x@master", "is not a Pachyderm name"),
    ):
        for path in ("/api/storages/pachyderm/validate", "/api/storages/pachyderm"):
            answer = labelstudio.api("POST", path, json={**base, "predictions_from": value})
            assert answer.status_code == 400, (value, path, answer.text)
            assert message in error_text(answer), (value, answer.text)
    assert labelstudio.api("GET", f"/api/storages/pachyderm?project={project['id']}", expect=200).json() == []
    source = labelstudio.create_source(project["id"], repo=repo, use_blob_urls=True)
    answer = labelstudio.api("PATCH", f"/api/storages/pachyderm/{source['id']}", json={"predictions_from": "nope@x"})
    assert answer.status_code == 400 and 'repo "nope" not found' in error_text(answer), answer.text
    assert labelstudio.storage(source["id"])["predictions_from"] == ""
    labelstudio.api("PATCH", f"/api/storages/pachyderm/{source['id']}", json={"predictions_from": pred_repo},
                    expect=200)
    assert labelstudio.sync(source["id"])["meta"]["predictions"]["added"] == 1


def test_predictions_that_cannot_be_read_are_reported_and_the_tasks_still_come(labelstudio, ls_pach):
    project, source, pred_repo, head = images_and_predictions(labelstudio, ls_pach, {"a.png": b"a"}, {
        "a.png.json": choice("cat")})
    ls_pach.pfs.delete_repo(repo=pfs.Repo.from_uri(f"default/{pred_repo}"), force=True)

    done = labelstudio.sync(source["id"])

    assert done["status"] == "completed_with_errors" and done["last_sync_count"] == 1, done
    assert f"predictions from default/{pred_repo}@master could not be read" in done["traceback"]
    assert pred_repo in done["traceback"] and "not found" in done["traceback"], done["traceback"]
    assert done["meta"]["predictions"]["message"] == \
        f"predictions from default/{pred_repo}@master could not be read (View Logs)"
    assert done["predictions_commit"] is None
    # once the branch is back, the next Sync reads every task's file
    make_repo(ls_pach, pred_repo)
    again = put(ls_pach, pred_repo, {"a.png.json": json.dumps(choice("dog"))})
    done = labelstudio.sync(source["id"])
    assert done["status"] == "completed" and done["meta"]["predictions"]["added"] == 1, done
    [task] = labelstudio.tasks(project["id"])
    assert [p["model_version"] for p in predictions(labelstudio, task["id"])] == [f"{pred_repo}@{again}"]
