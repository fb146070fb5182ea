"""What a mount shows at `<mount-dir>/<name>`: one interface for a read-only commit tree
(readonly.CommitTree) and a read-write staged view (staging.StagingArea), so the FUSE layer and
the mount table use either without asking which one it is.

Entries (`lookup`, `listdir`, `walk`) have `is_dir`, `size`, `mtime` (0: the view's `mtime`) and
`local` (the staged file on disk, None for content of the base commit). Handles come from `open`
and go back to the same view's `read_into` / `write` / `release`.
"""

import errno
import os
from typing import Any, Iterator, Optional, Protocol


class View(Protocol):
    writable: bool  # False: every change is EROFS
    mtime: float  # of the base commit

    @property
    def base(self) -> Any: ...  # the CommitTree the view shows (or changes)

    @property
    def commit_id(self) -> str: ...

    def lookup(self, path: str) -> Optional[Any]: ...
    def listdir(self, path: str) -> dict: ...
    def walk(self, path: str = "/") -> Iterator[tuple]: ...  # (path, entry) of every file
    def open(self, path: str, writable: bool, truncate: bool = False) -> Any: ...
    def read_into(self, handle, offset: int, out: memoryview) -> int: ...
    def write(self, handle, data: bytes, offset: int) -> int: ...
    def fsync(self, handle) -> None: ...
    def release(self, handle) -> None: ...
    def create(self, path: str) -> Any: ...
    def truncate(self, path: str, length: int, handle=None) -> None: ...
    def unlink(self, path: str) -> None: ...
    def mkdir(self, path: str) -> None: ...
    def rmdir(self, path: str) -> None: ...
    def rename(self, old: str, new: str) -> None: ...
    def moved(self, tree) -> "View": ...  # the view once the branch moved to commit tree `tree`
    def has_changes(self) -> bool: ...
    def staged(self) -> dict: ...  # {"added", "changed", "deleted"}: repo paths
    def discard(self) -> None: ...

    # read-only views also answer `cached(path)`: the whole file is in the disk cache (fs.py
    # then lets the kernel read it through the page cache)


def _read_only(*_args, **_kwargs):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS))


class ReadOnlyView:
    """The View methods of a view nothing can change: writes are EROFS, nothing is staged."""

    writable = False
    create = write = truncate = unlink = mkdir = rmdir = rename = staticmethod(_read_only)

    def fsync(self, handle) -> None:
        pass

    def release(self, handle) -> None:
        pass

    def has_changes(self) -> bool:
        return False

    def staged(self) -> dict:
        return {"added": [], "changed": [], "deleted": []}

    def discard(self) -> None:
        pass
