"""The PFS engine: projects, repos, branches, commits and files, with Pachyderm's rules.

Plain Python over SQLite (metadata) and a content-addressed blob store (file contents); no protocol here.
A commit stores only its own changes (a delta: path -> content, or a tombstone); the view of a commit is
its deltas over its ancestors'. Every write is one SQLite transaction, so a crash at any moment leaves
either all of a change or none of it.
"""
from __future__ import annotations

import bisect
import io
import json
import os
import re
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional

from . import paths as P
from .blobs import BlobStore, BlobWriter
from .errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

DEFAULT_PROJECT = "default"
ANCESTRY_RE = re.compile(r"^([^\^~.]+)((?:[\^~]\d*)*)(?:\.(-?\d+))?$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS projects(name TEXT PRIMARY KEY, description TEXT, created REAL);
CREATE TABLE IF NOT EXISTS repos(
    id INTEGER PRIMARY KEY AUTOINCREMENT, project TEXT, name TEXT, type TEXT, description TEXT,
    created REAL, UNIQUE(project, name, type));
CREATE TABLE IF NOT EXISTS branches(
    repo_id INTEGER, name TEXT, head TEXT, created REAL, updated REAL, PRIMARY KEY(repo_id, name));
CREATE TABLE IF NOT EXISTS commits(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, repo_id INTEGER, branch TEXT, parent TEXT,
    description TEXT, started REAL, finishing REAL, finished REAL, error TEXT, size INTEGER DEFAULT 0);
CREATE INDEX IF NOT EXISTS commits_parent ON commits(parent);
CREATE INDEX IF NOT EXISTS commits_repo ON commits(repo_id, seq);
CREATE TABLE IF NOT EXISTS inline_blobs(hash TEXT PRIMARY KEY, data BLOB) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deltas(
    commit_id TEXT, path TEXT, hash TEXT, size INTEGER, PRIMARY KEY(commit_id, path)) WITHOUT ROWID;
"""

CHAIN = """WITH RECURSIVE chain(id, depth) AS (
    SELECT :commit, 0 UNION ALL
    SELECT commits.parent, chain.depth + 1 FROM commits JOIN chain ON commits.id = chain.id
    WHERE commits.parent IS NOT NULL) """


@dataclass
class RepoRow:
    id: int
    project: str
    name: str
    type: str
    description: str
    created: float

    def __str__(self):
        return f"{self.project}/{self.name}"


@dataclass
class CommitRow:
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


@dataclass
class _Op:
    kind: str  # "put" or "del"
    path: str
    writer: Optional[BlobWriter] = None
    blob: Optional[tuple] = None  # (hash, size) once known


@dataclass
class FileBatch:
    """The operations of one ModifyFile stream, applied all at once by Store.apply_batch."""
    repo: RepoRow
    commit_id: str = ""
    branch: str = ""
    base: Optional[str] = None  # the commit whose content appends start from
    ops: list = field(default_factory=list)
    current: Optional[_Op] = None  # the put being streamed into; earlier ones are sealed
    sealed: dict = field(default_factory=dict)  # path -> (hash, size) of puts finished so far
    pending_inline: list = field(default_factory=list)  # small contents not yet in the database
    deleted: list = field(default_factory=list)  # paths deleted so far in this stream
    base_lookups: int = 0
    base_files: Optional[dict] = None  # the base commit's files, loaded once a stream adds many


def now() -> float:
    return time.time()


def new_commit_id() -> str:
    return uuid.uuid4().hex


class Store:
    def __init__(self, data_dir: str):
        os.makedirs(data_dir, exist_ok=True)
        self.data_dir = data_dir
        self.db_path = os.path.join(data_dir, "pfs.sqlite3")
        self.blobs = BlobStore(os.path.join(data_dir, "blobs"))
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self.changed = threading.Condition()  # notified after every write; SubscribeCommit/wait use it
        self._conn().executescript(SCHEMA)
        with self._write() as db:
            if not db.execute("SELECT 1 FROM projects WHERE name=?", (DEFAULT_PROJECT,)).fetchone():
                db.execute("INSERT INTO projects VALUES(?,?,?)", (DEFAULT_PROJECT, "", now()))
            if not db.execute("SELECT 1 FROM meta WHERE key='deployment_id'").fetchone():
                db.execute("INSERT INTO meta VALUES('deployment_id', ?)", (uuid.uuid4().hex,))

    # -- connections --------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False,
                                   timeout=60)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=OFF")
            self._local.conn = conn
        return conn

    @contextmanager
    def _write(self):
        with self._write_lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        with self.changed:
            self.changed.notify_all()

    @contextmanager
    def _read(self):
        """A consistent snapshot for a multi-query read."""
        db = self._conn()
        if db.in_transaction:
            yield db
            return
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("COMMIT")

    @property
    def deployment_id(self) -> str:
        return self._conn().execute("SELECT value FROM meta WHERE key='deployment_id'").fetchone()[0]

    # -- projects -----------------------------------------------------------------------------
    def create_project(self, name: str, description: str = "", update: bool = False) -> None:
        P.check_name("project", name)
        with self._write() as db:
            if db.execute("SELECT 1 FROM projects WHERE name=?", (name,)).fetchone():
                if not update:
                    raise AlreadyExists(f"project {name} already exists")
                db.execute("UPDATE projects SET description=? WHERE name=?", (description, name))
            else:
                db.execute("INSERT INTO projects VALUES(?,?,?)", (name, description, now()))

    def get_project(self, name: str) -> tuple:
        name = name or DEFAULT_PROJECT
        row = self._conn().execute("SELECT name, description, created FROM projects WHERE name=?",
                                   (name,)).fetchone()
        if not row:
            raise NotFound(f"project {name} not found")
        return row

    def list_projects(self) -> list:
        return self._conn().execute(
            "SELECT name, description, created FROM projects ORDER BY name").fetchall()

    def delete_project(self, name: str, force: bool = False) -> None:
        name = name or DEFAULT_PROJECT
        with self._write() as db:
            self.get_project(name)
            repos = db.execute("SELECT name FROM repos WHERE project=?", (name,)).fetchall()
            if repos and not force:
                raise FailedPrecondition(
                    f"project {name} still has {len(repos)} repo(s); delete them first or use force")
            for (repo_name,) in repos:
                self._delete_repo(db, self._repo(db, name, repo_name))
            db.execute("DELETE FROM projects WHERE name=?", (name,))

    # -- repos --------------------------------------------------------------------------------
    def _repo(self, db, project: str, name: str, type_: str = "user") -> RepoRow:
        project = project or DEFAULT_PROJECT
        row = db.execute("SELECT * FROM repos WHERE project=? AND name=? AND type=?",
                         (project, name, type_ or "user")).fetchone()
        if not row:
            raise NotFound(f"repo {project}/{name} not found")
        return RepoRow(*row)

    def get_repo(self, project: str, name: str, type_: str = "user") -> RepoRow:
        return self._repo(self._conn(), project, name, type_)

    def create_repo(self, project: str, name: str, type_: str = "user", description: str = "",
                    update: bool = False) -> None:
        project = project or DEFAULT_PROJECT
        P.check_name("repo", name)
        with self._write() as db:
            if not db.execute("SELECT 1 FROM projects WHERE name=?", (project,)).fetchone():
                raise NotFound(f"project {project} not found")
            exists = db.execute("SELECT id FROM repos WHERE project=? AND name=? AND type=?",
                                (project, name, type_ or "user")).fetchone()
            if exists:
                if not update:
                    raise AlreadyExists(f"repo {project}/{name} already exists")
                db.execute("UPDATE repos SET description=? WHERE id=?", (description, exists[0]))
            else:
                db.execute("INSERT INTO repos(project, name, type, description, created) "
                           "VALUES(?,?,?,?,?)", (project, name, type_ or "user", description, now()))

    def list_repos(self, type_: str = "", projects=()) -> list[RepoRow]:
        sql, args = "SELECT * FROM repos WHERE 1=1", []
        if type_:
            sql += " AND type=?"
            args.append(type_)
        if projects:
            sql += f" AND project IN ({','.join('?' * len(projects))})"
            args += list(projects)
        return [RepoRow(*r) for r in self._conn().execute(sql + " ORDER BY created DESC, id DESC",
                                                          args)]

    def delete_repo(self, project: str, name: str, type_: str = "user") -> None:
        with self._write() as db:
            self._delete_repo(db, self._repo(db, project, name, type_))

    def _delete_repo(self, db, repo: RepoRow) -> None:
        db.execute("DELETE FROM deltas WHERE commit_id IN (SELECT id FROM commits WHERE repo_id=?)",
                   (repo.id,))
        db.execute("DELETE FROM commits WHERE repo_id=?", (repo.id,))
        db.execute("DELETE FROM branches WHERE repo_id=?", (repo.id,))
        db.execute("DELETE FROM repos WHERE id=?", (repo.id,))

    def delete_repos(self, projects=(), all_: bool = False) -> list[RepoRow]:
        with self._write() as db:
            repos = [RepoRow(*r) for r in db.execute("SELECT * FROM repos")]
            if not all_:
                repos = [r for r in repos if r.project in set(projects)]
            for repo in repos:
                self._delete_repo(db, repo)
            return repos

    def delete_all(self) -> None:
        with self._write() as db:
            for table in ("deltas", "commits", "branches", "repos", "projects"):
                db.execute(f"DELETE FROM {table}")
            db.execute("INSERT INTO projects VALUES(?,?,?)", (DEFAULT_PROJECT, "", now()))

    def repo_size(self, repo: RepoRow) -> int:
        row = self._conn().execute(
            "SELECT c.size FROM branches b JOIN commits c ON c.id = b.head WHERE b.repo_id=? "
            "ORDER BY b.name='master' DESC, c.seq DESC LIMIT 1", (repo.id,)).fetchone()
        return row[0] if row else 0

    # -- branches -----------------------------------------------------------------------------
    def list_branches(self, repo: RepoRow, reverse: bool = False) -> list[tuple]:
        order = "ASC" if reverse else "DESC"
        return self._conn().execute(
            f"SELECT name, head, created, updated FROM branches WHERE repo_id=? "
            f"ORDER BY created {order}, name {order}", (repo.id,)).fetchall()

    def get_branch(self, repo: RepoRow, name: str) -> tuple:
        row = self._conn().execute("SELECT name, head, created, updated FROM branches "
                                   "WHERE repo_id=? AND name=?", (repo.id, name)).fetchone()
        if not row:
            raise NotFound(f"branch {name} not found in repo {repo}")
        return row

    def create_branch(self, repo: RepoRow, name: str, head: Optional[CommitRow]) -> None:
        P.check_name("branch", name)
        with self._write() as db:
            exists = db.execute("SELECT head FROM branches WHERE repo_id=? AND name=?",
                                (repo.id, name)).fetchone()
            if head is None:
                if exists:
                    return
                commit_id = new_commit_id()
                t = now()
                db.execute("INSERT INTO commits(id, repo_id, branch, parent, description, started,"
                           " finishing, finished, error, size) VALUES(?,?,?,?,?,?,?,?,?,0)",
                           (commit_id, repo.id, name, None, "", t, t, t, ""))
                head_id = commit_id
            else:
                head_id = head.id
            if exists:
                db.execute("UPDATE branches SET head=?, updated=? WHERE repo_id=? AND name=?",
                           (head_id, now(), repo.id, name))
            else:
                db.execute("INSERT INTO branches VALUES(?,?,?,?,?)",
                           (repo.id, name, head_id, now(), now()))

    def delete_branch(self, repo: RepoRow, name: str) -> None:
        with self._write() as db:
            self.get_branch(repo, name)
            db.execute("DELETE FROM branches WHERE repo_id=? AND name=?", (repo.id, name))

    # -- commits ------------------------------------------------------------------------------
    def _commit_row(self, db, commit_id: str) -> Optional[CommitRow]:
        row = db.execute("SELECT * FROM commits WHERE id=?", (commit_id,)).fetchone()
        return CommitRow(*row) if row else None

    def resolve_commit(self, repo: RepoRow, commit_id: str = "", branch: str = "") -> CommitRow:
        """A commit by id, by branch head, or by ancestry syntax (`master^2`, `<id>~1`, `master.1`)."""
        db = self._conn()
        ref = commit_id or branch
        if not ref:
            raise InvalidArgument(f"a commit id or a branch is needed to pick a commit in repo {repo}")
        m = ANCESTRY_RE.match(ref)
        if not m:
            raise InvalidArgument(f"cannot parse commit reference {ref!r}")
        base, ops, root_offset = m.groups()
        row = self._commit_row(db, base)
        if row is not None and row.repo_id != repo.id:
            row = None
        if row is None:
            b = db.execute("SELECT head FROM branches WHERE repo_id=? AND name=?",
                           (repo.id, base)).fetchone()
            if b is None:
                if commit_id and (not branch or branch == base) and len(base) == 32:
                    raise NotFound(f"commit {base} not found in repo {repo}")
                raise NotFound(f"branch {base} not found in repo {repo}")
            row = self._commit_row(db, b[0])
        steps = 0
        for op in re.findall(r"[\^~]\d*", ops or ""):
            steps += int(op[1:]) if len(op) > 1 else 1
        for _ in range(steps):
            if not row.parent:
                raise NotFound(f"commit {ref} not found in repo {repo}: not enough ancestors")
            row = self._commit_row(db, row.parent)
        if root_offset is not None:
            chain = self._ancestry(db, row.id)[::-1]  # oldest first
            n = int(root_offset)
            if not 0 < n <= len(chain):
                raise NotFound(f"commit {ref} not found in repo {repo}")
            row = self._commit_row(db, chain[n - 1])
        return row

    def _ancestry(self, db, commit_id: str) -> list[str]:
        return [r[0] for r in db.execute(CHAIN + "SELECT id FROM chain ORDER BY depth",
                                         {"commit": commit_id})]

    def get_commit(self, commit_id: str) -> CommitRow:
        row = self._commit_row(self._conn(), commit_id)
        if row is None:
            raise NotFound(f"commit {commit_id} not found")
        return row

    def children(self, commit_id: str) -> list[str]:
        return [r[0] for r in self._conn().execute(
            "SELECT id FROM commits WHERE parent=? ORDER BY seq", (commit_id,))]

    def start_commit(self, repo: RepoRow, branch: str, parent: Optional[CommitRow] = None,
                     description: str = "") -> CommitRow:
        if branch:
            P.check_name("branch", branch)
        with self._write() as db:
            head = None
            if branch:
                b = db.execute("SELECT head FROM branches WHERE repo_id=? AND name=?",
                               (repo.id, branch)).fetchone()
                head = self._commit_row(db, b[0]) if b else None
            base = parent or head
            if base is not None and base.finished is None:
                raise FailedPrecondition(f"parent commit {base.id} has not been finished")
            if not branch and base is None:
                raise InvalidArgument("a new commit needs a branch or a parent")
            row = self._insert_commit(db, repo, branch, base.id if base else None, description)
            return row

    def _insert_commit(self, db, repo, branch, parent_id, description, finished=False) -> CommitRow:
        commit_id, t = new_commit_id(), now()
        db.execute("INSERT INTO commits(id, repo_id, branch, parent, description, started, finishing,"
                   " finished, error, size) VALUES(?,?,?,?,?,?,?,?,?,?)",
                   (commit_id, repo.id, branch or None, parent_id, description, t,
                    t if finished else None, t if finished else None, "",
                    self._commit_row(db, parent_id).size if parent_id else 0))
        if branch:
            db.execute("INSERT INTO branches VALUES(?,?,?,?,?) ON CONFLICT(repo_id, name) DO UPDATE "
                       "SET head=excluded.head, updated=excluded.updated",
                       (repo.id, branch, commit_id, t, t))
        return self._commit_row(db, commit_id)

    def finish_commit(self, commit: CommitRow, description: Optional[str] = None, error: str = "",
                      force: bool = False) -> None:
        with self._write() as db:
            row = self._commit_row(db, commit.id)
            if row.finished is not None:
                raise FailedPrecondition(f"commit {row.id} has already been finished")
            self._finish(db, row, description, error)

    def _finish(self, db, row: CommitRow, description=None, error=""):
        size = self._size_after(db, row)
        t = now()
        db.execute("UPDATE commits SET finishing=?, finished=?, size=?, error=?,"
                   " description=COALESCE(?, description) WHERE id=?",
                   (t, t, size, error or "", description or None, row.id))

    def _size_after(self, db, row: CommitRow) -> int:
        """The commit's total size from its parent's and its own delta, without a full scan."""
        base = self._commit_row(db, row.parent).size if row.parent else 0
        mine = db.execute("SELECT path, hash, size FROM deltas WHERE commit_id=?", (row.id,)).fetchall()
        if not mine:
            return base
        old = self._lookup(db, row.parent, [p for p, _, _ in mine]) if row.parent else {}
        for path, digest, size in mine:
            base -= old[path].size if path in old else 0
            base += size if digest is not None else 0
        return base

    def wait_finished(self, commit_id: str, cancelled=lambda: False) -> CommitRow:
        with self.changed:
            while True:
                row = self._commit_row(self._conn(), commit_id)
                if row is None:
                    raise NotFound(f"commit {commit_id} not found")
                if row.finished is not None or cancelled():
                    return row
                self.changed.wait(0.5)

    def list_commits(self, repo: RepoRow, to: Optional[CommitRow] = None,
                     from_: Optional[CommitRow] = None, number: int = 0,
                     reverse: bool = False) -> list[CommitRow]:
        """One snapshot: a commit dropped meanwhile (a cut upload being cleaned up) is either
        listed whole or not at all; a `to` dropped since it was resolved is NotFound."""
        with self._read() as db:
            if to is not None:
                self.get_commit(to.id)  # NotFound if dropped (same connection: same snapshot)
                ids = self._ancestry(db, to.id)
                if from_ is not None:
                    if from_.id not in ids:
                        raise InvalidArgument(f"commit {from_.id} is not an ancestor of {to.id}")
                    ids = ids[:ids.index(from_.id)]
                rows = [self._commit_row(db, i) for i in ids]
            else:
                rows = [CommitRow(*r) for r in db.execute(
                    "SELECT * FROM commits WHERE repo_id=? ORDER BY seq DESC", (repo.id,))]
                if from_ is not None:
                    rows = [r for r in rows if r.seq > from_.seq]
        if number:
            rows = rows[:number]
        return rows[::-1] if reverse else rows

    def branch_commits(self, repo: RepoRow, branch: str) -> list[CommitRow]:
        """The commits of a branch's history, oldest first (for SubscribeCommit)."""
        with self._read() as db:
            b = db.execute("SELECT head FROM branches WHERE repo_id=? AND name=?",
                           (repo.id, branch)).fetchone()
            if not b:
                return []
            return [self._commit_row(db, i) for i in self._ancestry(db, b[0])[::-1]]

    def all_commits(self) -> list[CommitRow]:
        return [CommitRow(*r) for r in self._conn().execute("SELECT * FROM commits ORDER BY seq DESC")]

    def repo_of(self, row: CommitRow) -> RepoRow:
        return RepoRow(*self._conn().execute("SELECT * FROM repos WHERE id=?", (row.repo_id,)).fetchone())

    def drop_commit(self, commit_id: str) -> None:
        """Removes a commit that has no children; branches on it fall back to its parent."""
        with self._write() as db:
            row = self._commit_row(db, commit_id)
            if row is None:
                raise NotFound(f"commit set {commit_id} not found")
            if db.execute("SELECT 1 FROM commits WHERE parent=?", (commit_id,)).fetchone():
                raise FailedPrecondition(
                    f"cannot drop commit {commit_id}: it has children; drop them first or squash it")
            self._remove_commit(db, row)

    def squash_commit(self, commit_id: str) -> None:
        """Merges a finished commit's changes into its children and removes it."""
        with self._write() as db:
            row = self._commit_row(db, commit_id)
            if row is None:
                raise NotFound(f"commit set {commit_id} not found")
            if row.finished is None:
                raise FailedPrecondition(f"cannot squash commit {commit_id}: it is not finished")
            kids = [r[0] for r in db.execute("SELECT id FROM commits WHERE parent=?", (commit_id,))]
            if not kids:
                raise FailedPrecondition(
                    f"cannot squash commit {commit_id}: it has no children (drop it instead)")
            for kid in kids:
                db.execute("INSERT OR IGNORE INTO deltas SELECT ?, path, hash, size FROM deltas "
                           "WHERE commit_id=?", (kid, commit_id))
            self._remove_commit(db, row)

    def _remove_commit(self, db, row: CommitRow) -> None:
        db.execute("UPDATE commits SET parent=? WHERE parent=?", (row.parent, row.id))
        if row.parent:
            db.execute("UPDATE branches SET head=?, updated=? WHERE head=?",
                       (row.parent, now(), row.id))
        else:
            db.execute("DELETE FROM branches WHERE head=?", (row.id,))
        db.execute("DELETE FROM deltas WHERE commit_id=?", (row.id,))
        db.execute("DELETE FROM commits WHERE id=?", (row.id,))

    # -- the view of a commit -----------------------------------------------------------------
    def _lookup(self, db, commit_id: str, paths: list[str]) -> dict[str, Entry]:
        """Files at the given paths as of a commit (missing or deleted ones are absent)."""
        if not paths:
            return {}
        out = {}
        for i in range(0, len(paths), 20000):
            rows = db.execute(
                CHAIN + "SELECT d.path, d.hash, d.size, MIN(chain.depth) FROM deltas d JOIN chain "
                "ON d.commit_id = chain.id WHERE d.path IN (SELECT value FROM json_each(:paths)) "
                "GROUP BY d.path", {"commit": commit_id, "paths": json.dumps(paths[i:i + 20000])})
            for path, digest, size, _ in rows:
                if digest is not None:
                    out[path] = Entry(path, False, size, digest)
        return out

    def files_under(self, commit_id: str, prefix: str = "/") -> Iterator[Entry]:
        """Every file at or below `prefix` as of a commit, in path order, streamed from SQLite."""
        prefix = P.clean(prefix)
        db = self._conn()
        exact = self._lookup(db, commit_id, [prefix]).get(prefix)
        if exact:
            yield exact
            return
        lo = prefix.rstrip("/") + "/"
        hi = lo[:-1] + "0"  # '0' is the character after '/'
        cursor = db.execute(
            CHAIN + "SELECT d.path, d.hash, d.size, MIN(chain.depth) FROM deltas d JOIN chain "
            "ON d.commit_id = chain.id WHERE d.path >= :lo AND d.path < :hi GROUP BY d.path "
            "ORDER BY d.path", {"commit": commit_id, "lo": lo, "hi": hi})
        try:
            while rows := cursor.fetchmany(5000):
                for path, digest, size, _ in rows:
                    if digest is not None:
                        yield Entry(path, False, size, digest)
        finally:
            cursor.close()

    def inspect(self, commit_id: str, path: str) -> Entry:
        path = P.clean(path)
        if path == "/":
            return Entry("/", True, sum(e.size for e in self.files_under(commit_id, "/")))
        total, found = 0, False
        for e in self.files_under(commit_id, path):
            if e.path == path:
                return e
            found, total = True, total + e.size
        if not found:
            raise NotFound(self._file_not_found(commit_id, path))
        return Entry(path + "/", True, total)

    def _file_not_found(self, commit_id: str, path: str) -> str:
        repo = self.repo_of(self.get_commit(commit_id))
        return f"file {path} not found in repo {repo} at commit {commit_id}"

    def list_dir(self, commit_id: str, path: str) -> list[Entry]:
        """Children of a directory (directories with a trailing '/' and their total sizes), or the
        file itself when `path` is a file."""
        path = P.clean(path)
        children: dict[str, Entry] = {}
        base = path.rstrip("/") + "/"
        for e in self.files_under(commit_id, path):
            if e.path == path:
                return [e]
            rest = e.path[len(base):]
            if "/" in rest:
                name = base + rest.split("/", 1)[0] + "/"
                d = children.setdefault(name, Entry(name, True, 0))
                d.size += e.size
            else:
                children[e.path] = e
        if not children and path != "/":
            raise NotFound(self._file_not_found(commit_id, path))
        return sorted(children.values(), key=lambda e: e.path)

    def walk(self, commit_id: str, path: str) -> Iterator[Entry]:
        """The directory itself, then every directory and file below it, in path order."""
        path = P.clean(path)
        entries = list(self.files_under(commit_id, path))
        if not entries:
            if path == "/":
                yield Entry("/", True, 0)
                return
            raise NotFound(self._file_not_found(commit_id, path))
        if len(entries) == 1 and entries[0].path == path:
            yield entries[0]
            return
        dirs: dict[str, Entry] = {}
        root = "/" if path == "/" else path + "/"
        dirs[root] = Entry(root, True, 0)
        for e in entries:
            dirs[root].size += e.size
            for d in P.parent_dirs(e.path):
                if len(d) > len(root):
                    dirs.setdefault(d, Entry(d, True, 0)).size += e.size
        yield from sorted(list(dirs.values()) + entries, key=lambda e: e.path)

    def glob(self, commit_id: str, pattern: str) -> list[Entry]:
        regex = P.glob_to_regex(pattern)
        return [e for e in self.walk(commit_id, "/")
                if e.path != "/" and regex.match(e.path.rstrip("/"))]

    def diff(self, new_commit: str, old_commit: Optional[str], path: str = "/") -> list[Change]:
        """Files that differ between two commits below `path`. When the old commit is an ancestor
        of the new one only the deltas in between are read, so the cost follows the change, not
        the size of the repo."""
        path = P.clean(path)
        db = self._conn()
        with self._read():
            chain = self._ancestry(db, new_commit)
            if old_commit is None or old_commit in chain:
                between = chain[:chain.index(old_commit)] if old_commit else chain
                candidates = sorted({r[0] for cid in between for r in db.execute(
                    "SELECT path FROM deltas WHERE commit_id=?", (cid,))})
                if path != "/":
                    candidates = [c for c in candidates
                                  if c == path or c.startswith(path.rstrip("/") + "/")]
                new = self._lookup(db, new_commit, candidates)
                old = self._lookup(db, old_commit, candidates) if old_commit else {}
            else:
                new = {e.path: e for e in self.files_under(new_commit, path)}
                old = {e.path: e for e in self.files_under(old_commit, path)}
                candidates = sorted(set(new) | set(old))
        changes = []
        for p in candidates:
            n, o = new.get(p), old.get(p)
            if (n is None and o is None) or (n and o and n.hash == o.hash):
                continue
            changes.append(Change(p, n, o))
        return changes

    def open_blob(self, digest: str):
        row = self._conn().execute("SELECT data FROM inline_blobs WHERE hash=?", (digest,)).fetchone()
        return io.BytesIO(row[0]) if row else self.blobs.open(digest)

    def read(self, entry: Entry, offset: int = 0, chunk: int = 4 << 20) -> Iterator[bytes]:
        with self.open_blob(entry.hash) as f:
            f.seek(offset)
            while data := f.read(chunk):
                yield data

    # -- writing files ------------------------------------------------------------------------
    def begin_batch(self, repo: RepoRow, commit_id: str, branch: str) -> FileBatch:
        """Opens a ModifyFile stream: finds the commit appends start from (nothing is locked)."""
        batch = FileBatch(repo=repo, commit_id=commit_id, branch=branch)
        if commit_id and ANCESTRY_RE.match(commit_id) and len(commit_id) == 32:
            row = self.resolve_commit(repo, commit_id)
            if row.finished is not None:
                raise FailedPrecondition(f"commit {row.id} has already been finished")
            batch.base = row.id
        else:
            if commit_id and not branch:
                batch.branch = branch = commit_id
                batch.commit_id = ""
            if not branch:
                raise InvalidArgument("set_commit needs a commit id or a branch")
            P.check_name("branch", branch)
            b = self._conn().execute("SELECT head FROM branches WHERE repo_id=? AND name=?",
                                     (repo.id, branch)).fetchone()
            batch.base = b[0] if b else None
        return batch

    def batch_add(self, batch: FileBatch, path: str, data: bytes) -> None:
        path = self._file_path(path)
        op = batch.current
        if op is None or op.path != path:
            self._seal(batch)
            writer = self.blobs.writer()
            if path in batch.sealed:  # appending again to a file this stream already wrote
                self._flush_inline(batch)
                writer.copy_from(self.open_blob(batch.sealed[path][0]))
            elif not self._deleted_in_batch(batch, path) and batch.base:
                old = self._base_file(batch, path)
                if old:
                    writer.copy_from(self.open_blob(old.hash))
            op = batch.current = _Op("put", path, writer=writer)
            batch.ops.append(op)
        op.writer.write(data)

    def _seal(self, batch: FileBatch) -> None:
        """Finishes the put being streamed, so a stream of many files holds one writer at a time;
        small contents go to the database in batches (orphans are harmless: content-addressed)."""
        op, batch.current = batch.current, None
        if op is None:
            return
        data = op.writer.inline()
        op.blob = op.writer.commit()
        op.writer = None
        batch.sealed[op.path] = op.blob
        if data is not None:
            batch.pending_inline.append((op.blob[0], data))
            if len(batch.pending_inline) >= 2000:
                self._flush_inline(batch)

    def _flush_inline(self, batch: FileBatch, db=None) -> None:
        if not batch.pending_inline:
            return
        if db is None:
            with self._write() as db:
                db.executemany("INSERT OR IGNORE INTO inline_blobs VALUES(?,?)", batch.pending_inline)
        else:
            db.executemany("INSERT OR IGNORE INTO inline_blobs VALUES(?,?)", batch.pending_inline)
        batch.pending_inline = []

    def batch_delete(self, batch: FileBatch, path: str) -> None:
        path = P.clean(path)
        op = batch.current
        if op is not None and (op.path == path or op.path.startswith(path.rstrip("/") + "/")):
            op.writer.discard()
            batch.ops.remove(op)
            batch.current = None
        for p in [p for p in batch.sealed if p == path or p.startswith(path.rstrip("/") + "/")]:
            del batch.sealed[p]
        batch.ops.append(_Op("del", path))
        batch.deleted.append(path)

    def batch_copy(self, batch: FileBatch, src_commit: str, src_path: str, dst: str,
                   append: bool = False) -> None:
        src_path, dst = P.clean(src_path), P.clean(dst)
        files = list(self.files_under(src_commit, src_path))
        if not files:
            raise NotFound(self._file_not_found(src_commit, src_path))
        if not append:
            self.batch_delete(batch, dst)
        for e in files:
            rel = e.path[len(src_path):] if e.path != src_path else ""
            target = P.clean(dst + rel)
            if append:
                with self.open_blob(e.hash) as f:
                    while chunk := f.read(4 << 20):
                        self.batch_add(batch, target, chunk)
            else:
                self._seal(batch)
                batch.sealed[target] = (e.hash, e.size)
                batch.ops.append(_Op("put", target, blob=(e.hash, e.size)))

    def _final_state(self, commit_id: str, ops: list) -> dict:
        """path -> (hash, size), or None for deleted, after replaying a stream's ops in order. A
        delete of a directory removes what is under it in the commit and what the stream put there
        before it; sorted path lists keep that cheap when a stream holds thousands of deletes."""
        final: dict = {}
        put_paths: list[str] = []
        deletes = sum(1 for op in ops if op.kind == "del")
        base_paths = [e.path for e in self.files_under(commit_id, "/")] if deletes > 64 else None
        for op in ops:
            if op.kind == "put":
                if op.path not in final:
                    bisect.insort(put_paths, op.path)
                final[op.path] = op.blob
                continue
            if op.path != "/":
                final[op.path] = None
            prefix = op.path.rstrip("/") + "/"
            under = self._under(put_paths, prefix)
            if base_paths is not None:
                under += self._under(base_paths, prefix)
            else:
                under += [e.path for e in self.files_under(commit_id, op.path)]
            for p in under:
                final[p] = None
        return final

    @staticmethod
    def _under(sorted_paths: list[str], prefix: str) -> list[str]:
        i = bisect.bisect_left(sorted_paths, prefix)
        out = []
        while i < len(sorted_paths) and sorted_paths[i].startswith(prefix):
            out.append(sorted_paths[i])
            i += 1
        return out

    def _deleted_in_batch(self, batch: FileBatch, path: str) -> bool:
        return any(d == path or path.startswith(d.rstrip("/") + "/") for d in batch.deleted)

    def _base_file(self, batch: FileBatch, path: str) -> Optional[Entry]:
        """The file an add appends to. A stream adding many files reads the base listing once
        instead of querying per file."""
        if batch.base_files is None and batch.base_lookups >= 64:
            batch.base_files = {e.path: e for e in self.files_under(batch.base, "/")}
        if batch.base_files is not None:
            return batch.base_files.get(path)
        batch.base_lookups += 1
        return self._lookup(self._conn(), batch.base, [path]).get(path)

    @staticmethod
    def _file_path(path: str) -> str:
        cleaned = P.clean(path)
        if cleaned == "/":
            raise InvalidArgument(f"invalid file path {path!r}: a file needs a name")
        return cleaned

    def discard_batch(self, batch: FileBatch) -> None:
        if batch.current is not None:
            batch.current.writer.discard()
            batch.current = None

    def apply_batch(self, batch: FileBatch) -> CommitRow:
        """Applies a whole ModifyFile stream in one transaction. On a branch whose head is finished
        (or missing) it opens and finishes a commit of its own, as pachd does."""
        self._seal(batch)
        repo = batch.repo
        with self._write() as db:
            self._flush_inline(batch, db)
            auto = False
            if batch.commit_id:
                row = self.resolve_commit(repo, batch.commit_id)
                if row.finished is not None:
                    raise FailedPrecondition(f"commit {row.id} has already been finished")
            else:
                b = db.execute("SELECT head FROM branches WHERE repo_id=? AND name=?",
                               (repo.id, batch.branch)).fetchone()
                head = self._commit_row(db, b[0]) if b else None
                if head is not None and head.finished is None:
                    row = head
                else:
                    row = self._insert_commit(db, repo, batch.branch, head.id if head else None, "")
                    auto = True
            final = self._final_state(row.id, batch.ops)
            rows = [(row.id, p, v[0] if v else None, v[1] if v else 0) for p, v in final.items()]
            db.executemany("INSERT OR REPLACE INTO deltas VALUES(?,?,?,?)", rows)
            if auto:
                self._finish(db, row)
            return self._commit_row(db, row.id)
