"""transaction_v2.API: Pachyderm transactions, run as pachd runs them.

A transaction is a stored list of requests (CreateRepo, DeleteRepo, StartCommit, FinishCommit,
SquashCommitSet, CreateBranch, DeleteBranch). A PFS call carrying the `pach-transaction` metadata
header is not run: it is appended to that transaction after a dry run of the whole list with it
(so a request that cannot run is refused at once). FinishTransaction and BatchTransaction run the
list in one SQLite transaction: all or nothing, and every commit they make has the transaction's
id as its commit set id (pachd's txnCtx.CommitSetID = transaction id).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

import betterproto
from betterproto.lib.google.protobuf import Empty
from pachyderm_sdk.api import pfs, transaction

from ..errors import InvalidArgument, PfsError

HEADER = "pach-transaction"

# TransactionRequest field -> the PFS method that runs it, in the order pachd's runTransaction checks
REQUESTS = {
    "create_repo": "CreateRepo",
    "delete_repo": "DeleteRepo",
    "start_commit": "StartCommit",
    "finish_commit": "FinishCommit",
    "squash_commit_set": "SquashCommitSet",
    "create_branch": "CreateBranch",
    "delete_branch": "DeleteBranch",
}
METHODS = {method: field for field, method in REQUESTS.items()}


def transaction_of(ctx) -> Optional[str]:
    """The id in a call's `pach-transaction` header, if any."""
    if ctx is None:
        return None
    for key, value in ctx.invocation_metadata() or ():
        if key == HEADER and value:
            return value
    return None


class TransactionService:
    def __init__(self, pfs_service):
        self.pfs = pfs_service
        self.store = pfs_service.store

    # -- running ------------------------------------------------------------------------------
    def _request(self, req: transaction.TransactionRequest) -> tuple:
        """(field, PFS method, request) of the one request a TransactionRequest holds. betterproto
        gives unset message fields a default value, so what was on the wire decides."""
        req = transaction.TransactionRequest().parse(bytes(req))
        for field, method in REQUESTS.items():
            body = getattr(req, field, None)
            if body is not None and betterproto.serialized_on_wire(body):
                return field, method, body
        raise InvalidArgument("unrecognized transaction request type")

    def run(self, txn_id: str, requests: list, dry_run: bool = False) -> list:
        """Runs the requests in one write transaction; their TransactionResponses."""
        responses = []
        with self.store.transaction(txn_id, dry_run):
            for i, req in enumerate(requests):
                try:
                    field, method, body = self._request(req)
                    result = getattr(self.pfs, method)(body, None)
                except PfsError as e:
                    raise type(e)(f"error running request {i + 1} of {len(requests)}: {e}") from None
                responses.append(
                    transaction.TransactionResponse(commit=result if isinstance(result, pfs.Commit) else None)
                )
        return responses

    def append(self, txn_id: str, method: str, body):
        """A PFS call made under the `pach-transaction` header: checked by a dry run of the
        transaction with it, then stored; answers what the call would answer."""
        _, _, stored = self.store.get_transaction(txn_id)
        requests = [transaction.TransactionRequest().parse(r) for r in stored]
        requests.append(transaction.TransactionRequest(**{METHODS[method]: body}))
        responses = self.run(txn_id, requests, dry_run=True)
        self.store.set_transaction_requests(txn_id, [bytes(r) for r in requests])
        if method == "StartCommit":
            return responses[-1].commit
        if method == "DeleteRepo":
            return pfs.DeleteRepoResponse(deleted=True)
        return Empty()

    def _info(
        self, txn_id: str, started: float, requests: list, responses: Optional[list] = None
    ) -> transaction.TransactionInfo:
        if responses is None:  # what the stored requests answered when they were appended
            responses = []
            for r in requests:
                field, _, body = self._request(r)
                commit = None
                if field == "start_commit" and body.branch and body.branch.repo:
                    commit = pfs.Commit(repo=body.branch.repo, id=txn_id)
                responses.append(transaction.TransactionResponse(commit=commit))
        return transaction.TransactionInfo(
            transaction=transaction.Transaction(id=txn_id),
            requests=requests,
            responses=responses,
            started=datetime.fromtimestamp(started, timezone.utc),
            version=len(requests),
        )

    def _stored(self, txn_id: str) -> tuple:
        txn_id, started, raw = self.store.get_transaction(txn_id)
        return txn_id, started, [transaction.TransactionRequest().parse(r) for r in raw]

    @staticmethod
    def _id(txn: Optional[transaction.Transaction]) -> str:
        if txn is None or not txn.id:
            raise InvalidArgument("a transaction id is needed")
        return txn.id

    # -- transaction_v2.API -------------------------------------------------------------------
    def StartTransaction(self, req, ctx):
        txn_id, _ = self.store.start_transaction()
        return transaction.Transaction(id=txn_id)

    def InspectTransaction(self, req: transaction.InspectTransactionRequest, ctx):
        return self._info(*self._stored(self._id(req.transaction)))

    def ListTransaction(self, req, ctx):
        return transaction.TransactionInfos(
            transaction_info=[
                self._info(txn_id, started, [transaction.TransactionRequest().parse(r) for r in raw])
                for txn_id, started, raw in self.store.list_transactions()
            ]
        )

    def DeleteTransaction(self, req: transaction.DeleteTransactionRequest, ctx):
        self.store.delete_transaction(self._id(req.transaction))
        return Empty()

    def DeleteAll(self, req, ctx):
        for txn_id, _, _ in self.store.list_transactions():
            self.store.delete_transaction(txn_id)
        return Empty()

    def FinishTransaction(self, req: transaction.FinishTransactionRequest, ctx):
        txn_id, started, requests = self._stored(self._id(req.transaction))
        with self.store.transaction(txn_id):
            responses = self.run(txn_id, requests)
            self.store.delete_transaction(txn_id)
        return self._info(txn_id, started, requests, responses)

    def BatchTransaction(self, req: transaction.BatchTransactionRequest, ctx):
        txn_id, started = self.store.start_transaction()
        try:
            with self.store.transaction(txn_id):
                responses = self.run(txn_id, list(req.requests))
                self.store.delete_transaction(txn_id)
        except BaseException:
            self.store.delete_transaction(txn_id)
            raise
        return self._info(txn_id, started, list(req.requests), responses)
