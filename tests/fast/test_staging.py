"""The staging area of a read-write mount: local changes over the branch head, what a commit will
send, and what survives an upload that fails, one made meanwhile, and a restart."""

import errno
import os
import posixpath

import pytest

from pachstudio.mount.errors import NotFound
from pachstudio.mount.readonly import Node
from pachstudio.mount.staging import FsError, StagingArea
from pachstudio.rules import clean_path as clean

pytestmark = pytest.mark.fast


class Tree:
    """A commit's files in memory, answering what StagingArea asks of its base commit."""

    def __init__(self, files: dict, commit_id: str = "c1"):
        self.files = {clean(p): d for p, d in files.items()}
        self.commit_id, self.mtime = commit_id, 1_700_000_000.0

    def _dirs(self) -> set:
        return {d for p in self.files for d in _parents(p)}

    def stat(self, path):
        path = clean(path)
        if path in self.files:
            return Node(False, len(self.files[path]))
        return Node(True) if path == "/" or path in self._dirs() else None

    def listdir(self, path):
        path = clean(path)
        if path != "/" and path not in self._dirs():
            raise NotFound(path)
        out = {}
        for p in list(self.files) + list(self._dirs()):
            if posixpath.dirname(p) == path and p != "/":
                out[posixpath.basename(p)] = self.stat(p)
        return out

    def walk(self, path="/"):
        prefix = clean(path).rstrip("/") + "/"
        for p in sorted(self.files):
            if p == clean(path) or p.startswith(prefix):
                yield p, Node(False, len(self.files[p]))

    def read(self, path, offset, length):
        return self.files[clean(path)][offset : offset + length]

    def read_into(self, path, offset, out):
        data = self.read(path, offset, len(out))
        out[: len(data)] = data
        return len(data)


def _parents(path):
    path = posixpath.dirname(path)
    while path != "/":
        yield path
        path = posixpath.dirname(path)


BASE = {"/a.txt": b"base a", "/imgs/1.png": b"one", "/imgs/2.png": b"two"}


@pytest.fixture
def area(tmp_path):
    return StagingArea(str(tmp_path / "stage"), Tree(BASE))


def write(area, path, data):
    h = area.create(path)
    area.write(h, data, 0)
    area.release(h)


def read(area, path):
    h = area.open(path, writable=False)
    try:
        out = bytearray(1 << 20)
        return bytes(out[: area.read_into(h, 0, memoryview(out))])
    finally:
        area.release(h)


def test_staged_changes_show_over_the_base_and_are_listed(area):
    assert not area.has_changes()
    area.mkdir("/new")
    write(area, "/new/label.json", b"{}")
    h = area.open("/a.txt", writable=True)
    area.write(h, b"A", 0)
    area.release(h)
    area.unlink("/imgs/1.png")

    assert read(area, "/a.txt") == b"Aase a"
    assert read(area, "/new/label.json") == b"{}"
    assert read(area, "/imgs/2.png") == b"two"  # untouched: from the base
    assert area.lookup("/imgs/1.png") is None
    assert sorted(area.listdir("/")) == ["a.txt", "imgs", "new"]
    assert sorted(area.listdir("/imgs")) == ["2.png"]
    assert area.staged() == {"added": ["new/label.json"], "changed": ["a.txt"], "deleted": ["imgs/1.png"]}


def test_what_the_filesystem_refuses(area):
    with pytest.raises(FsError) as e:
        write(area, "/no/such/folder/x", b"")
    assert e.value.errno == errno.ENOENT
    with pytest.raises(FsError) as e:
        area.rmdir("/imgs")
    assert e.value.errno == errno.ENOTEMPTY
    with pytest.raises(FsError) as e:
        area.mkdir("/imgs")
    assert e.value.errno == errno.EEXIST
    with pytest.raises(FsError) as e:
        area.rename("/imgs", "/imgs/inside")
    assert e.value.errno == errno.EINVAL
    assert not area.has_changes()


def test_a_renamed_folder_moves_its_files_from_the_base(area):
    area.rename("/imgs", "/pictures")
    assert area.lookup("/imgs") is None
    assert sorted(area.listdir("/pictures")) == ["1.png", "2.png"]
    assert read(area, "/pictures/2.png") == b"two"
    assert area.staged() == {
        "added": ["pictures/1.png", "pictures/2.png"],
        "changed": [],
        "deleted": ["imgs/1.png", "imgs/2.png"],
    }


def test_writes_during_an_upload_go_to_the_next_commit(area):
    write(area, "/first.json", b"1")
    area.unlink("/a.txt")
    assert area.freeze()
    plan = area.plan(area.frozen)
    assert [p for p, _ in plan.puts] == ["/first.json"] and plan.deletes == ["/a.txt"]

    write(area, "/second.json", b"2")  # arrives while the first commit uploads
    assert read(area, "/first.json") == b"1"  # the view still shows what is being sent

    area.complete(Tree({"/first.json": b"1", "/imgs/1.png": b"one", "/imgs/2.png": b"two"}, "c2"))
    assert area.staged() == {"added": ["second.json"], "changed": [], "deleted": []}
    assert read(area, "/first.json") == b"1"  # now from the new base
    assert area.lookup("/a.txt") is None


def test_a_failed_upload_keeps_everything_and_newer_writes_win(area):
    write(area, "/l.json", b"old")
    write(area, "/only-frozen.json", b"f")
    area.freeze()
    write(area, "/l.json", b"new")
    area.merge_back()

    assert area.frozen is None
    assert read(area, "/l.json") == b"new"
    assert read(area, "/only-frozen.json") == b"f"
    assert area.staged()["added"] == ["l.json", "only-frozen.json"]


def test_a_restart_finds_the_same_view(tmp_path, area):
    write(area, "/kept.json", b"k")
    area.unlink("/imgs/2.png")
    area.freeze()  # a crash mid-upload: the frozen layer is on disk too
    write(area, "/later.json", b"l")

    again = StagingArea(area.folder, Tree(BASE))
    assert read(again, "/kept.json") == b"k" and read(again, "/later.json") == b"l"
    assert again.lookup("/imgs/2.png") is None
    assert again.frozen is not None
    assert again.staged() == {"added": ["kept.json", "later.json"], "changed": [], "deleted": ["imgs/2.png"]}
    assert os.path.isdir(os.path.join(area.folder, "frozen"))
