"""Auth in the embedded server, as pachd 2.12 with auth answers it: tokens, robot tokens, repo
roles and their refusals, word for word; the real SDK over gRPC against the real server (a process
where its restart, start-up, log or files are the point)."""
import os
import subprocess
import sys
import time

import grpc
import pytest
from pachyderm_sdk.api import auth, pfs
from pachyderm_sdk.errors import AuthServiceNotActivated

from plugins.pfs import ROOT_TOKEN, PfsServer, commit_files, read

NOT_SIGNED_IN = "no authentication token (try logging in)"
BAD_TOKEN = "provided auth token is corrupted or has expired (try logging in again)"


def denied(subject, perms, rtype, name):
    return (f"{subject} is not authorized to perform this operation - needs permissions [{perms}] on {rtype} "
            f"{name}. Run `pachctl auth roles-for-permission` to find roles that grant a given permission.")


def refusal(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        result = call()
        if hasattr(result, "__iter__") and not isinstance(result, (bytes, str)):
            list(result)
    return info.value


def repo_resource(name):
    return auth.Resource(type=auth.ResourceType.REPO, name=f"default/{name}")


def robot(server, name, role=None, repo=None):
    """A robot's client, with `role` on `repo` when given."""
    root = server.root()
    token = root.auth.get_robot_token(robot=name).token
    if role:
        root.auth.modify_role_binding(resource=repo_resource(repo), principal=f"robot:{name}", roles=[role])
    return server.client(token), token


@pytest.fixture
def labels(auth_pfs_server):
    root = auth_pfs_server.root()
    root.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))
    commit_files(root, "labels@master", {"a.json": b"{}"})
    return auth_pfs_server


def test_auth_off_answers_as_pachd_without_auth(pfs_server):
    pach = pfs_server.client()
    with pytest.raises(AuthServiceNotActivated):
        pach.auth.who_am_i()
    for call in (lambda: pach.auth.get_robot_token(robot="x"), lambda: pach.auth.get_role_binding(
            resource=repo_resource("x")), lambda: pach.auth.get_groups()):
        with pytest.raises(AuthServiceNotActivated, match="the auth service is not activated"):
            call()  # the SDK's error for pachd's UNIMPLEMENTED "the auth service is not activated"
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("open"))
    info = pach.pfs.inspect_repo(repo=pfs.Repo.from_uri("open"))
    assert not info.auth_info.permissions and not info.auth_info.roles


def test_root_token_missing_and_wrong_tokens(auth_pfs_server):
    assert auth_pfs_server.root().auth.who_am_i().username == "pach:root"
    e = refusal(lambda: auth_pfs_server.client().pfs.list_repo())
    assert (e.code(), e.details()) == (grpc.StatusCode.UNAUTHENTICATED, NOT_SIGNED_IN)
    e = refusal(lambda: auth_pfs_server.client("not-a-token").pfs.list_repo())
    assert (e.code(), e.details()) == (grpc.StatusCode.UNAUTHENTICATED, BAD_TOKEN)
    e = refusal(lambda: auth_pfs_server.client("not-a-token").auth.who_am_i())
    assert (e.code(), e.details()) == (grpc.StatusCode.UNAUTHENTICATED, BAD_TOKEN)
    # pachd answers these without a token
    anon = auth_pfs_server.client()
    assert anon.admin.inspect_cluster().id
    assert anon.get_version().major == 2
    e = refusal(lambda: auth_pfs_server.root().auth.activate(root_token="another"))
    assert (e.code(), e.details()) == (grpc.StatusCode.UNIMPLEMENTED, "the auth service is already activated")


def test_robot_tokens_expire_and_can_be_revoked(auth_pfs_server):
    root = auth_pfs_server.root()
    token = root.auth.get_robot_token(robot="robot:alice").token
    alice = auth_pfs_server.client(token)
    assert alice.auth.who_am_i().username == "robot:alice"
    assert root.auth.revoke_auth_token(token=token).number == 1
    e = refusal(lambda: alice.auth.who_am_i())
    assert (e.code(), e.details()) == (grpc.StatusCode.UNAUTHENTICATED, BAD_TOKEN)

    short = root.auth.get_robot_token(robot="bob", ttl=1).token
    bob = auth_pfs_server.client(short)
    assert bob.auth.who_am_i().username == "robot:bob"
    time.sleep(1.5)
    # pachd's getAuthenticatedUser: an expired token not yet swept away is INTERNAL with this text
    e = refusal(lambda: bob.pfs.list_repo())
    assert (e.code(), e.details()) == (grpc.StatusCode.INTERNAL, "token expiration is in the past")

    e = refusal(lambda: root.auth.get_robot_token(robot="a:b"))
    assert "robot names cannot contain colons" in e.details()


