"""A pipeline's input spec -> its datums, with pachd 2.12's semantics, as plain functions.

Why its own module: the embedded server's job runner and the mount server's datum routes both need
the same answer to "which datums does this input make", and neither may import the other. Nothing
here talks to a server: the caller passes `list_files(project, repo, ref)` returning the files
(not directories) of a branch or commit as `(path, hash)` pairs.

pachd's rules reproduced (src/server/worker/datum, src/server/worker/common, ohmyglob):
- a `pfs` input makes one datum per path matching its glob (files and directories; a directory's
  datum holds every file under it); `/` is the whole repo as one datum; no files, no datums.
- the glob syntax is ohmyglob's with '/' as separator: `*` and `?` stay within a segment, `**`
  crosses segments, `[abc]`, `[a-z]`, `[!x]`, `{a,b}` alternatives, `\\` escapes, and capture groups
  `(a|b)`, `@(...)`, `?(...)`, `*(...)`, `+(...)` whose text `join_on` refers to as `$1`, `${2}`.
- `cross`: the product, first input outermost; `union`: the concatenation; `join`: the datums of
  every input grouped by their `join_on` key, the groups crossed; a key missing from some input
  keeps only the `outer_join` inputs' datums of that key (none when no input there is outer).
- a datum's ID is pachd's `DatumID` (BLAKE2b-256 over each input's name, repo, branch and path,
  each followed by its length as a big-endian int64), so IDs match a real cluster's; its `hash`
  is pachd's `HashDatum` (the ID, each input's content hash, the pipeline salt), which changes when
  any input file does: the job runner skips datums whose hash a previous successful job processed.
  Content hashes are this server's, so `hash` values (not IDs) differ from a real cluster's.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass
from itertools import product
from typing import Callable, Iterable, Optional

ListFiles = Callable[[str, str, str], Iterable[tuple[str, str]]]


class DatumError(ValueError):
    """An input spec or glob pachd would refuse; the text says what is wrong."""


@dataclass(frozen=True)
class DatumInput:
    """One input's share of a datum: the matched path and the files under it."""

    name: str
    project: str
    repo: str
    branch: str
    path: str  # as pachd reports it: a file '/a/b.txt', a directory '/a/' , the whole repo '/'
    hash: str  # content hash of the matched path (a directory's covers every file under it)
    files: tuple[tuple[str, str], ...]  # (path, hash) of every file the datum holds from this input
    join_on: str = ""
    outer_join: bool = False


@dataclass(frozen=True)
class Datum:
    id: str
    hash: str
    inputs: tuple[DatumInput, ...]


def datums(input_spec: dict, list_files: ListFiles, salt: str = "") -> list[Datum]:
    """Every datum of `input_spec` (the `input` of a pipeline spec, JSON-shaped), in pachd's order."""
    return [_datum(inputs, salt) for inputs in _expand(input_spec, list_files)]


def datum_id(inputs: Iterable[DatumInput]) -> str:
    """pachd's common.DatumID."""
    h = hashlib.blake2b(digest_size=32)
    for i in inputs:
        for text in (i.name, i.repo, i.branch, i.path):
            raw = text.encode()
            h.update(raw)
            h.update(struct.pack(">q", len(raw)))
    return h.hexdigest()


def datum_hash(inputs: Iterable[DatumInput], salt: str = "") -> str:
    """pachd's common.HashDatum: changes when the datum's paths, their contents or the salt do."""
    inputs = list(inputs)
    h = hashlib.blake2b(digest_size=32)
    h.update(datum_id(inputs).encode())
    for i in inputs:
        h.update(i.hash.encode())
    h.update(salt.encode())
    return h.hexdigest()


def pfs_inputs(spec: dict) -> list[dict]:
    """Every `pfs` input of a spec, depth first, with pachd's defaults filled in."""
    out = []
    _walk(spec, out)
    return out


def input_name(pfs: dict) -> str:
    return pfs.get("name") or pfs.get("repo") or ""


# --- globs -----------------------------------------------------------------------------------


def clean_glob(pattern: str) -> str:
    """pfsfile.CleanPath: what pachd does to a glob before compiling it."""
    parts = []
    for seg in pattern.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts:
                parts.pop()
            continue
        parts.append(seg)
    return "/" + "/".join(parts)


def compile_glob(pattern: str) -> re.Pattern:
    """The glob as a regular expression anchored at both ends, capture groups numbered like
    ohmyglob's. DatumError for a pattern ohmyglob refuses."""
    return re.compile(r"\A" + _Parser(pattern).parse() + r"\Z", re.DOTALL)


def glob_matches(pattern: str, path: str) -> bool:
    """pachd's globMatchFunction: a directory path matches without its trailing '/'."""
    pattern = clean_glob(pattern)
    if path == "/" and pattern == "/":
        return True
    return compile_glob(pattern).match(path.rstrip("/")) is not None


