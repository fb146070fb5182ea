import io
import os
import tarfile

import grpc
import pytest
from pachyderm_sdk.api import pfs

from .conftest import code_of, put, read


def paths(infos):
    return [i.file.path for i in infos]


def test_put_overwrite_append_and_read(pach, repo):
    master = pfs.Commit.from_uri("images@master")
    pach.pfs.put_file_from_bytes(commit=master, path="/f.txt", data=b"one")
    assert read(pach, "images@master:/f.txt") == b"one"
    pach.pfs.put_file_from_bytes(commit=master, path="/f.txt", data=b"two")
    assert read(pach, "images@master:/f.txt") == b"two"
    pach.pfs.put_file_from_bytes(commit=master, path="/f.txt", data=b"+more", append=True)
    assert read(pach, "images@master:/f.txt") == b"two+more"
    assert len(list(pach.pfs.list_commit(repo=repo))) == 3  # each auto-commit is finished by itself


def test_empty_file_is_zero_messages(pach, repo):
    put(pach, "images@master", {"/empty": b""})
    assert list(pach.pfs.get_file(file=pfs.File.from_uri("images@master:/empty"))) == []
    info = pach.pfs.inspect_file(file=pfs.File.from_uri("images@master:/empty"))
    assert info.size_bytes == 0 and info.file_type == pfs.FileType.FILE


def test_large_file_streams_in_chunks_within_limits_and_offsets(pach, repo, tmp_path):
    data = os.urandom(25 << 20)
    src = tmp_path / "big"
    src.write_bytes(data)
    with pach.pfs.commit(branch=pfs.Branch.from_uri("images@master")) as c:
        with open(src, "rb") as f:
            c.put_file_from_file(path="/big", file=f)
    msgs = list(pach.pfs.get_file(file=pfs.File.from_uri("images@master:/big")))
    assert len(msgs) > 1 and all(len(m.value) <= 19 << 20 for m in msgs)
    assert b"".join(m.value for m in msgs) == data
    tail = pach.pfs.get_file(file=pfs.File.from_uri("images@master:/big"), offset=(25 << 20) - 10)
    assert b"".join(m.value for m in tail) == data[-10:]


def test_delete_file_and_whole_directory(pach, repo):
    put(pach, "images@master", {"/d/a": b"1", "/d/sub/b": b"2", "/keep": b"3"})
    put(pach, "images@master", {"/d/a": None})
    assert paths(pach.pfs.walk_file(file=pfs.File.from_uri("images@master:/"))) == \
        ["/", "/d/", "/d/sub/", "/d/sub/b", "/keep"]
    put(pach, "images@master", {"/d": None})
    assert paths(pach.pfs.list_file(file=pfs.File.from_uri("images@master:/"))) == ["/keep"]
    assert read(pach, "images@master^2:/d/a") == b"1"  # history is untouched


def test_delete_directory_then_add_in_same_commit(pach, repo):
    put(pach, "images@master", {"/d/a": b"1", "/d/b": b"2"})
    with pach.pfs.commit(branch=pfs.Branch.from_uri("images@master")) as c:
        c.delete_file(path="/d")
        c.put_file_from_bytes(path="/d/c", data=b"3")
    assert paths(pach.pfs.list_file(file=pfs.File.from_uri("images@master:/d"))) == ["/d/c"]


def test_copy_file_within_and_across_repos(pach, repo):
    put(pach, "images@master", {"/src/a": b"A", "/src/deep/b": b"B"})
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("other"))
    with pach.pfs.commit(branch=pfs.Branch.from_uri("other@master")) as c:
        c.copy_file(src=pfs.File.from_uri("images@master:/src"), dst="/copy")
    assert read(pach, "other@master:/copy/a") == b"A"
    assert read(pach, "other@master:/copy/deep/b") == b"B"
    with pach.pfs.commit(branch=pfs.Branch.from_uri("images@master")) as c:
        c.copy_file(src=pfs.File.from_uri("images@master:/src/a"), dst="/one")
    assert read(pach, "images@master:/one") == b"A"


def test_list_file_dirs_have_trailing_slash_and_sizes(pach, repo):
    put(pach, "images@master", {"/a/1": b"xx", "/a/2": b"yyy", "/b": b"z"})
    infos = list(pach.pfs.list_file(file=pfs.File.from_uri("images@master:/")))
    assert [(i.file.path, i.file_type, i.size_bytes) for i in infos] == \
        [("/a/", pfs.FileType.DIR, 5), ("/b", pfs.FileType.FILE, 1)]
    one = list(pach.pfs.list_file(file=pfs.File.from_uri("images@master:/b")))
    assert paths(one) == ["/b"]
    page = list(pach.pfs.list_file(file=pfs.File.from_uri("images@master:/a"), number=1))
    assert paths(page) == ["/a/1"]
    after = list(pach.pfs.list_file(file=pfs.File.from_uri("images@master:/a"),
                                    pagination_marker=pfs.File.from_uri("images@master:/a/1")))
    assert paths(after) == ["/a/2"]
    assert code_of(lambda: pach.pfs.list_file(file=pfs.File.from_uri("images@master:/nope"))) == \
        grpc.StatusCode.NOT_FOUND


