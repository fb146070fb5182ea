"""The mount server's bulk read (`mount/glob_read.py`) against the embedded server in one process,
through the real SDK: the files of a glob come in one GetFileTAR, with their text, and a file too
big or not text says so instead of its data; a branch's head is its newest finished commit."""

import io
import tarfile
import uuid

import pytest
from pachyderm_sdk.api import pfs

from pachstudio.mount import glob_read
from pachstudio.mount.errors import BadRequest, NotFound
from plugins.pfs import commit_files

pytestmark = pytest.mark.fast


def test_a_glob_of_a_commit_comes_in_one_call_with_each_files_text(pach, remote):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("preds"))
    files = {f"/img/{i:03d}.png.json": f'{{"n": {i}}}'.encode() for i in range(300)}
    files.update({"/img/deep/x.png.json": b"deep", "/img/000.png": b"\x89PNG", "/other/y.json": b"y",
                  "/img/big.json": b"b" * 5000, "/img/latin.json": "é".encode("latin-1")})
    commit = commit_files(pach, "preds@master", files)

    rows = list(glob_read.glob_files(remote, "default", "preds", commit.id, "/img/**.json", 4096))

    by_path = {r["path"]: r for r in rows}
    assert set(by_path) == {p.lstrip("/") for p in files if p.startswith("/img/") and p.endswith(".json")}
    assert by_path["img/007.png.json"] == {"path": "img/007.png.json", "size": 8, "data": '{"n": 7}', "problem": None}
    assert by_path["img/deep/x.png.json"]["data"] == "deep"
    big = by_path["img/big.json"]
    assert big["data"] is None and "5000 bytes, more than the 4096" in big["problem"]
    assert by_path["img/latin.json"] == {"path": "img/latin.json", "size": 1, "data": None, "problem": "not UTF-8 text"}
    assert remote.calls["get_file_tar"] == 1 and remote.calls["get_file"] == 0

    assert list(glob_read.glob_files(remote, "default", "preds", commit.id, "/nothing/**.json", 4096)) == []


def test_the_head_is_the_newest_finished_commit_and_bad_names_are_refused(pach, remote):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("preds"))
    done = commit_files(pach, "preds@master", {"/a.json": b"{}"})
    open_commit = pach.pfs.start_commit(branch=pfs.Branch.from_uri("preds@master"))

    assert glob_read.branch_head(remote, "default", "preds", "master") == done.id

    pach.pfs.finish_commit(commit=open_commit)
    pach.pfs.wait_commit(open_commit)
    assert glob_read.branch_head(remote, "default", "preds", "master") == open_commit.id
    with pytest.raises(NotFound, match="branch nope not found in repo default/preds"):
        glob_read.branch_head(remote, "default", "preds", "nope")
    with pytest.raises(NotFound, match="no-such-repo"):
        glob_read.branch_head(remote, "default", "no-such-repo", "master")
    with pytest.raises(NotFound, match="not found in repo default/preds"):
        list(glob_read.glob_files(remote, "default", "preds", uuid.uuid4().hex, "/*.json", 10))
    with pytest.raises(BadRequest, match="not a glob inside the repo"):
        glob_read.glob_files(remote, "default", "preds", done.id, "/../*.json", 10)
    with pytest.raises(BadRequest, match="not a commit id"):
        glob_read.glob_files(remote, "default", "preds", "master", "/*.json", 10)


def _tar(files: dict) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize("cut", [1024 * 10, 1024 * 10 + 700])  # at a file's header, inside a file
def test_a_stream_that_fails_midway_is_an_error_not_fewer_files(cut):
    """The cluster's stream failing after some files (a generator standing in for the gRPC stream:
    no real server can be made to fail at a chosen byte) raises its error; it is never taken for
    the end of the archive, which would pass for a commit with fewer files."""
    body = _tar({f"img/{i:03d}.json": b"x" * 100 for i in range(40)})  # 1024 bytes a file

    def stream():
        yield body[:cut]
        raise ConnectionResetError("the cluster went away")

    with pytest.raises(ConnectionResetError, match="went away"):
        list(glob_read._unpacked(stream(), 4096))
    whole = list(glob_read._unpacked(iter([body[i:i + 3000] for i in range(0, len(body), 3000)]), 4096))
    assert [r["path"] for r in whole] == [f"img/{i:03d}.json" for i in range(40)]
