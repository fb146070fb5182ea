"""The mount server's version routes' work (`mount/diffs.py`) against the embedded server in one
process, through the real SDK: DiffFile under a prefix names changes without reading a file, only
the asked files are read, and a commit of another branch or repo is refused with the reason."""

import uuid

import pytest
from pachyderm_sdk.api import pfs

from pachstudio.mount import diffs
from pachstudio.mount.errors import BadRequest, NotFound
from plugins.pfs import commit_files

pytestmark = pytest.mark.fast


def test_diff_under_a_prefix_reads_no_file_and_read_gets_only_the_asked_ones(pach, remote):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))
    old = commit_files(pach, "labels@master", {"/ann/1.json": b"one", "/ann/2.json": b"two", "/other/x": b"x"})
    new = commit_files(
        pach,
        "labels@master",
        {"/ann/2.json": b"TWO!", "/ann/3.json": b"3", "/ann/1.json": None, "/other/x": b"changed"},
    )

    rows = diffs.diff_rows(remote, "default", "labels", old.id, new.id, "ann")

    assert {(r.path, r.change, r.size, r.old_size) for r in rows} == {
        ("ann/1.json", "deleted", 3, 3),
        ("ann/2.json", "changed", 4, 3),
        ("ann/3.json", "added", 1, None),
    }
    assert remote.calls["get_file"] == 0
    assert diffs.diff_rows(remote, "default", "labels", new.id, new.id, "ann") == []

    texts = diffs.read_files(remote, "default", "labels", old.id, ["ann/1.json", "ann/3.json"])
    assert [(t.path, t.data) for t in texts] == [("ann/1.json", "one"), ("ann/3.json", None)]
    assert remote.calls["get_file"] == 2


def test_a_commit_of_another_branch_or_repo_or_none_is_refused(pach, remote):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("elsewhere"))
    mine = commit_files(pach, "labels@master", {"/a": b"a"})
    side = commit_files(pach, "labels@side", {"/b": b"b"})
    foreign = commit_files(pach, "elsewhere@master", {"/c": b"c"})

    assert diffs.commit_on_branch(remote, "default", "labels", "master", mine.id).commit.id == mine.id
    with pytest.raises(NotFound, match=f"commit {side.id} of default/labels is not on branch master"):
        diffs.commit_on_branch(remote, "default", "labels", "master", side.id)
    with pytest.raises(NotFound, match=f"commit {foreign.id} not found in repo default/labels"):
        diffs.commit_on_branch(remote, "default", "labels", "master", foreign.id)
    unknown = uuid.uuid4().hex
    with pytest.raises(NotFound, match=f"to: commit {unknown} not found"):
        diffs.diff_rows(remote, "default", "labels", mine.id, unknown, "")
    with pytest.raises(BadRequest, match="from: 'master' is not a commit id"):
        diffs.diff_rows(remote, "default", "labels", "master", mine.id, "")
    with pytest.raises(BadRequest, match="not a path inside the repo"):
        diffs.read_files(remote, "default", "labels", mine.id, ["../etc/passwd"])
