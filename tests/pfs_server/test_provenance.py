"""Commit sets and branch provenance (pachd's global IDs): one id names a commit in every repo
downstream of the repo it was made in."""
import sqlite3

import grpc
import pytest
from pachyderm_sdk.api import pfs

from plugins.pfs import InProcessPfsServer

from .conftest import code_of, is_finished, put, read


@pytest.fixture
def dag(pach):
    """raw@master -> labels@master (labels' branch has raw's in its provenance)."""
    for name in ("raw", "labels"):
        pach.pfs.create_repo(repo=pfs.Repo.from_uri(name))
    pach.pfs.create_branch(branch=pfs.Branch.from_uri("labels@master"),
                           provenance=[pfs.Branch.from_uri("raw@master")])
    return pach


def test_create_branch_with_provenance_opens_a_commit_downstream(dag):
    labels = dag.pfs.inspect_branch(branch=pfs.Branch.from_uri("labels@master"))
    raw = dag.pfs.inspect_branch(branch=pfs.Branch.from_uri("raw@master"))  # made for it, empty
    assert labels.head.id == raw.head.id
    head = dag.pfs.inspect_commit(commit=pfs.Commit.from_uri("labels@master"))
    assert not is_finished(head) and head.origin.kind == pfs.OriginKind.AUTO
    assert [(c.repo.name, c.id) for c in head.direct_provenance] == [("raw", raw.head.id)]


def test_each_upstream_commit_opens_a_downstream_commit_with_the_same_id(dag):
    dag.pfs.finish_commit(commit=pfs.Commit.from_uri("labels@master"))
    c = put(dag, "raw@master", {"/img": b"x"})
    down = dag.pfs.inspect_commit(commit=pfs.Commit(repo=pfs.Repo.from_uri("labels"), id=c.id))
    assert down.commit.id == c.id and down.commit.repo.name == "labels"
    assert not is_finished(down)  # the client (a pipeline in pachd) finishes it
    dag.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri("labels@master"), path="/l", data=b"1")
    dag.pfs.finish_commit(commit=pfs.Commit(repo=pfs.Repo.from_uri("labels"), id=c.id))
    assert read(dag, f"labels@{c.id}:/l") == b"1"
    started = dag.pfs.start_commit(branch=pfs.Branch.from_uri("raw@master"))
    dag.pfs.finish_commit(commit=started)
    assert dag.pfs.inspect_branch(branch=pfs.Branch.from_uri("labels@master")).head.id == started.id


def test_commit_set_calls_act_on_every_commit_of_the_id(dag):
    dag.pfs.finish_commit(commit=pfs.Commit.from_uri("labels@master"))
    c = put(dag, "raw@master", {"/img": b"x"})
    members = list(dag.pfs.inspect_commit_set(commit_set=pfs.CommitSet(id=c.id)))
    assert sorted(i.commit.repo.name for i in members) == ["labels", "raw"]
    assert {i.commit.id for i in members} == {c.id}
    dag.pfs.finish_commit(commit=pfs.Commit(repo=pfs.Repo.from_uri("labels"), id=c.id))
    waited = list(dag.pfs.wait_commit_set(commit_set=pfs.CommitSet(id=c.id)))
    assert len(waited) == 2 and all(is_finished(i) for i in waited)
    dag.pfs.drop_commit_set(commit_set=pfs.CommitSet(id=c.id))
    for repo in ("raw", "labels"):
        assert not dag.pfs.commit_exists(commit=pfs.Commit(repo=pfs.Repo.from_uri(repo), id=c.id))
    assert code_of(lambda: list(dag.pfs.inspect_commit_set(commit_set=pfs.CommitSet(id=c.id)))) == \
        grpc.StatusCode.NOT_FOUND


def test_squash_commit_set_keeps_the_data_in_the_children(dag):
    dag.pfs.finish_commit(commit=pfs.Commit.from_uri("labels@master"))
    a = put(dag, "raw@master", {"/a": b"1"})
    dag.pfs.finish_commit(commit=pfs.Commit(repo=pfs.Repo.from_uri("labels"), id=a.id))
    b = put(dag, "raw@master", {"/b": b"2"})
    dag.pfs.finish_commit(commit=pfs.Commit(repo=pfs.Repo.from_uri("labels"), id=b.id))
    dag.pfs.squash_commit_set(commit_set=pfs.CommitSet(id=a.id))
    assert not dag.pfs.commit_exists(commit=pfs.Commit(repo=pfs.Repo.from_uri("labels"), id=a.id))
    assert read(dag, "raw@master:/a") == b"1"


