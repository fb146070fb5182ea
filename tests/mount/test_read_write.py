"""Read-write mounts: writes through the filesystem are staged locally and `_commit` turns all of
them into exactly one commit, checked through the SDK."""
import os
import shutil

from conftest import commits, local_tree, mount, put, stats, tree


def rw_root(ms, name="out"):
    return os.path.join(ms.mount_dir, name)


def test_writes_commit_as_one_commit_with_exact_contents(mount_server, pach, images):
    base = put(pach, "images@master", {"/keep.txt": b"keep", "/old.txt": b"old",
                                       "/edit.txt": b"0123456789", "/dir/gone.txt": b"g",
                                       "/move/me.txt": b"moving"})
    mount(mount_server, "out", images, mode="rw")
    root = rw_root(mount_server)
    calls = stats(mount_server)
    with open(os.path.join(root, "new.txt"), "w") as f:
        f.write("brand new")
    open(os.path.join(root, "empty.txt"), "w").close()
    os.makedirs(os.path.join(root, "labels/2024"))
    with open(os.path.join(root, "labels/2024/1.json"), "wb") as f:
        f.write(b'{"label": "cat"}')
    with open(os.path.join(root, "edit.txt"), "r+b") as f:
        f.seek(3)
        f.write(b"XYZ")
    with open(os.path.join(root, "old.txt"), "r+b") as f:
        f.truncate(1)
    os.unlink(os.path.join(root, "dir/gone.txt"))
    os.rename(os.path.join(root, "move/me.txt"), os.path.join(root, "moved.txt"))
    expected = {"/keep.txt": b"keep", "/old.txt": b"o", "/edit.txt": b"012XYZ6789",
                "/new.txt": b"brand new", "/labels/2024/1.json": b'{"label": "cat"}',
                "/moved.txt": b"moving", "/empty.txt": b""}
    assert local_tree(root) == expected
    assert stats(mount_server).get("modify_file", 0) == calls.get("modify_file", 0)
    assert commits(pach, "images@master") == [base]  # nothing reached the cluster yet

    staged = mount_server.call("GET", "/mounts/out/staged").json()
    assert staged == {"added": ["empty.txt", "labels/2024/1.json", "moved.txt", "new.txt"],
                      "changed": ["edit.txt", "old.txt"],
                      "deleted": ["dir/gone.txt", "move/me.txt"]}
    r = mount_server.call("PUT", "/_commit", {"mount": "out", "description": "labels of today"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert (answer["added"], answer["changed"], answer["deleted"]) == (4, 2, 2)
    history = commits(pach, "images@master")
    assert history == [answer["commit"], base]
    info = pach.pfs.inspect_commit(commit=pach.pfs.inspect_branch(
        branch=__import__("pachyderm_sdk.api.pfs", fromlist=["Branch"]).Branch.from_uri(
            "images@master")).head)
    assert info.description == "labels of today" and info.finished
    assert tree(pach, "images@master") == expected
    assert stats(mount_server)["modify_file"] == calls.get("modify_file", 0) + 1

    assert mount_server.call("GET", "/mounts/out/staged").json() == {
        "added": [], "changed": [], "deleted": []}
    again = mount_server.call("PUT", "/_commit", {"mount": "out"}).json()
    assert again["commit"] is None and again["message"] == "nothing to commit"
    assert commits(pach, "images@master") == history
    assert local_tree(root) == expected


def test_folder_rename_and_removal(mount_server, pach, images):
    put(pach, "images@master", {"/a/1.txt": b"1", "/a/sub/2.txt": b"2", "/b/3.txt": b"3"})
    mount(mount_server, "out", images, mode="rw")
    root = rw_root(mount_server)
    os.rename(os.path.join(root, "a"), os.path.join(root, "c"))
    shutil.rmtree(os.path.join(root, "b"))
    os.mkdir(os.path.join(root, "b"))  # recreated empty: what was in it stays deleted
    assert os.listdir(os.path.join(root, "b")) == []
    assert local_tree(root) == {"/c/1.txt": b"1", "/c/sub/2.txt": b"2"}
    answer = mount_server.call("PUT", "/_commit", {"mount": "out"}).json()
    assert (answer["added"], answer["changed"], answer["deleted"]) == (2, 0, 3)
    assert tree(pach, "images@master") == {"/c/1.txt": b"1", "/c/sub/2.txt": b"2"}


def test_rw_mount_of_a_new_branch_creates_it(mount_server, pach, images):
    put(pach, "images@master", {"/src.png": b"png"})
    state = mount(mount_server, "out", images, mode="rw", branch="labels")
    assert state["branch"] == "labels"
    root = rw_root(mount_server)
    assert os.listdir(root) == []
    with open(os.path.join(root, "1.json"), "w") as f:
        f.write("{}")
    answer = mount_server.call("PUT", "/_commit", {"mount": "out"}).json()
    assert answer["added"] == 1
    assert tree(pach, "images@labels") == {"/1.json": b"{}"}
    assert tree(pach, "images@master") == {"/src.png": b"png"}


def test_mount_is_idempotent_and_a_different_spec_conflicts(mount_server, pach, images):
    put(pach, "images@master", {"/a": b"a"})
    first = mount(mount_server, "out", images, mode="rw")
    with open(os.path.join(rw_root(mount_server), "x"), "w") as f:
        f.write("x")
    again = mount(mount_server, "out", images, mode="rw")
    assert again["commit"] == first["commit"]
    assert os.path.exists(os.path.join(rw_root(mount_server), "x"))  # staging untouched
    r = mount_server.call("PUT", "/_mount", {"mounts": [{"name": "out", "repo": images}]})
    assert r.status_code == 409 and "unmount it first" in r.json()["detail"]


def test_unmount_with_staged_changes_commits_them_unless_discard(mount_server, pach, images):
    put(pach, "images@master", {"/a": b"a"})
    mount(mount_server, "out", images, mode="rw")
    with open(os.path.join(rw_root(mount_server), "x"), "w") as f:
        f.write("x")
    r = mount_server.call("PUT", "/_unmount", {"mounts": ["out"]})  # as pachctl: commits
    assert r.status_code == 200, r.text
    assert r.json()["mounted"] == [] and [u["repo"] for u in r.json()["unmounted"]] == [images]
    assert tree(pach, "images@master") == {"/a": b"a", "/x": b"x"}
    assert not os.path.exists(rw_root(mount_server))
    mount(mount_server, "out", images, mode="rw")
    with open(os.path.join(rw_root(mount_server), "w"), "w") as f:
        f.write("w")
    r = mount_server.call("PUT", "/_unmount", {"mounts": ["out"], "commit": True})
    assert r.status_code == 200, r.text
    assert tree(pach, "images@master") == {"/a": b"a", "/w": b"w", "/x": b"x"}

    mount(mount_server, "out", images, mode="rw")
    with open(os.path.join(rw_root(mount_server), "y"), "w") as f:
        f.write("y")
    r = mount_server.call("PUT", "/_unmount_all", {"discard": True})
    assert r.status_code == 200 and r.json()["mounted"] == []
    mount(mount_server, "out", images, mode="rw")
    assert sorted(os.listdir(rw_root(mount_server))) == ["a", "w", "x"]  # y was discarded
    assert len(commits(pach, "images@master")) == 3
