"""The storage forms against a cluster with auth on (the embedded server with a root token, the
mount server holding a robot token in its pachctl config): a Target on a repo the token may only
read, and a Source on a repo it may not read, are refused in the form with the repo and the
missing permission; repos it may use work as usual; the token is in no answer or log."""
import json

import pytest
from ls_helpers import TEXT_CONFIG, error_text
from pachyderm_sdk.api import auth, pfs, pps

from plugins.labelstudio import LabelStudio
from plugins.mount import MountServer
from plugins.pfs import ROOT_TOKEN, PfsServer, commit_files

ROLES = {"writable": "repoWriter", "readable": "repoReader", "hidden": None}


@pytest.fixture(scope="module")
def robot_token(tmp_path_factory):
    server = PfsServer(tmp_path_factory.mktemp("auth-pfs") / "pfs", root_token=ROOT_TOKEN).start()
    root = server.root()
    token = root.auth.get_robot_token(robot="labelstudio").token
    for repo, role in ROLES.items():
        root.pfs.create_repo(repo=pfs.Repo.from_uri(repo))
        commit_files(root, f"{repo}@master", {"t.json": json.dumps({"text": repo}).encode()})
        if role:
            root.auth.modify_role_binding(resource=auth.Resource(type=auth.ResourceType.REPO, name=f"default/{repo}"),
                                          principal="robot:labelstudio", roles=[role])
    yield server, token
    server.kill()


@pytest.fixture(scope="module")
def auth_ls(tmp_path_factory, robot_token):
    server, token = robot_token
    root = tmp_path_factory.mktemp("auth-mount")
    config = root / ".pachyderm" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"v2": {"active_context": "lab", "contexts": {"lab": {
        "pachd_address": server.address, "session_token": token}}}}))
    ms = MountServer(root, None).start(timeout=60)
    ls = LabelStudio(tmp_path_factory.mktemp("auth-ls"), ms.api, ms.mount_dir).start()
    yield ls, ms, token
    ls.stop()
    ms.stop()


def post(ls, kind, **fields):
    project = ls.create_project(label_config=TEXT_CONFIG)
    return ls.api("POST", f"/api/storages/{kind}", json={"project": project["id"], "title": "x", **fields})


def test_a_target_on_a_repo_the_token_may_only_read_is_refused(auth_ls):
    ls, _, token = auth_ls
    r = post(ls, "export/pachyderm", repo="readable")
    assert r.status_code == 400, r.text
    text = error_text(r)
    assert "default/readable" in text and "write permission (REPO_WRITE)" in text and "may only read" in text, text
    assert token not in r.text


def test_a_source_on_a_repo_without_access_is_refused(auth_ls):
    ls, _, token = auth_ls
    r = post(ls, "pachyderm", repo="hidden")
    assert r.status_code == 400, r.text
    text = error_text(r)
    assert "default/hidden" in text and "read permission (REPO_READ)" in text and "no access" in text, text
    r = post(ls, "export/pachyderm", repo="hidden")
    assert r.status_code == 400 and "write permission (REPO_WRITE)" in error_text(r), r.text


def test_predictions_from_a_repo_the_token_may_not_read_are_refused(auth_ls, robot_token):
    ls, _, token = auth_ls
    server, _ = robot_token
    r = post(ls, "pachyderm", repo="readable", predictions_from="hidden@master")
    assert r.status_code == 400, r.text
    text = error_text(r)
    assert "repo default/hidden: the cluster token has no access to it; predictions_from of a Source needs read " \
        "permission (REPO_READ)" in text, text
    assert token not in r.text
    prediction = {"result": [{"from_name": "choice", "to_name": "text", "type": "choices",
                              "value": {"choices": ["cat"]}}]}
    commit_files(server.root(), "writable@master", {"t.json.json": json.dumps(prediction).encode()})
    project = ls.create_project(label_config=TEXT_CONFIG)
    source = ls.create_source(project["id"], repo="readable", predictions_from="writable@master")
    done = ls.sync(source["id"])
    assert done["status"] == "completed" and done["meta"]["predictions"]["added"] == 1, done


def test_repos_the_token_may_use_work(auth_ls, robot_token):
    ls, ms, token = auth_ls
    server, _ = robot_token
    project = ls.create_project(label_config=TEXT_CONFIG)
    source = ls.create_source(project["id"], repo="readable")
    assert ls.sync(source["id"])["last_sync_count"] == 1
    [task] = ls.tasks(project["id"])
    ls.annotate(task["id"])
    target = ls.create_target(project["id"], repo="writable", branch="labels")
    assert ls.wait_storage(target["id"], target=True)["status"] == "completed"
    done = ls.sync(target["id"], target=True)
    assert done["status"] == "completed" and done["meta"]["commit"], done
    files = [f.file.path for f in server.root().pfs.walk_file(file=pfs.File.from_uri("writable@labels:/"))]
    assert any(p.endswith(".json") for p in files), files
    assert token not in ls.log() and token not in ms.log()


def test_the_jobs_of_a_sync_the_token_may_not_see_say_so(auth_ls, robot_token):
    """A pipeline (root's) reads the Target's branch; the robot may write the labels but has no
    role on the pipeline's output repo: the jobs endpoint says it may not see them, no error."""
    ls, ms, token = auth_ls
    server, _ = robot_token
    spec = {"pipeline": {"name": "root-counts"}, "transform": {"image": "debian", "cmd": ["true"]},
            "input": {"pfs": {"repo": "writable", "branch": "pipelined", "glob": "/"}}}
    server.root().pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))
    project = ls.create_project(label_config=TEXT_CONFIG)
    source = ls.create_source(project["id"], repo="readable")
    assert ls.sync(source["id"])["last_sync_count"] == 1
    ls.annotate(ls.tasks(project["id"])[0]["id"])
    target = ls.create_target(project["id"], repo="writable", branch="pipelined")
    assert ls.wait_storage(target["id"], target=True)["status"] == "completed"
    commit = ls.sync(target["id"], target=True)["meta"]["commit"]
    r = ls.api("GET", f"/api/storages/export/pachyderm/{target['id']}/jobs")
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["commit"] == commit and answer["state"] == "hidden" and answer["jobs"] == [], answer
    assert answer["message"].startswith("you may not see the pipelines: ")
    assert "robot:labelstudio is not authorized" in answer["message"], answer
    assert token not in r.text and token not in ls.log() and token not in ms.log()
    # the job itself ran: root sees it
    job = server.root().pps.inspect_job(job=pps.Job(pipeline=pps.Pipeline(name="root-counts"), id=commit), wait=True)
    assert job.state == pps.JobState.JOB_SUCCESS


def test_without_a_token_the_form_says_to_log_in(auth_ls):
    """Runs last in this module: the mount server logs out (pachctl's /auth/_logout), so it holds
    no token while the cluster has auth on; the form says what to do."""
    ls, ms, token = auth_ls
    assert ms.call("PUT", "/auth/_logout").status_code == 200
    r = post(ls, "pachyderm", repo="readable")
    assert r.status_code == 400, r.text
    text = error_text(r)
    assert "user unauthenticated" in text and "pachctl auth login" in text and "session_token" in text, text
    assert token not in r.text
