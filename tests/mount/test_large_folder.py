"""A folder of 100,000 files lists through FUSE and through /files in one streamed call each,
and the stat of its entries needs no further cluster call (no GETATTR storm)."""
import os
import random

from pachyderm_sdk.api import pfs

from conftest import mount, ndjson, stats

N = 100_000


def put_many(pach, n: int):
    """All files in one ModifyFile. The messages are encoded once and copied with the name
    swapped (same length), since betterproto needs ~1 ms a message on a busy machine."""
    branch = pfs.Branch.from_uri("images@master")
    template = bytes(pfs.ModifyFileRequest(add_file=pfs.AddFile(path="/big/@@@@@@.txt",
                                                                raw=b"######")))

    def requests(commit):
        yield bytes(pfs.ModifyFileRequest(set_commit=commit))
        for i in range(n):
            name = f"{i:06d}".encode()
            yield template.replace(b"@@@@@@", name).replace(b"######", name)
    commit = pach.pfs.start_commit(branch=branch)
    modify = pach._channel.stream_unary("/pfs_v2.API/ModifyFile", request_serializer=bytes,
                                        response_deserializer=bytes)
    modify(requests(commit))
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
        assert os.stat(os.path.join(folder, name)).st_size == 6
    with open(os.path.join(folder, "099999.txt"), "rb") as f:
        assert f.read() == b"099999"
    listed = ndjson(mount_server.call("GET", "/mounts/img/files", params={"prefix": "big"}))
    assert len(listed) == N and listed[0] == {"path": "big/000000.txt", "size": 6,
                                              "commit": listed[0]["commit"]}
    after = stats(mount_server)
    assert after["list_file"] - before.get("list_file", 0) == 1
    assert after["walk_file"] - before.get("walk_file", 0) == 1
    assert after.get("inspect_file", 0) == before.get("inspect_file", 0)
