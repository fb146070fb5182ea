"""The server: the non-PFS calls, malformed input, concurrency; as a process, a restart and a clean stop."""
import signal
import threading

import grpc
import pytest
from pachyderm_sdk.api import pfs
from pachyderm_sdk.errors import AuthServiceNotActivated

from .conftest import put, read


def test_cluster_version_auth_health(pach, pfs_server):
    cluster = pach.admin.inspect_cluster()
    assert len(cluster.deployment_id) == 32
    v = pach.get_version()
    assert (v.major, v.minor) == (2, 12)
    with pytest.raises(AuthServiceNotActivated):
        pach.auth.who_am_i()
    channel = grpc.insecure_channel(f"127.0.0.1:{pfs_server.port}")
    check = channel.unary_unary("/grpc.health.v1.Health/Check")
    assert check(b"") == b"\x08\x01"  # SERVING


@pytest.mark.pfs_process
def test_deployment_id_survives_restart(pfs_server):
    before = pfs_server.client().admin.inspect_cluster().deployment_id
    pfs_server.restart()
    assert pfs_server.client().admin.inspect_cluster().deployment_id == before


def test_malformed_request_is_invalid_argument_and_server_lives(pach, pfs_server):
    channel = grpc.insecure_channel(f"127.0.0.1:{pfs_server.port}")
    inspect_repo = channel.unary_unary("/pfs_v2.API/InspectRepo")
    with pytest.raises(grpc.RpcError) as info:
        inspect_repo(b"\x0a\xff\xff\xff\xff\x0f garbage")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed InspectRepo request" in info.value.details()
    unknown = channel.unary_unary("/pfs_v2.API/NoSuchCall")
    with pytest.raises(grpc.RpcError) as info:
        unknown(b"")
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert [p.project.name for p in pach.pfs.list_project()] == ["default"]


@pytest.mark.pfs_process
def test_sigterm_stops_cleanly(pfs_server):
    assert pfs_server.stop(signal.SIGTERM) == 0


def test_concurrent_writers_and_readers(pfs_server):
    clients = [pfs_server.client() for _ in range(6)]
    clients[0].pfs.create_repo(repo=pfs.Repo.from_uri("r1"))
    clients[0].pfs.create_repo(repo=pfs.Repo.from_uri("r2"))
    put(clients[0], "r1@master", {"/seed": b"s"})
    errors = []

    def writer(c, uri, n):
        try:
            for i in range(n):
                put(c, uri, {f"/f{i}": f"{uri}-{i}".encode()})
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    def reader(c):
        try:
            for _ in range(40):
                assert read(c, "r1@master:/seed") == b"s"
                list(c.pfs.walk_file(file=pfs.File.from_uri("r1@master:/")))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(clients[1], "r1@master", 20)),
               threading.Thread(target=writer, args=(clients[2], "r1@dev", 20)),
               threading.Thread(target=writer, args=(clients[3], "r2@master", 20)),
               threading.Thread(target=reader, args=(clients[4],)),
               threading.Thread(target=reader, args=(clients[5],))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    c = clients[0]
    assert len(list(c.pfs.list_commit(repo=pfs.Repo.from_uri("r1")))) == 41
    for uri in ("r1@master", "r1@dev", "r2@master"):
        assert read(c, f"{uri}:/f19") == f"{uri}-19".encode()
