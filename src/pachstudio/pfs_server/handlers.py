"""Every service's gRPC handlers in one list: PFS, PPS, auth, transactions, admin and version, each
call behind the auth gate (pachd's interceptor) and a PFS call carrying a transaction header joined
to that transaction, plus the gRPC health check."""

from __future__ import annotations

from typing import Optional

import grpc
from pachyderm_sdk.api import admin, auth, pfs, pps, transaction, version

from ..pfswire import parse_modify_file
from .auth.engine import Auth
from .auth.service import AuthService, gate, unsupported
from .pfs.service import PfsService
from .pfs.store import Store
from .rpc import generic_handlers, sdk_methods
from .transaction.service import METHODS as TXN_METHODS, TransactionService, transaction_of


def _health_check(raw: bytes, ctx) -> bytes:
    return b"\x08\x01"  # HealthCheckResponse{status: SERVING}


def _joinable(fn, name: str, txns: TransactionService):
    """A PFS call that joins the transaction named in its `pach-transaction` header, if any."""

    def call(req, ctx):
        txn_id = transaction_of(ctx)
        return fn(req, ctx) if txn_id is None else txns.append(txn_id, name, req)

    return call


def _gated(fn, method, auth_: Auth):
    """Every call passes the auth gate first (pachd's interceptor): the caller is known before
    the engine runs, and a refused token never reaches it."""
    if method.kind.endswith("_stream"):

        def stream(req, ctx):
            gate(auth_, method.service, method.name, ctx)
            yield from fn(req, ctx)

        return stream

    def unary(req, ctx):
        gate(auth_, method.service, method.name, ctx)
        return fn(req, ctx)

    return unary


def build_handlers(store: Store, auth_: Optional[Auth] = None, pps_service=None):
    """`pps_service` (a PpsService) serves pps_v2.API; without it pipelines answer UNIMPLEMENTED."""
    auth_ = auth_ if auth_ is not None else Auth(store.data_dir)
    service = PfsService(store, auth_)
    auth_service = AuthService(auth_, store)
    txns = TransactionService(service)
    impls: dict[str, dict] = {}
    targets = [(pfs, service), (admin, service), (version, service), (auth, auth_service), (transaction, txns)]
    if pps_service is not None:
        targets.append((pps, pps_service))
    for module, target in targets:
        for name, method in sdk_methods(module.__name__).items():
            if name == "ModifyFile":
                method.parse = parse_modify_file
            fn = getattr(target, name, None)
            if fn is None and target is auth_service:
                fn = unsupported(name)
            if fn is not None and name[0].isupper():
                if target is service and name in TXN_METHODS:
                    fn = _joinable(fn, name, txns)
                impls.setdefault(method.service, {})[name] = (method, _gated(fn, method, auth_))
    handlers = generic_handlers(impls)
    handlers.append(
        grpc.method_handlers_generic_handler(
            "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(_health_check)}
        )
    )
    return handlers, service