def replace(pattern: str, path: str, template: str) -> str:
    """ohmyglob's Glob.Replace: `template` with `$1`/`${1}` replaced by the path's captures (Go's
    regexp.Expand rules: `$name` takes the longest run of letters, digits and '_'; an unknown group
    is empty; `$$` is a '$')."""
    m = compile_glob(clean_glob(pattern)).match(path.rstrip("/"))
    return path if m is None else _expand_template(m, template)


class _Parser:
    """ohmyglob's lexer and compiler in one pass, emitting a Python regex."""

    DOT = "[^/]"

    def __init__(self, pattern: str):
        self.p, self.i = pattern, 0

    def fail(self, what: str):
        raise DatumError(f"invalid glob pattern {self.p!r}: {what}")

    def parse(self) -> str:
        out = self.seq(stop="")
        if self.i < len(self.p):  # pragma: no cover - seq consumes everything at top level
            self.fail(f"unexpected {self.p[self.i]!r}")
        return out

    def seq(self, stop: str) -> str:
        """Terms until one of `stop` (not consumed) or the end."""
        out = []
        p = self.p
        while self.i < len(p):
            c = p[self.i]
            if c in stop:
                return "".join(out)
            two = p[self.i : self.i + 2]
            if c == "\\":
                if self.i + 1 >= len(p):
                    self.i += 1
                    continue  # a trailing escape escapes nothing (ohmyglob drops it)
                out.append(re.escape(p[self.i + 1]))
                self.i += 2
            elif two == "**":
                out.append(".*")
                self.i += 2
            elif two in ("*(", "?(", "+(", "@(", "!("):
                self.i += 2
                out.append(self.capture(c))
            elif c == "(":
                self.i += 1
                out.append(self.capture("@"))
            elif c == "*":
                out.append(self.DOT + "*")
                self.i += 1
            elif c == "?":
                out.append(self.DOT)
                self.i += 1
            elif c == "[":
                out.append(self.char_class())
            elif c == "{":
                self.i += 1
                alts = [self.seq(stop=",}")]
                while self.i < len(p) and p[self.i] == ",":
                    self.i += 1
                    alts.append(self.seq(stop=",}"))
                if self.i >= len(p):
                    self.fail("unexpected end of input: '{' is not closed")
                self.i += 1
                out.append("(?:" + "|".join(alts) + ")")
            else:
                out.append(re.escape(c))
                self.i += 1
        return "".join(out)

    def capture(self, quantifier: str) -> str:
        if quantifier == "!":
            self.fail("negated captures '!(...)' are not supported (pachd's regular expressions cannot run them)")
        alts = [self.seq(stop="|)")]
        while self.i < len(self.p) and self.p[self.i] == "|":
            self.i += 1
            alts.append(self.seq(stop="|)"))
        if self.i >= len(self.p):
            self.fail("unexpected end of input: '(' is not closed")
        self.i += 1
        body = "|".join(alts)
        return {"@": f"({body})", "*": f"((?:{body})*)", "?": f"((?:{body})?)", "+": f"((?:{body})+)"}[quantifier]

    def char_class(self) -> str:
        p = self.p
        end = self.i + 1
        negate = end < len(p) and p[end] == "!"
        if negate:
            end += 1
        start = end
        # ohmyglob: `[x-y]` is one range; otherwise a list of characters up to ']' ('\' escapes one)
        if end + 2 < len(p) and p[end + 1] == "-" and p[end + 3 : end + 4] == "]":
            lo, hi = p[end], p[end + 2]
            if lo > hi:
                self.fail(f"range [{lo}-{hi}] is reversed")
            self.i = end + 4
            return "[" + ("^" if negate else "") + re.escape(lo) + "-" + re.escape(hi) + "]"
        chars = []
        while end < len(p) and p[end] != "]":
            if p[end] == "\\" and end + 1 < len(p):
                end += 1
            chars.append(p[end])
            end += 1
        if end >= len(p):
            self.fail("unexpected end of input: '[' is not closed")
        if end == start:
            self.fail("empty character class '[]'")
        self.i = end + 1
        return "[" + ("^" if negate else "") + "".join(re.escape(ch) for ch in chars) + "]"


# --- expansion -------------------------------------------------------------------------------


def _walk(spec: dict, out: list) -> None:
    if not isinstance(spec, dict):
        raise DatumError(f"an input must be an object, not {type(spec).__name__}")
    kinds = [k for k in ("pfs", "cross", "union", "join", "group", "cron") if spec.get(k)]
    if not kinds:
        raise DatumError("no input set")
    if len(kinds) > 1:
        raise DatumError("multiple input types set")
    kind = kinds[0]
    if kind == "pfs":
        out.append(_pfs_defaults(spec["pfs"]))
    elif kind in ("cross", "union", "join"):
        if not isinstance(spec[kind], list):
            raise DatumError(f"'{kind}' must be a list of inputs")
        for sub in spec[kind]:
            _walk(sub, out)
    else:
        raise DatumError(f"'{kind}' inputs are not supported by this server (pfs, cross, union and join are)")


