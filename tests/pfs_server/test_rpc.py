"""The server's method table comes from the SDK's generated stub objects."""
from betterproto.lib.google.protobuf import BytesValue, Empty
from pachyderm_sdk.api import pfs, transaction

from pachstudio.pfs_server.rpc import sdk_methods


def test_method_table_read_from_the_stub_objects():
    methods = sdk_methods(pfs.__name__)
    m = methods["ModifyFile"]
    assert (m.kind, m.service, m.request, m.response) == \
        ("stream_unary", "pfs_v2.API", pfs.ModifyFileRequest, Empty)
    m = methods["GetFile"]
    assert (m.kind, m.request, m.response) == ("unary_stream", pfs.GetFileRequest, BytesValue)
    assert (methods["InspectCommit"].request, methods["InspectCommit"].response) == \
        (pfs.InspectCommitRequest, pfs.CommitInfo)
    txn = sdk_methods(transaction.__name__)
    assert txn["FinishTransaction"].service == "transaction_v2.API"
    assert txn["FinishTransaction"].response is transaction.TransactionInfo
