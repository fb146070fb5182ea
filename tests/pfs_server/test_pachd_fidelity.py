"""Behaviours read from pachd 2.12's sources, with the real SDK: SquashCommitSet of sets with open
commits (server_commit_set.go squashCommitSet/deleteCommit), DiffFile's directory entries with their
sizes (server_file.go diffFile over source.go's directory infos), and the pach-transaction header
on every call pachd runs through TxnEnv.WithTransaction."""
import grpc
import pytest
from pachyderm_sdk.api import pfs

from pachstudio.pfswire import add_file

from .conftest import put
from .test_errors import error_of


def test_squash_of_a_set_with_an_open_commit_answers_as_pachd(pach, repo):
    base = put(pach, "images@master", {"/a": b"1"})
    open_commit = pach.pfs.start_commit(branch=pfs.Branch.from_uri("images@master"))
    # the open commit has no children: pachd refuses with ErrSquashWithoutChildren, code UNKNOWN
    code, text = error_of(lambda: pach.pfs.squash_commit_set(commit_set=pfs.CommitSet(id=open_commit.id)))
    assert (code, text) == (grpc.StatusCode.UNKNOWN,
                            "cannot squash a commit that has no children as that would cause data loss, "
                            f"use the drop operation instead: default/images@{open_commit.id}")
    # a finished commit whose child is still open: deleteCommit's "until child commit ... is finished"
    code, text = error_of(lambda: pach.pfs.squash_commit_set(commit_set=pfs.CommitSet(id=base.id)))
    assert (code, text) == (grpc.StatusCode.UNKNOWN,
                            f"cannot squash until child commit default/images@{open_commit.id} is finished")
    assert pach.pfs.inspect_commit(commit=pfs.Commit(repo=repo, id=base.id)).commit.id == base.id, "nothing removed"
    pach.pfs.put_file_from_bytes(commit=open_commit, path="/b", data=b"22")
    pach.pfs.finish_commit(commit=open_commit)
    pach.pfs.squash_commit_set(commit_set=pfs.CommitSet(id=base.id))
    assert not pach.pfs.commit_exists(commit=pfs.Commit(repo=repo, id=base.id))
    files = {f.file.path for f in pach.pfs.walk_file(file=pfs.File(commit=open_commit, path="/"))}
    assert files == {"/", "/a", "/b"}


def test_diff_file_lists_the_directories_with_their_sizes(pach, repo):
    old = put(pach, "images@master", {"/cats/1.jpg": b"111", "/cats/2.jpg": b"2", "/dogs/1.jpg": b"d",
                                      "/top.txt": b"t"})
    put(pach, "images@master", {"/cats/2.jpg": b"22222", "/birds/1.jpg": b"bb", "/dogs/1.jpg": None})
    diff = list(pach.pfs.diff_file(new_file=pfs.File.from_uri("images@master:/"),
                                   old_file=pfs.File(commit=pfs.Commit(repo=repo, id=old.id), path="/")))

    def side(info):
        return None if info is None or not info.file.path else (info.file_type, info.size_bytes)

    got = {(d.new_file or d.old_file).file.path: (side(d.new_file), side(d.old_file)) for d in diff}
    D, F = pfs.FileType.DIR, pfs.FileType.FILE
    assert got == {
        "/": ((D, 3 + 5 + 2 + 1), (D, 3 + 1 + 1 + 1)),
        "/birds/": ((D, 2), None),
        "/birds/1.jpg": ((F, 2), None),
        "/cats/": ((D, 8), (D, 4)),
        "/cats/2.jpg": ((F, 5), (F, 1)),
        "/dogs/": (None, (D, 1)),
        "/dogs/1.jpg": (None, (F, 1)),
    }
    assert [(d.new_file or d.old_file).file.path for d in diff] == sorted(got), "in path order, as pachd's differ"
    # below one folder: that folder, not the ones above it
    cats = list(pach.pfs.diff_file(new_file=pfs.File.from_uri("images@master:/cats"),
                                   old_file=pfs.File(commit=pfs.Commit(repo=repo, id=old.id), path="/cats")))
    assert [(d.new_file.file.path, d.new_file.size_bytes) for d in cats] == [("/cats/", 8), ("/cats/2.jpg", 5)]


