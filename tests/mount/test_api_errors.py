"""Bad requests get 400 naming the field, unknown things 404, a refused token 403, conflicts 409,
an unreachable cluster 503 (without stopping the server); tokens never appear in answers or logs."""
import json
import os
import subprocess
import sys

import httpx
import pytest
from pachyderm_sdk.api import pfs

from conftest import mount, put
from plugins.mount import MountServer, free_port

TOKEN = "tok-0123456789abcdef-secret"
REFUSAL = "provided auth token is corrupted or has expired (try logging in again)"  # pachd's ErrBadToken


@pytest.fixture(scope="module")
def one_mount_server(shared_pfs_server, tmp_path_factory):
    """One server for the validation cases: none of them reaches the cluster."""
    ms = MountServer(tmp_path_factory.mktemp("validation"), shared_pfs_server.address).start()
    yield ms
    ms.stop()


@pytest.mark.parametrize("body, field", [
    ({"mounts": [{"name": "x"}]}, "mounts.0.repo"),
    ({"mounts": [{"name": "x", "repo": "images", "mode": "rwx"}]}, "mounts.0.mode"),
    ({"mounts": [{"name": "x", "repo": "bad/repo"}]}, "mounts.0.repo"),
    ({"mounts": []}, "mounts"),
    ({"mounts": [{"name": "../escape", "repo": "images"}]}, "mount name"),
    ({"mounts": [{"name": "a/b", "repo": "images"}]}, "mount name"),
    ({"mounts": [{"name": "x", "repo": "images", "mode": "rw", "commit": "abc"}]}, "commit"),
    ("not json", "body"),
])
def test_bad_mount_requests_are_400_with_the_field(one_mount_server, body, field):
    ms = one_mount_server
    if isinstance(body, str):
        r = ms.call("PUT", "/_mount", content=body, headers={"content-type": "application/json"})
    else:
        r = ms.call("PUT", "/_mount", body)
    assert r.status_code == 400, r.text
    assert field in r.json()["detail"]
    listing = ms.call("GET", "/mounts").json()
    assert (listing["mounted"], listing["failed"]) == ([], [])  # unmounted: the shared server's repos
    assert os.listdir(ms.mount_dir) == []


def test_unknown_things_are_404_and_bad_paths_400(mount_server, pach, images):
    first = put(pach, "images@master", {"/a": b"a"})
    for spec, words in [({"repo": "nope"}, "repo default/nope not found"),
                        ({"repo": images, "branch": "nobranch"}, "branch nobranch not found"),
                        ({"repo": images, "commit": "0" * 32}, f"commit {'0' * 32} not found"),
                        ({"repo": images, "project": "noproject"}, "not found")]:
        r = mount_server.call("PUT", "/_mount", {"mounts": [{"name": "x", **spec}]})
        assert r.status_code == 404 and words in r.json()["detail"], r.text
    for method, path, body in [("PUT", "/_commit", {"mount": "ghost"}),
                               ("PUT", "/_refresh", {"mount": "ghost"}),
                               ("PUT", "/_unmount", {"mounts": ["ghost"]}),
                               ("GET", "/mounts/ghost/files", None),
                               ("GET", "/mounts/ghost/staged", None)]:
        r = mount_server.call(method, path, body)
        assert r.status_code == 404 and "no mount named ghost" in r.json()["detail"], (path, r.text)
    mount(mount_server, "img", images)
    r = mount_server.call("GET", "/mounts/img/diff", params={"since": "f" * 32})
    assert r.status_code == 404 and "not found" in r.json()["detail"]
    assert mount_server.call("GET", "/mounts/img/diff").status_code == 400
    r = mount_server.call("GET", "/mounts/img/files", params={"prefix": "../../etc"})
    assert r.status_code == 400 and "prefix" in r.json()["detail"]
    r = mount_server.call("PUT", "/_commit", {"mount": "img"})
    assert r.status_code == 400 and "read-only" in r.json()["detail"]
    assert first


def test_health_repos_projects_and_openapi(mount_server, pach, images):
    put(pach, "images@master", {"/a": b"a"})
    assert mount_server.call("GET", "/health").json() == {"status": "running"}
    assert [p["project"] for p in mount_server.call("GET", "/projects").json()] == [{"name": "default"}]
    assert mount_server.call("GET", "/repos").json() == [
        {"project": "default", "repo": "images", "branches": ["master"], "authorization": "off"}]
    spec = mount_server.call("GET", "/openapi.json").json()
    assert {"/_mount", "/_commit", "/mounts/{name}/files"} <= set(spec["paths"])