def test_a_robot_without_a_role_sees_the_repo_but_not_its_files(labels):
    alice, _ = robot(labels, "alice")
    infos = {i.repo.name: i for i in alice.pfs.list_repo()}  # everyone may list the default project
    assert infos["labels"].auth_info.roles == [] and infos["labels"].auth_info.permissions == []
    e = refusal(lambda: read(alice, "labels@master:/a.json"))
    assert (e.code(), e.details()) == (grpc.StatusCode.PERMISSION_DENIED,
                                       denied("robot:alice", "REPO_READ", "REPO", "default/labels"))
    e = refusal(lambda: alice.pfs.list_commit(repo=pfs.Repo.from_uri("labels")))
    assert e.details() == denied("robot:alice", "REPO_LIST_COMMIT", "REPO", "default/labels")


def test_a_reader_reads_but_may_not_write(labels):
    reader, _ = robot(labels, "reader", "repoReader", "labels")
    info = reader.pfs.inspect_repo(repo=pfs.Repo.from_uri("labels"))
    assert info.auth_info.roles == ["repoReader"]
    names = {auth.Permission(p).name for p in info.auth_info.permissions}
    assert {"REPO_READ", "REPO_LIST_COMMIT", "REPO_LIST_BRANCH", "REPO_LIST_FILE"} <= names
    assert "REPO_WRITE" not in names
    assert read(reader, "labels@master:/a.json") == b"{}"
    e = refusal(lambda: commit_files(reader, "labels@master", {"b.json": b"1"}))
    assert (e.code(), e.details()) == (grpc.StatusCode.PERMISSION_DENIED,
                                       denied("robot:reader", "REPO_WRITE", "REPO", "default/labels"))
    e = refusal(lambda: reader.pfs.create_branch(branch=pfs.Branch.from_uri("labels@dev")))
    assert e.details() == denied("robot:reader", "REPO_CREATE_BRANCH", "REPO", "default/labels")
    assert [f.file.path for f in labels.root().pfs.list_file(file=pfs.File.from_uri("labels@master:/"))] == \
        ["/a.json"]


def test_a_writer_commits_but_cannot_delete_the_repo(labels):
    writer, _ = robot(labels, "writer", "repoWriter", "labels")
    commit_files(writer, "labels@master", {"b.json": b"1"})
    assert read(labels.root(), "labels@master:/b.json") == b"1"
    # pachd's DeleteRepo without REPO_DELETE: OK, deleted false, the repo stays
    assert writer.pfs.delete_repo(repo=pfs.Repo.from_uri("labels")).deleted is False
    assert labels.root().pfs.inspect_repo(repo=pfs.Repo.from_uri("labels")).repo.name == "labels"
    e = refusal(lambda: writer.auth.modify_role_binding(
        resource=repo_resource("labels"), principal="robot:writer", roles=["repoOwner"]))
    assert (e.code(), e.details()) == (grpc.StatusCode.PERMISSION_DENIED,
                                       denied("robot:writer", "REPO_MODIFY_BINDINGS", "REPO", "default/labels"))
    e = refusal(lambda: writer.auth.get_robot_token(robot="more"))
    assert (e.code(), e.details()) == (grpc.StatusCode.PERMISSION_DENIED,
                                       denied("robot:writer", "CLUSTER_AUTH_GET_ROBOT_TOKEN", "CLUSTER", ""))


def test_the_creator_of_a_repo_owns_it(auth_pfs_server):
    carol, _ = robot(auth_pfs_server, "carol")
    carol.pfs.create_repo(repo=pfs.Repo.from_uri("mine"))
    binding = auth_pfs_server.root().auth.get_role_binding(resource=repo_resource("mine")).binding
    assert {k: set(v.roles) for k, v in binding.entries.items()} == {"robot:carol": {"repoOwner"}}
    assert carol.pfs.inspect_repo(repo=pfs.Repo.from_uri("mine")).auth_info.roles == ["repoOwner"]
    roles = {i.repo.name: i.auth_info.roles for i in auth_pfs_server.root().pfs.list_repo()}
    assert roles["mine"] == ["clusterAdmin"]
    carol.auth.modify_role_binding(resource=repo_resource("mine"), principal="robot:dave", roles=["repoReader"])
    assert carol.pfs.delete_repo(repo=pfs.Repo.from_uri("mine")).deleted is True
    assert "mine" not in {i.repo.name for i in auth_pfs_server.root().pfs.list_repo()}


