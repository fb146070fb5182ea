"""The fast tier's cluster: the embedded server in this process on a loopback port, the real SDK."""

import pytest
from pachyderm_sdk import Client

from pachstudio.cluster import ClusterConfig
from pachstudio.mount.remote import Remote
from pachstudio.pfs_server.grpc_server import Limits
from pachstudio.pfs_server.main import build_server


@pytest.fixture
def address(tmp_path):
    server, _, port = build_server(str(tmp_path / "pfs"), "127.0.0.1", 0, limits=Limits(workers=8))
    server.start()
    yield f"grpc://127.0.0.1:{port}"
    server.stop(0).wait()
    server.runner.stop()  # its scheduler would otherwise poll the store for the rest of the session


@pytest.fixture
def pach(address):
    client = Client.from_pachd_address(address)
    yield client
    client._channel.close()


@pytest.fixture
def remote(address):
    """The mount server's cluster client on that server."""
    return Remote(ClusterConfig(address=address, source="test"))
