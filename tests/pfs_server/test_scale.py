"""The sizes the issue names: 100,000 files in one repo, 1,000 commits on a branch.

The 100,000-file stream is sent and read over raw gRPC, and the walk's answers are read with the
wire reader of pachstudio.pfswire: the SDK's betterproto classes spend about a millisecond per
message on the client (minutes here), which would time the client, not the server.
"""
import grpc
from pachyderm_sdk.api import pfs

from pachstudio.pfswire import add_file, fields

from .conftest import put, read


def file_type(raw: bytes) -> int:
    """pfs.FileInfo's file_type (field 2) from its bytes."""
    return next((value for num, wire, value in fields(raw) if num == 2 and wire == 0), 0)


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
    entries = list(walk(request))
    files = [raw for raw in entries if file_type(raw) == pfs.FileType.FILE]
    assert len(files) == 100_000 and len(entries) == 100_000 + 100 + 1
    assert pfs.FileInfo().parse(files[0]).file.commit.id == pach.pfs.inspect_commit(
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