def test_unreachable_cluster_is_503_and_the_token_never_shows(tmp_path):
    home = tmp_path / "home"
    (home / ".pachyderm").mkdir(parents=True)
    dead = f"grpc://127.0.0.1:{free_port()}"
    (home / ".pachyderm" / "config.json").write_text(json.dumps({"v2": {
        "active_context": "c", "contexts": {"c": {"pachd_address": dead, "session_token": TOKEN,
                                                  "project": "vision", "extra": 1}}}}))
    ms = MountServer(tmp_path / "m", None, env={"HOME": str(home)})
    ms.start()
    try:
        cfg = ms.call("GET", "/config").json()
        error = cfg.pop("cluster_error")
        assert cfg == {"cluster_status": "INVALID", "pachd_address": dead, "project": "vision"}
        assert error.startswith(f"Pachyderm cluster at {dead} unreachable while checking the cluster"), error
        r = ms.call("PUT", "/_mount", {"mounts": [{"name": "x", "repo": "images"}]})
        assert r.status_code == 503 and "unreachable" in r.json()["detail"], r.text
        assert ms.call("GET", "/repos").status_code == 503
        r = ms.call("PUT", "/config", {"pachd_address": "ftp://nowhere"})
        assert r.status_code == 400 and "pachd_address" in r.json()["detail"]
        everything = [ms.call("GET", p).text for p in ("/config", "/mounts", "/openapi.json",
                                                        "/stats")]
        assert not any(TOKEN in text for text in everything + [ms.log()])
    finally:
        ms.stop()
    assert ms.proc.returncode == 0


def test_malformed_config_stops_the_start_naming_the_file(tmp_path):
    home = tmp_path / "home"
    (home / ".pachyderm").mkdir(parents=True)
    path = home / ".pachyderm" / "config.json"
    path.write_text('{"v2": {"active_context": "c", "contexts": {"c": {"session_token": "%s", '
                    '"pachd_address": 7}}}}' % TOKEN)
    ms = MountServer(tmp_path / "m", None, env={"HOME": str(home)})
    with pytest.raises(RuntimeError) as info:
        ms.start()
    assert ms.proc.returncode == 1
    assert str(path) in str(info.value) and "pachd_address must be a string" in str(info.value)
    assert TOKEN not in ms.log()


def test_put_config_connects_a_server_started_without_cluster(tmp_path, pfs_server):
    ms = MountServer(tmp_path / "m", None, env={"HOME": str(tmp_path)})
    ms.start()
    try:
        assert ms.call("GET", "/config").json()["cluster_status"] == "INVALID"
        r = ms.call("PUT", "/_mount", {"mounts": [{"name": "x", "repo": "images"}]})
        assert r.status_code == 503 and "not connected to a cluster" in r.json()["detail"]
        r = ms.call("PUT", "/config", {"pachd_address": pfs_server.address})
        assert r.json()["cluster_status"] == "AUTH_DISABLED"
        assert [p["project"] for p in ms.call("GET", "/projects").json()] == [{"name": "default"}]
    finally:
        ms.stop()


def test_only_loopback_binding_is_allowed(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pachstudio.cli", "mount-server", "--mount-dir",
                        str(tmp_path / "p"), "--state", str(tmp_path / "s"), "--host", "0.0.0.0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "loopback only" in r.stderr
    assert httpx  # the client the fixtures use


def test_unix_socket_serves_the_api_and_sigterm_unmounts(tmp_path):
    import time
    sock, mount_dir = str(tmp_path / "ms.sock"), str(tmp_path / "pfs")
    proc = subprocess.Popen([sys.executable, "-m", "pachstudio.cli", "mount-server", "--mount-dir",
                             mount_dir, "--state", str(tmp_path / "s"), "--socket", sock],
                            env={**os.environ, "HOME": str(tmp_path)})
    try:
        client = httpx.Client(transport=httpx.HTTPTransport(uds=sock), base_url="http://ms")
        deadline = time.monotonic() + 60
        while not (os.path.exists(sock) and os.path.ismount(mount_dir)):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        assert client.get("/health").json() == {"status": "running"}
        assert client.get("/config").json()["cluster_status"] == "INVALID"
        proc.terminate()
        assert proc.wait(30) == 0
        assert not os.path.ismount(mount_dir)  # libfuse unmounted on SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run(["fusermount", "-u", "-z", mount_dir], capture_output=True)


@pytest.mark.parametrize("revoked", [False, True], ids=["wrong token", "revoked token"])
def test_a_refused_token_is_403_saying_log_in_again(auth_pfs_server, tmp_path, revoked):
    """The cluster's refusal (the embedded server with auth on, given a wrong or a revoked
    token) is a 403 that says what to do, not a conflict; the token is in neither the answers nor
    the log."""
    root = auth_pfs_server.root()
    root.pfs.create_repo(repo=pfs.Repo.from_uri("images"))
    token = TOKEN
    if revoked:
        token = root.auth.get_robot_token(robot="gone").token
        root.auth.revoke_auth_token(token=token)
    home = tmp_path / "mount"  # the mount server's HOME; its FUSE mount must not cover tmp_path/pfs, the server's data
    config = home / ".pachyderm" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"v2": {"active_context": "c", "contexts": {"c": {
        "pachd_address": auth_pfs_server.address, "session_token": token}}}}))
    ms = MountServer(home, "").start()
    try:
        answers = [ms.call("GET", "/repos"), ms.call("GET", "/projects"),
                   ms.call("PUT", "/_mount", {"mounts": [{"name": "x", "repo": "images"}]})]
        for r in answers:
            assert r.status_code == 403, r.text
            assert REFUSAL in r.json()["detail"] and "log in again" in r.json()["detail"]
            assert token not in r.text
    finally:
        ms.stop()
    assert token not in ms.log()