def test_inspect_file_file_dir_missing(pach, repo):
    put(pach, "images@master", {"/a/1": b"xx"})
    d = pach.pfs.inspect_file(file=pfs.File.from_uri("images@master:/a"))
    assert d.file_type == pfs.FileType.DIR and d.size_bytes == 2
    f = pach.pfs.inspect_file(file=pfs.File.from_uri("images@master:/a/1"))
    assert f.file_type == pfs.FileType.FILE and len(f.hash) == 32
    with pytest.raises(grpc.RpcError) as info:
        pach.pfs.inspect_file(file=pfs.File.from_uri("images@master:/zz"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "file /zz not found in repo default/images at commit" in info.value.details()


def test_walk_file_is_preorder_with_pagination(pach, repo):
    put(pach, "images@master", {"/a/x": b"1", "/a/y/z": b"2", "/b": b"3"})
    assert paths(pach.pfs.walk_file(file=pfs.File.from_uri("images@master:/a"))) == \
        ["/a/", "/a/x", "/a/y/", "/a/y/z"]
    assert paths(pach.pfs.walk_file(file=pfs.File.from_uri("images@master:/"), number=2)) == ["/", "/a/"]


@pytest.mark.parametrize("pattern,expected", [
    ("/*", ["/a/", "/b.txt"]),
    ("/a/*", ["/a/c.png", "/a/d/"]),
    ("/**/*.png", ["/a/c.png", "/a/d/e.png"]),
    ("/a/?.png", ["/a/c.png"]),
    ("/{a,b.txt}", ["/a/", "/b.txt"]),
    ("/a/[cd]*", ["/a/c.png", "/a/d/"]),
])
def test_glob_file_rules(pach, repo, pattern, expected):
    put(pach, "images@master", {"/a/c.png": b"1", "/a/d/e.png": b"2", "/b.txt": b"3"})
    got = paths(pach.pfs.glob_file(commit=pfs.Commit.from_uri("images@master"), pattern=pattern))
    assert got == expected


def test_get_file_glob_and_directory_errors(pach, repo):
    put(pach, "images@master", {"/a/1": b"x", "/a/2": b"y", "/only.csv": b"z"})
    assert read(pach, "images@master:/*.csv") == b"z"
    assert code_of(lambda: read(pach, "images@master:/a/*")) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: read(pach, "images@master:/a")) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: read(pach, "images@master:/missing")) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: read(pach, "ghost@master:/x")) == grpc.StatusCode.NOT_FOUND


def test_get_file_tar(pach, repo):
    put(pach, "images@master", {"/a/1": b"one", "/a/2": b"two" * 300})
    raw = b"".join(m.value for m in pach.pfs.get_file_tar(file=pfs.File.from_uri("images@master:/a")))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        got = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    assert got == {"a/1": b"one", "a/2": b"two" * 300}


def test_get_file_tar_of_a_glob_is_whole_across_message_boundaries(pach, repo):
    """Many small files and one bigger than a message, in one glob: every byte arrives where the
    tar says, and the small files share messages (pachd writes the tar as one buffered stream)."""
    small = {f"/p/{i:03}.json": f'{{"n": {i}}}'.encode() for i in range(300)}
    big = os.urandom((5 << 20) + 7)
    put(pach, "images@master", {**small, "/p/150-big.json": big})
    messages = [m.value for m in pach.pfs.get_file_tar(file=pfs.File.from_uri("images@master:/p/*.json"))]
    with tarfile.open(fileobj=io.BytesIO(b"".join(messages))) as tar:
        got = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    assert got == {**{k.lstrip("/"): v for k, v in small.items()}, "p/150-big.json": big}
    assert len(messages) < 10


