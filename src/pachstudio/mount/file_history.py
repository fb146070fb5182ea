"""The history of a few files on a branch: which commits added, changed or deleted each, and when.

pachd 2.12 keeps no per-file history (ListFile lost its `history` option in 2.0), so the history
is ListCommit of the branch (one stream, with every commit's time and description) plus, per
commit and path, a DiffFile of just that path against the commit's parent (pachd's DiffFile with
no old file). pachd and the embedded server answer such a diff from the commit's own changes
below the path, so a file's history costs one small call per commit and never a read of the
commit's files. The calls run a few at a time. Plain Python over `Remote`; no HTTP here.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Optional

from pachyderm_sdk.api import pfs

from ..rules import clean_path, climbs
from .errors import BadRequest, NotFound

MAX_PATHS = 100
MAX_CONTENT = 1 << 20  # bytes of a file's content answered inline; bigger ones: read it with file_at
PARALLEL = 8


@dataclass
class FileChange:
    path: str  # relative to the repo root, no leading '/'
    commit: str
    parent: Optional[str]
    finished: Optional[str]  # ISO 8601, UTC
    description: str
    change: str  # added | changed | deleted
    size: int  # of the new version; of the old one for a delete
    content: Optional[str] = None  # with contents=True: the new version (None for a delete)


def check_paths(paths: list[str]) -> list[str]:
    """Repo paths as pachd writes them ('/a/b'); a path that climbs or a folder is refused."""
    if not paths:
        raise BadRequest("path: give at least one file path (?path=labels/1.json)")
    if len(paths) > MAX_PATHS:
        raise BadRequest(f"path: at most {MAX_PATHS} paths per request, got {len(paths)}")
    out = []
    for p in paths:
        if not p or len(p) > 4096 or any(c < " " for c in p) or "\\" in p or climbs(p) or p.endswith("/"):
            raise BadRequest(
                f"path: {p[:200]!r} is not a file path inside the repo (no '..', backslashes, control "
                "characters or trailing '/', at most 4096 characters)"
            )
        out.append(clean_path(p))
    return sorted(set(out))


def _iso(when) -> Optional[str]:
    if when is None or when.timestamp() <= 0:  # betterproto reads an unset time as 1970
        return None
    return when.isoformat().replace("+00:00", "Z")


def repo_msg(project: str, repo: str) -> pfs.Repo:
    return pfs.Repo(name=repo, type="user", project=pfs.Project(name=project))


def history(remote, project: str, repo: str, branch: str, paths: list[str], contents: bool = False) -> dict:
    """`{"head", "commits", "changes": [FileChange...]}`, oldest change first; `commits` is how many
    finished commits of the branch were looked at. A branch that does not exist is NotFound."""
    paths = check_paths(paths)
    r = repo_msg(project, repo)
    head = remote.inspect_branch(pfs.Branch(repo=r, name=branch)).head
    infos = [i for i in remote.list_commits(r, pfs.Commit(repo=r, id=head.id), None) if _iso(i.finished)]
    infos.reverse()  # oldest first

    def changes_of(job):
        info, path = job
        commit = pfs.Commit(repo=r, id=info.commit.id)
        found = []
        rows = remote.stream(
            "diff_file",
            f"comparing {path} in commit {info.commit.id} with its parent",
            lambda c: c.pfs.diff_file(new_file=pfs.File(commit=commit, path=path)),
        )
        for row in rows:
            new, old = row.new_file, row.old_file
            new_path = new.file.path if new is not None and new.file is not None else ""
            old_path = old.file.path if old is not None and old.file is not None else ""
            if path not in (new_path, old_path):
                continue  # a folder above the path
            is_new = new_path == path and new.file_type == pfs.FileType.FILE
            is_old = old_path == path and old.file_type == pfs.FileType.FILE
            if not (is_new or is_old):
                continue
            change = "changed" if is_new and is_old else "added" if is_new else "deleted"
            parent = info.parent_commit.id if info.parent_commit is not None and info.parent_commit.id else None
            found.append(
                FileChange(
                    path=path.lstrip("/"),
                    commit=info.commit.id,
                    parent=parent,
                    finished=_iso(info.finished),
                    description=info.description or "",
                    change=change,
                    size=new.size_bytes if is_new else old.size_bytes,
                )
            )
        return found

    jobs = [(info, path) for info in infos for path in paths]
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        changes = [c for found in pool.map(changes_of, jobs) for c in found]
    if contents:
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            list(pool.map(lambda ch: _fill(remote, r, ch), [c for c in changes if c.change != "deleted"]))
    return {"head": head.id, "commits": len(infos), "changes": [asdict(c) for c in changes]}


def _fill(remote, r: pfs.Repo, change: FileChange) -> None:
    if change.size <= MAX_CONTENT:
        data = read_file(remote, r, change.commit, change.path)
        change.content = data.decode("utf-8", errors="replace")


def read_file(remote, r: pfs.Repo, commit: str, path: str) -> bytes:
    """The whole file at a commit (NotFound for a folder: one file is asked for)."""
    commit_msg = pfs.Commit(repo=r, id=commit)
    path = clean_path(path)
    info = remote.call(
        "inspect_file",
        f"looking up {path} at commit {commit}",
        lambda c: c.pfs.inspect_file(file=pfs.File(commit=commit_msg, path=path)),
    )
    if info.file_type != pfs.FileType.FILE:
        raise NotFound(f"{path} is a folder in {r.as_uri()} at commit {commit}: give a file path")
    return b"".join(remote.read(commit_msg, path, 0))
