import grpc
import pytest
from pachyderm_sdk.api import pfs

from plugins.pfs import commit_files as put, read  # noqa: F401 - used by the tests


@pytest.fixture
def repo(pach):
    r = pfs.Repo.from_uri("images")
    pach.pfs.create_repo(repo=r)
    return r


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        result = call()
        if hasattr(result, "__iter__") and not isinstance(result, (bytes, str)):
            list(result)
    return info.value.code()


def is_finished(info) -> bool:
    """betterproto decodes an unset timestamp as the epoch."""
    return bool(info.finished) and info.finished.year > 1970
