import grpc
from pachyderm_sdk.api import pfs

from .conftest import code_of, put, read


def test_branch_created_empty_has_an_empty_finished_head(pach, repo):
    pach.pfs.create_branch(branch=pfs.Branch.from_uri("images@dev"))
    info = pach.pfs.inspect_branch(branch=pfs.Branch.from_uri("images@dev"))
    head = pach.pfs.inspect_commit(commit=pfs.Commit(repo=repo, id=info.head.id))
    assert head.finished is not None and not head.parent_commit.id
    assert list(pach.pfs.list_file(file=pfs.File.from_uri("images@dev:/"))) == []


def test_branch_from_a_head_commit_sees_its_files(pach, repo):
    first = put(pach, "images@master", {"/a": b"1"})
    put(pach, "images@master", {"/b": b"2"})
    pach.pfs.create_branch(branch=pfs.Branch.from_uri("images@old"),
                           head=pfs.Commit(repo=repo, id=first.id))
    assert read(pach, "images@old:/a") == b"1"
    assert code_of(lambda: read(pach, "images@old:/b")) == grpc.StatusCode.NOT_FOUND
    names = [b.branch.name for b in pach.pfs.list_branch(repo=repo)]
    assert sorted(names) == ["master", "old"]


def test_missing_branch_and_bad_branch_names(pach, repo):
    assert code_of(lambda: pach.pfs.inspect_branch(branch=pfs.Branch.from_uri("images@nope"))) == \
        grpc.StatusCode.NOT_FOUND
    assert not pach.pfs.branch_exists(branch=pfs.Branch.from_uri("images@nope"))
    assert code_of(lambda: pach.pfs.create_branch(
        branch=pfs.Branch(repo=repo, name="bad name"))) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: pach.pfs.delete_branch(branch=pfs.Branch.from_uri("images@nope"))) == \
        grpc.StatusCode.NOT_FOUND


def test_delete_branch_keeps_commits(pach, repo):
    c = put(pach, "images@dev", {"/a": b"1"})
    pach.pfs.delete_branch(branch=pfs.Branch.from_uri("images@dev"))
    assert not pach.pfs.branch_exists(branch=pfs.Branch.from_uri("images@dev"))
    assert pach.pfs.commit_exists(commit=pfs.Commit(repo=repo, id=c.id))


def test_list_branch_on_missing_repo_is_not_found(pach):
    assert code_of(lambda: pach.pfs.list_branch(repo=pfs.Repo.from_uri("ghost"))) == \
        grpc.StatusCode.NOT_FOUND
