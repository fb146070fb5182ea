"""The mount server's versions and tags of a branch (mount/versions.py): commits made and read
back with the real pachyderm-sdk against the embedded server."""
import grpc
import pytest
from pachyderm_sdk.api import pfs

from conftest import put, stats


@pytest.fixture
def labels(pach):
    """A repo whose `labels` branch has three commits and whose `master` has one of its own."""
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))
    ids = [put(pach, "labels@labels", {f"/{i}.json": b"{}"}, description=f"version {i}") for i in range(3)]
    other = put(pach, "labels@master", {"/x": b"x"}, description="not a version of labels")
    return ids, other


def base(branch="labels", repo="labels"):
    return f"/repos/default/{repo}/branches/{branch}"


def branch_head(pach, name):
    try:
        return pach.pfs.inspect_branch(branch=pfs.Branch.from_uri(f"labels@{name}")).head.id
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND
        return None


def test_versions_are_the_branch_commits_newest_first_paged_with_descriptions(mount_server, pach, labels):
    ids, _ = labels
    answer = mount_server.call("GET", base() + "/versions").json()
    history = [c.commit.id for c in pach.pfs.list_commit(repo=pfs.Repo.from_uri("labels"),
                                                         to=pfs.Commit.from_uri("labels@labels"))]
    assert [v["commit"] for v in answer["versions"]] == history and history[:3] == ids[::-1]
    assert answer["count"] == len(history) and (answer["page"], answer["page_size"]) == (1, 50)
    assert answer["versions"][0]["description"] == "version 2"
    assert all(v["finished"] and v["finished"].endswith("Z") for v in answer["versions"])
    assert answer["tags"] == []

    page2 = mount_server.call("GET", base() + "/versions?page=2&page_size=2").json()
    assert [v["commit"] for v in page2["versions"]] == history[2:4] and page2["count"] == len(history)


def test_listing_costs_one_list_commit_and_one_list_branch_whatever_the_length(mount_server, pach, labels):
    for i in range(20):
        put(pach, "labels@labels", {f"/more{i}.json": b"{}"})
    before = stats(mount_server)
    answer = mount_server.call("GET", base() + "/versions?page_size=1000").json()
    after = stats(mount_server)
    assert answer["count"] >= 23
    spent = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
    assert spent == {"list_commit": 1, "list_branch": 1}


def test_a_tag_is_a_pachyderm_branch_at_the_commit_and_is_listed(mount_server, pach, labels):
    ids, _ = labels
    made = mount_server.call("POST", base() + "/tags", {"name": "v1", "commit": ids[0]})
    assert made.status_code == 201 and made.json() == {"name": "v1", "commit": ids[0], "created": True}
    assert branch_head(pach, "v1") == ids[0]
    assert mount_server.call("GET", base() + "/tags").json() == [{"name": "v1", "commit": ids[0]}]
    assert mount_server.call("GET", base() + "/versions").json()["tags"] == [{"name": "v1", "commit": ids[0]}]
    again = mount_server.call("POST", base() + "/tags", {"name": "v1", "commit": ids[0]})
    assert again.status_code == 200 and again.json() == {"name": "v1", "commit": ids[0], "created": False}
    assert branch_head(pach, "labels") == ids[2]  # the Target's branch did not move


@pytest.mark.parametrize("name", ["v 1", "v1.0", "before/synthetic", "", "x" * 64,
                                  "0123456789ab4def0123456789abcdef"])
def test_a_name_pachyderm_rejects_is_refused_with_the_rule(mount_server, pach, labels, name):
    ids, _ = labels
    before = sorted(b.branch.name for b in pach.pfs.list_branch(repo=pfs.Repo.from_uri("labels")))
    answer = mount_server.call("POST", base() + "/tags", {"name": name, "commit": ids[0]})
    assert answer.status_code == 400, answer.text
    assert "letters, digits, underscores and dashes" in answer.json()["detail"]
    assert sorted(b.branch.name for b in pach.pfs.list_branch(repo=pfs.Repo.from_uri("labels"))) == before


@pytest.mark.parametrize("route", ["/versions", "/tags", "/head"])
def test_a_branch_in_the_path_is_checked_by_the_branch_rule(mount_server, pach, labels, route):
    """A commit-id-shaped name passes the repo rule but is never a branch: pachd refuses it, so do
    the routes, before any cluster call."""
    shaped = mount_server.call("GET", base("0123456789ab4def0123456789abcdef") + route)
    assert shaped.status_code == 400, shaped.text
    assert shaped.json()["detail"].startswith("branch: ") and "not shaped like a commit id" in shaped.json()["detail"]
    assert mount_server.call("GET", base() + route).status_code == 200


def test_a_commit_outside_the_history_is_refused_and_nothing_changes(mount_server, pach, labels):
    _, other = labels
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("elsewhere"))
    foreign = put(pach, "elsewhere@master", {"/y": b"y"})
    for commit in (other, foreign, "master", "f" * 32):
        answer = mount_server.call("POST", base() + "/tags", {"name": "v9", "commit": commit})
        assert answer.status_code == 400, answer.text
        assert "not a version of default/labels@labels" in answer.json()["detail"] or \
            "is not a commit id" in answer.json()["detail"]
    assert branch_head(pach, "v9") is None


def test_an_existing_name_at_another_commit_is_a_conflict_and_is_not_moved(mount_server, pach, labels):
    ids, _ = labels
    assert mount_server.call("POST", base() + "/tags", {"name": "v1", "commit": ids[0]}).status_code == 201
    moved = mount_server.call("POST", base() + "/tags", {"name": "v1", "commit": ids[1]})
    assert moved.status_code == 409 and f"already exists at commit {ids[0]}" in moved.json()["detail"]
    clash = mount_server.call("POST", base() + "/tags", {"name": "master", "commit": ids[1]})
    assert clash.status_code == 409
    assert branch_head(pach, "v1") == ids[0]


def test_a_branch_not_made_yet_has_no_versions_and_a_missing_repo_is_404(mount_server, pach, labels):
    empty = mount_server.call("GET", base("not-yet") + "/versions").json()
    assert empty["count"] == 0 and empty["versions"] == []
    missing = mount_server.call("GET", base(repo="no-such-repo") + "/versions")
    assert missing.status_code == 404 and "no-such-repo" in missing.json()["detail"]
    bad = mount_server.call("GET", base(branch="a.b") + "/versions")
    assert bad.status_code == 400 and "branch" in bad.json()["detail"]
