"""Staged changes are never lost: across restarts and crashes of the mount server, writes that
arrive during an upload, and a cluster that dies in the middle of a commit."""
import json
import os
import threading
import time

import httpx
import pytest
from pachyderm_sdk.api import pfs

from conftest import commits, local_tree, mount, put, tree

BIG = 96 << 20  # large enough that an upload takes a moment on this machine


def big_payload(seed: int) -> bytes:
    return bytes((i * seed) % 256 for i in range(1 << 20)) * (BIG >> 20)


def write(path: str, data: bytes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def commit_in_background(ms):
    result = {}

    def run():
        try:
            result["response"] = ms.call("PUT", "/_commit", {"mount": "out"}, timeout=300)
        except httpx.HTTPError as e:  # the mount server was killed under the request
            result["error"] = e
    t = threading.Thread(target=run)
    t.start()
    return t, result


def wait_committing(ms, thread, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and thread.is_alive():
        states = ms.call("GET", "/mounts").json()["mounted"]
        if any(s["name"] == "out" and s["state"] == "committing" for s in states):
            return True
        time.sleep(0.01)
    return False


def wait_upload_in_flight(pfs_server, thread, timeout=60):
    """The embedded server spools an incoming file under blobs/tmp until the stream ends: a file
    there means the ModifyFile is half-way."""
    tmp = os.path.join(pfs_server.data_dir, "blobs", "tmp")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and thread.is_alive():
        try:
            if any(os.path.getsize(os.path.join(tmp, n)) > (1 << 20) for n in os.listdir(tmp)):
                return True
        except OSError:
            pass
        time.sleep(0.002)
    return False


def test_staged_changes_survive_restart_and_kill(mount_server, pach, images):
    base = put(pach, "images@master", {"/a.txt": b"a", "/b.txt": b"b"})
    mount(mount_server, "out", images, mode="rw")
    root = os.path.join(mount_server.mount_dir, "out")
    write(os.path.join(root, "new/1.json"), b"one")
    os.unlink(os.path.join(root, "a.txt"))
    mount_server.restart()
    assert local_tree(root) == {"/b.txt": b"b", "/new/1.json": b"one"}  # mounted again by itself
    write(os.path.join(root, "new/2.json"), b"two")
    mount_server.kill()
    mount_server.start()
    assert local_tree(root) == {"/b.txt": b"b", "/new/1.json": b"one", "/new/2.json": b"two"}
    answer = mount_server.call("PUT", "/_commit", {"mount": "out"}).json()
    assert (answer["added"], answer["deleted"]) == (2, 1)
    assert commits(pach, "images@master") == [answer["commit"], base]
    assert tree(pach, "images@master") == {"/b.txt": b"b", "/new/1.json": b"one",
                                           "/new/2.json": b"two"}


def test_writes_during_a_commit_go_to_the_next_commit(mount_server, pach, images):
    put(pach, "images@master", {"/seed": b"s"})
    mount(mount_server, "out", images, mode="rw")
    root = os.path.join(mount_server.mount_dir, "out")
    first = big_payload(3)
    write(os.path.join(root, "big.bin"), first)
    write(os.path.join(root, "small.txt"), b"version 1")
    thread, result = commit_in_background(mount_server)
    assert wait_committing(mount_server, thread), "the upload finished before a write could race it"
    write(os.path.join(root, "small.txt"), b"version 2, written during the upload")
    write(os.path.join(root, "during.txt"), b"new during the upload")
    with open(os.path.join(root, "big.bin"), "r+b") as f:
        f.write(b"CHANGED")
    thread.join()
    answer = result["response"].json()
    assert answer["added"] == 2, answer
    head = answer["commit"]
    committed = tree(pach, f"images@{head}")
    assert committed["/small.txt"] == b"version 1" and committed["/big.bin"] == first
    assert "/during.txt" not in committed
    assert mount_server.call("GET", "/mounts/out/staged").json() == {
        "added": ["during.txt"], "changed": ["big.bin", "small.txt"], "deleted": []}
    second = mount_server.call("PUT", "/_commit", {"mount": "out"}).json()
    assert (second["added"], second["changed"]) == (1, 2)
    final = tree(pach, "images@master")
    assert final["/small.txt"] == b"version 2, written during the upload"
    assert final["/big.bin"] == b"CHANGED" + first[7:]
    assert final["/during.txt"] == b"new during the upload"


@pytest.mark.pfs_process  # kills the cluster's process, then starts it again
def test_cluster_killed_during_commit_keeps_staging_and_branch(mount_server, pfs_server, pach,
                                                              images):
    base = put(pach, "images@master", {"/seed": b"s"})
    mount(mount_server, "out", images, mode="rw")
    root = os.path.join(mount_server.mount_dir, "out")
    payload = big_payload(5)
    write(os.path.join(root, "big.bin"), payload)
    write(os.path.join(root, "label.json"), b"{}")
    thread, result = commit_in_background(mount_server)
    assert wait_upload_in_flight(pfs_server, thread), "the upload ended before the kill"
    pfs_server.kill()
    thread.join()
    failed = result["response"]
    assert failed.status_code == 503, failed.text
    assert "unreachable" in failed.json()["detail"]
    with open(os.path.join(root, "big.bin"), "rb") as f:  # staged files need no cluster
        assert f.read() == payload
    assert mount_server.call("GET", "/mounts/out/staged").json()["added"] == [
        "big.bin", "label.json"]

    pfs_server.start()
    pach = pfs_server.client()
    deadline = time.monotonic() + 60  # the cut commit is dropped once the cluster answers
    while commits(pach, "images@master") != [base] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert commits(pach, "images@master") == [base]
    assert mount_server.call("GET", "/mounts/out/staged").json()["added"] == [
        "big.bin", "label.json"]
    answer = mount_server.call("PUT", "/_commit", {"mount": "out"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["added"] == 2
    assert local_tree(root) == {"/seed": b"s", "/big.bin": payload, "/label.json": b"{}"}
    history = commits(pach, "images@master")
    assert history == [answer.json()["commit"], base]  # the cut upload left nothing behind
    assert tree(pach, "images@master") == {"/seed": b"s", "/big.bin": payload,
                                           "/label.json": b"{}"}


def kill_mid_upload(mount_server, pfs_server, pach, images, seed: int):
    """Stages a big file on a rw mount over one seed commit and kills -9 the mount server while
    `_commit` uploads it: (seed commit, mount folder, the big file's bytes)."""
    base = put(pach, "images@master", {"/seed": b"s"})
    mount(mount_server, "out", images, mode="rw")
    root = os.path.join(mount_server.mount_dir, "out")
    payload = big_payload(seed)
    write(os.path.join(root, "big.bin"), payload)
    thread, _ = commit_in_background(mount_server)
    assert wait_upload_in_flight(pfs_server, thread), "the upload ended before the kill"
    mount_server.kill()
    thread.join()
    return base, root, payload


def test_mount_server_crash_during_commit_is_cleaned_up_first(mount_server, pfs_server, pach,
                                                              images):
    base, root, payload = kill_mid_upload(mount_server, pfs_server, pach, images, seed=7)
    mount_server.start()
    assert local_tree(root) == {"/seed": b"s", "/big.bin": payload}
    write(os.path.join(root, "after.txt"), b"after the crash")
    answer = mount_server.call("PUT", "/_commit", {"mount": "out"})
    assert answer.status_code == 200, answer.text
    history = commits(pach, "images@master")
    assert history == [answer.json()["commit"], base]
    assert tree(pach, "images@master") == {"/seed": b"s", "/big.bin": payload,
                                           "/after.txt": b"after the crash"}


def test_crash_between_start_commit_and_recording_it_is_cleaned_up(mount_server, pfs_server,
                                                                   pach, images):
    """The commit a crash leaves in the instant between StartCommit and the mount server noting
    its id is found (open branch head, recorded parent and description) and dropped.
    No real crash hits that instant on demand: this kills a real upload, then writes the state
    file as it was a moment earlier (the one simulated part of the test)."""
    base, root, payload = kill_mid_upload(mount_server, pfs_server, pach, images, seed=5)
    meta_path = os.path.join(mount_server.state_dir, "staging", "out", "meta.json")
    with open(meta_path) as f:
        meta = json.load(f)
    open_id = meta.pop("open_commit")
    assert open_id and commits(pach, "images@master")[0] == open_id
    info = pach.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"images@{open_id}"))
    meta["starting"] = {"parent": base, "description": info.description}
    with open(meta_path, "w") as f:
        json.dump(meta, f)

    mount_server.start()
    assert local_tree(root) == {"/seed": b"s", "/big.bin": payload}
    answer = mount_server.call("PUT", "/_commit", {"mount": "out"})
    assert answer.status_code == 200, answer.text
    assert commits(pach, "images@master") == [answer.json()["commit"], base]
    assert tree(pach, "images@master") == {"/seed": b"s", "/big.bin": payload}
