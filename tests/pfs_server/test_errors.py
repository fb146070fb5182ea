"""Error codes and texts as pachd 2.12 words them (src/server/pfs/pfs.go), so clients that match
them (python-pachyderm's path_exists, pachctl users' scripts) behave as against pachd."""
import re

import grpc
import pytest
from pachyderm_sdk.api import pfs

from .conftest import put


def error_of(call) -> tuple:
    with pytest.raises(grpc.RpcError) as info:
        result = call()
        if hasattr(result, "__iter__") and not isinstance(result, (bytes, str)):
            list(result)
    return info.value.code(), info.value.details()


def test_file_not_found_text(pach, repo):
    c = put(pach, "images@master", {"/a": b"1"})
    code, text = error_of(lambda: pach.pfs.inspect_file(file=pfs.File.from_uri("images@master:/zz")))
    assert code == grpc.StatusCode.NOT_FOUND
    assert text == f"file /zz not found in repo default/images at commit {c.id}"
    assert re.match(r"^file .+ not found in repo .+ at commit .+$", text)


def test_branch_not_found_text(pach, repo):
    code, text = error_of(lambda: pach.pfs.inspect_branch(branch=pfs.Branch.from_uri("images@nope")))
    assert (code, text) == (grpc.StatusCode.NOT_FOUND, 'branch "nope" not found in repo default/images')
    assert re.match(r"^branch .+ not found in repo .+$", text)
    code, text = error_of(lambda: pach.pfs.inspect_commit(commit=pfs.Commit.from_uri("images@nope")))
    assert (code, text) == (grpc.StatusCode.NOT_FOUND, 'branch "nope" not found in repo default/images')


def test_repo_not_found_and_exists_texts(pach, repo):
    assert error_of(lambda: pach.pfs.inspect_repo(repo=pfs.Repo.from_uri("ghost"))) == \
        (grpc.StatusCode.NOT_FOUND, "repo default/ghost not found")
    assert error_of(lambda: pach.pfs.create_repo(repo=repo)) == \
        (grpc.StatusCode.ALREADY_EXISTS, "repo default/images already exists")


def test_project_not_found_and_exists_texts(pach):
    assert error_of(lambda: pach.pfs.inspect_project(project=pfs.Project(name="nope"))) == \
        (grpc.StatusCode.NOT_FOUND, 'project "nope" not found')
    assert error_of(lambda: pach.pfs.create_repo(repo=pfs.Repo.from_uri("nope/r"))) == \
        (grpc.StatusCode.NOT_FOUND, 'project "nope" not found')
    pach.pfs.create_project(project=pfs.Project(name="p"))
    assert error_of(lambda: pach.pfs.create_project(project=pfs.Project(name="p"))) == \
        (grpc.StatusCode.ALREADY_EXISTS, "project p already exists")


def test_commit_not_found_text(pach, repo):
    put(pach, "images@master", {"/a": b"1"})
    ghost = "0" * 32
    assert error_of(lambda: pach.pfs.inspect_commit(commit=pfs.Commit(repo=repo, id=ghost))) == \
        (grpc.StatusCode.NOT_FOUND, f"commit default/images@{ghost} not found")
    assert error_of(lambda: pach.pfs.inspect_commit(commit=pfs.Commit.from_uri("images@master^5"))) == \
        (grpc.StatusCode.NOT_FOUND, "commit default/images@master^5 not found")


def test_commit_finished_and_parent_unfinished_texts(pach, repo):
    c = pach.pfs.start_commit(branch=pfs.Branch.from_uri("images@master"))
    code, text = error_of(lambda: pach.pfs.start_commit(branch=pfs.Branch.from_uri("images@master")))
    assert text == f"parent commit default/images@{c.id} has not been finished"
    pach.pfs.finish_commit(commit=c)
    code, text = error_of(lambda: pach.pfs.finish_commit(commit=c))
    assert text == f"commit default/images@{c.id} has already finished"
    code, text = error_of(lambda: pach.pfs.put_file_from_bytes(commit=c, path="/x", data=b"1"))
    assert text == f"commit default/images@{c.id} has already finished"


def test_commit_set_texts(pach, repo):
    ghost = "0" * 32
    assert error_of(lambda: pach.pfs.drop_commit_set(commit_set=pfs.CommitSet(id=ghost))) == \
        (grpc.StatusCode.NOT_FOUND, f"no commits found for commitset {ghost}")
    a = put(pach, "images@master", {"/a": b"1"})
    put(pach, "images@master", {"/b": b"1"})
    code, text = error_of(lambda: pach.pfs.drop_commit_set(commit_set=pfs.CommitSet(id=a.id)))
    assert text == f"cannot drop a commit that has children: default/images@{a.id}"
    head = pach.pfs.inspect_branch(branch=pfs.Branch.from_uri("images@master")).head.id
    code, text = error_of(lambda: pach.pfs.squash_commit_set(commit_set=pfs.CommitSet(id=head)))
    assert text.startswith("cannot squash a commit that has no children as that would cause data "
                           "loss, use the drop operation instead: default/images@")


def test_get_file_of_a_directory_or_many_files_texts(pach, repo):
    put(pach, "images@master", {"/d/1": b"1", "/d/2": b"2"})
    assert error_of(lambda: pach.pfs.get_file(file=pfs.File.from_uri("images@master:/d")))[1] == \
        "cannot get directory or non-regular file. Use GetFileTAR instead"
    assert error_of(lambda: pach.pfs.get_file(file=pfs.File.from_uri("images@master:/d/*")))[1] == \
        "matched multiple files. Use GetFileTAR instead"
