"""A file's history through the mount server (label versions): which commits of a branch added,
changed or deleted each path, with time and description, read with the real SDK against the
embedded server; and a file as one commit holds it."""
from pachyderm_sdk.api import pfs

from conftest import put, stats


def test_history_lists_the_commits_that_touched_each_path_oldest_first(pach, mount_server):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))
    c1 = put(pach, "labels@master", {"ann/1.json": b'{"v": 1}', "ann/2.json": b'{"x": 1}'}, "first sync")
    put(pach, "labels@master", {"ann/2.json": b'{"x": 2}'}, "touches another file only")
    c3 = put(pach, "labels@master", {"ann/1.json": b'{"v": 2}'}, "second sync")
    c4 = put(pach, "labels@master", {"ann/1.json": None, "ann/3.json": b"{}"}, "third sync")
    put(pach, "labels@other", {"ann/1.json": b'{"v": 9}'}, "another branch")

    r = mount_server.call("GET", "/repos/default/labels/history",
                          params={"path": ["ann/1.json", "/ann/3.json"], "contents": "true"})

    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["head"] == c4 and answer["commits"] == 4 and answer["branch"] == "master"
    seen = [(c["path"], c["commit"], c["change"], c["description"], c["content"]) for c in answer["changes"]]
    assert seen == [
        ("ann/1.json", c1, "added", "first sync", '{"v": 1}'),
        ("ann/1.json", c3, "changed", "second sync", '{"v": 2}'),
        ("ann/1.json", c4, "deleted", "third sync", None),
        ("ann/3.json", c4, "added", "third sync", "{}"),
    ]
    info = pach.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"labels@{c3}"))
    change = answer["changes"][1]
    assert change["parent"] == info.parent_commit.id and change["size"] == 8
    assert change["finished"].startswith(info.finished.strftime("%Y-%m-%dT%H:%M:%S"))


def test_history_costs_one_diff_per_commit_and_path_not_a_read_of_every_file(pach, mount_server):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("big"))
    put(pach, "big@master", {f"ann/{i}.json": b"{}" for i in range(300)})
    for n in range(4):
        put(pach, "big@master", {f"ann/{i}.json": f'{{"n": {n}}}'.encode() for i in range(0, 300, 3)})
    before = stats(mount_server)

    r = mount_server.call("GET", "/repos/default/big/history", params={"path": "ann/3.json"})

    assert r.status_code == 200, r.text
    assert [c["change"] for c in r.json()["changes"]] == ["added"] + ["changed"] * 4
    after = stats(mount_server)
    calls = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert calls.get("diff_file") == 5 and calls.get("list_commit") == 1
    assert not calls.get("get_file") and not calls.get("walk_file")  # contents were not asked for


def test_file_at_a_commit_is_that_version(pach, mount_server):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))
    c1 = put(pach, "labels@master", {"a/t.json": b"old"})
    put(pach, "labels@master", {"a/t.json": b"new"})

    r = mount_server.call("GET", "/repos/default/labels/file", params={"commit": c1, "path": "a/t.json"})

    assert r.status_code == 200 and r.content == b"old"


def test_bad_requests_are_refused_with_the_reason(pach, mount_server):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))
    c1 = put(pach, "labels@master", {"t.json": b"x"})
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("other"))
    elsewhere = put(pach, "other@master", {"t.json": b"y"})

    def detail(path, params, status):
        r = mount_server.call("GET", path, params=params)
        assert r.status_code == status, r.text
        return r.json()["detail"]

    assert "at least one file path" in detail("/repos/default/labels/history", {}, 400)
    assert "'..'" in detail("/repos/default/labels/history", {"path": "../etc/passwd"}, 400)
    assert "branch" in detail("/repos/default/labels/history", {"path": "t.json", "branch": "nope"}, 404)
    assert "repo 'bad.name'" in detail("/repos/default/bad.name/history", {"path": "t.json"}, 400)
    assert "nosuch" in detail("/repos/default/nosuch/history", {"path": "t.json"}, 404)
    assert "32 lowercase hex" in detail("/repos/default/labels/file", {"commit": "master", "path": "t.json"}, 400)
    assert detail("/repos/default/labels/file", {"commit": elsewhere, "path": "t.json"}, 404)
    assert "missing.json" in detail("/repos/default/labels/file", {"commit": c1, "path": "missing.json"}, 404)
