"""transaction_v2.API: calls made under a transaction are checked, stored, and run all together."""
import grpc
import pytest
from pachyderm_sdk.api import pfs, transaction

from .conftest import code_of, is_finished


def test_calls_in_a_transaction_run_only_at_finish_and_share_its_id(pach):
    txn = pach.transaction.start_transaction()  # the client now sends pach-transaction
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("a"))
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("b"))
    started = pach.pfs.start_commit(branch=pfs.Branch.from_uri("a@master"))
    pach.pfs.start_commit(branch=pfs.Branch.from_uri("b@master"))
    pach.pfs.finish_commit(commit=pfs.Commit.from_uri("b@master"))
    assert started.id == txn.id
    pach.transaction_id = None
    assert not pach.pfs.repo_exists(repo=pfs.Repo.from_uri("a"))  # nothing ran yet
    info = pach.transaction.inspect_transaction(transaction=txn)
    assert len(info.requests) == 5 and info.responses[2].commit.id == txn.id
    assert [t.transaction.id for t in pach.transaction.list_transaction().transaction_info] == [txn.id]
    done = pach.transaction.finish_transaction(transaction=txn)
    assert len(done.responses) == 5
    a = pach.pfs.inspect_commit(commit=pfs.Commit.from_uri("a@master"))
    b = pach.pfs.inspect_commit(commit=pfs.Commit.from_uri("b@master"))
    assert a.commit.id == b.commit.id == txn.id
    assert not is_finished(a) and is_finished(b)
    assert sorted(i.commit.repo.name for i in pach.pfs.inspect_commit_set(
        commit_set=pfs.CommitSet(id=txn.id))) == ["a", "b"]
    assert not pach.transaction.transaction_exists(txn)


def test_a_request_that_cannot_run_is_refused_when_appended(pach):
    txn = pach.transaction.start_transaction()
    assert code_of(lambda: pach.pfs.start_commit(branch=pfs.Branch.from_uri("ghost@master"))) == \
        grpc.StatusCode.NOT_FOUND
    pach.transaction_id = None
    assert list(pach.transaction.inspect_transaction(transaction=txn).requests) == []


def test_finish_is_all_or_nothing(pach):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("taken"))
    txn = pach.transaction.start_transaction()
    pach.pfs.delete_repo(repo=pfs.Repo.from_uri("taken"))
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("fresh"))
    pach.transaction_id = None
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("fresh"))  # meanwhile, outside it
    pach.pfs.delete_repo(repo=pfs.Repo.from_uri("fresh"))
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("fresh"))
    with pytest.raises(grpc.RpcError) as err:
        pach.transaction.finish_transaction(transaction=txn)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "error running request 2 of 2" in err.value.details()
    assert pach.pfs.repo_exists(repo=pfs.Repo.from_uri("taken"))  # request 1 was rolled back
    assert pach.transaction.transaction_exists(txn)  # as in pachd, a failed finish keeps it


def test_batch_transaction_runs_at_once_and_delete_transaction_drops_it(pach):
    info = pach.transaction.batch_transaction(requests=[
        transaction.TransactionRequest(create_repo=pfs.CreateRepoRequest(repo=pfs.Repo.from_uri("x"))),
        transaction.TransactionRequest(start_commit=pfs.StartCommitRequest(
            branch=pfs.Branch.from_uri("x@master")))])
    head = pach.pfs.inspect_branch(branch=pfs.Branch.from_uri("x@master")).head
    assert head.id == info.transaction.id == info.responses[1].commit.id
    txn = pach.transaction.start_transaction()
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("never"))
    pach.transaction_id = None
    pach.transaction.delete_transaction(transaction=txn)
    assert not pach.transaction.transaction_exists(txn)
    assert code_of(lambda: pach.transaction.finish_transaction(transaction=txn)) == grpc.StatusCode.NOT_FOUND
    assert not pach.pfs.repo_exists(repo=pfs.Repo.from_uri("never"))


def test_the_sdk_transaction_context_manager(pach):
    with pach.transaction.transaction() as txn:
        pach.pfs.create_repo(repo=pfs.Repo.from_uri("ctx"))
        pach.pfs.create_branch(branch=pfs.Branch.from_uri("ctx@dev"))
    assert pach.pfs.inspect_branch(branch=pfs.Branch.from_uri("ctx@dev")).head.id == txn.id
