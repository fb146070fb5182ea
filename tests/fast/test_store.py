"""The PFS engine (`Store`) as its callers see it: repos, commits, files, listings and diffs.

Files are written through one helper, `commit`, so a change in how the engine takes a batch of
writes touches only that helper."""

import pytest

from pachstudio.pfs_server.errors import AlreadyExists, InvalidArgument, NotFound
from pachstudio.pfs_server.pfs.store import Store

pytestmark = pytest.mark.fast


def commit(store: Store, repo, files: dict, branch: str = "master"):
    """One commit on `branch`: {path: bytes, or None to delete (a folder: all below it)}. A file
    is replaced as the SDK's put_file does it: a delete, then an add (an add alone appends)."""
    batch = store.begin_batch(repo, "", branch)
    for path, data in files.items():
        batch.delete(path)
        if data is not None:
            batch.add(path, data)
    return store.apply_batch(batch)


def read(store: Store, commit_id: str, path: str) -> bytes:
    return b"".join(store.read(store.inspect(commit_id, path)))


def tree(store: Store, commit_id: str) -> dict:
    return {e.path: read(store, commit_id, e.path) for e in store.files_under(commit_id, "/")}


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path / "pfs"))


@pytest.fixture
def repo(store):
    store.create_repo("default", "images")
    return store.get_repo("default", "images")


def test_a_commit_holds_its_files_and_later_commits_do_not_change_it(store, repo):
    first = commit(store, repo, {"/a/1.txt": b"one", "/a/2.txt": b"two", "/b.txt": b"bee"})
    second = commit(store, repo, {"/a/1.txt": b"ONE", "/a/2.txt": None, "/c/new.txt": b"new"})

    assert first.finished is not None and second.finished is not None
    assert second.parent == first.id
    assert tree(store, first.id) == {"/a/1.txt": b"one", "/a/2.txt": b"two", "/b.txt": b"bee"}
    assert tree(store, second.id) == {"/a/1.txt": b"ONE", "/b.txt": b"bee", "/c/new.txt": b"new"}
    assert store.resolve_commit(repo, branch="master").id == second.id
    assert store.resolve_commit(repo, "master^").id == first.id


def test_listing_shows_folders_with_their_sizes_and_files(store, repo):
    c = commit(store, repo, {"/imgs/x.png": b"12345", "/imgs/sub/y.png": b"123", "/top.json": b"{}"})
    root = store.list_dir(c.id, "/")
    assert [(e.path, e.is_dir, e.size) for e in root] == [("/imgs/", True, 8), ("/top.json", False, 2)]
    assert [e.path for e in store.list_dir(c.id, "/imgs")] == ["/imgs/sub/", "/imgs/x.png"]
    assert [e.path for e in store.walk(c.id, "/")] == [
        "/",
        "/imgs/",
        "/imgs/sub/",
        "/imgs/sub/y.png",
        "/imgs/x.png",
        "/top.json",
    ]
    folder = store.inspect(c.id, "/imgs")
    assert folder.is_dir and folder.size == 8
    with pytest.raises(NotFound):
        store.list_dir(c.id, "/missing")
    with pytest.raises(NotFound):
        store.inspect(c.id, "/imgs/nope.png")


def test_an_add_appends_to_the_file_of_the_branch_head(store, repo):
    commit(store, repo, {"/log.txt": b"one\n"})
    batch = store.begin_batch(repo, "", "master")
    batch.add("/log.txt", b"two\n")
    c = store.apply_batch(batch)
    assert read(store, c.id, "/log.txt") == b"one\ntwo\n"


def test_deleting_a_folder_deletes_everything_below_it(store, repo):
    commit(store, repo, {"/d/a": b"a", "/d/e/b": b"b", "/dd": b"keep"})
    c = commit(store, repo, {"/d": None})
    assert tree(store, c.id) == {"/dd": b"keep"}


def test_diff_names_added_changed_and_deleted_files(store, repo):
    old = commit(store, repo, {"/same": b"s", "/changed": b"v1", "/gone": b"g"})
    commit(store, repo, {"/changed": b"v2"})
    new = commit(store, repo, {"/gone": None, "/added": b"a"})

    changes = {c.path: (c.old is not None, c.new is not None) for c in store.diff(new.id, old.id)}
    # and, as pachd's differ, the directories above them (here the root)
    assert changes == {"/": (True, True), "/added": (False, True), "/changed": (True, True), "/gone": (True, False)}
    # a file written back with its old content is no change
    back = commit(store, repo, {"/changed": b"v1"})
    assert "/changed" not in {c.path for c in store.diff(back.id, old.id)}
    # from nothing: every file is new
    assert {c.path for c in store.diff(old.id, None)} == {"/", "/same", "/changed", "/gone"}


def test_writes_into_an_open_commit_show_once_it_is_finished(store, repo):
    base = commit(store, repo, {"/keep": b"k"})
    open_commit = store.start_commit(repo, "master", description="labels")
    batch = store.begin_batch(repo, open_commit.id, "")
    batch.add("/labels/1.json", b'{"a": 1}')
    store.apply_batch(batch)
    store.finish_commit(store.get_commit(open_commit.id))

    done = store.get_commit(open_commit.id)
    assert done.finished is not None and done.parent == base.id and done.description == "labels"
    assert tree(store, done.id) == {"/keep": b"k", "/labels/1.json": b'{"a": 1}'}


def test_repos_are_named_once_and_with_pachyderm_names(store, repo):
    with pytest.raises(AlreadyExists):
        store.create_repo("default", "images")
    with pytest.raises(InvalidArgument):
        store.create_repo("default", "bad/name")
    store.create_repo("default", "labels")
    assert sorted(r.name for r in store.list_repos()) == ["images", "labels"]
    store.delete_repo("default", "labels")
    assert [r.name for r in store.list_repos()] == ["images"]


def test_everything_is_there_after_a_restart(tmp_path, store, repo):
    c = commit(store, repo, {"/big.bin": bytes(range(256)) * 4096, "/small": b"s"})
    again = Store(str(tmp_path / "pfs"))
    assert again.deployment_id == store.deployment_id
    assert again.resolve_commit(again.get_repo("default", "images"), branch="master").id == c.id
    assert tree(again, c.id) == {"/big.bin": bytes(range(256)) * 4096, "/small": b"s"}
