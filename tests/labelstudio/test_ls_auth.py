"""The storage forms against a cluster with auth on (the embedded server with a root token, the
mount server holding a robot token in its pachctl config): a Target on a repo the token may only
read, and a Source on a repo it may not read, are refused in the form with the repo and the
missing permission; repos it may use work as usual; the token is in no answer or log."""
import json

import pytest
from ls_helpers import TEXT_CONFIG, error_text
from pachyderm_sdk.api import auth, pfs

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
