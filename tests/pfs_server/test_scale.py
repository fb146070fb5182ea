"""The sizes the issue names: 100,000 files in one repo, 1,000 commits on a branch.

The 100,000-file stream is sent and read over raw gRPC: the SDK's betterproto classes spend about
a millisecond per message on the client, which would time the client, not the server.
"""
import grpc
from pachyderm_sdk.api import pfs

from pachstudio.pfswire import add_file

from .conftest import put, read


def test_hundred_thousand_files_in_one_commit(pach, pfs_server, repo):
    channel = grpc.insecure_channel(f"127.0.0.1:{pfs_server.port}")
    modify = channel.stream_unary("/pfs_v2.API/ModifyFile")
    walk = channel.unary_stream("/pfs_v2.API/WalkFile")

    def ops():
        yield bytes(pfs.ModifyFileRequest(set_commit=pfs.Commit.from_uri("images@master")))
        for i in range(100_000):
            yield add_file(f"/d{i % 100}/f{i}", b"%d" % i)
    modify(ops())
    request = bytes(pfs.WalkFileRequest(file=pfs.File.from_uri("images@master:/")))
    entries = [pfs.FileInfo().parse(raw) for raw in walk(request)]
    files = [e for e in entries if e.file_type == pfs.FileType.FILE]
    assert len(files) == 100_000 and len(entries) == 100_000 + 100 + 1
    assert files[0].file.commit.id == pach.pfs.inspect_commit(
        commit=pfs.Commit.from_uri("images@master")).commit.id
    assert len(list(pach.pfs.list_file(file=pfs.File.from_uri("images@master:/")))) == 100
    assert read(pach, "images@master:/d7/f99907") == b"99907"
    put(pach, "images@master", {"/d7/f99907": None, "/new": b"n"})
    diff = list(pach.pfs.diff_file(new_file=pfs.File.from_uri("images@master:/")))
    # the two files, and the folders above them (as pachd's differ), sized from the commit's total
    assert [(d.new_file or d.old_file).file.path for d in diff] == ["/", "/d7/", "/d7/f99907", "/new"]
    assert diff[0].old_file.size_bytes - diff[0].new_file.size_bytes == len(b"99907") - len(b"n")


def test_thousand_commits_on_a_branch(pach, repo):
    for i in range(1000):
        pach.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri("images@master"), path=f"/f{i % 50}",
                                     data=b"%d" % i)
    assert len(list(pach.pfs.list_commit(repo=repo))) == 1000
    assert read(pach, "images@master:/f49") == b"999"
    assert read(pach, "images@master.1:/f0") == b"0"
    assert len(list(pach.pfs.list_file(file=pfs.File.from_uri("images@master:/")))) == 50
