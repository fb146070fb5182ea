"""One commit's files as a tree: folder listings fetched once (one streamed ListFile a folder),
file contents through the shared content cache.

A `stat` is answered from the parent folder's listing, so `ls -l` or `find` over a folder of
100,000 files costs one cluster call, not one per file (pachctl mount's GETATTR storm).
"""

import errno
import os
import posixpath
import threading
from dataclasses import dataclass
from typing import ClassVar, Optional

from pachyderm_sdk.api import pfs

from ..rules import clean_path
from .cache import ContentCache
from .errors import NotFound
from .remote import Remote
from .view import ReadOnlyView

MAX_LISTED = 2_000_000  # entries kept in memory across folders before the listings are dropped


@dataclass(frozen=True)
class Node:
    is_dir: bool
    size: int = 0
    mtime: ClassVar[float] = 0  # the tree's (View entries carry these two)
    local: ClassVar[Optional[str]] = None


ROOT = Node(is_dir=True)


class CommitTree(ReadOnlyView):
    """A View (view.py) of one commit; its handles are the file's path."""

    def __init__(self, remote: Remote, commit: pfs.Commit, cache: ContentCache, mtime: float = 0, only: tuple = ()):
        self.remote, self.commit, self.cache, self.mtime = remote, commit, cache, mtime
        self.only = tuple(clean_path(p) for p in only)  # a `paths` mount: these and what leads to them
        self.listings: dict[str, dict[str, Node]] = {}
        self.listed = 0
        self.lock = threading.Lock()

    @property
    def commit_id(self) -> str:
        return self.commit.id

    @property
    def base(self) -> "CommitTree":
        return self

    def moved(self, tree: "CommitTree") -> "CommitTree":
        return tree

    def visible(self, path: str) -> bool:
        """In a `paths` mount: one of the paths, inside one, or a folder leading to one."""
        if not self.only:
            return True
        path = clean_path(path)
        inside = path.rstrip("/") + "/"
        return any(path == p or path.startswith(p + "/") or p.startswith(inside) for p in self.only)

    def listdir(self, path: str) -> dict[str, Node]:
        """Names in folder `path`; NotFound when it is not a folder of this commit."""
        path = clean_path(path)
        with self.lock:
            cached = self.listings.get(path)
        if cached is not None:
            return cached
        if path != "/":
            node = self.stat(path)
            if node is None or not node.is_dir:
                raise NotFound(f"{path} is not a folder in commit {self.commit_id}")
        entries = {}
        try:
            for entry_path, is_dir, size in self.remote.list_dir(self.commit, path):
                name = posixpath.basename(entry_path.rstrip("/"))
                if name and self.visible(posixpath.join(path, name)):
                    entries[name] = Node(is_dir=is_dir, size=size)
        except NotFound:
            if path != "/":
                raise
        with self.lock:
            if self.listed + len(entries) > MAX_LISTED:
                self.listings.clear()
                self.listed = 0
            self.listings[path] = entries
            self.listed += len(entries)
        return entries

    def stat(self, path: str) -> Optional[Node]:
        path = clean_path(path)
        if path == "/":
            return ROOT
        parent, name = posixpath.split(path)
        parent_node = self.stat(parent) if parent != "/" else ROOT
        if parent_node is None or not parent_node.is_dir:
            return None
        return self.listdir(parent).get(name)

    lookup = stat

    def walk(self, path: str = "/"):
        """(path, Node) of every file under `path`, from one streamed WalkFile."""
        for entry_path, is_dir, size in self.remote.walk(self.commit, clean_path(path)):
            if not is_dir and self.visible(entry_path):
                yield entry_path, Node(is_dir=False, size=size)

    def read(self, path: str, offset: int, length: int) -> bytes:
        out = bytearray(max(0, length))
        return bytes(out[: self.read_into(path, offset, memoryview(out))])

    def open(self, path: str, writable: bool = False, truncate: bool = False) -> str:
        if writable or truncate:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        node = self.stat(path)
        if node is None:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        if node.is_dir:
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        return clean_path(path)

    def read_into(self, path: str, offset: int, out: memoryview) -> int:
        path, size = self._file(path)
        return self.cache.read_into(
            self.commit_id, path, size, offset, out, lambda at: self.remote.read(self.commit, path, at)
        )

    def cached(self, path: str) -> bool:
        """The whole file is in the disk cache."""
        path, _ = self._file(path)
        return self.cache.contains(self.commit_id, path)

    def _file(self, path: str) -> tuple[str, int]:
        path = clean_path(path)
        node = self.stat(path)
        if node is None or node.is_dir:
            raise NotFound(f"{path} is not a file in commit {self.commit_id}")
        return path, node.size