def test_branch_info_provenance_and_subvenance(dag):
    dag.pfs.create_repo(repo=pfs.Repo.from_uri("report"))
    dag.pfs.create_branch(branch=pfs.Branch.from_uri("report@master"),
                          provenance=[pfs.Branch.from_uri("labels@master")])
    names = lambda bs: sorted(f"{b.repo.name}@{b.name}" for b in bs)  # noqa: E731
    raw = dag.pfs.inspect_branch(branch=pfs.Branch.from_uri("raw@master"))
    labels = dag.pfs.inspect_branch(branch=pfs.Branch.from_uri("labels@master"))
    report = dag.pfs.inspect_branch(branch=pfs.Branch.from_uri("report@master"))
    assert names(raw.subvenance) == ["labels@master", "report@master"] and not raw.provenance
    assert names(labels.direct_provenance) == ["raw@master"] and names(labels.subvenance) == ["report@master"]
    assert names(report.direct_provenance) == ["labels@master"]
    assert names(report.provenance) == ["labels@master", "raw@master"]
    assert code_of(lambda: dag.pfs.create_branch(branch=pfs.Branch.from_uri("raw@master"),
                                                 provenance=[pfs.Branch.from_uri("report@master")])) == \
        grpc.StatusCode.INVALID_ARGUMENT  # a cycle


def test_deleting_a_repo_others_depend_on_needs_force(dag):
    assert code_of(lambda: dag.pfs.delete_repo(repo=pfs.Repo.from_uri("raw"))) == \
        grpc.StatusCode.FAILED_PRECONDITION
    assert dag.pfs.repo_exists(repo=pfs.Repo.from_uri("raw"))
    assert dag.pfs.delete_repo(repo=pfs.Repo.from_uri("raw"), force=True).deleted
    labels = dag.pfs.inspect_branch(branch=pfs.Branch.from_uri("labels@master"))
    assert not labels.provenance and not labels.direct_provenance
    assert dag.pfs.delete_repo(repo=pfs.Repo.from_uri("labels")).deleted


OLD_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE projects(name TEXT PRIMARY KEY, description TEXT, created REAL);
CREATE TABLE repos(id INTEGER PRIMARY KEY AUTOINCREMENT, project TEXT, name TEXT, type TEXT,
    description TEXT, created REAL, UNIQUE(project, name, type));
CREATE TABLE branches(repo_id INTEGER, name TEXT, head TEXT, created REAL, updated REAL,
    PRIMARY KEY(repo_id, name));
CREATE TABLE commits(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, repo_id INTEGER,
    branch TEXT, parent TEXT, description TEXT, started REAL, finishing REAL, finished REAL,
    error TEXT, size INTEGER DEFAULT 0);
CREATE TABLE inline_blobs(hash TEXT PRIMARY KEY, data BLOB) WITHOUT ROWID;
CREATE TABLE deltas(commit_id TEXT, path TEXT, hash TEXT, size INTEGER,
    PRIMARY KEY(commit_id, path)) WITHOUT ROWID;
"""


def test_a_data_dir_from_before_commit_sets_still_opens(tmp_path):
    """/data/pfs made by an earlier version: commits keyed by id alone."""
    data = tmp_path / "pfs"
    data.mkdir()
    db = sqlite3.connect(data / "pfs.sqlite3")
    db.executescript(OLD_SCHEMA)
    cid = "a" * 32
    db.execute("INSERT INTO projects VALUES('default', '', 1)")
    db.execute("INSERT INTO repos VALUES(1, 'default', 'old', 'user', '', 1)")
    db.execute("INSERT INTO commits VALUES(1, ?, 1, 'master', NULL, 'before', 1, 2, 2, '', 3)", (cid,))
    db.execute("INSERT INTO branches VALUES(1, 'master', ?, 1, 2)", (cid,))
    db.execute("INSERT INTO inline_blobs VALUES('h1', x'616263')")
    db.execute("INSERT INTO deltas VALUES(?, '/f', 'h1', 3)", (cid,))
    db.commit()
    db.close()
    server = InProcessPfsServer(data).start()
    try:
        pach = server.client()
        info = pach.pfs.inspect_commit(commit=pfs.Commit.from_uri("old@master"))
        assert info.commit.id == cid and info.description == "before"
        assert list(i.commit.id for i in pach.pfs.inspect_commit_set(commit_set=pfs.CommitSet(id=cid))) == [cid]
        put(pach, "old@master", {"/g": b"new"})
        assert read(pach, "old@master:/g") == b"new"
    finally:
        server.stop()
