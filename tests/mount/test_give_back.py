"""Mounts given back: an unmount that keeps a read-write mount holding staged changes (its user is
gone, the changes are not lost) and says so in /mounts and mounts.json across a restart; read-only
mounts asked with an idle time unmounted when unused, and made again on the next mount request."""
import json
import os
import time

from conftest import commits, mount, put, tree


def mounted(ms) -> dict:
    return {m["name"]: m for m in ms.call("GET", "/mounts").json()["mounted"]}


def kernel_mounts(ms) -> set:
    """Folders of the FUSE mount that the kernel shows (one a mount)."""
    return set(os.listdir(ms.mount_dir))


def saved(ms) -> dict:
    with open(os.path.join(ms.state_dir, "mounts.json")) as f:
        return {m["name"]: m for m in json.load(f)}


def test_keep_staged_keeps_a_mount_with_changes_until_committed(mount_server, pach, images):
    put(pach, "images@master", {"/a": b"a"})
    mount(mount_server, "clean", images, mode="rw", branch="clean")
    mount(mount_server, "busy", images, mode="rw", branch="busy")
    with open(os.path.join(mount_server.mount_dir, "busy", "label.json"), "w") as f:
        f.write('{"label": 1}')
    r = mount_server.call("PUT", "/_unmount", {"mounts": ["clean", "busy"], "keep_staged": True})
    assert r.status_code == 200, r.text
    now = {m["name"]: m for m in r.json()["mounted"]}
    assert "clean" not in now and "clean" not in kernel_mounts(mount_server)
    assert now["busy"]["status"].startswith("kept: ") and "1 staged changes" in now["busy"]["status"]
    assert saved(mount_server)["busy"]["kept"] is True
    mount_server.restart()  # kept, and still says why, after a restart
    assert mounted(mount_server)["busy"]["status"].startswith("kept: ")
    before = commits(pach, "images@busy")
    r = mount_server.call("PUT", "/_commit", {"mount": "busy"})
    assert r.status_code == 200 and r.json()["added"] == 1, r.text
    assert "busy" not in mounted(mount_server) and "busy" not in saved(mount_server)  # committed: gone
    assert len(commits(pach, "images@busy")) == len(before) + 1
    assert tree(pach, "images@busy")["/label.json"] == b'{"label": 1}'


def test_a_kept_mount_is_discarded_on_request_or_adopted_by_a_new_user(mount_server, pach, images):
    put(pach, "images@master", {"/a": b"a"})
    for name in ("dropme", "adoptme"):
        mount(mount_server, name, images, mode="rw", branch=name)
        with open(os.path.join(mount_server.mount_dir, name, "x"), "w") as f:
            f.write(name)
    mount_server.call("PUT", "/_unmount", {"mounts": ["dropme", "adoptme"], "keep_staged": True})
    r = mount_server.call("PUT", "/_unmount", {"mounts": ["dropme"], "discard": True})
    assert r.status_code == 200 and "dropme" not in {m["name"] for m in r.json()["mounted"]}
    assert commits(pach, "images@dropme") and "/x" not in tree(pach, "images@dropme")
    state = mount(mount_server, "adoptme", images, mode="rw", branch="adoptme")  # the same spec again
    assert state["status"] == "" and saved(mount_server)["adoptme"]["kept"] is False
    with open(os.path.join(mount_server.mount_dir, "adoptme", "x")) as f:
        assert f.read() == "adoptme"  # the staged change is the new user's


def test_idle_read_only_mounts_are_unmounted_and_come_back(mount_server, pach, images):
    commit = put(pach, "images@master", {"/f": b"at this commit"})
    mount(mount_server, "view", images, commit=commit, idle=2)
    mount(mount_server, "stays", images)
    assert "view" in kernel_mounts(mount_server)
    deadline = time.monotonic() + 30
    while "view" in mounted(mount_server) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "view" not in mounted(mount_server) and "view" not in kernel_mounts(mount_server)
    assert "view" not in saved(mount_server) and "stays" in mounted(mount_server)
    mount(mount_server, "view", images, commit=commit, idle=2)
    with open(os.path.join(mount_server.mount_dir, "view", "f"), "rb") as f:
        assert f.read() == b"at this commit"


def test_a_used_view_is_not_reclaimed(mount_server, pach, images):
    commit = put(pach, "images@master", {"/f": b"x"})
    mount(mount_server, "view", images, commit=commit, idle=3)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        assert os.path.exists(os.path.join(mount_server.mount_dir, "view", "f"))  # a use every 0.5 s
        time.sleep(0.5)
    assert "view" in mounted(mount_server)


def test_idle_is_only_for_read_only_mounts(mount_server, images):
    r = mount_server.call("PUT", "/_mount", {"mounts": [{"name": "w", "repo": images, "mode": "rw", "idle": 5}]})
    assert r.status_code == 400 and "idle" in r.json()["detail"]
