"""A branch's history as versions, and tags (branches) at its commits: the mount-server routes
behind Label Studio's Versions page. docs/INTERFACES.md is the contract.

One ListCommit streams the whole history (newest first) and one ListBranch finds the tags: a page
of 1,000 versions costs two cluster calls, never one call per commit.
"""

from datetime import datetime, timezone
from typing import Callable, Optional

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse
from pachyderm_sdk.api import pfs
from pydantic import BaseModel, Field

from .. import pfswire
from ..rules import branch_name_problem, is_commit_id
from .errors import BadRequest, Conflict, NotFound
from .name_checks import check_branch
from .remote import Remote

MAX_PAGE_SIZE = 1000


class Version(BaseModel):
    commit: str
    started: Optional[str] = Field(description="ISO 8601, UTC")
    finished: Optional[str] = Field(description="ISO 8601, UTC; null while the commit is open")
    description: str


class Tag(BaseModel):
    name: str
    commit: str


class VersionsAnswer(BaseModel):
    count: int = Field(description="commits in the branch's history")
    page: int
    page_size: int
    versions: list[Version] = Field(description="this page of the history, newest first")
    tags: list[Tag] = Field(description="other branches whose head is a commit of this history")


class TagCreated(Tag):
    created: bool = Field(description="false: the tag was already there at this commit (answered 200, not 201)")


class TagRequest(BaseModel):
    name: str = Field(max_length=1000)
    commit: str = Field(max_length=1000)


def _iso(when: Optional[float]) -> Optional[str]:
    if not when:
        return None
    return datetime.fromtimestamp(when, timezone.utc).isoformat().replace("+00:00", "Z")


def _repo(project: str, repo: str) -> pfs.Repo:
    return pfs.Repo(name=repo, type="user", project=pfs.Project(name=project))


def history(remote: Remote, project: str, repo: str, branch: str) -> list[tuple]:
    """(id, description, started, finished) of the branch's commits, newest first; [] for a branch
    not made yet (a new Target's). Decoded by pfswire: betterproto would spend seconds on 1,000."""
    r = _repo(project, repo)
    req = pfs.ListCommitRequest(repo=r, to=pfs.Commit(repo=r, branch=pfs.Branch(repo=r, name=branch)))
    try:
        return list(
            remote.stream(
                "list_commit",
                f"listing the commits of {project}/{repo}@{branch}",
                lambda c: remote._raw(c, "ListCommit", pfswire.commit_summary)(req),
            )
        )
    except NotFound:
        remote.inspect_repo(r)  # a missing repo stays a 404
        try:
            remote.inspect_branch(pfs.Branch(repo=r, name=branch))
        except NotFound:
            return []
        raise


def tags(remote: Remote, project: str, repo: str, branch: str, ids: set) -> list[Tag]:
    """Branches other than `branch` whose head is one of `ids`, by name."""
    r = _repo(project, repo)
    found = remote.stream(
        "list_branch", f"listing the branches of {project}/{repo}", lambda c: c.pfs.list_branch(repo=r)
    )
    return sorted(
        (Tag(name=b.branch.name, commit=b.head.id) for b in found if b.branch.name != branch and b.head.id in ids),
        key=lambda t: t.name,
    )


def create_tag(remote: Remote, project: str, repo: str, branch: str, name: str, commit: str) -> tuple[Tag, bool]:
    """A branch `name` at `commit`, a commit of `branch`'s history. (tag, created): an existing
    tag at that same commit is answered as it is; at another commit it is a Conflict."""
    problem = branch_name_problem(name)
    if problem:
        raise BadRequest(f"name: {problem}")
    if not is_commit_id(commit):
        raise BadRequest(f"commit: {commit[:100]!r} is not a commit id (32 lowercase hex characters)")
    ids = {row[0] for row in history(remote, project, repo, branch)}
    if commit not in ids:
        raise BadRequest(
            f"commit: {commit} is not a version of {project}/{repo}@{branch}; pick one of its versions "
            "(a commit of another repo or branch cannot be tagged here)"
        )
    return place_tag(remote, _repo(project, repo), name, commit, branch)


def place_tag(remote: Remote, r: pfs.Repo, name: str, commit: str, branch: str) -> tuple[Tag, bool]:
    """A branch `name` of repo `r` at `commit` (the caller checked the commit belongs there);
    `branch` is the one the commits are on, never a tag's name. (tag, created): an existing tag at
    that same commit is answered as it is; at another commit it is a Conflict."""
    problem = branch_name_problem(name)
    if problem:
        raise BadRequest(f"name: {problem}")
    where = f"{r.project.name}/{r.name}"
    if name == branch:
        raise Conflict(f"name: {name} is the branch these commits are on; choose another name")
    try:
        existing = remote.inspect_branch(pfs.Branch(repo=r, name=name))
    except NotFound:
        existing = None
    if existing is not None:
        if existing.head.id == commit:
            return Tag(name=name, commit=commit), False
        raise Conflict(
            f"name: {where}@{name} already exists at commit {existing.head.id}; choose another "
            "name (a tag is never moved)"
        )
    remote.call(
        "create_branch",
        f"creating branch {where}@{name}",
        lambda c: c.pfs.create_branch(branch=pfs.Branch(repo=r, name=name), head=pfs.Commit(repo=r, id=commit)),
    )
    return Tag(name=name, commit=commit), True


def add_routes(app: FastAPI, remote: Callable[[], Remote], login: list) -> None:
    """GET .../versions, GET and POST .../tags under /repos/{project}/{repo}/branches/{branch}."""
    base = "/repos/{project}/{repo}/branches/{branch}"
    check = check_branch

    @app.get(base + "/versions", response_model=VersionsAnswer, dependencies=login)
    def versions(
        project: str,
        repo: str,
        branch: str,
        page: int = Query(1, ge=1),
        page_size: int = Query(50, ge=1, le=MAX_PAGE_SIZE),
    ):
        check(project, repo, branch)
        infos = history(remote(), project, repo, branch)
        start = (page - 1) * page_size
        shown = [
            Version(commit=cid, started=_iso(started), finished=_iso(finished), description=description)
            for cid, description, started, finished in infos[start : start + page_size]
        ]
        ids = {row[0] for row in infos}
        return VersionsAnswer(
            count=len(infos),
            page=page,
            page_size=page_size,
            versions=shown,
            tags=tags(remote(), project, repo, branch, ids),
        )

    @app.get(base + "/tags", response_model=list[Tag], dependencies=login)
    def list_tags(project: str, repo: str, branch: str):
        check(project, repo, branch)
        ids = {row[0] for row in history(remote(), project, repo, branch)}
        return tags(remote(), project, repo, branch, ids)

    @app.post(base + "/tags", response_model=TagCreated, status_code=201, dependencies=login)
    def post_tag(project: str, repo: str, branch: str, req: TagRequest):
        check(project, repo, branch)
        tag, created = create_tag(remote(), project, repo, branch, req.name, req.commit)
        return JSONResponse(
            TagCreated(**tag.model_dump(), created=created).model_dump(), status_code=201 if created else 200
        )