def _pfs_defaults(pfs: dict) -> dict:
    if not isinstance(pfs, dict):
        raise DatumError("a pfs input must be an object")
    if not pfs.get("repo"):
        raise DatumError("input must specify a repo")
    if pfs.get("repo") == "out" and not pfs.get("name"):
        raise DatumError(
            "inputs based on repos named \"out\" must have 'name' set, "
            "as pachyderm already creates /pfs/out to collect job output"
        )
    if not pfs.get("glob"):
        raise DatumError("input must specify a glob")
    full = dict(pfs)
    full["project"] = pfs.get("project") or "default"
    full["branch"] = pfs.get("branch") or "master"
    full["name"] = input_name(pfs)
    compile_glob(clean_glob(pfs["glob"]))
    return full


def _expand(spec: dict, list_files: ListFiles) -> list[list[DatumInput]]:
    """Datums as lists of inputs (before IDs)."""
    _walk(spec, [])  # validate the whole tree first: no half-expanded answer for a bad spec
    if spec.get("pfs"):
        return [[i] for i in _pfs(_pfs_defaults(spec["pfs"]), list_files)]
    if spec.get("union"):
        return [d for sub in spec["union"] for d in _expand(sub, list_files)]
    if spec.get("cross"):
        parts = [_expand(sub, list_files) for sub in spec["cross"]]
        return [[i for d in combo for i in d] for combo in product(*parts)]
    if spec.get("join"):
        return _join([_expand(sub, list_files) for sub in spec["join"]])
    raise DatumError("no input set")  # pragma: no cover - _walk refused it


def _pfs(pfs: dict, list_files: ListFiles) -> list[DatumInput]:
    glob = clean_glob(pfs["glob"])
    ref = pfs.get("commit") or pfs["branch"]
    files = sorted(list_files(pfs["project"], pfs["repo"], ref))
    common = dict(name=pfs["name"], project=pfs["project"], repo=pfs["repo"], branch=pfs["branch"])
    outer = bool(pfs.get("outer_join"))
    join_on = pfs.get("join_on") or ""
    if not files:
        return []
    if glob == "/":
        return [
            DatumInput(
                path="/",
                hash=_tree_hash(files),
                files=tuple(files),
                join_on=replace(glob, "/", join_on) if join_on else "",
                outer_join=outer,
                **common,
            )
        ]
    regex = compile_glob(glob)
    # candidates: every file and every directory implied by a file, in pachd's (path) order
    dirs: dict[str, list] = {}
    for path, h in files:
        parts = path.split("/")[1:-1]
        acc = ""
        for part in parts:
            acc += "/" + part
            dirs.setdefault(acc + "/", []).append((path, h))
    candidates = sorted([(p, None) for p in dirs] + [(p, h) for p, h in files])
    out = []
    for path, h in candidates:
        m = regex.match(path.rstrip("/"))
        if m is None:
            continue
        held = ((path, h),) if h is not None else tuple(dirs[path])
        out.append(
            DatumInput(
                path=path,
                hash=h if h is not None else _tree_hash(held),
                files=held,
                join_on=_expand_template(m, join_on) if join_on else "",
                outer_join=outer,
                **common,
            )
        )
    return out


def _expand_template(m: re.Match, template: str) -> str:
    groups = m.groups()

    def one(tok: re.Match) -> str:
        if tok.group(0) == "$$":
            return "$"
        name = tok.group(1) or tok.group(2)
        if name.isdigit() and 0 < int(name) <= len(groups):
            return groups[int(name) - 1] or ""
        return ""

    return re.sub(r"\$\$|\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z0-9_]+)", one, template)


def _join(parts: list[list[list[DatumInput]]]) -> list[list[DatumInput]]:
    """pachd's join merge: group each input's datums by key, cross the groups of one key; keys in
    pachd's order (by the hash of the key)."""
    keyed: dict[str, list[list[list[DatumInput]]]] = {}
    for n, part in enumerate(parts):
        for d in part:
            key = d[0].join_on if d else ""
            slots = keyed.setdefault(key, [[] for _ in parts])
            slots[n].append(d)
    out = []
    for key in sorted(keyed, key=lambda k: hashlib.blake2b(k.encode(), digest_size=32).hexdigest()):
        present = [slot for slot in keyed[key] if slot]
        for combo in product(*present):
            inputs = [i for d in combo for i in d]
            if len(present) == len(parts):
                out.append(inputs)
                continue
            kept = [i for i in inputs if i.outer_join]
            if kept:
                out.append(kept)
    return out


def _tree_hash(files: Iterable[tuple[str, str]]) -> str:
    h = hashlib.blake2b(digest_size=32)
    for path, fh in sorted(files):
        h.update(path.encode() + b"\x00" + (fh or "").encode() + b"\x00")
    return h.hexdigest()


def _datum(inputs: list[DatumInput], salt: str) -> Datum:
    return Datum(id=datum_id(inputs), hash=datum_hash(inputs, salt), inputs=tuple(inputs))


def find(datum_list: Iterable[Datum], datum_id_: str) -> Optional[Datum]:
    return next((d for d in datum_list if d.id == datum_id_), None)
