"""Read-only mounts: files committed through the SDK appear under <mount-dir>/<name>/ and read
exactly; reads fetch only what they need and are cached; branch mounts follow and refresh."""
import concurrent.futures
import mmap
import os
import subprocess

import pytest

from conftest import local_tree, mount, ndjson, put, stats


def test_files_committed_through_the_sdk_read_exactly(mount_server, pach, images):
    files = {"/a.txt": b"alpha", "/dir/b.bin": bytes(range(256)) * 100, "/dir/sub/c.json": b"{}",
             "/empty": b""}
    commit = put(pach, "images@master", files)
    state = mount(mount_server, "img", images)
    assert state["commit"] == commit and state["mode"] == "ro"
    root = os.path.join(mount_server.mount_dir, "img")
    assert state["mountpoint"] == root
    assert local_tree(root) == files
    assert sorted(os.listdir(root)) == ["a.txt", "dir", "empty"]
    assert os.path.isdir(os.path.join(root, "dir", "sub"))
    assert os.stat(os.path.join(root, "dir/b.bin")).st_size == 25600
    found = subprocess.run(["find", root, "-type", "f"], capture_output=True, text=True, check=True)
    assert sorted(p[len(root):] for p in found.stdout.split()) == sorted(files)
    assert not os.path.exists(os.path.join(root, "missing.txt"))


def test_writes_to_a_read_only_mount_are_refused(mount_server, pach, images):
    put(pach, "images@master", {"/a.txt": b"alpha"})
    mount(mount_server, "img", images)
    root = os.path.join(mount_server.mount_dir, "img")
    for attempt in (lambda: open(os.path.join(root, "new.txt"), "w"),
                    lambda: open(os.path.join(root, "a.txt"), "a"),
                    lambda: os.unlink(os.path.join(root, "a.txt")),
                    lambda: os.mkdir(os.path.join(root, "d"))):
        try:
            attempt()
            raise AssertionError("a write to a read-only mount succeeded")
        except OSError as e:
            assert e.errno == 30  # EROFS
    assert open(os.path.join(root, "a.txt"), "rb").read() == b"alpha"


@pytest.mark.pfs_process  # kills the cluster's process
def test_random_access_reads_fetch_only_what_they_need_and_are_cached(mount_server, pfs_server,
                                                                     pach, images):
    size = 48 << 20
    data = bytes((i * 7) % 251 for i in range(1 << 20)) * 48
    put(pach, "images@master", {"/big.bin": data})
    mount(mount_server, "img", images)
    path = os.path.join(mount_server.mount_dir, "img", "big.bin")
    with open(path, "rb", buffering=0) as f:
        f.seek(40 << 20)
        assert f.read(100) == data[40 << 20:(40 << 20) + 100]
        f.seek(12345)
        assert f.read(10) == data[12345:12355]
        f.seek(size - 5)
        assert f.read(100) == data[-5:]
    cached = mount_server.call("GET", "/stats").json()["cache_bytes"]
    assert cached <= 16 << 20, f"three small reads brought {cached} bytes"

    with open(path, "rb") as f:
        assert f.read() == data
    gets = stats(mount_server)["get_file"]
    pfs_server.kill()  # a second read must not need the cluster
    with open(path, "rb") as f:
        assert f.read() == data
    assert stats(mount_server)["get_file"] == gets


@pytest.mark.pfs_process  # a page fault on the mapped file holds this process's GIL while the mount server reads
def test_large_cold_files_read_the_same_through_every_access_pattern(mount_server, pach, images):
    """A large file not yet cached is opened with direct_io (1 MiB requests, served from the
    received bytes): readers at once with different buffer sizes, a MAP_PRIVATE mmap while it
    is cold, and a MAP_SHARED mmap once it is cached all see exactly the committed bytes."""
    data = {name: os.urandom((20 << 20) + 12345) for name in ("a.bin", "b.bin")}
    put(pach, "images@master", {f"/{name}": value for name, value in data.items()})
    mount(mount_server, "img", images)
    root = os.path.join(mount_server.mount_dir, "img")

    def read_all(name, size):
        with open(os.path.join(root, name), "rb", buffering=0) as f:
            return b"".join(iter(lambda: f.read(size), b""))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(read_all, ["a.bin"] * 4, [4096, 100_000, 1 << 20, 3 << 20]))
    assert all(r == data["a.bin"] for r in results)

    with open(os.path.join(root, "b.bin"), "rb") as f:
        with mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ) as m:
            assert m[(7 << 20) - 3:(7 << 20) + 5] == data["b.bin"][(7 << 20) - 3:(7 << 20) + 5]
            assert m[:] == data["b.bin"]
    with open(os.path.join(root, "a.bin"), "rb") as f:
        with mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ) as m:
            assert m[:] == data["a.bin"]


