"""The mount server against a cluster with auth on (the embedded server started with a root
token): `authorization` per repo as pachctl mount-server derives it, refused mounts, 401 without a
token, and /auth/_login_token, /auth/_logout, /auth/_login; the token never in an answer or log."""
import json

import pytest
from pachyderm_sdk.api import auth, pfs

from conftest import mount, put
from plugins.mount import MountServer
from plugins.pfs import ROOT_TOKEN


def with_config(tmp_path, address, token=None):
    """A mount server whose HOME holds a pachctl config.json with this token (or none). Its folder
    is its own: its FUSE mount must not cover the server's data folder, tmp_path/pfs."""
    home = tmp_path / "mount"
    config = home / ".pachyderm" / "config.json"
    config.parent.mkdir(parents=True)
    ctx = {"pachd_address": address, **({"session_token": token} if token else {})}
    config.write_text(json.dumps({"v2": {"active_context": "c", "contexts": {"c": ctx}}}))
    return MountServer(home, "").start(), config


@pytest.fixture
def cluster(auth_pfs_server):
    """Repos `rw`, `ro`, `hidden` and a robot with repoWriter, repoReader and nothing on them."""
    root = auth_pfs_server.root()
    for name in ("rw", "ro", "hidden"):
        root.pfs.create_repo(repo=pfs.Repo.from_uri(name))
        put(root, f"{name}@master", {"a.txt": b"a"})
    token = root.auth.get_robot_token(robot="labeler").token
    for name, role in (("rw", "repoWriter"), ("ro", "repoReader")):
        root.auth.modify_role_binding(resource=auth.Resource(type=auth.ResourceType.REPO, name=f"default/{name}"),
                                      principal="robot:labeler", roles=[role])
    return auth_pfs_server, token


def test_repos_and_mounts_report_authorization(cluster, tmp_path):
    server, token = cluster
    ms, _ = with_config(tmp_path, server.address, token)
    try:
        status = ms.call("GET", "/config").json()["cluster_status"]
        assert status == "AUTH_ENABLED", ms.log()[-3000:]
        repos = {r["repo"]: r for r in ms.call("GET", "/repos").json()}
        assert {k: v["authorization"] for k, v in repos.items()} == {"rw": "write", "ro": "read", "hidden": "none"}
        assert repos["rw"]["branches"] == ["master"] and repos["hidden"]["branches"] == []
        unmounted = {r["repo"]: r["authorization"] for r in ms.call("GET", "/mounts").json()["unmounted"]}
        assert unmounted == {"rw": "write", "ro": "read", "hidden": "none"}

        r = ms.call("PUT", "/_mount", {"mounts": [{"name": "h", "repo": "hidden"}]})
        assert r.status_code == 403 and "read permission on repo default/hidden" in r.json()["detail"], r.text
        r = ms.call("PUT", "/_mount", {"mounts": [{"name": "w", "repo": "ro", "mode": "rw"}]})
        assert r.status_code == 403 and "write access on repo default/ro" in r.json()["detail"], r.text
        assert mount(ms, "r", "ro")["state"] == "mounted"
        assert open(f"{ms.mount_dir}/r/a.txt", "rb").read() == b"a"
        mount(ms, "w", "rw", mode="rw")
        open(f"{ms.mount_dir}/w/b.txt", "wb").write(b"b")
        r = ms.call("PUT", "/_commit", {"mount": "w"})
        assert r.status_code == 200 and r.json()["added"] == 1, r.text
    finally:
        ms.stop()
    assert token not in ms.log()


def test_auth_off_reports_off(pfs_server, tmp_path):
    pfs_server.client().pfs.create_repo(repo=pfs.Repo.from_uri("open"))
    ms, _ = with_config(tmp_path, pfs_server.address)
    try:
        assert ms.call("GET", "/config").json()["cluster_status"] == "AUTH_DISABLED"
        assert [r["authorization"] for r in ms.call("GET", "/repos").json()] == ["off"]
        r = ms.call("PUT", "/auth/_login")
        assert r.status_code == 500 and "auth isn't activated" in r.json()["detail"]
    finally:
        ms.stop()


def test_login_token_and_logout(cluster, tmp_path):
    server, token = cluster
    ms, config = with_config(tmp_path, server.address)
    try:
        status = ms.call("GET", "/config").json()["cluster_status"]
        assert status == "AUTH_ENABLED", ms.log()[-3000:]
        for method, path in (("GET", "/repos"), ("GET", "/mounts"), ("GET", "/projects"),
                             ("PUT", "/_unmount_all"), ("PUT", "/auth/_logout")):
            r = ms.call(method, path)
            assert r.status_code == 401 and "user unauthenticated" in r.json()["detail"], (path, r.text)
            assert "_login_token" in r.json()["detail"]

        r = ms.call("PUT", "/auth/_login")
        assert r.status_code == 500 and "_login_token" in r.json()["detail"], r.text
        r = ms.call("PUT", "/auth/_login_token", {"token": "wrong-token-123"})
        assert r.status_code == 403 and "corrupted or has expired" in r.json()["detail"], r.text
        assert ms.call("GET", "/repos").status_code == 401  # the wrong token was not kept
        r = ms.call("PUT", "/auth/_login_token", {})
        assert r.status_code == 400 and '"token"' in r.json()["detail"]

        r = ms.call("PUT", "/auth/_login_token", {"token": token})
        assert r.status_code == 200, r.text
        assert r.json()["username"] == "robot:labeler" and token not in r.text
        assert json.loads(config.read_text())["v2"]["contexts"]["c"]["session_token"] == token  # as pachctl
        assert {r["repo"] for r in ms.call("GET", "/repos").json()} == {"rw", "ro", "hidden"}
        mount(ms, "w", "rw", mode="rw")
        open(f"{ms.mount_dir}/w/new.txt", "wb").write(b"n")

        r = ms.call("PUT", "/auth/_logout")
        assert r.status_code == 200, r.text
        assert b"n" == server.root().pfs.pfs_file(file=pfs.File.from_uri("rw@master:/new.txt")).read()
        assert "session_token" not in json.loads(config.read_text())["v2"]["contexts"]["c"]
        assert ms.call("GET", "/repos").status_code == 401
    finally:
        ms.stop()
    assert token not in ms.log() and ROOT_TOKEN not in ms.log()


def test_a_root_token_kept_in_the_config_survives_a_restart(cluster, tmp_path):
    server, _ = cluster
    ms, config = with_config(tmp_path, server.address)
    try:
        assert ms.call("PUT", "/auth/_login_token", {"token": ROOT_TOKEN}).json()["username"] == "pach:root"
        ms.restart()
        assert {r["authorization"] for r in ms.call("GET", "/repos").json()} == {"write"}
    finally:
        ms.stop()
