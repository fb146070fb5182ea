"""A folder of 100,000 files lists through FUSE and through /files in one streamed call each,
and the stat of its entries needs no further cluster call (no GETATTR storm)."""
import os
import random

from pachyderm_sdk.api import pfs

from conftest import mount, ndjson, stats

N = 100_000


def put_many(pach, n: int):
    """All files in one ModifyFile (the SDK's one-file-per-call helpers would take minutes)."""
    branch = pfs.Branch.from_uri("images@master")

    def requests(commit):
        yield pfs.ModifyFileRequest(set_commit=commit)
        for i in range(n):
            yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path=f"/big/{i:06d}.txt",
                                                             raw=str(i).encode()))
    commit = pach.pfs.start_commit(branch=branch)
    pach.pfs.modify_file(requests(commit))
    pach.pfs.finish_commit(commit=commit)


def test_folder_of_100000_files(mount_server, pach, images):
    put_many(pach, N)
    mount(mount_server, "img", images)
    folder = os.path.join(mount_server.mount_dir, "img", "big")
    assert os.path.isdir(folder)
    before = stats(mount_server)
    names = os.listdir(folder)
    assert len(names) == N and sorted(names)[12345] == "012345.txt"
    for name in random.Random(1).sample(names, 500):
        assert os.stat(os.path.join(folder, name)).st_size == len(str(int(name[:6])))
    with open(os.path.join(folder, "099999.txt"), "rb") as f:
        assert f.read() == b"99999"
    listed = ndjson(mount_server.call("GET", "/mounts/img/files", params={"prefix": "big"}))
    assert len(listed) == N and listed[0] == {"path": "big/000000.txt", "size": 1,
                                              "commit": listed[0]["commit"]}
    after = stats(mount_server)
    assert after["list_file"] - before.get("list_file", 0) == 1
    assert after["walk_file"] - before.get("walk_file", 0) == 1
    assert after.get("inspect_file", 0) == before.get("inspect_file", 0)