def test_diff_file_against_parent_and_between_commits(pach, repo):
    a = put(pach, "images@master", {"/keep": b"k", "/change": b"v1", "/gone": b"g"})
    put(pach, "images@master", {"/change": b"v2", "/gone": None, "/new": b"n"})
    put(pach, "images@master", {"/later": b"l"})

    def summary(diffs):
        out = {}
        for d in diffs:
            path = (d.new_file or d.old_file).file.path
            out[path] = ("changed" if d.new_file and d.old_file else "added" if d.new_file else "deleted")
        return out

    parent = pach.pfs.diff_file(new_file=pfs.File.from_uri("images@master^:/"))
    assert summary(parent) == {"/": "changed", "/change": "changed", "/gone": "deleted", "/new": "added"}
    since = pach.pfs.diff_file(new_file=pfs.File.from_uri("images@master:/"),
                               old_file=pfs.File(commit=pfs.Commit(repo=repo, id=a.id), path="/"))
    assert summary(since) == {"/": "changed", "/change": "changed", "/gone": "deleted", "/new": "added",
                              "/later": "added"}
    first = pach.pfs.diff_file(new_file=pfs.File(commit=pfs.Commit(repo=repo, id=a.id), path="/"))
    assert summary(first) == {"/": "added", "/keep": "added", "/change": "added", "/gone": "added"}


def test_writes_into_an_open_commit_and_to_a_finished_commit(pach, repo):
    c = pach.pfs.start_commit(branch=pfs.Branch.from_uri("images@master"))
    pach.pfs.put_file_from_bytes(commit=c, path="/x", data=b"1")
    pach.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri("images@master"), path="/y", data=b"2")
    pach.pfs.finish_commit(commit=c)
    assert len(list(pach.pfs.list_commit(repo=repo))) == 1
    assert read(pach, "images@master:/y") == b"2"
    assert code_of(lambda: pach.pfs.put_file_from_bytes(commit=c, path="/z", data=b"3")) == \
        grpc.StatusCode.FAILED_PRECONDITION


def test_put_into_missing_branch_creates_it(pach, repo):
    pach.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri("images@labels"), path="/a", data=b"1")
    assert pach.pfs.branch_exists(branch=pfs.Branch.from_uri("images@labels"))


def test_paths_are_cleaned_like_pachd(pach, repo):
    put(pach, "images@master", {"a//b/../c.txt": b"1"})
    assert paths(pach.pfs.walk_file(file=pfs.File.from_uri("images@master:/"))) == \
        ["/", "/a/", "/a/c.txt"]


def test_modify_file_protocol_errors(pach, repo):
    def stream(*msgs):
        return lambda: pach.pfs.modify_file(iter(msgs))
    add = pfs.ModifyFileRequest(add_file=pfs.AddFile(path="/a", raw=b"1"))
    set_ = pfs.ModifyFileRequest(set_commit=pfs.Commit.from_uri("images@master"))
    assert code_of(stream(add)) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(stream(set_, set_)) == grpc.StatusCode.INVALID_ARGUMENT
    nul = pfs.ModifyFileRequest(add_file=pfs.AddFile(path="/a\x00b", raw=b"1"))
    assert code_of(stream(set_, nul)) == grpc.StatusCode.INVALID_ARGUMENT
    root = pfs.ModifyFileRequest(add_file=pfs.AddFile(path="/", raw=b"1"))
    assert code_of(stream(set_, root)) == grpc.StatusCode.INVALID_ARGUMENT
    # nothing of the refused streams shows
    assert not pach.pfs.branch_exists(branch=pfs.Branch.from_uri("images@master"))


def test_five_mib_upload_fits_the_message_limit(pach, repo):
    data = os.urandom(5 << 20)
    pach.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri("images@master"), path="/five", data=data)
    assert read(pach, "images@master:/five") == data


def test_unchanged_bytes_are_stored_once(pach, pfs_server, repo):
    blob = os.urandom(1 << 20)
    put(pach, "images@master", {f"/copy{i}": blob for i in range(5)})
    blobs = os.path.join(pfs_server.data_dir, "blobs")
    stored = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(blobs) for f in fs)
    assert stored < 2 << 20


def test_diff_file_between_two_paths_filters_each_side_by_its_own_path(pach, repo):
    """pachd: the new side lists new_file.path in the new commit, the old side old_file.path in
    the old commit; entries are paired by path, so different paths give an added and a deleted."""
    a = put(pach, "images@master", {"/x/1": b"one", "/y/1": b"one", "/other": b"o"})
    put(pach, "images@master", {"/x/2": b"two"})
    got = list(pach.pfs.diff_file(new_file=pfs.File.from_uri("images@master:/x/2"),
                                  old_file=pfs.File(commit=pfs.Commit(repo=repo, id=a.id), path="/y/1")))
    assert [(d.new_file.file.path if d.new_file else None,
             d.old_file.file.path if d.old_file else None) for d in got] == \
        [("/x/2", None), (None, "/y/1")]
    same = list(pach.pfs.diff_file(new_file=pfs.File.from_uri("images@master:/x"),
                                   old_file=pfs.File(commit=pfs.Commit(repo=repo, id=a.id), path="/x")))
    assert [(d.new_file.file.path if d.new_file else None, d.old_file.file.path if d.old_file else None)
            for d in same] == [("/x/", "/x/"), ("/x/2", None)]  # the folder too, as pachd's differ
