"""The embedded server gives back what nothing references: the real server, the real SDK, and
kill -9 of its process in the middle of a collection; every file that remains reads back byte-identical."""
import os
import time

import pytest
from pachyderm_sdk.api import pfs

from plugins.pfs import put_many

from .conftest import put, read

LARGE = 17 << 10  # above the inline limit: one blob file each


def content(tag: str, size: int = LARGE) -> bytes:
    return (tag.encode() * (size // len(tag) + 1))[:size]


def blob_count(data_dir: str) -> int:
    root, n = os.path.join(data_dir, "blobs"), 0
    for prefix in os.listdir(root):
        if len(prefix) == 2:
            try:
                n += len(os.listdir(os.path.join(root, prefix)))
            except FileNotFoundError:  # emptied and removed by the collector meanwhile
                pass
    return n


def data_size(data_dir: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(data_dir) for f in fs)


def wait_until(predicate, timeout=60.0, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"not reached within {timeout} s: {what}")


def keep_files() -> dict:
    files = {f"/big/{i}": content(f"keep{i}-") for i in range(150)}
    files.update({f"/small/{i}": b"small %d" % i for i in range(150)})
    files["/shared"] = content("shared by both repos")
    return files


def test_deleted_repos_squashed_and_dropped_commits_are_given_back(pfs_server):
    pach = pfs_server.client()
    data = pfs_server.data_dir
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("keep"))
    files = keep_files()
    put_many(pfs_server, "keep@master", files)
    base = pach.pfs.inspect_commit(commit=pfs.Commit.from_uri("keep@master")).commit.id
    wait_until(lambda: blob_count(data) == 151, what="the kept repo's blobs")
    wait_until(lambda: pfs_server.store.collector.runs >= 1, what="the start's collection and shrink")
    start = data_size(data)
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("gone"))
    put_many(pfs_server, "gone@master", {f"/f{i}": content(f"gone{i}-") for i in range(500)} | {"/s": files["/shared"]})
    put(pach, "keep@master", {"/big/0": content("overwritten")})
    second = put(pach, "keep@master", {"/big/1": content("dropped")})
    assert blob_count(data) == 151 + 500 + 2
    pach.pfs.delete_repo(repo=pfs.Repo.from_uri("gone"))
    pach.pfs.drop_commit_set(commit_set=pfs.CommitSet(id=second.id))
    pach.pfs.squash_commit_set(commit_set=pfs.CommitSet(id=base))  # its /big/0 is overwritten in its child
    wait_until(lambda: blob_count(data) == 151, what="deleted content freed")
    files["/big/0"] = content("overwritten")
    wait_until(lambda: data_size(data) <= start * 1.1, what=f"data size back to {start} (now {data_size(data)})")
    for path, body in files.items():
        assert read(pach, f"keep@master:{path}") == body


@pytest.mark.pfs_process
def test_kill_in_the_middle_of_a_collection_loses_nothing_and_finishes_after_restart(pfs_server):
    data = pfs_server.data_dir
    pach = pfs_server.client()
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("keep"))
    files = keep_files()
    put_many(pfs_server, "keep@master", files)
    kept = 151
    cut_short = 0
    for round_ in range(4):
        pach.pfs.create_repo(repo=pfs.Repo.from_uri("doomed"))
        doomed = {f"/f{i}": content(f"doomed{round_}-{i}-") for i in range(3000)}
        doomed["/shared"] = files["/shared"]
        put_many(pfs_server, "doomed@master", doomed)
        full = blob_count(data)
        assert full == kept + 3000
        pach.pfs.delete_repo(repo=pfs.Repo.from_uri("doomed"))
        deadline = time.monotonic() + 30
        while blob_count(data) == full and time.monotonic() < deadline:
            pass  # the collection has begun once the first blob goes
        pfs_server.kill()
        left = blob_count(data)
        cut_short += kept < left < full
        pfs_server.start()
        pach = pfs_server.client()
        for path, body in files.items():
            assert read(pach, f"keep@master:{path}") == body
        assert not pach.pfs.repo_exists(repo=pfs.Repo.from_uri("doomed"))
        wait_until(lambda: blob_count(data) == kept, what="the start's collection frees the rest")
        if cut_short:
            break
    assert cut_short, "no kill landed in the middle of a collection"
    for path, body in files.items():
        assert read(pach, f"keep@master:{path}") == body
