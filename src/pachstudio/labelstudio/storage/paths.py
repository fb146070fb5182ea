"""Path rules shared by the storages and the file view: prefixes, filters, safe joins."""

import hashlib
import os
import posixpath
import re
from typing import Optional

from ... import rules


class BadPath(ValueError):
    """A path that would leave its folder, or is not a path at all."""


MAX_PREFIX = 1024


def shown(value: str, limit: int = 80) -> str:
    """A user's value quoted for a message: control characters visible, long ones cut."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value[:limit])
    return f'"{text}"' + (f" ({len(value)} characters)" if len(value) > limit else "")


def normalize_prefix(prefix: Optional[str]) -> str:
    """`/images/` and `images` mean the same folder (the repo root is `/`); `..` segments, control
    characters and prefixes longer than MAX_PREFIX are refused."""
    prefix = (prefix or "").strip().strip("/")
    if not prefix:
        return ""
    if len(prefix) > MAX_PREFIX:
        raise BadPath(f"prefix {shown(prefix)} is longer than {MAX_PREFIX} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in prefix):
        raise BadPath(f"prefix {shown(prefix)} contains control characters")
    check_relative(prefix)
    return posixpath.normpath(prefix)


def check_relative(path: str) -> str:
    """Refuse what could escape a mount folder: absolute paths, `..`, NUL, backslashes."""
    if not path or "\x00" in path or "\\" in path:
        raise BadPath(f"invalid path {path!r}")
    if rules.leaves_folder(path):
        raise BadPath(f"path {path!r} leaves its folder")
    return path


def safe_join(root: str, path: str) -> str:
    check_relative(path)
    full = os.path.normpath(os.path.join(root, path))
    if full != root and not full.startswith(root.rstrip("/") + "/"):
        raise BadPath(f"path {path!r} leaves its folder")
    return full


class KeyFilter:
    """Which repo paths a Source storage imports: under the prefix, (non-)recursive, regex.

    The regex may match the path from the repo root or the file name alone (both readings
    of Label Studio's own storages are common, and neither surprises).
    """

    def __init__(self, prefix: str = "", regex: Optional[str] = None, recursive: bool = True, not_suffix: str = ""):
        self.prefix = normalize_prefix(prefix)
        self.regex = re.compile(regex) if regex else None
        self.recursive = recursive
        self.not_suffix = not_suffix  # files ending so are not tasks (predictions kept beside the data)

    def __call__(self, path: str) -> bool:
        path = path.lstrip("/")
        if path.endswith("/") or (self.not_suffix and path.endswith(self.not_suffix)):
            return False
        if self.prefix:
            if not path.startswith(self.prefix + "/"):
                return False
            rest = path[len(self.prefix) + 1 :]
        else:
            rest = path
        if not self.recursive and "/" in rest:
            return False
        if self.regex and not (self.regex.match(path) or self.regex.match(posixpath.basename(path))):
            return False
        return True


def mount_name(mode: str, project: str, repo: str, ref: str) -> str:
    """Same spec, same name: storages reading the same branch share one mount (idempotent `_mount`)."""
    digest = hashlib.sha1(f"{project}/{repo}@{ref}:{mode}".encode()).hexdigest()[:8]
    readable = rules.sanitize_name(f"{repo}_{ref[:12]}")
    return f"ls_{mode}_{readable}_{digest}"
