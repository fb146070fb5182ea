import grpc
import pytest
from pachyderm_sdk.api import pfs


@pytest.fixture
def repo(pach):
    r = pfs.Repo.from_uri("images")
    pach.pfs.create_repo(repo=r)
    return r


def put(pach, uri: str, files: dict, description: str = ""):
    """One commit on `uri` (project/repo@branch) holding `files` ({path: bytes or None to delete})."""
    with pach.pfs.commit(branch=pfs.Branch.from_uri(uri), description=description) as c:
        for path, data in files.items():
            if data is None:
                c.delete_file(path=path)
            else:
                c.put_file_from_bytes(path=path, data=data)
    return c


def read(pach, uri: str) -> bytes:
    return b"".join(m.value for m in pach.pfs.get_file(file=pfs.File.from_uri(uri)))


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        result = call()
        if hasattr(result, "__iter__") and not isinstance(result, (bytes, str)):
            list(result)
    return info.value.code()


def is_finished(info) -> bool:
    """betterproto decodes an unset timestamp as the epoch."""
    return bool(info.finished) and info.finished.year > 1970
