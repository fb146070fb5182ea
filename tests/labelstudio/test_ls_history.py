"""Per-task history ("who labeled that image?"): two annotators label a task over three Syncs of a
Pachyderm Target; the history answers who first labeled each annotation, who changed it and when,
and the source file@commit the task came from. Real Label Studio, mount server and embedded server."""
import json
import subprocess

import pytest
import requests
from ls_helpers import TEXT_CONFIG, commits, make_repo, put

from plugins.labelstudio import VENV_BIN

SECOND, SECOND_TOKEN = "second@example.com", "second-annotator-token-0123456789"
STRANGER, STRANGER_TOKEN = "history-stranger@example.com", "history-stranger-token-0123456789"

# Users made the way an admin would on the command line (signup is closed): a second annotator
# in the admin's organization, and a stranger with an organization of their own.
MAKE_USERS = f"""
import django
django.setup()
from organizations.models import Organization
from rest_framework.authtoken.models import Token
from users.models import User
admin = User.objects.get(email="admin@example.com")
second, _ = User.objects.get_or_create(email={SECOND!r})
admin.active_organization.add_user(second)
second.active_organization = admin.active_organization
second.save()
Token.objects.filter(user=second).delete()
Token.objects.create(user=second, key={SECOND_TOKEN!r})
stranger, made = User.objects.get_or_create(email={STRANGER!r})
if made:
    org = Organization.create_organization(created_by=stranger, title="Other team", legacy_api_tokens_enabled=True)
    stranger.active_organization = org
    stranger.save()
Token.objects.filter(user=stranger).delete()
Token.objects.create(user=stranger, key={STRANGER_TOKEN!r})
print("made")
"""


