"""Versions of a repo compared and read, for Label Studio's diff and restore (issue 17).

Three routes under `/repos/{project}/{repo}/`: a commit checked to be on a branch, pachd's DiffFile
between two commits under a path (each side filtered by that path, as pachd does), and the
contents of chosen files at a commit. The diff never reads a file; the caller reads only the
changed ones, so the cost follows the change, not the size of the versions.
"""

from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from fastapi import FastAPI, Query
from pachyderm_sdk.api import pfs
from pydantic import BaseModel, Field

from .. import pfswire
from ..rules import clean_path, climbs, is_commit_id
from .errors import BadRequest, NotFound
from .name_checks import check_branch, check_name

READERS = 8  # files read at once (each is one GetFile of a small label file)
MAX_READ = 20_000  # paths in one read request


class BranchCommitAnswer(BaseModel):
    id: str
    parent: Optional[str]
    finished: Optional[str] = Field(description="ISO 8601; null while the commit is open")
    description: str


class DiffRow(BaseModel):
    path: str
    change: str = Field(description="added | changed | deleted (from the old commit to the new one)")
    size: int = Field(description="bytes of the new file (of the old one when deleted)")
    old_size: Optional[int]


class ReadRequest(BaseModel):
    commit: str = Field(min_length=32, max_length=32)
    paths: list[str] = Field(max_length=MAX_READ)


class FileContent(BaseModel):
    path: str
    data: Optional[str] = Field(description="the file's text (UTF-8); null when the commit has no such file")


def _repo(project: str, repo: str) -> pfs.Repo:
    return pfs.Repo(name=repo, type="user", project=pfs.Project(name=project))


def _check_id(field: str, value: str) -> str:
    if not is_commit_id(value):
        raise BadRequest(f"{field}: {value[:100]!r} is not a commit id (32 lowercase hex characters)")
    return value


def _check_path(field: str, path: str) -> str:
    if "\x00" in path or "\\" in path or climbs(path):
        raise BadRequest(f"{field}: {path[:200]!r} is not a path inside the repo (no '..' or backslashes)")
    return clean_path(path)


def commit_on_branch(remote, project: str, repo: str, branch: str, commit: str):
    """The CommitInfo of `commit` when it is in the history of `branch`; NotFound naming which
    of the two it is not (pachd's Commit.branch is not filled in answers, so the history says)."""
    r = _repo(project, repo)
    try:
        info = remote.inspect_commit(pfs.Commit(id=_check_id("commit", commit), repo=r))
    except NotFound:
        raise NotFound(f"commit {commit} not found in repo {project}/{repo}") from None
    head = pfs.Commit(branch=pfs.Branch(repo=r, name=branch))
    for c in remote.stream(
        "list_commit", f"listing commits of {project}/{repo}@{branch}", lambda cl: cl.pfs.list_commit(repo=r, to=head)
    ):
        if c.commit.id == commit:
            return info
    raise NotFound(f"commit {commit} of {project}/{repo} is not on branch {branch}")


def _when(info) -> Optional[str]:
    if info.to_dict().get("finished") is None:  # betterproto reads an unset time as 1970
        return None
    return info.finished.isoformat()


def diff_rows(remote, project: str, repo: str, old: str, new: str, prefix: str) -> list:
    """pachd's DiffFile of `new` against `old` below `prefix`: files only, as added/changed/deleted."""
    r = _repo(project, repo)
    for field, cid in (("from", old), ("to", new)):
        try:
            remote.inspect_commit(pfs.Commit(id=_check_id(field, cid), repo=r))
        except NotFound:
            raise NotFound(f"{field}: commit {cid} not found in repo {project}/{repo}") from None
    if old == new:
        return []
    path = "/" + prefix if prefix else "/"
    new_file = pfs.File(commit=pfs.Commit(id=new, repo=r), path=path)
    old_file = pfs.File(commit=pfs.Commit(id=old, repo=r), path=path)
    req = pfs.DiffFileRequest(new_file=new_file, old_file=old_file)
    rows = []
    # decoded by pfswire: betterproto spends most of a 10,000-file diff decoding FileInfos
    for n, o in remote.stream(
        "diff_file", f"comparing {old} with {new}", lambda c: remote._raw(c, "DiffFile", pfswire.diff_entry)(req)
    ):
        info = n or o
        if info is None or info[1]:  # nothing, or a directory
            continue
        change = "changed" if n and o else ("added" if n else "deleted")
        rows.append(DiffRow(path=info[0].lstrip("/"), change=change, size=info[2], old_size=o[2] if o else None))
    return rows


def read_files(remote, project: str, repo: str, commit: str, paths: list) -> list:
    """The text of each path at `commit` (null when absent), read READERS at a time."""
    c = pfs.Commit(id=_check_id("commit", commit), repo=_repo(project, repo))
    try:
        remote.inspect_commit(c)
    except NotFound:
        raise NotFound(f"commit {commit} not found in repo {project}/{repo}") from None
    clean = [_check_path("paths", p) for p in paths]

    def one(path):
        try:
            data = b"".join(remote.read(c, path, 0))
        except NotFound:
            return FileContent(path=path.lstrip("/"), data=None)
        return FileContent(path=path.lstrip("/"), data=data.decode("utf-8", errors="replace"))

    with ThreadPoolExecutor(max_workers=READERS) as pool:
        return list(pool.map(one, clean))


def add_routes(app: FastAPI, table, login: list) -> None:
    def remote():
        return table.remote

    @app.get(
        "/repos/{project}/{repo}/branches/{branch}/commits/{commit}",
        response_model=BranchCommitAnswer,
        dependencies=login,
    )
    def branch_commit(project: str, repo: str, branch: str, commit: str):
        """404 unless `commit` is in the history of `branch` (a version of a Target on it)."""
        check_branch(project, repo, branch)
        info = commit_on_branch(remote(), project, repo, branch, commit)
        parent = info.parent_commit.id if info.parent_commit and info.parent_commit.id else None
        return BranchCommitAnswer(id=commit, parent=parent, finished=_when(info), description=info.description or "")

    @app.get("/repos/{project}/{repo}/diff", response_model=list[DiffRow], dependencies=login)
    def repo_diff(
        project: str,
        repo: str,
        old: str = Query(..., alias="from", description="the older commit"),
        new: str = Query(..., alias="to", description="the newer commit"),
        prefix: str = "",
    ):
        check_name("project", project)
        check_name("repo", repo)
        prefix = _check_path("prefix", prefix).strip("/")
        return diff_rows(remote(), project, repo, old, new, prefix)

    @app.post("/repos/{project}/{repo}/read", response_model=list[FileContent], dependencies=login)
    def repo_read(project: str, repo: str, req: ReadRequest):
        check_name("project", project)
        check_name("repo", repo)
        return read_files(remote(), project, repo, req.commit, req.paths)