@pytest.fixture
def txn_pach(pach):
    yield pach
    pach.transaction_id = None


def test_every_call_pachd_runs_in_a_transaction_joins_it(txn_pach, repo):
    pach = txn_pach
    first = put(pach, "images@master", {"/a": b"1"})
    put(pach, "images@master", {"/b": b"2"})
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("old"))
    pach.pfs.create_branch(branch=pfs.Branch.from_uri("images@stale"), head=pfs.Commit(repo=repo, id=first.id))

    txn = pach.transaction.start_transaction()  # from here the SDK sends the pach-transaction header
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("fresh"))
    pach.pfs.create_branch(branch=pfs.Branch.from_uri("images@review"), head=pfs.Commit.from_uri("images@master"))
    pach.pfs.delete_branch(branch=pfs.Branch.from_uri("images@stale"))
    deleted = pach.pfs.delete_repo(repo=pfs.Repo.from_uri("old"))
    pach.pfs.squash_commit_set(commit_set=pfs.CommitSet(id=first.id))
    started = pach.pfs.start_commit(branch=pfs.Branch.from_uri("fresh@master"))
    pach.pfs.finish_commit(commit=started)
    pach.transaction_id = None

    assert started.id == txn.id, "a commit started in a transaction has the transaction's id (pachd)"
    assert deleted.deleted is True  # pachd's appendTransaction.DeleteRepo answers true
    info = pach.transaction.inspect_transaction(transaction=txn)
    kinds = [next(k for k, v in r.to_dict().items() if v is not None) for r in info.requests]
    assert kinds == ["createRepo", "createBranch", "deleteBranch", "deleteRepo", "squashCommitSet", "startCommit",
                     "finishCommit"]
    # nothing has run yet
    assert not pach.pfs.repo_exists(repo=pfs.Repo.from_uri("fresh"))
    assert pach.pfs.repo_exists(repo=pfs.Repo.from_uri("old"))
    assert pach.pfs.branch_exists(branch=pfs.Branch.from_uri("images@stale"))
    assert not pach.pfs.branch_exists(branch=pfs.Branch.from_uri("images@review"))
    assert pach.pfs.commit_exists(commit=pfs.Commit(repo=repo, id=first.id))

    pach.transaction.finish_transaction(transaction=txn)
    assert pach.pfs.inspect_commit(commit=pfs.Commit.from_uri("fresh@master")).finished.year > 1970
    assert not pach.pfs.repo_exists(repo=pfs.Repo.from_uri("old"))
    assert not pach.pfs.branch_exists(branch=pfs.Branch.from_uri("images@stale"))
    assert pach.pfs.branch_exists(branch=pfs.Branch.from_uri("images@review"))
    assert not pach.pfs.commit_exists(commit=pfs.Commit(repo=repo, id=first.id))


def test_reads_and_file_writes_under_the_header_run_at_once(txn_pach, repo, pfs_server):
    """pachd runs only its PfsWrites through the transaction: ModifyFile and reads ignore the header.
    (The SDK refuses file calls in a transaction on its own side, so the header is sent by hand.)"""
    pach = txn_pach
    txn = pach.transaction.start_transaction()
    header = [("pach-transaction", txn.id)]
    channel = grpc.insecure_channel(f"127.0.0.1:{pfs_server.port}")
    modify = channel.stream_unary("/pfs_v2.API/ModifyFile")
    modify(iter([bytes(pfs.ModifyFileRequest(set_commit=pfs.Commit.from_uri("images@master"))),
                 add_file("/now", b"n")]), metadata=header)
    assert [r.repo.name for r in pach.pfs.list_repo()] == ["images"]
    pach.transaction_id = None
    assert {f.file.path for f in pach.pfs.walk_file(file=pfs.File.from_uri("images@master:/"))} == {"/", "/now"}
    assert list(pach.transaction.inspect_transaction(transaction=txn).requests) == []
