"""A file's history (mount/file_history.py) in one process: the embedded server on a loopback
port, the mount server's cluster client, the real SDK writing the commits."""

import pytest
from pachyderm_sdk.api import pfs

from pachstudio.mount import file_history
from pachstudio.mount.errors import BadRequest, NotFound
from plugins.pfs import commit_files

pytestmark = pytest.mark.fast


@pytest.fixture
def cluster(pach, remote):
    return pach, remote


def test_a_file_moved_between_names_shows_as_a_delete_and_an_add_in_one_commit(cluster):
    pach, remote = cluster
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))
    c1 = commit_files(pach, "labels@master", {"/l/7.json": b"a"}).id
    c2 = commit_files(pach, "labels@master", {"/l/7.json": None, "/l/img/cat.jpg.json": b"a"}).id
    commit_files(pach, "labels@master", {"/l/other.json": b"b"})

    answer = file_history.history(remote, "default", "labels", "master", ["l/7.json", "l/img/cat.jpg.json"], True)

    assert answer["commits"] == 3
    assert [(c["commit"], c["path"], c["change"], c["content"]) for c in answer["changes"]] == [
        (c1, "l/7.json", "added", "a"),
        (c2, "l/7.json", "deleted", None),
        (c2, "l/img/cat.jpg.json", "added", "a"),
    ]
    assert file_history.read_file(remote, file_history.repo_msg("default", "labels"), c1, "l/7.json") == b"a"


def test_folders_climbing_paths_and_unknown_branches_are_refused(cluster):
    pach, remote = cluster
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))
    c1 = commit_files(pach, "labels@master", {"/l/7.json": b"a"}).id

    with pytest.raises(BadRequest, match="trailing '/'"):
        file_history.history(remote, "default", "labels", "master", ["l/"])
    with pytest.raises(BadRequest, match="at most 100 paths"):
        file_history.history(remote, "default", "labels", "master", [f"{i}.json" for i in range(101)])
    with pytest.raises(NotFound, match="nope"):
        file_history.history(remote, "default", "labels", "nope", ["l/7.json"])
    with pytest.raises(NotFound, match="folder"):
        file_history.read_file(remote, file_history.repo_msg("default", "labels"), c1, "l")


def test_a_version_too_big_to_answer_inline_has_no_content_and_is_read_apart(cluster):
    pach, remote = cluster
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))
    big = b"x" * (file_history.MAX_CONTENT + 1)
    c1 = commit_files(pach, "labels@master", {"/t.json": big}).id

    (change,) = file_history.history(remote, "default", "labels", "master", ["t.json"], True)["changes"]

    assert change["content"] is None and change["size"] == len(big)
    assert file_history.read_file(remote, file_history.repo_msg("default", "labels"), c1, "t.json") == big