def result(label):
    return [{"from_name": "choice", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


@pytest.fixture(scope="module")
def users(labelstudio):
    done = subprocess.run([str(VENV_BIN / "python"), "-c", MAKE_USERS], env=labelstudio.env(), cwd=labelstudio.root,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "made" in done.stdout, done.stderr[-3000:]

    def as_user(token):
        http = requests.Session()
        http.headers["Authorization"] = f"Token {token}"
        return http

    return {"second": as_user(SECOND_TOKEN), "stranger": as_user(STRANGER_TOKEN)}


def call(labelstudio, http, method, path, expect, **kwargs):
    r = http.request(method, labelstudio.url + path, timeout=120, **kwargs)
    assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text[:2000]}"
    return r.json() if r.content else None


@pytest.fixture
def project_from_source(labelstudio, ls_pach):
    """A project whose two tasks came from a Pachyderm Source."""
    repo = make_repo(ls_pach)
    source_commit = put(ls_pach, repo, {f"t{i}.json": json.dumps({"text": f"text {i}"}) for i in range(2)})
    project = labelstudio.create_project(label_config=TEXT_CONFIG)
    source = labelstudio.create_source(project["id"], repo=repo)
    assert labelstudio.sync(source["id"])["last_sync_count"] == 2
    tasks = sorted(labelstudio.tasks(project["id"]), key=lambda t: t["data"]["pachyderm_path"])
    return project, tasks, repo, source_commit


@pytest.mark.parametrize("file_format,layout", [("annotation", "id"), ("task", "source_path")])
def test_history_says_who_labeled_the_task_who_changed_it_when_and_its_source(
        labelstudio, ls_pach, users, project_from_source, file_format, layout):
    project, tasks, source_repo, source_commit = project_from_source
    task, other = tasks
    labels = make_repo(ls_pach)
    target = labelstudio.create_target(project["id"], repo=labels, prefix="ann", file_format=file_format,
                                       layout=layout)
    labelstudio.wait_storage(target["id"], target=True)
    admin, second = labelstudio.session, users["second"]

    def sync():
        done = labelstudio.sync(target["id"], target=True)
        assert done["status"] == "completed" and done["meta"]["commit"], done
        return done["meta"]["commit"]

    a1 = call(labelstudio, admin, "POST", f"/api/tasks/{task['id']}/annotations", 201, json={"result": result("cat")})
    c1 = sync()
    call(labelstudio, second, "PATCH", f"/api/annotations/{a1['id']}", 200, json={"result": result("dog")})
    a2 = call(labelstudio, second, "POST", f"/api/tasks/{task['id']}/annotations", 201, json={"result": result("dog")})
    c2 = sync()
    call(labelstudio, admin, "PATCH", f"/api/annotations/{a2['id']}", 200, json={"result": result("cat")})
    call(labelstudio, admin, "POST", f"/api/tasks/{other['id']}/annotations", 201, json={"result": result("cat")})
    c3 = sync()
    finished = {c.commit.id: c.finished for c in commits(ls_pach, labels)}

    history = call(labelstudio, second, "GET", f"/api/pachyderm/tasks/{task['id']}/history", 200)

    assert history["task_id"] == task["id"] and history["message"] is None
    assert history["source"] == {"repo": f"default/{source_repo}", "path": "t0.json", "commit": source_commit,
                                 "storage": history["source"]["storage"]}
    by_id = {a["id"]: a for a in history["annotations"]}
    assert sorted(by_id) == [a1["id"], a2["id"]]
    first, later = by_id[a1["id"]], by_id[a2["id"]]
    assert first["by"] == "admin@example.com" and first["first_version"] == c1
    assert [(v["commit"], v["change"], v["by"]) for v in first["versions"]] == [
        (c1, "added", "admin@example.com"), (c2, "changed", SECOND)]
    assert later["by"] == SECOND and later["first_version"] == c2
    assert [(v["commit"], v["change"], v["by"]) for v in later["versions"]] == [
        (c2, "added", SECOND), (c3, "changed", "admin@example.com")]
    when = first["versions"][1]["finished"]
    assert when.startswith(finished[c2].strftime("%Y-%m-%dT%H:%M:%S")), (when, finished[c2])
    assert all(v["target"] == target["id"] for a in history["annotations"] for v in a["versions"])

    # the other task's history holds only its own annotation, first in the third version
    theirs = call(labelstudio, admin, "GET", f"/api/pachyderm/tasks/{other['id']}/history", 200)
    assert [(a["first_version"], [v["change"] for v in a["versions"]]) for a in theirs["annotations"]] == [
        (c3, ["added"])]

    if file_format == "task":  # the task's file lists each version's annotations: a delete shows
        labelstudio.api("DELETE", f"/api/annotations/{a1['id']}", expect=204)
        c4 = sync()
        history = call(labelstudio, admin, "GET", f"/api/pachyderm/tasks/{task['id']}/history", 200)
        gone = next(a for a in history["annotations"] if a["id"] == a1["id"])
        assert [(v["commit"], v["change"]) for v in gone["versions"]][-1] == (c4, "deleted")


def test_a_task_without_label_versions_answers_an_empty_list_with_the_reason(labelstudio, ls_pach,
                                                                             project_from_source):
    project, tasks, _, _ = project_from_source

    history = labelstudio.api("GET", f"/api/pachyderm/tasks/{tasks[0]['id']}/history", expect=200).json()
    assert history["annotations"] == [] and "no Pachyderm Target" in history["message"]

    labelstudio.annotate(tasks[0]["id"])
    target = labelstudio.create_target(project["id"], repo=make_repo(ls_pach), branch="never-synced")
    labelstudio.wait_storage(target["id"], target=True)
    history = labelstudio.api("GET", f"/api/pachyderm/tasks/{tasks[0]['id']}/history", expect=200).json()
    assert history["annotations"] == [] and "Sync commits what is staged" in history["message"]
    assert [t["id"] for t in history["targets"]] == [target["id"]]


def test_unknown_and_other_organizations_tasks_are_not_found(labelstudio, users, project_from_source):
    _, tasks, _, _ = project_from_source
    task_id = tasks[0]["id"]

    unknown = labelstudio.api("GET", "/api/pachyderm/tasks/987654321/history", expect=404).json()
    assert unknown == {"detail": "task 987654321 not found: no task with this id in a project of your organization"}
    stranger = call(labelstudio, users["stranger"], "GET", f"/api/pachyderm/tasks/{task_id}/history", 404)
    assert f"task {task_id} not found" in stranger["detail"] and "annotations" not in stranger
    anonymous = requests.get(f"{labelstudio.url}/api/pachyderm/tasks/{task_id}/history", timeout=60)
    assert anonymous.status_code == 401
    page = requests.get(f"{labelstudio.url}/pachyderm/tasks/{task_id}/history", timeout=60, allow_redirects=False)
    assert page.status_code == 302 and page.headers["Location"].startswith("/user/login/")
