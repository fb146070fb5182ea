"""What the engine hands out: a repo, a commit, a file or directory in a commit's view, a change
between two views. Plain data, shared by the store, its file batches and the protocol layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class RepoRow:
    id: int
    project: str
    name: str
    type: str
    description: str
    created: float

    def __str__(self):  # pachd's Repo.String(): project/name, and .type for a non-user repo
        if self.type and self.type != "user":
            return f"{self.project}/{self.name}.{self.type}"
        return f"{self.project}/{self.name}"


@dataclass
class CommitRow:
    """`id` is the row's own key (deltas, parents and branch heads refer to it); `cid` is the commit
    ID clients see, shared by the commits of one commit set in several repos (pachd's global IDs).
    They are equal for the first commit of a set and for every commit made before sets existed."""

    seq: int
    id: str
    repo_id: int
    branch: Optional[str]
    parent: Optional[str]
    description: str
    started: float
    finishing: Optional[float]
    finished: Optional[float]
    error: str
    size: int
    cid: Optional[str] = None
    origin: Optional[str] = "USER"

    def __post_init__(self):
        self.cid = self.cid or self.id
        self.origin = self.origin or "USER"


@dataclass
class Entry:
    """A file or directory in the view of one commit. Directory paths end in '/'."""

    path: str
    is_dir: bool
    size: int
    hash: str = ""


@dataclass
class Change:
    path: str
    new: Optional[Entry]
    old: Optional[Entry]
