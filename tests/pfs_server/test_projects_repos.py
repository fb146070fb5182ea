import grpc
import pytest
from pachyderm_sdk.api import pfs

from .conftest import code_of, put


def test_default_project_exists_and_projects_are_created_listed_deleted(pach):
    assert [p.project.name for p in pach.pfs.list_project()] == ["default"]
    pach.pfs.create_project(project=pfs.Project(name="vision"), description="cats")
    info = pach.pfs.inspect_project(project=pfs.Project(name="vision"))
    assert info.description == "cats"
    assert sorted(p.project.name for p in pach.pfs.list_project()) == ["default", "vision"]
    assert code_of(lambda: pach.pfs.create_project(project=pfs.Project(name="vision"))) == \
        grpc.StatusCode.ALREADY_EXISTS
    pach.pfs.delete_project(project=pfs.Project(name="vision"))
    assert not pach.pfs.project_exists(project=pfs.Project(name="vision"))
    assert code_of(lambda: pach.pfs.inspect_project(project=pfs.Project(name="vision"))) == \
        grpc.StatusCode.NOT_FOUND


def test_project_with_repos_is_not_deleted_without_force(pach):
    pach.pfs.create_project(project=pfs.Project(name="p1"))
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("p1/r"))
    assert code_of(lambda: pach.pfs.delete_project(project=pfs.Project(name="p1"))) == \
        grpc.StatusCode.FAILED_PRECONDITION
    pach.pfs.delete_project(project=pfs.Project(name="p1"), force=True)
    assert not pach.pfs.repo_exists(repo=pfs.Repo.from_uri("p1/r"))


@pytest.mark.parametrize("name", ["has space", "dot.ted", "sl/ash", "", "x" * 64, "ünï"])
def test_bad_names_are_invalid_argument(pach, name):
    err = code_of(lambda: pach.pfs.create_repo(repo=pfs.Repo(name=name, project=pfs.Project(name="default"))))
    assert err == grpc.StatusCode.INVALID_ARGUMENT
    if name:
        assert code_of(lambda: pach.pfs.create_project(project=pfs.Project(name=name))) == \
            grpc.StatusCode.INVALID_ARGUMENT


def test_repo_lifecycle(pach):
    r = pfs.Repo.from_uri("images")
    pach.pfs.create_repo(repo=r, description="first")
    assert code_of(lambda: pach.pfs.create_repo(repo=r)) == grpc.StatusCode.ALREADY_EXISTS
    pach.pfs.create_repo(repo=r, description="second", update=True)
    info = pach.pfs.inspect_repo(repo=r)
    assert info.description == "second" and info.repo.project.name == "default"
    assert info.branches == [] and info.size_bytes_upper_bound == 0
    put(pach, "images@master", {"/a": b"12345"})
    info = pach.pfs.inspect_repo(repo=r)
    assert [b.name for b in info.branches] == ["master"]
    assert info.size_bytes_upper_bound == 5
    assert pach.pfs.repo_exists(repo=r)
    pach.pfs.delete_repo(repo=r)
    assert not pach.pfs.repo_exists(repo=r)
    assert code_of(lambda: pach.pfs.inspect_repo(repo=r)) == grpc.StatusCode.NOT_FOUND
    assert pach.pfs.delete_repo(repo=r).deleted is False  # pachd: OK, deleted=false


@pytest.mark.parametrize("force", [False, True])
def test_delete_missing_repo_answers_ok_not_deleted(pach, force):
    assert pach.pfs.delete_repo(repo=pfs.Repo.from_uri("ghost"), force=force).deleted is False
    assert pach.pfs.delete_repo(repo=pfs.Repo.from_uri("nope/ghost"), force=force).deleted is False
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("real"))
    assert pach.pfs.delete_repo(repo=pfs.Repo.from_uri("real"), force=force).deleted is True


def test_missing_repo_error_text_names_it(pach):
    with pytest.raises(grpc.RpcError) as info:
        pach.pfs.inspect_repo(repo=pfs.Repo.from_uri("ghost"))
    assert "repo default/ghost not found" in info.value.details()


def test_list_repo_filters_by_project_and_type(pach):
    pach.pfs.create_project(project=pfs.Project(name="other"))
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("a"))
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("other/b"))
    all_ = {(i.repo.project.name, i.repo.name) for i in pach.pfs.list_repo()}
    assert all_ == {("default", "a"), ("other", "b")}
    only = [i.repo.name for i in pach.pfs.list_repo(projects=[pfs.Project(name="other")])]
    assert only == ["b"]
    assert list(pach.pfs.list_repo(type="spec")) == []


def test_create_repo_in_missing_project_is_not_found(pach):
    assert code_of(lambda: pach.pfs.create_repo(repo=pfs.Repo.from_uri("nope/r"))) == \
        grpc.StatusCode.NOT_FOUND


def test_delete_repos_and_delete_all(pach):
    pach.pfs.create_project(project=pfs.Project(name="other"))
    for uri in ("a", "b", "other/c"):
        pach.pfs.create_repo(repo=pfs.Repo.from_uri(uri))
    gone = pach.pfs.delete_repos(projects=[pfs.Project(name="default")]).repos
    assert sorted(r.name for r in gone) == ["a", "b"]
    assert [i.repo.name for i in pach.pfs.list_repo()] == ["c"]
    pach.pfs.delete_all()
    assert list(pach.pfs.list_repo()) == []
    assert [p.project.name for p in pach.pfs.list_project()] == ["default"]
