"""Pachyderm's rules as the PFS server words them (gRPC INVALID_ARGUMENT), and its glob syntax.

The rules themselves live in `pachstudio.rules`; this module keeps the server's wording."""

import re

from ... import rules
from ..errors import InvalidArgument

MAX_NAME = rules.MAX_NAME


def check_name(kind: str, name: str) -> str:
    if not name:
        raise InvalidArgument(f"{kind} name must not be empty")
    if not rules.is_name(name):
        raise InvalidArgument(
            f"{kind} name ({name[:100]}) invalid: only alphanumeric characters, underscores, and "
            f"dashes are allowed, at most {MAX_NAME} characters"
        )
    return name


def clean(path: str) -> str:
    """Go's path.Clean rooted at '/': what pachd does to every path it is given."""
    if "\x00" in path:
        raise InvalidArgument("path must not contain a NUL byte")
    return rules.clean_path(path)


def parent_dirs(path: str):
    """'/a/b/c' -> '/a/', '/a/b/' (the directories implied by a file)."""
    parts = path.split("/")[1:-1]
    acc = "/"
    for part in parts:
        acc += part + "/"
        yield acc


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[{")


def glob_to_regex(pattern: str) -> re.Pattern:
    """Pachyderm's (doublestar) glob: `*` and `?` stay within a segment, `**` crosses them,
    `[...]` classes, `{a,b}` alternatives. Match it against paths without a trailing '/'."""
    pattern = clean(pattern)
    i, out, depth = 0, [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise InvalidArgument(f"glob pattern {pattern!r}: unclosed '['")
            body = pattern[i + 1 : end]
            if body.startswith("!") or body.startswith("^"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        elif c == "{":
            out.append("(?:")
            depth += 1
        elif c == "}" and depth:
            out.append(")")
            depth -= 1
        elif c == "," and depth:
            out.append("|")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    if depth:
        raise InvalidArgument(f"glob pattern {pattern!r}: unclosed '{{'")
    try:
        return re.compile("^" + "".join(out) + "$")
    except re.error as e:
        raise InvalidArgument(f"glob pattern {pattern!r}: {e}") from None