@pytest.mark.pfs_process  # restarts it
def test_auth_state_survives_a_restart_and_the_root_token_can_change(labels, monkeypatch):
    reader, token = robot(labels, "reader", "repoReader", "labels")
    labels.stop()
    labels.root_token = None  # no flag, no env: auth stays on (the state is under --data)
    monkeypatch.delenv("PACHSTUDIO_ROOT_TOKEN", raising=False)
    labels.start()
    assert reader.auth.who_am_i().username == "robot:reader"
    assert read(reader, "labels@master:/a.json") == b"{}"
    assert labels.client(ROOT_TOKEN).auth.who_am_i().username == "pach:root"
    labels.stop()
    monkeypatch.setenv("PACHSTUDIO_ROOT_TOKEN", "a-new-root-token")
    labels.start()
    assert labels.client("a-new-root-token").auth.who_am_i().username == "pach:root"
    e = refusal(lambda: labels.client(ROOT_TOKEN).auth.who_am_i())
    assert e.details() == BAD_TOKEN
    assert read(reader, "labels@master:/a.json") == b"{}"


@pytest.mark.pfs_process  # reads its log and the mode of the file it wrote
def test_tokens_are_never_stored_or_logged_in_clear(labels):
    _, token = robot(labels, "reader", "repoReader", "labels")
    state = open(os.path.join(labels.data_dir, "auth.json")).read()
    assert token not in state and ROOT_TOKEN not in state and "robot:reader" in state
    assert oct(os.stat(os.path.join(labels.data_dir, "auth.json")).st_mode & 0o777) == "0o600"
    assert ROOT_TOKEN not in labels.log() and token not in labels.log()


def test_the_root_token_file_wins_over_the_env_and_bad_files_stop_the_start(tmp_path):
    (tmp_path / "empty").write_text("\n")
    run = [sys.executable, "-m", "pachstudio.cli", "pfs-server", "--data", str(tmp_path / "d"), "--port", "0"]
    env = {**os.environ, "PACHSTUDIO_ROOT_TOKEN": "from-env"}
    for path, words in ((tmp_path / "empty", "the file is empty"), (tmp_path / "missing", "cannot read it")):
        p = subprocess.run(run + ["--root-token-file", str(path)], env=env, capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 1 and str(path) in p.stderr and words in p.stderr, p.stderr
    (tmp_path / "tok").write_text("from-file\n")
    server = PfsServer(tmp_path / "d2")
    server.root_token = "from-file"
    os.environ["PACHSTUDIO_ROOT_TOKEN"] = "from-env"
    try:
        server.start()
        assert server.client("from-file").auth.who_am_i().username == "pach:root"
        assert refusal(lambda: server.client("from-env").auth.who_am_i()).details() == BAD_TOKEN
    finally:
        del os.environ["PACHSTUDIO_ROOT_TOKEN"]
        server.kill()


def test_env_root_token_turns_auth_on(tmp_path, monkeypatch):
    monkeypatch.setenv("PACHSTUDIO_ROOT_TOKEN", "env-root")
    server = PfsServer(tmp_path / "d").start()
    try:
        assert server.client("env-root").auth.who_am_i().username == "pach:root"
        e = refusal(lambda: server.client().pfs.list_repo())
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        server.kill()


def test_a_role_bound_to_a_group_reaches_its_members(labels):
    root = labels.root()
    member, _ = robot(labels, "member")
    root.auth.modify_role_binding(resource=repo_resource("labels"), principal="group:team", roles=["repoReader"])
    e = refusal(lambda: read(member, "labels@master:/a.json"))
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED
    root.auth.set_groups_for_user(username="robot:member", groups=["group:team"])
    assert member.auth.get_groups().groups == ["group:team"]
    assert root.auth.get_users(group="group:team").usernames == ["robot:member"]
    assert read(member, "labels@master:/a.json") == b"{}"
    root.auth.modify_members(group="group:team", remove=["robot:member"])
    assert member.auth.get_groups().groups == [] and root.auth.get_users(group="group:team").usernames == []
    assert refusal(lambda: read(member, "labels@master:/a.json")).code() == grpc.StatusCode.PERMISSION_DENIED
    e = refusal(lambda: member.auth.set_groups_for_user(username="robot:member", groups=["group:admins"]))
    assert e.details() == denied("robot:member", "CLUSTER_AUTH_MODIFY_GROUP_MEMBERS", "CLUSTER", "")


def test_a_damaged_auth_state_stops_the_start_naming_the_file(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "auth.json").write_text("{not json")
    p = subprocess.run([sys.executable, "-m", "pachstudio.cli", "pfs-server", "--data", str(data), "--port", "0"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and str(data / "auth.json") in p.stderr and "damaged" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
