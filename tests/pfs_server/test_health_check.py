"""The image's health check of the PFS server (entrypoint/grpc_health.py) against a real server
whose gRPC workers are all taken: an open port is not enough, a real call must be answered."""

import pathlib
import signal
import subprocess
import sys

import grpc
import pytest
from pachyderm_sdk.api import pfs

from plugins.pfs import PfsServer

from .conftest import put

CHECK = pathlib.Path(__file__).resolve().parents[2] / "entrypoint" / "grpc_health.py"


def check(server) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECK), f"127.0.0.1:{server.port}", "2"], capture_output=True,
                          text=True, timeout=60)  # fmt: skip


@pytest.fixture
def small_server(tmp_path):
    server = PfsServer(tmp_path / "pfs", env={"PACHSTUDIO_PFS_WORKERS": "4"}).start()
    yield server
    server.stop(signal.SIGKILL)


def test_the_health_check_fails_while_every_worker_is_held_and_passes_again(small_server):
    pach = small_server.client()
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("watched"))
    put(pach, "watched@master", {"/a": b"1"})
    assert check(small_server).returncode == 0
    request = bytes(pfs.SubscribeCommitRequest(repo=pfs.Repo.from_uri("watched"), branch="master"))
    held = []
    for _ in range(2):  # a connection carries at most half of the workers
        own = [("grpc.use_local_subchannel_pool", 1)]  # a connection of its own, not one shared by channels
        channel = grpc.insecure_channel(f"127.0.0.1:{small_server.port}", options=own)
        for _ in range(2):
            call = channel.unary_stream("/pfs_v2.API/SubscribeCommit")(request)
            next(call)
            held.append((channel, call))
    try:
        r = check(small_server)
        assert r.returncode == 1 and "DEADLINE_EXCEEDED" in r.stderr, r
    finally:
        for channel, call in held:
            call.cancel()
            channel.close()
    assert check(small_server).returncode == 0


def test_a_workers_count_that_cannot_serve_stops_the_start_with_the_variable(tmp_path):
    server = PfsServer(tmp_path / "pfs", env={"PACHSTUDIO_PFS_WORKERS": "1"})
    with pytest.raises(RuntimeError, match="exited with 1"):
        server.start()
    assert "PACHSTUDIO_PFS_WORKERS='1': use a whole number of at least 2" in server.log()
