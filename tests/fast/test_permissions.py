"""pachd's permission checks in the embedded server, call by call and role by role: a robot token
with no role, repoReader, repoWriter or repoOwner on the repo the call concerns, or clusterAdmin,
makes every call of the catalogue (plugins/pfs_permissions: PFS, PPS, transactions, admin) through
the real pachyderm-sdk to a server in this process with auth on. What pachd lets a role do works;
what it refuses is refused with pachd's code and words, and changes nothing."""

import grpc
import pytest
from pachyderm_sdk import Client
from pachyderm_sdk.api import auth, pfs

from pachstudio.pfs_server.grpc_server import Limits
from pachstudio.pfs_server.main import build_server
from plugins.pfs_permissions import (
    CALLS,
    RANK,
    ROLES,
    Case,
    bind,
    branch,
    build_world,
    denied,
    drain,
    file_at,
    inventory,
    put,
    repo_msg,
    reset,
    robots,
    state,
)

pytestmark = pytest.mark.fast

ROOT = "fast-permissions-root-token-0123"


def serve(path):
    server, _, port = build_server(str(path), "127.0.0.1", 0, root_token=ROOT, limits=Limits(workers=16))
    server.start()
    address = f"grpc://127.0.0.1:{port}"
    return server, address, Client.from_pachd_address(address, auth_token=ROOT)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One server for the whole matrix: each case makes its own repos and pipelines, and the
    read-only PPS calls share one pipeline with a finished job."""
    server, address, root = serve(tmp_path_factory.mktemp("permissions") / "pfs")
    world = build_world(root, address, ROOT)
    clients = robots(root, address)
    world["kept"] = inventory(root)
    yield root, world, clients
    server.stop(0).wait()


# every call as every role; clusterAdmin's DeleteAll is test_a_cluster_admin_may_delete_everything
MATRIX = [pytest.param(call, role, id=f"{call.name} as {role}") for call in CALLS for role in ROLES
          if not (call.destructive and role == "clusterAdmin")]


@pytest.mark.parametrize("call, role", MATRIX)
def test_each_role_may_make_what_pachd_lets_it_and_nothing_else(cluster, call, role):
    root, world, clients = cluster
    case = Case(role, world)
    call.setup(root, case)
    bind(root, case, [role])
    try:
        if RANK[role] >= RANK[call.need]:
            try:
                result = drain(call.run(clients[role], case))
            except grpc.RpcError as e:
                # a call whose own answer comes after the check (RestartDatum): never a refusal
                assert "answers-after-check" in call.tags and e.code() != grpc.StatusCode.PERMISSION_DENIED, e
                return
            if call.allowed is not None:
                assert call.allowed(result, root, case), result
            return
        refused = call.refused(case)
        before = state(root, case)
        if refused.code is not None:
            with pytest.raises(grpc.RpcError) as e:
                drain(call.run(clients[role], case))
            assert (e.value.code(), e.value.details()) == (refused.code, refused.text)
        else:
            result = drain(call.run(clients[role], case))
            assert refused.hidden(result, case), result
        assert state(root, case) == before, "a refused call changed something"
    finally:
        bind(root, case, [])
        reset(root, world["kept"])


def test_a_cluster_admin_may_delete_everything(tmp_path):
    """PFS's and PPS's DeleteAll, allowed to clusterAdmin only, on a server of their own."""
    server, address, root = serve(tmp_path / "pfs")
    try:
        world = build_world(root, address, ROOT)
        admin = robots(root, address)["clusterAdmin"]
        admin.pps.delete_all()
        assert list(root.pps.list_pipeline()) == []
        assert {r.repo.name for r in root.pfs.list_repo()} == {"w-in"}  # the outputs went with their pipelines
        admin.pfs.delete_all()
        assert list(root.pfs.list_repo(type="")) == []
        assert [p.project.name for p in root.pfs.list_project()] == ["default"]
        # as pachd's createProjectInTransaction: the new default project is its deleter's
        binding = root.auth.get_role_binding(resource=auth.Resource(type=auth.ResourceType.PROJECT, name="default"))
        owners = {k: list(v.roles) for k, v in binding.binding.entries.items()}
        assert owners == {"robot:clusterAdmin": ["projectOwner"]}
        assert world["in"] == ("default", "w-in")
    finally:
        server.stop(0).wait()


def test_a_writer_may_not_copy_from_a_repo_it_may_not_read(cluster):
    """ModifyFile's copy_file opens its source commit as pachd's copyFile does: REPO_READ there
    too (pfs/server/server_file.go:228); the destination stays as it was."""
    root, world, clients = cluster
    case = Case("repoWriter", world)
    dest = case.repo(root=root, files={"/mine.txt": b"mine"})
    secret = case.repo(name=f"secret{case.n}", concerned=False, root=root, files={"/s.txt": b"secret"})
    bind(root, case, ["repoWriter"])
    before = state(root, case)
    writer = clients["repoWriter"]
    onto = pfs.ModifyFileRequest(set_commit=pfs.Commit(branch=branch("default", dest), repo=repo_msg("default", dest)))
    with pytest.raises(grpc.RpcError) as e:
        stolen = pfs.CopyFile(dst="/stolen.txt", src=file_at("default", secret, "/s.txt"))
        writer.pfs.modify_file(iter([onto, pfs.ModifyFileRequest(copy_file=stolen)]))
    assert (e.value.code(), e.value.details()) == (
        grpc.StatusCode.PERMISSION_DENIED, denied("repoWriter", "REPO_READ", "REPO", f"default/{secret}"))
    assert state(root, case) == before
    put(root, "default", secret, {"/s2.txt": b"more"})  # with read access the same copy works
    root.auth.modify_role_binding(resource=auth.Resource(type=auth.ResourceType.REPO, name=f"default/{secret}"),
                                  principal="robot:repoWriter", roles=["repoReader"])
    writer.pfs.modify_file(iter([
        onto, pfs.ModifyFileRequest(copy_file=pfs.CopyFile(dst="/copied.txt", src=file_at("default", secret, "/s.txt")))
    ]))
    assert b"".join(m.value for m in root.pfs.get_file(file=file_at("default", dest, "/copied.txt"))) == b"secret"
