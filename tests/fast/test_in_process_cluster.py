"""The embedded server's gRPC protocol and the mount server's read path, in one process: the
server from `pfs_server.main.build_server` on a free loopback port, the real pachyderm-sdk client,
the mount server's cluster client, commit tree and file cache; no FUSE, no subprocess."""

import pytest
from pachyderm_sdk.api import pfs

from pachstudio.mount.cache import ContentCache
from pachstudio.mount.errors import NotFound
from pachstudio.mount.readonly import CommitTree
from plugins.pfs import commit_files, read

pytestmark = pytest.mark.fast


def test_the_sdk_writes_reads_lists_and_deletes(pach):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("images"))
    first = commit_files(pach, "images@master", {"/a/1.txt": b"one", "/a/2.txt": b"two", "/b": b"b"})
    commit_files(pach, "images@master", {"/a/2.txt": None, "/b": b"bee"})

    assert read(pach, "images@master:/b") == b"bee"
    assert read(pach, f"images@{first.id}:/b") == b"b"  # the older commit is unchanged
    listed = {i.file.path: i.size_bytes for i in pach.pfs.list_file(file=pfs.File.from_uri("images@master:/a"))}
    assert listed == {"/a/1.txt": 3}
    history = list(pach.pfs.list_commit(repo=pfs.Repo.from_uri("images")))
    assert len(history) == 2


def test_the_mount_server_lists_a_folder_in_one_call_and_reads_through_its_cache(pach, remote, tmp_path):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("images"))
    files = {f"/imgs/{i:03}.bin": bytes([i]) * (1000 + i) for i in range(50)}
    commit = commit_files(pach, "images@master", files)

    tree = CommitTree(
        remote, pfs.Commit(id=commit.id, repo=pfs.Repo.from_uri("images")), ContentCache(str(tmp_path / "cache"))
    )
    listing = tree.listdir("/imgs")
    assert sorted(listing) == sorted(p.rsplit("/", 1)[1] for p in files)
    assert all(tree.stat(p).size == len(d) for p, d in files.items())
    assert remote.calls["list_file"] == 2, "one listing a folder (/ and /imgs), not one call a file"

    out = bytearray(2000)
    n = tree.read_into("/imgs/007.bin", 0, memoryview(out))
    assert bytes(out[:n]) == files["/imgs/007.bin"]
    assert tree.read_into("/imgs/007.bin", 0, memoryview(out)) == n
    assert remote.calls["get_file"] == 1, "the second read comes from the cache"
    with pytest.raises(NotFound):
        tree.read_into("/imgs/missing.bin", 0, memoryview(out))
