"""kill -9 at any moment, then a restart on the same data: finished commits intact, heads unchanged."""
import os
import threading
import time

import pytest
from pachyderm_sdk.api import pfs

from .conftest import is_finished, put, read

pytestmark = pytest.mark.pfs_process  # every test kills the server process


def test_kill_during_upload_then_restart(pfs_server, tmp_path):
    pach = pfs_server.client()
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("data"))
    base = put(pach, "data@master", {"/ok": b"finished"})
    big = tmp_path / "big"
    big.write_bytes(os.urandom(200 << 20))

    def upload():
        try:
            with open(big, "rb") as f:
                pach.pfs.put_file_from_file(commit=pfs.Commit.from_uri("data@master"), path="/big", file=f)
        except Exception:  # noqa: BLE001 - the server dies under it
            pass

    t = threading.Thread(target=upload)
    t.start()
    tmp_dir = os.path.join(pfs_server.data_dir, "blobs", "tmp")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # kill once bytes are arriving, mid-upload
        if any(os.path.getsize(os.path.join(tmp_dir, f)) > (20 << 20) for f in os.listdir(tmp_dir)):
            break
        time.sleep(0.01)
    pfs_server.kill()
    t.join(30)
    pfs_server.start()
    pach = pfs_server.client()
    head = pach.pfs.inspect_branch(branch=pfs.Branch.from_uri("data@master")).head
    assert head.id == base.id
    assert read(pach, "data@master:/ok") == b"finished"
    assert not pach.pfs.path_exists(file=pfs.File.from_uri("data@master:/big"))
    assert len(list(pach.pfs.list_commit(repo=pfs.Repo.from_uri("data")))) == 1
    assert os.listdir(tmp_dir) == []  # the half upload was cleaned away


def test_kill_with_open_commit_then_restart(pfs_server):
    pach = pfs_server.client()
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("data"))
    put(pach, "data@master", {"/a": b"1"})
    open_ = pach.pfs.start_commit(branch=pfs.Branch.from_uri("data@master"))
    pach.pfs.put_file_from_bytes(commit=open_, path="/b", data=b"2")
    pfs_server.kill()
    pfs_server.start()
    pach = pfs_server.client()
    info = pach.pfs.inspect_commit(commit=pfs.Commit.from_uri("data@master"))
    assert info.commit.id == open_.id and not is_finished(info)  # still open, as pachd keeps it
    pach.pfs.finish_commit(commit=open_)
    assert read(pach, "data@master:/b") == b"2"


def test_many_kills_during_small_commits_leave_a_consistent_history(pfs_server):
    pach = pfs_server.client()
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("data"))
    for round_ in range(3):
        stop = threading.Event()
        done = []

        def writer():
            c = pfs_server.client()
            i = 0
            while not stop.is_set():
                try:  # one ModifyFile per commit: atomic, never leaves an open head behind
                    c.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri("data@master"),
                                              path=f"/r{round_}/{i}", data=str(i).encode() * 100)
                    done.append(i)
                    i += 1
                except Exception:  # noqa: BLE001
                    return

        t = threading.Thread(target=writer)
        t.start()
        deadline = time.monotonic() + 60
        while len(done) < 5 and t.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(done) >= 5, "the writer did not get going"
        pfs_server.kill()
        stop.set()
        t.join(30)
        pfs_server.start()
        pach = pfs_server.client()
        files = [f.file.path for f in pach.pfs.walk_file(file=pfs.File.from_uri(f"data@master:/r{round_}"))
                 if f.file_type == pfs.FileType.FILE]
        # every acknowledged commit is there; at most one more that landed as the kill hit
        assert len(done) <= len(files) <= len(done) + 1
        for path in files:
            i = path.rsplit("/", 1)[1]
            assert read(pach, f"data@master:{path}") == i.encode() * 100
