"""HTTP routes of a file's history (label versions, issue 17): which commits of a branch added,
changed or deleted some paths, and a file as one commit holds it. They translate onto
`file_history`; docs/INTERFACES.md is the contract."""

from typing import Optional

from fastapi import Query
from fastapi.responses import Response
from pydantic import BaseModel

from ..rules import MAX_NAME, is_commit_id, is_name
from . import file_history
from .errors import BadRequest


class FileChangeAnswer(BaseModel):
    path: str
    commit: str
    parent: Optional[str]
    finished: Optional[str]
    description: str
    change: str
    size: int
    content: Optional[str] = None


class HistoryAnswer(BaseModel):
    project: str
    repo: str
    branch: str
    head: str
    commits: int
    changes: list[FileChangeAnswer]


def _name(value: str, what: str) -> str:
    if not is_name(value):
        raise BadRequest(f"{what} {value[:200]!r}: Pachyderm names are 1 to {MAX_NAME} letters, digits, '_' and '-'")
    return value


def add_routes(app, remote, login) -> None:
    """`remote()` answers the cluster client in use; `login` the dependencies of a logged-in call."""

    @app.get("/repos/{project}/{repo}/history", response_model=HistoryAnswer, dependencies=login)
    def file_changes(
        project: str,
        repo: str,
        branch: str = "master",
        path: list[str] = Query(default=[]),
        contents: bool = False,
    ):
        """The commits of `branch` that added, changed or deleted any `path` (repeatable), oldest
        first; `contents=true` adds each new version's text (files up to 1 MiB)."""
        _name(project, "project")
        _name(repo, "repo")
        _name(branch, "branch")
        answer = file_history.history(remote(), project, repo, branch, path, contents)
        return HistoryAnswer(project=project, repo=repo, branch=branch, **answer)

    @app.get("/repos/{project}/{repo}/file", dependencies=login)
    def file_at(project: str, repo: str, commit: str, path: str):
        """The bytes of one file as commit `commit` (a commit id of this repo) holds it."""
        _name(project, "project")
        _name(repo, "repo")
        if not is_commit_id(commit):
            raise BadRequest(f"commit {commit[:200]!r}: a commit id is 32 lowercase hex characters")
        (clean,) = file_history.check_paths([path])
        data = file_history.read_file(remote(), file_history.repo_msg(project, repo), commit, clean)
        return Response(data, media_type="application/octet-stream")