def test_a_paths_mount_shows_only_those_paths(mount_server, pach, images):
    """pachctl's `paths`: a read-only mount of part of a repo shows the listed files and folders
    and the folders leading to them, nothing else; a read-write mount and escaping paths are
    refused with the reason."""
    files = {"/a.txt": b"a", "/b.txt": b"b", "/dir/sub/c.json": b"{}", "/dir/other.txt": b"o",
             "/keep/x": b"x", "/keep/y/z": b"z"}
    put(pach, "images@master", files)
    state = mount(mount_server, "part", images, paths=["/a.txt", "dir/sub", "/keep/"])
    assert state["paths"] == ["/a.txt", "/dir/sub", "/keep"]
    root = os.path.join(mount_server.mount_dir, "part")
    shown = {"/a.txt": b"a", "/dir/sub/c.json": b"{}", "/keep/x": b"x", "/keep/y/z": b"z"}
    assert local_tree(root) == shown
    assert sorted(os.listdir(os.path.join(root, "dir"))) == ["sub"]
    for hidden in ("b.txt", "dir/other.txt"):
        assert not os.path.exists(os.path.join(root, hidden))
    listed = ndjson(mount_server.call("GET", "/mounts/part/files", params={"recursive": "true"}))
    assert sorted("/" + f["path"] for f in listed) == sorted(shown)
    assert mount_server.call("GET", "/mounts").json()["mounted"][0]["paths"] == state["paths"]

    for bad, field in (({"mode": "rw", "paths": ["/a.txt"]}, "read-only"),
                       ({"paths": ["../../etc"]}, "paths"), ({"paths": ["a\x00b"]}, "paths")):
        r = mount_server.call("PUT", "/_mount", {"mounts": [{"name": "bad", "repo": "images", **bad}]})
        assert r.status_code == 400 and field in r.json()["detail"], r.text


def test_pinned_commit_mount_keeps_showing_that_commit(mount_server, pach, images):
    first = put(pach, "images@master", {"/a.txt": b"v1", "/gone.txt": b"x"})
    put(pach, "images@master", {"/a.txt": b"v2", "/gone.txt": None, "/new.txt": b"n"})
    state = mount(mount_server, "old", images, commit=first)
    assert state["commit"] == first
    root = os.path.join(mount_server.mount_dir, "old")
    assert local_tree(root) == {"/a.txt": b"v1", "/gone.txt": b"x"}
    refreshed = mount_server.call("PUT", "/_refresh", {"mount": "old"}).json()
    assert refreshed["commit"] == first
    assert local_tree(root) == {"/a.txt": b"v1", "/gone.txt": b"x"}


def test_branch_mount_reports_commits_behind_and_refresh_moves_it(mount_server, pach, images):
    first = put(pach, "images@master", {"/a.txt": b"v1"})
    mount(mount_server, "img", images)
    second = put(pach, "images@master", {"/a.txt": b"v2"})
    third = put(pach, "images@master", {"/b.txt": b"b"})
    state = mount_server.call("GET", "/mounts").json()["mounted"][0]
    assert state["commit"] == first and state["latest_commit"] == third
    assert state["how_many_commits_behind"] == 2
    root = os.path.join(mount_server.mount_dir, "img")
    assert open(os.path.join(root, "a.txt"), "rb").read() == b"v1"
    state = mount_server.call("PUT", "/_refresh", {"mount": "img"}).json()
    assert state["commit"] == third and state["how_many_commits_behind"] == 0
    assert local_tree(root) == {"/a.txt": b"v2", "/b.txt": b"b"}
    diff = ndjson(mount_server.call("GET", f"/mounts/img/diff?since={first}"))
    assert sorted((d["path"], d["change"], d["size"]) for d in diff) == [
        ("a.txt", "changed", 2), ("b.txt", "added", 1)]
    assert second


def test_files_listing_and_diff_streams(mount_server, pach, images):
    first = put(pach, "images@master", {"/img/1.png": b"1", "/img/2.png": b"22",
                                        "/img/deep/3.png": b"333", "/top.txt": b"t"})
    second = put(pach, "images@master", {"/img/1.png": None, "/img/2.png": b"two",
                                         "/img/4.png": b"4444"})
    mount(mount_server, "img", images)
    everything = ndjson(mount_server.call("GET", "/mounts/img/files"))
    assert sorted((f["path"], f["size"]) for f in everything) == [
        ("img/2.png", 3), ("img/4.png", 4), ("img/deep/3.png", 3), ("top.txt", 1)]
    assert {f["commit"] for f in everything} == {second}
    flat = ndjson(mount_server.call("GET", "/mounts/img/files",
                                    params={"prefix": "img", "recursive": "false"}))
    assert sorted(f["path"] for f in flat) == ["img/2.png", "img/4.png"]
    deep = ndjson(mount_server.call("GET", "/mounts/img/files", params={"prefix": "/img/"}))
    assert sorted(f["path"] for f in deep) == ["img/2.png", "img/4.png", "img/deep/3.png"]
    assert ndjson(mount_server.call("GET", "/mounts/img/files", params={"prefix": "nope"})) == []
    diff = ndjson(mount_server.call("GET", f"/mounts/img/diff?since={first}"))
    assert sorted((d["path"], d["change"]) for d in diff) == [
        ("img/1.png", "deleted"), ("img/2.png", "changed"), ("img/4.png", "added")]
    assert ndjson(mount_server.call("GET", f"/mounts/img/diff?since={second}")) == []
