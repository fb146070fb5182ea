import json
import os

import grpc
import pytest
from pachyderm_sdk.api import pfs

from plugins.pfs import commit_files, read  # noqa: F401 - used by the tests


def put(pach, uri: str, files: dict, description: str = "") -> str:
    """commit_files, answering the commit id."""
    return commit_files(pach, uri, files, description).id


def tree(pach, uri: str) -> dict:
    """{path: bytes} of every file at a branch or commit (`repo@ref`)."""
    commit = pfs.Commit.from_uri(uri)
    out = {}
    for info in pach.pfs.walk_file(file=pfs.File(commit=commit, path="/")):
        if info.file_type != pfs.FileType.DIR:
            out[info.file.path] = b"".join(
                m.value for m in pach.pfs.get_file(file=pfs.File(commit=commit, path=info.file.path)))
    return out


def commits(pach, uri: str) -> list:
    """Commit ids of a branch, newest first. (Read again if the head read first is dropped
    before it is listed: the mount server cleans up a cut upload while tests watch.)"""
    branch = pfs.Branch.from_uri(uri)
    for attempt in range(3):
        head = pach.pfs.inspect_branch(branch=branch).head
        try:
            return [c.commit.id for c in pach.pfs.list_commit(repo=branch.repo, to=head)]
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND or attempt == 2:
                raise


def ndjson(response) -> list:
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def mount(ms, name, repo, mode="ro", **spec):
    r = ms.call("PUT", "/_mount", {"mounts": [{"name": name, "repo": repo, "mode": mode, **spec}]})
    assert r.status_code == 200, r.text
    return next(m for m in r.json()["mounted"] if m["name"] == name)  # answers every mount


def stats(ms) -> dict:
    return ms.call("GET", "/stats").json()["calls"]


@pytest.fixture
def images(pach):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("images"))
    return "images"


def local_tree(root: str) -> dict:
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            full = os.path.join(dirpath, n)
            with open(full, "rb") as f:
                out["/" + os.path.relpath(full, root)] = f.read()
    return out
