"""The embedded server's collector in-process: what deletes free is given back, what any commit
still references reads back byte-identical, and a content a write in flight is about to reference
survives a collection that runs in between (the pins)."""

import os

import pytest
from test_store import commit, read, tree

from pachstudio.pfs_server.pfs.store import Store

pytestmark = pytest.mark.fast

BIG = 40 << 10  # above blobs.INLINE: stored as a file


def big(tag: str) -> bytes:
    return (tag.encode() * (BIG // len(tag) + 1))[:BIG]


def blob_files(store: Store) -> set:
    root = store.blobs.root
    return {p + n for p in os.listdir(root) if len(p) == 2 for n in os.listdir(os.path.join(root, p))}


def inline_rows(store: Store) -> int:
    return store._conn().execute("SELECT COUNT(*) FROM inline_blobs").fetchone()[0]


def data_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path / "pfs"))


def make_repo(store, name):
    store.create_repo("default", name)
    return store.get_repo("default", name)


def test_the_database_gives_freed_pages_back(store, tmp_path):
    repo = make_repo(store, "r")
    commit(store, repo, {"/keep": b"kept"})
    store.collector.collect()
    before = data_size(str(tmp_path / "pfs"))
    batch = store.begin_batch(make_repo(store, "many"), "", "master")
    for i in range(20000):
        batch.add(f"/f{i}", b"%d" % i * 50)
    store.apply_batch(batch)
    assert data_size(str(tmp_path / "pfs")) > 5 * before
    store.delete_repo("default", "many")
    store.collector.collect()
    assert data_size(str(tmp_path / "pfs")) <= before * 1.1


def test_deleting_a_repo_frees_its_contents_and_keeps_the_others(store, tmp_path):
    keep, gone = make_repo(store, "keep"), make_repo(store, "gone")
    shared = big("shared")
    kept = commit(store, keep, {"/s": shared, "/k": big("keep"), "/small": b"kept small"})
    store.collector.collect()
    before = data_size(str(tmp_path / "pfs"))
    for i in range(40):
        commit(store, gone, {f"/f{i}": big(f"gone{i}"), f"/t{i}": b"tiny %d" % i, "/s": shared})
    grown_files, grown_rows = len(blob_files(store)), inline_rows(store)
    store.delete_repo("default", "gone")
    freed = store.collector.collect()
    assert freed["files"] == 40 and freed["inline"] == 40
    assert len(blob_files(store)) == grown_files - 40 and inline_rows(store) == grown_rows - 40
    assert tree(store, kept.id) == {"/k": big("keep"), "/s": shared, "/small": b"kept small"}
    assert data_size(str(tmp_path / "pfs")) <= before * 1.1  # the database gave its pages back too


def test_drop_and_squash_free_only_what_no_commit_references(store):
    repo = make_repo(store, "r")
    first = commit(store, repo, {"/a": big("a1"), "/b": big("b")})
    second = commit(store, repo, {"/a": big("a2")})
    store.drop_commit_set(second.cid)
    assert store.collector.collect()["files"] == 1  # a2 went with the dropped commit
    assert tree(store, first.id) == {"/a": big("a1"), "/b": big("b")}
    third = commit(store, repo, {"/a": big("a3")})
    store.squash_commit_set(first.cid)  # a1 is overwritten in the child: nothing references it
    assert store.collector.collect()["files"] == 1
    assert tree(store, third.id) == {"/a": big("a3"), "/b": big("b")}


@pytest.mark.parametrize("content", [big("dedup"), b"small dedup"], ids=["file", "inline"])
def test_a_content_an_open_stream_holds_survives_a_collection(store, content):
    """The stream's content equals one about to lose its last reference: the store finds it
    already there, so only the pin keeps the collector from deleting it before the stream applies."""
    old, new = make_repo(store, "old"), make_repo(store, "new")
    commit(store, old, {"/x": content})
    batch = store.begin_batch(new, "", "master")
    batch.add("/x", content)
    batch.add("/other", b"sealing /x")  # /x is sealed: stored (deduplicated) and pinned
    store.delete_repo("default", "old")
    store.collector.collect()
    row = store.apply_batch(batch)
    assert read(store, row.id, "/x") == content
    store.collector.collect()  # released now, and referenced: still kept
    assert read(store, row.id, "/x") == content


def test_a_copy_pins_what_it_copies(store):
    src, dst = make_repo(store, "src"), make_repo(store, "dst")
    c = commit(store, src, {"/d/x": big("copied"), "/d/y": b"copied small"})
    batch = store.begin_batch(dst, "", "master")
    batch.copy(c.id, "/d", "/e")
    store.delete_repo("default", "src")
    store.collector.collect()
    row = store.apply_batch(batch)
    assert tree(store, row.id) == {"/e/x": big("copied"), "/e/y": b"copied small"}


def test_a_cut_stream_leaves_nothing_after_a_collection(store):
    repo = make_repo(store, "r")
    commit(store, repo, {"/keep": big("keep")})
    files = blob_files(store)
    batch = store.begin_batch(repo, "", "master")
    for i in range(5):
        batch.add(f"/f{i}", big(f"cut{i}"))
    batch.seal()
    assert len(blob_files(store)) == len(files) + 5
    batch.discard()
    store.collector.collect()
    assert blob_files(store) == files
