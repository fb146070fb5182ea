"""The PFS engine: projects, repos, branches, commits and files, with Pachyderm's rules.

Plain Python over SQLite (metadata) and a content-addressed blob store (file contents); no protocol here.
A commit stores only its own changes (a delta: path -> content, or a tombstone); the view of a commit is
its deltas over its ancestors'. Every write is one SQLite transaction, so a crash at any moment leaves
either all of a change or none of it.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Iterator, Optional

from ...rules import is_commit_id, parse_ancestry
from ..errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PfsError
from . import paths as P
from .batch import FileBatch
from .blobs import BlobStore
from .gc import Collector, enable_auto_vacuum
from .records import Change, CommitRow, Entry, RepoRow

DEFAULT_PROJECT = "default"

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
    description TEXT, started REAL, finishing REAL, finished REAL, error TEXT, size INTEGER DEFAULT 0,
    cid TEXT, origin TEXT DEFAULT 'USER');
CREATE INDEX IF NOT EXISTS commits_parent ON commits(parent);
CREATE INDEX IF NOT EXISTS commits_repo ON commits(repo_id, seq);
CREATE TABLE IF NOT EXISTS branch_provenance(
    repo_id INTEGER, branch TEXT, from_repo_id INTEGER, from_branch TEXT,
    PRIMARY KEY(repo_id, branch, from_repo_id, from_branch));
CREATE INDEX IF NOT EXISTS branch_subvenance ON branch_provenance(from_repo_id, from_branch);
CREATE TABLE IF NOT EXISTS commit_provenance(
    commit_key TEXT, from_key TEXT, PRIMARY KEY(commit_key, from_key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS transactions(id TEXT PRIMARY KEY, started REAL, requests TEXT);
CREATE TABLE IF NOT EXISTS inline_blobs(hash TEXT PRIMARY KEY, data BLOB) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deltas(
    commit_id TEXT, path TEXT, hash TEXT, size INTEGER, PRIMARY KEY(commit_id, path)) WITHOUT ROWID;
"""

CHAIN = """WITH RECURSIVE chain(id, depth) AS (
    SELECT :commit, 0 UNION ALL
    SELECT commits.parent, chain.depth + 1 FROM commits JOIN chain ON commits.id = chain.id
    WHERE commits.parent IS NOT NULL) """


def _q(name: str) -> str:
    """Go's %q of a name (names are plain ASCII once checked)."""
    return json.dumps(name)


def _repo_str(project: str, name: str, type_: str = "user") -> str:
    return str(RepoRow(0, project or DEFAULT_PROJECT, name, type_ or "user", "", 0))


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
        enable_auto_vacuum(self.db_path)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self.collector = Collector(self.db_path, self.blobs, self._write_lock)
        self.changed = threading.Condition()  # notified after every write; SubscribeCommit/wait use it
        self._conn().executescript(SCHEMA)
        self._migrate()
        with self._write() as db:
            if not db.execute("SELECT 1 FROM projects WHERE name=?", (DEFAULT_PROJECT,)).fetchone():
                db.execute("INSERT INTO projects VALUES(?,?,?)", (DEFAULT_PROJECT, "", now()))
            if not db.execute("SELECT 1 FROM meta WHERE key='deployment_id'").fetchone():
                db.execute("INSERT INTO meta VALUES('deployment_id', ?)", (uuid.uuid4().hex,))

    def _migrate(self) -> None:
        """Data dirs made before commit sets: commits get their public id (= their key) and origin."""
        with self._write() as db:
            cols = [r[1] for r in db.execute("PRAGMA table_info(commits)")]
            if "cid" not in cols:
                db.execute("ALTER TABLE commits ADD COLUMN cid TEXT")
                db.execute("UPDATE commits SET cid=id")
            if "origin" not in cols:
                db.execute("ALTER TABLE commits ADD COLUMN origin TEXT DEFAULT 'USER'")
            db.execute("CREATE INDEX IF NOT EXISTS commits_cid ON commits(cid)")
            db.execute("CREATE INDEX IF NOT EXISTS commits_repo_cid ON commits(repo_id, cid)")

    # -- connections --------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False, timeout=60)
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only takes on a new database: before WAL
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=OFF")
            self._local.conn = conn
        return conn

    @contextmanager
    def _write(self):
        """One SQLite write transaction; nested uses (a Pachyderm transaction running several
        calls) join the outer one, so they commit or roll back together."""
        with self._write_lock:
            db = self._conn()
            if getattr(self._local, "writing", False):
                yield db
                return
            db.execute("BEGIN IMMEDIATE")
            self._local.writing = True
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            finally:
                self._local.writing = False
        with self.changed:
            self.changed.notify_all()

    @contextmanager
    def transaction(self, commit_set_id: str, dry_run: bool = False):
        """Runs the calls made inside as one write transaction whose new commits all get
        `commit_set_id` (pachd: a transaction's commits share its id). With `dry_run` it is rolled
        back at the end: the calls are checked, nothing is kept."""

        class _DryRun(Exception):
            pass

        try:
            with self._write() as db:
                outer, self._local.txn_cid = self._txn_cid(), commit_set_id
                try:
                    yield db
                finally:
                    self._local.txn_cid = outer
                if dry_run:
                    raise _DryRun()
        except _DryRun:
            pass

    def _txn_cid(self) -> Optional[str]:
        return getattr(self._local, "txn_cid", None)

    # -- Pachyderm transactions (stored requests, run by the protocol layer) ---------------------
    def start_transaction(self) -> tuple:
        txn = (new_commit_id(), now())
        with self._write() as db:
            db.execute("INSERT INTO transactions VALUES(?,?,?)", (*txn, "[]"))
        return txn

    def get_transaction(self, txn_id: str) -> tuple:
        """(id, started, [request bytes])."""
        row = self._conn().execute("SELECT id, started, requests FROM transactions WHERE id=?", (txn_id,)).fetchone()
        if not row:
            raise NotFound(f"transaction {txn_id} not found")
        return row[0], row[1], [bytes.fromhex(r) for r in json.loads(row[2])]

    def list_transactions(self) -> list[tuple]:
        return [
            self.get_transaction(r[0]) for r in self._conn().execute("SELECT id FROM transactions ORDER BY started")
        ]

    def set_transaction_requests(self, txn_id: str, requests: list[bytes]) -> None:
        with self._write() as db:
            self.get_transaction(txn_id)
            db.execute(
                "UPDATE transactions SET requests=? WHERE id=?", (json.dumps([r.hex() for r in requests]), txn_id)
            )

    def delete_transaction(self, txn_id: str) -> None:
        with self._write() as db:
            self.get_transaction(txn_id)
            db.execute("DELETE FROM transactions WHERE id=?", (txn_id,))

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

    def request_collection(self) -> None:
        """Contents may have lost their last reference: the collector (when started) frees them."""
        self.collector.request()

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
        row = self._conn().execute("SELECT name, description, created FROM projects WHERE name=?", (name,)).fetchone()
        if not row:
            raise NotFound(f"project {_q(name)} not found")
        return row

    def list_projects(self) -> list:
        return self._conn().execute("SELECT name, description, created FROM projects ORDER BY name").fetchall()

    def delete_project(self, name: str, force: bool = False) -> None:
        name = name or DEFAULT_PROJECT
        with self._write() as db:
            self.get_project(name)
            repos = db.execute("SELECT name FROM repos WHERE project=?", (name,)).fetchall()
            if repos and not force:
                raise FailedPrecondition(
                    f"project {name} still has {len(repos)} repo(s); delete them first or use force"
                )
            for (repo_name,) in repos:
                self._delete_repo(db, self._repo(db, name, repo_name))
            db.execute("DELETE FROM projects WHERE name=?", (name,))

    # -- repos --------------------------------------------------------------------------------
    def _repo(self, db, project: str, name: str, type_: str = "user") -> RepoRow:
        project = project or DEFAULT_PROJECT
        row = db.execute(
            "SELECT * FROM repos WHERE project=? AND name=? AND type=?", (project, name, type_ or "user")
        ).fetchone()
        if not row:
            raise NotFound(f"repo {_repo_str(project, name, type_)} not found")
        return RepoRow(*row)

    def get_repo(self, project: str, name: str, type_: str = "user") -> RepoRow:
        return self._repo(self._conn(), project, name, type_)

    def create_repo(
        self, project: str, name: str, type_: str = "user", description: str = "", update: bool = False
    ) -> None:
        project = project or DEFAULT_PROJECT
        P.check_name("repo", name)
        with self._write() as db:
            if not db.execute("SELECT 1 FROM projects WHERE name=?", (project,)).fetchone():
                raise NotFound(f"project {_q(project)} not found")
            exists = db.execute(
                "SELECT id FROM repos WHERE project=? AND name=? AND type=?", (project, name, type_ or "user")
            ).fetchone()
            if exists:
                if not update:
                    raise AlreadyExists(f"repo {_repo_str(project, name, type_)} already exists")
                db.execute("UPDATE repos SET description=? WHERE id=?", (description, exists[0]))
            else:
                db.execute(
                    "INSERT INTO repos(project, name, type, description, created) VALUES(?,?,?,?,?)",
                    (project, name, type_ or "user", description, now()),
                )

    def list_repos(self, type_: str = "", projects=()) -> list[RepoRow]:
        sql, args = "SELECT * FROM repos WHERE 1=1", []
        if type_:
            sql += " AND type=?"
            args.append(type_)
        if projects:
            sql += f" AND project IN ({','.join('?' * len(projects))})"
            args += list(projects)
        return [RepoRow(*r) for r in self._conn().execute(sql + " ORDER BY created DESC, id DESC", args)]

    def delete_repo(self, project: str, name: str, type_: str = "user", force: bool = False) -> bool:
        """False when there is no such repo (pachd answers OK with deleted=false then). A repo
        whose branches others have in their provenance goes only with force."""
        with self._write() as db:
            try:
                repo = self._repo(db, project, name, type_)
            except NotFound:
                return False
            branches = [(repo.id, b) for (b,) in db.execute("SELECT name FROM branches WHERE repo_id=?", (repo.id,))]
            self._check_no_subvenance(db, branches, force, f"repo {repo}")
            self._delete_repo(db, repo)
            return True

    def _delete_repo(self, db, repo: RepoRow) -> None:
        self.request_collection()  # runs once this write has committed (it waits for the write lock)
        db.execute("DELETE FROM deltas WHERE commit_id IN (SELECT id FROM commits WHERE repo_id=?)", (repo.id,))
        db.execute(
            "DELETE FROM commit_provenance WHERE commit_key IN (SELECT id FROM commits WHERE "
            "repo_id=?) OR from_key IN (SELECT id FROM commits WHERE repo_id=?)",
            (repo.id, repo.id),
        )
        db.execute("DELETE FROM branch_provenance WHERE repo_id=? OR from_repo_id=?", (repo.id, repo.id))
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
            for table in (
                "deltas",
                "commit_provenance",
                "branch_provenance",
                "commits",
                "branches",
                "repos",
                "projects",
            ):
                db.execute(f"DELETE FROM {table}")
            db.execute("INSERT INTO projects VALUES(?,?,?)", (DEFAULT_PROJECT, "", now()))
            self.request_collection()

    def repo_size(self, repo: RepoRow) -> int:
        row = (
            self._conn()
            .execute(
                "SELECT c.size FROM branches b JOIN commits c ON c.id = b.head WHERE b.repo_id=? "
                "ORDER BY b.name='master' DESC, c.seq DESC LIMIT 1",
                (repo.id,),
            )
            .fetchone()
        )
        return row[0] if row else 0

    # -- branches -----------------------------------------------------------------------------
    _BRANCH_COLS = (
        "SELECT b.name, COALESCE(c.cid, b.head), b.created, b.updated FROM branches b "
        "LEFT JOIN commits c ON c.id = b.head "
    )

    def list_branches(self, repo: RepoRow, reverse: bool = False) -> list[tuple]:
        """(name, head commit id, created, updated) of each branch."""
        order = "ASC" if reverse else "DESC"
        return (
            self._conn()
            .execute(self._BRANCH_COLS + f"WHERE b.repo_id=? ORDER BY b.created {order}, b.name {order}", (repo.id,))
            .fetchall()
        )

    def get_branch(self, repo: RepoRow, name: str) -> tuple:
        row = self._conn().execute(self._BRANCH_COLS + "WHERE b.repo_id=? AND b.name=?", (repo.id, name)).fetchone()
        if not row:
            raise NotFound(f"branch {_q(name)} not found in repo {repo}")
        return row

    def _head(self, db, repo_id: int, branch: str) -> Optional[CommitRow]:
        b = db.execute("SELECT head FROM branches WHERE repo_id=? AND name=?", (repo_id, branch)).fetchone()
        return self._commit_row(db, b[0]) if b else None

    def _set_head(self, db, repo_id: int, branch: str, key: str) -> None:
        t = now()
        db.execute(
            "INSERT INTO branches VALUES(?,?,?,?,?) ON CONFLICT(repo_id, name) DO UPDATE "
            "SET head=excluded.head, updated=excluded.updated",
            (repo_id, branch, key, t, t),
        )

    def _repo_by_id(self, db, repo_id: int) -> RepoRow:
        return RepoRow(*db.execute("SELECT * FROM repos WHERE id=?", (repo_id,)).fetchone())

    def _direct_provenance(self, db, repo_id: int, branch: str) -> list[tuple]:
        return db.execute(
            "SELECT from_repo_id, from_branch FROM branch_provenance WHERE repo_id=? "
            "AND branch=? ORDER BY from_repo_id, from_branch",
            (repo_id, branch),
        ).fetchall()

    def _direct_subvenance(self, db, repo_id: int, branch: str) -> list[tuple]:
        return db.execute(
            "SELECT repo_id, branch FROM branch_provenance WHERE from_repo_id=? "
            "AND from_branch=? ORDER BY repo_id, branch",
            (repo_id, branch),
        ).fetchall()

    def _closure(self, db, start: tuple, step) -> list[tuple]:
        """Every branch reachable from `start` (not included) through `step`, nearest first."""
        seen, out, todo = {start}, [], [start]
        while todo:
            nxt = []
            for node in todo:
                for other in step(db, *node):
                    if other not in seen:
                        seen.add(other)
                        out.append(other)
                        nxt.append(other)
            todo = nxt
        return out

    def branch_relations(self, repo: RepoRow, name: str) -> dict:
        """{"direct_provenance", "provenance", "subvenance"}: lists of (RepoRow, branch name)."""
        with self._read() as db:
            node = (repo.id, name)
            named = lambda nodes: [(self._repo_by_id(db, r), b) for r, b in nodes]  # noqa: E731
            return {
                "direct_provenance": named(self._direct_provenance(db, *node)),
                "provenance": named(self._closure(db, node, self._direct_provenance)),
                "subvenance": named(self._closure(db, node, self._direct_subvenance)),
            }

    def _propagate(self, db, repo_id: int, branch: str, cid: str) -> None:
        """pachd's propagateBranches: every branch downstream of (repo, branch) gets an open commit
        with the same commit set id, on its head, upstream ones first."""
        node = (repo_id, branch)
        downstream = self._closure(db, node, self._direct_subvenance)
        depth = {n: len(self._closure(db, n, self._direct_provenance)) for n in downstream}
        for r, b in sorted(downstream, key=lambda n: depth[n]):
            head = self._head(db, r, b)
            if head is not None and head.cid == cid:
                continue
            row = self._insert_commit(
                db, self._repo_by_id(db, r), b, head.id if head else None, "", cid=cid, origin="AUTO"
            )
            self._record_provenance(db, row, r, b)

    def _record_provenance(self, db, row: CommitRow, repo_id: int, branch: str) -> None:
        for pr, pb in self._direct_provenance(db, repo_id, branch):
            up = self._head(db, pr, pb)
            if up is not None:
                db.execute("INSERT OR IGNORE INTO commit_provenance VALUES(?,?)", (row.id, up.id))

    def create_branch(self, repo: RepoRow, name: str, head: Optional[CommitRow], provenance: tuple = ()) -> None:
        """pachd's createBranch: `provenance` is [(RepoRow, branch name)]; missing provenance
        branches are made with an empty finished commit; a branch that is new, or whose provenance
        changed to a non-empty one, gets a new commit (open when it has provenance); everything
        downstream then gets a commit of the same commit set."""
        P.check_name("branch", name)
        for prepo, pbranch in provenance:
            P.check_name("branch", pbranch)
            if prepo.id == repo.id:
                raise InvalidArgument(f"repo {repo} cannot be in the provenance of its own branch")
        with self._write() as db:
            node = (repo.id, name)
            cid = self._txn_cid() or new_commit_id()
            new_prov = sorted({(p.id, b) for p, b in provenance})
            for pr, pb in new_prov:
                if node == (pr, pb) or node in self._closure(db, (pr, pb), self._direct_provenance):
                    raise InvalidArgument(
                        f"cycle detected because {self._repo_by_id(db, pr)}@{pb} "
                        f"is already in the subvenance of {repo}@{name}"
                    )
                if self._head(db, pr, pb) is None:
                    row = self._insert_commit(
                        db, self._repo_by_id(db, pr), pb, None, "", finished=True, cid=cid, origin="AUTO"
                    )
            old_prov = sorted(self._direct_provenance(db, *node))
            db.execute("DELETE FROM branch_provenance WHERE repo_id=? AND branch=?", node)
            db.executemany(
                "INSERT INTO branch_provenance VALUES(?,?,?,?)", [(repo.id, name, pr, pb) for pr, pb in new_prov]
            )
            current = self._head(db, repo.id, name)
            propagate = False
            if head is not None:
                self._set_head(db, repo.id, name, head.id)
                current, propagate = head, True
            if current is None or (new_prov and new_prov != old_prov):
                row = self._insert_commit(
                    db, repo, name, current.id if current else None, "", finished=not new_prov, cid=cid, origin="AUTO"
                )
                self._record_provenance(db, row, repo.id, name)
                propagate = True
            if propagate:
                self._propagate(db, repo.id, name, cid)

    def _check_no_subvenance(self, db, branches: list[tuple], force: bool, what: str) -> None:
        """Branches others depend on go only with force (their provenance entries go with them)."""
        for r, b in branches:
            subv = [n for n in self._direct_subvenance(db, r, b) if n[0] != r]
            if subv and not force:
                dep = subv[0]
                raise FailedPrecondition(
                    f"cannot delete {what}: branch {self._repo_by_id(db, r)}@{b} is in the "
                    f"provenance of branch {self._repo_by_id(db, dep[0])}@{dep[1]}; use force"
                )
            db.execute("DELETE FROM branch_provenance WHERE from_repo_id=? AND from_branch=?", (r, b))

    def delete_branch(self, repo: RepoRow, name: str, force: bool = False) -> None:
        with self._write() as db:
            self.get_branch(repo, name)
            self._check_no_subvenance(db, [(repo.id, name)], force, f"branch {repo}@{name}")
            db.execute("DELETE FROM branch_provenance WHERE repo_id=? AND branch=?", (repo.id, name))
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
        try:
            base, back = parse_ancestry(ref)
        except ValueError as e:
            raise InvalidArgument(str(e)) from None
        row = db.execute(
            "SELECT * FROM commits WHERE repo_id=? AND cid=? ORDER BY seq DESC LIMIT 1", (repo.id, base)
        ).fetchone()
        row = CommitRow(*row) if row else None
        if row is None:
            b = db.execute("SELECT head FROM branches WHERE repo_id=? AND name=?", (repo.id, base)).fetchone()
            if b is None:
                if commit_id and (not branch or branch == base) and is_commit_id(base):
                    raise NotFound(f"commit {repo}@{base} not found")
                raise NotFound(f"branch {_q(base)} not found in repo {repo}")
            row = self._commit_row(db, b[0])
        for _ in range(max(back, 0)):
            if not row.parent:
                raise NotFound(f"commit {repo}@{ref} not found")
            row = self._commit_row(db, row.parent)
        if back < 0:  # `.N`: the N-th commit from the start
            chain = self._ancestry(db, row.id)[::-1]  # oldest first
            if -back > len(chain):
                raise NotFound(f"commit {repo}@{ref} not found")
            row = self._commit_row(db, chain[-back - 1])
        return row

    def _ancestry(self, db, commit_id: str) -> list[str]:
        return [r[0] for r in db.execute(CHAIN + "SELECT id FROM chain ORDER BY depth", {"commit": commit_id})]

    def get_commit(self, commit_id: str) -> CommitRow:
        row = self._commit_row(self._conn(), commit_id)
        if row is None:
            raise NotFound(f"commit {commit_id} not found")
        return row

    def children(self, commit_id: str) -> list[str]:
        return [r[0] for r in self._conn().execute("SELECT id FROM commits WHERE parent=? ORDER BY seq", (commit_id,))]

    def start_commit(
        self, repo: RepoRow, branch: str, parent: Optional[CommitRow] = None, description: str = ""
    ) -> CommitRow:
        if branch:
            P.check_name("branch", branch)
        with self._write() as db:
            head = None
            if branch:
                b = db.execute("SELECT head FROM branches WHERE repo_id=? AND name=?", (repo.id, branch)).fetchone()
                head = self._commit_row(db, b[0]) if b else None
            base = parent or head
            if base is not None and base.finished is None:
                raise FailedPrecondition(f"parent commit {repo}@{base.id} has not been finished")
            if not branch and base is None:
                raise InvalidArgument("a new commit needs a branch or a parent")
            row = self._insert_commit(db, repo, branch, base.id if base else None, description)
            if branch:
                self._propagate(db, repo.id, branch, row.cid)
            return row

    def _insert_commit(
        self, db, repo, branch, parent_id, description, finished=False, cid: Optional[str] = None, origin: str = "USER"
    ) -> CommitRow:
        """A new commit (the new head of `branch`). Its key is its commit set id unless another
        repo's commit of the set already holds that key."""
        t = now()
        cid = cid or self._txn_cid() or new_commit_id()
        key = cid if not db.execute("SELECT 1 FROM commits WHERE id=?", (cid,)).fetchone() else new_commit_id()
        db.execute(
            "INSERT INTO commits(id, repo_id, branch, parent, description, started, finishing,"
            " finished, error, size, cid, origin) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                key,
                repo.id,
                branch or None,
                parent_id,
                description,
                t,
                t if finished else None,
                t if finished else None,
                "",
                self._commit_row(db, parent_id).size if parent_id else 0,
                cid,
                origin,
            ),
        )
        if branch:
            self._set_head(db, repo.id, branch, key)
        return self._commit_row(db, key)

    def finish_commit(
        self, commit: CommitRow, description: Optional[str] = None, error: str = "", force: bool = False
    ) -> None:
        with self._write() as db:
            row = self._commit_row(db, commit.id)
            if row.finished is not None:
                raise FailedPrecondition(f"commit {self._commit_str(row)} has already finished")
            self._finish(db, row, description, error)

    def _finish(self, db, row: CommitRow, description=None, error=""):
        size = self._size_after(db, row)
        t = now()
        db.execute(
            "UPDATE commits SET finishing=?, finished=?, size=?, error=?,"
            " description=COALESCE(?, description) WHERE id=?",
            (t, t, size, error or "", description or None, row.id),
        )

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

    def wait_for_change(self, timeout: float = 0.5) -> None:
        """Blocks until the next write (or the timeout): for watchers such as SubscribeCommit."""
        with self.changed:
            self.changed.wait(timeout)

    def list_commits(
        self,
        repo: RepoRow,
        to: Optional[CommitRow] = None,
        from_: Optional[CommitRow] = None,
        number: int = 0,
        reverse: bool = False,
    ) -> list[CommitRow]:
        """One snapshot: a commit dropped meanwhile (a cut upload being cleaned up) is either
        listed whole or not at all; a `to` dropped since it was resolved is NotFound."""
        with self._read() as db:
            if to is not None:
                self.get_commit(to.id)  # NotFound if dropped (same connection: same snapshot)
                ids = self._ancestry(db, to.id)
                if from_ is not None:
                    if from_.id not in ids:
                        raise InvalidArgument(f"commit {from_.id} is not an ancestor of {to.id}")
                    ids = ids[: ids.index(from_.id)]
                rows = [self._commit_row(db, i) for i in ids]
            else:
                rows = [
                    CommitRow(*r)
                    for r in db.execute("SELECT * FROM commits WHERE repo_id=? ORDER BY seq DESC", (repo.id,))
                ]
                if from_ is not None:
                    rows = [r for r in rows if r.seq > from_.seq]
        if number:
            rows = rows[:number]
        return rows[::-1] if reverse else rows

    def branch_commits(self, repo: RepoRow, branch: str) -> list[CommitRow]:
        """The commits of a branch's history, oldest first (for SubscribeCommit)."""
        with self._read() as db:
            b = db.execute("SELECT head FROM branches WHERE repo_id=? AND name=?", (repo.id, branch)).fetchone()
            if not b:
                return []
            return [self._commit_row(db, i) for i in self._ancestry(db, b[0])[::-1]]

    def all_commits(self) -> list[CommitRow]:
        return [CommitRow(*r) for r in self._conn().execute("SELECT * FROM commits ORDER BY seq DESC")]

    def repo_of(self, row: CommitRow) -> RepoRow:
        return RepoRow(*self._conn().execute("SELECT * FROM repos WHERE id=?", (row.repo_id,)).fetchone())

    def _commit_str(self, row: CommitRow) -> str:
        """pachd's Commit.String(): project/repo@id."""
        return f"{self.repo_of(row)}@{row.cid}"

    def relations(self, row: CommitRow) -> tuple:
        """(parent's id, children's ids, [(RepoRow, id)] of its direct provenance) of a commit."""
        with self._read() as db:
            parent = db.execute("SELECT cid FROM commits WHERE id=?", (row.parent,)).fetchone() if row.parent else None
            kids = [r[0] for r in db.execute("SELECT cid FROM commits WHERE parent=? ORDER BY seq", (row.id,))]
            prov = [
                (self._repo_by_id(db, r), c)
                for r, c in db.execute(
                    "SELECT c.repo_id, c.cid FROM commit_provenance p JOIN commits c ON c.id = p.from_key "
                    "WHERE p.commit_key=?",
                    (row.id,),
                )
            ]
        return (parent[0] if parent else None), kids, prov

    def commit_set(self, cid: str) -> list[CommitRow]:
        """The commits of one commit set (one id, any repos), oldest first."""
        rows = [CommitRow(*r) for r in self._conn().execute("SELECT * FROM commits WHERE cid=? ORDER BY seq", (cid,))]
        if not rows:
            raise NotFound(f"no commits found for commitset {cid}")
        return rows

    def _set_rows(self, db, cid: str) -> list[CommitRow]:
        rows = [CommitRow(*r) for r in db.execute("SELECT * FROM commits WHERE cid=? ORDER BY seq", (cid,))]
        if not rows:
            raise NotFound(f"no commits found for commitset {cid}")
        return rows

    def drop_commit_set(self, cid: str) -> None:
        """Removes every commit of a commit set, none of which may have children; branches on
        them fall back to their parents. All or nothing."""
        with self._write() as db:
            rows = self._set_rows(db, cid)
            for row in rows:
                if db.execute("SELECT 1 FROM commits WHERE parent=?", (row.id,)).fetchone():
                    raise FailedPrecondition(f"cannot drop a commit that has children: {self._commit_str(row)}")
            for row in reversed(rows):
                self._remove_commit(db, row)

    def squash_commit_set(self, cid: str) -> None:
        """Merges each commit of a commit set into its children and removes it, as pachd's
        squashCommitSet: every commit needs children (an open commit has none), and every child
        must be finished. pachd answers both refusals with code UNKNOWN. All or nothing."""
        with self._write() as db:
            rows = self._set_rows(db, cid)
            for row in rows:
                if not db.execute("SELECT 1 FROM commits WHERE parent=?", (row.id,)).fetchone():
                    raise PfsError(
                        "cannot squash a commit that has no children as that would cause data "
                        f"loss, use the drop operation instead: {self._commit_str(row)}"
                    )
            for row in rows:
                for kid in db.execute("SELECT * FROM commits WHERE parent=? ORDER BY seq", (row.id,)).fetchall():
                    kid = CommitRow(*kid)
                    if kid.finished is None:
                        hint = ", consider using WaitCommit" if kid.finishing is not None else ""
                        raise PfsError(f"cannot squash until child commit {self._commit_str(kid)} is finished{hint}")
            for row in reversed(rows):
                for (kid,) in db.execute("SELECT id FROM commits WHERE parent=?", (row.id,)).fetchall():
                    db.execute(
                        "INSERT OR IGNORE INTO deltas SELECT ?, path, hash, size FROM deltas WHERE commit_id=?",
                        (kid, row.id),
                    )
                self._remove_commit(db, row)

    def _remove_commit(self, db, row: CommitRow) -> None:
        self.request_collection()
        db.execute("UPDATE commits SET parent=? WHERE parent=?", (row.parent, row.id))
        if row.parent:
            db.execute("UPDATE branches SET head=?, updated=? WHERE head=?", (row.parent, now(), row.id))
        else:
            db.execute("DELETE FROM branches WHERE head=?", (row.id,))
        db.execute("DELETE FROM deltas WHERE commit_id=?", (row.id,))
        db.execute("DELETE FROM commit_provenance WHERE commit_key=? OR from_key=?", (row.id, row.id))
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
                "GROUP BY d.path",
                {"commit": commit_id, "paths": json.dumps(paths[i : i + 20000])},
            )
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
            "ORDER BY d.path",
            {"commit": commit_id, "lo": lo, "hi": hi},
        )
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
            raise self.file_not_found(commit_id, path)
        return Entry(path + "/", True, total)

    def file_not_found(self, commit_id: str, path: str) -> NotFound:
        """pachd's error for a path missing from a commit (python-pachyderm's path_exists matches
        `^file .+ not found in repo .+ at commit .+$`)."""
        row = self.get_commit(commit_id)
        return NotFound(f"file {path} not found in repo {self.repo_of(row)} at commit {row.cid}")

    def list_dir(self, commit_id: str, path: str) -> list[Entry]:
        """Children of a directory (directories with a trailing '/' and their total sizes), or the
        file itself when `path` is a file."""
        path = P.clean(path)
        children: dict[str, Entry] = {}
        base = path.rstrip("/") + "/"
        for e in self.files_under(commit_id, path):
            if e.path == path:
                return [e]
            rest = e.path[len(base) :]
            if "/" in rest:
                name = base + rest.split("/", 1)[0] + "/"
                d = children.setdefault(name, Entry(name, True, 0))
                d.size += e.size
            else:
                children[e.path] = e
        if not children and path != "/":
            raise self.file_not_found(commit_id, path)
        return sorted(children.values(), key=lambda e: e.path)

    def walk(self, commit_id: str, path: str) -> Iterator[Entry]:
        """The directory itself, then every directory and file below it, in path order."""
        for p, is_dir, size, digest in self.walk_rows(commit_id, path):
            yield Entry(p, is_dir, size, digest)

    def _file_rows(self, commit_id: str, prefix: str) -> list[tuple]:
        """(path, hash, size) of every file at or below `prefix`, in path order (files_under's rows)."""
        exact = self._lookup(self._conn(), commit_id, [prefix]).get(prefix)
        if exact:
            return [(exact.path, exact.hash, exact.size)]
        lo = prefix.rstrip("/") + "/"
        cursor = self._conn().execute(
            CHAIN + "SELECT d.path, d.hash, d.size FROM (SELECT d.path AS path, d.hash AS hash, d.size AS size, "
            "MIN(chain.depth) FROM deltas d JOIN chain ON d.commit_id = chain.id WHERE d.path >= :lo "
            "AND d.path < :hi GROUP BY d.path) d WHERE d.hash IS NOT NULL ORDER BY d.path",
            {"commit": commit_id, "lo": lo, "hi": lo[:-1] + "0"},
        )
        try:
            return cursor.fetchall()
        finally:
            cursor.close()

    def walk_rows(self, commit_id: str, path: str) -> list[tuple]:
        """walk() as plain (path, is_dir, size, hash) tuples: the listing of 100,000 files is made in
        two passes over the rows SQLite returns in path order, without sorting again. A directory
        sorts just before its first descendant (every path it prefixes follows it, and nothing
        else falls between), so each is emitted when its first file comes by."""
        path = P.clean(path)
        files = self._file_rows(commit_id, path)
        if not files:
            if path == "/":
                return [("/", True, 0, "")]
            raise self.file_not_found(commit_id, path)
        if len(files) == 1 and files[0][0] == path:
            return [(path, False, files[0][2], files[0][1])]
        root = "/" if path == "/" else path + "/"
        # sizes: each file's size to its own folder, then each folder's total to its parent
        sizes: dict[str, int] = {}
        for p, _, size in files:
            d = p[: p.rindex("/") + 1]
            sizes[d] = sizes.get(d, 0) + size
        for d in list(sizes):  # make sure every folder between a file's folder and the root is there
            while d != root:
                d = d[: d[:-1].rindex("/") + 1]
                if d in sizes:
                    break
                sizes[d] = 0
        for d in sorted(sizes, key=len, reverse=True):  # deepest first: children before their parent
            if d != root:
                parent = d[: d[:-1].rindex("/") + 1]
                sizes[parent] += sizes[d]
        out = [(root, True, sizes[root], "")]
        emitted = {root}
        last = root
        for p, digest, size in files:
            d = p[: p.rindex("/") + 1]
            if d != last:
                if d not in emitted:
                    missing = []
                    while d not in emitted:
                        missing.append(d)
                        emitted.add(d)
                        d = d[: d[:-1].rindex("/") + 1]
                    out.extend((m, True, sizes[m], "") for m in reversed(missing))
                last = p[: p.rindex("/") + 1]
            out.append((p, False, size, digest))
        return out

    def glob(self, commit_id: str, pattern: str) -> list[Entry]:
        regex = P.glob_to_regex(pattern)
        return [e for e in self.walk(commit_id, "/") if e.path != "/" and regex.match(e.path.rstrip("/"))]

    def diff(
        self, new_commit: str, old_commit: Optional[str], path: str = "/", old_path: Optional[str] = None
    ) -> list[Change]:
        """Files that differ between two commits: the new side below `path`, the old side below
        `old_path` (default: the same path), paired by path as pachd's differ does. When both sides
        use one path and the old commit is an ancestor of the new one only the deltas in between
        are read, so the cost follows the change, not the size of the repo."""
        path = P.clean(path)
        old_path = path if old_path is None else P.clean(old_path)
        db = self._conn()
        with self._read():
            chain = self._ancestry(db, new_commit) if old_path == path else []
            if old_path == path and (old_commit is None or old_commit in chain):
                between = chain[: chain.index(old_commit)] if old_commit else chain
                candidates = sorted(
                    {r[0] for cid in between for r in db.execute("SELECT path FROM deltas WHERE commit_id=?", (cid,))}
                )
                if path != "/":
                    candidates = [c for c in candidates if c == path or c.startswith(path.rstrip("/") + "/")]
                new = self._lookup(db, new_commit, candidates)
                old = self._lookup(db, old_commit, candidates) if old_commit else {}
            else:
                new = {e.path: e for e in self.files_under(new_commit, path)}
                old = {e.path: e for e in self.files_under(old_commit, old_path)} if old_commit else {}
                candidates = sorted(set(new) | set(old))
            changes = []
            for p in candidates:
                n, o = new.get(p), old.get(p)
                if (n is None and o is None) or (n and o and n.hash == o.hash):
                    continue
                changes.append(Change(p, n, o))
            dirs = self._changed_dirs(db, changes, new_commit, old_commit, path, old_path)
        return sorted(changes + dirs, key=lambda ch: ch.path)

    def _changed_dirs(self, db, changes, new_commit, old_commit, path, old_path) -> list[Change]:
        """pachd's differ also compares directories (within each side's path), each with the total
        size below it: a directory differs when a file below it does, so the candidates are the
        changed files' directories. Their sizes cost a scan of each such directory, except the root,
        whose size is the commit's."""

        def in_scope(d: str, prefix: str) -> bool:
            return prefix == "/" or d == prefix + "/" or d.startswith(prefix + "/")

        wanted = set()
        for ch in changes:
            wanted.add("/")
            wanted.update(P.parent_dirs(ch.path))
        out = []
        for d in sorted(wanted):
            n = self._dir_entry(db, new_commit, d) if in_scope(d, path) else None
            o = self._dir_entry(db, old_commit, d) if old_commit and in_scope(d, old_path) else None
            if n is not None or o is not None:
                out.append(Change(d, n, o))
        return out

    def _dir_entry(self, db, commit_id: str, d: str) -> Optional[Entry]:
        """The directory `d` ('/x/y/') of a commit with its total size, or None when no file is below it."""
        if d == "/":
            row = self._commit_row(db, commit_id)
            size = row.size if row.finished is not None else self._size_after(db, row)
            if size == 0 and next(self.files_under(commit_id, "/"), None) is None:
                return None  # an empty commit has no root entry in pachd's listings either
            return Entry("/", True, size)
        count, size = db.execute(
            CHAIN + "SELECT COUNT(*), TOTAL(size) FROM (SELECT d.hash AS hash, d.size AS size, MIN(chain.depth) "
            "FROM deltas d JOIN chain ON d.commit_id = chain.id WHERE d.path >= :lo AND d.path < :hi "
            "GROUP BY d.path) WHERE hash IS NOT NULL",
            {"commit": commit_id, "lo": d, "hi": d[:-1] + "0"},
        ).fetchone()
        return Entry(d, True, int(size)) if count else None

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
        batch = FileBatch(self, repo, commit_id, branch)
        if is_commit_id(commit_id):
            row = self.resolve_commit(repo, commit_id)
            if row.finished is not None:
                raise FailedPrecondition(f"commit {self._commit_str(row)} has already finished")
            batch.base = row.id
        else:
            if commit_id and not branch:
                batch.branch = branch = commit_id
                batch.commit_id = ""
            if not branch:
                raise InvalidArgument("set_commit needs a commit id or a branch")
            P.check_name("branch", branch)
            b = (
                self._conn()
                .execute("SELECT head FROM branches WHERE repo_id=? AND name=?", (repo.id, branch))
                .fetchone()
            )
            batch.base = b[0] if b else None
        return batch

    def save_inline(self, rows: list, db=None) -> None:
        """Small contents (hash, bytes) into the database, in `db`'s transaction when given."""
        if db is None:
            with self._write() as db:
                db.executemany("INSERT OR IGNORE INTO inline_blobs VALUES(?,?)", rows)
        else:
            db.executemany("INSERT OR IGNORE INTO inline_blobs VALUES(?,?)", rows)

    def lookup(self, commit_id: str, paths: list[str]) -> dict[str, Entry]:
        """Files at the given paths as of a commit (missing or deleted ones are absent)."""
        return self._lookup(self._conn(), commit_id, paths)

    def missing_contents(self, digests: list[str]) -> list[str]:
        """Those of `digests` whose content is in neither the database nor the blob files."""
        db = self._conn()
        found = set()
        for i in range(0, len(digests), 20000):
            part = json.dumps(digests[i : i + 20000])
            found.update(
                r[0]
                for r in db.execute(
                    "SELECT hash FROM inline_blobs WHERE hash IN (SELECT value FROM json_each(?))", (part,)
                )
            )
        return [d for d in digests if d not in found and not self.blobs.exists(d)]

    def apply_batch(self, batch: FileBatch) -> CommitRow:
        """Applies a whole ModifyFile stream in one transaction. On a branch whose head is finished
        (or missing) it opens and finishes a commit of its own, as pachd does."""
        batch.seal()
        try:
            return self._apply_batch(batch)
        finally:
            batch.release()

    def _apply_batch(self, batch: FileBatch) -> CommitRow:
        repo = batch.repo
        with self._write() as db:
            batch.flush_inline(db)
            auto = False
            if batch.commit_id:
                row = self.resolve_commit(repo, batch.commit_id)
                if row.finished is not None:
                    raise FailedPrecondition(f"commit {self._commit_str(row)} has already finished")
            else:
                b = db.execute(
                    "SELECT head FROM branches WHERE repo_id=? AND name=?", (repo.id, batch.branch)
                ).fetchone()
                head = self._commit_row(db, b[0]) if b else None
                if head is not None and head.finished is None:
                    row = head
                else:
                    row = self._insert_commit(db, repo, batch.branch, head.id if head else None, "")
                    self._propagate(db, repo.id, batch.branch, row.cid)
                    auto = True
            final = batch.final_state(row.id)
            rows = [(row.id, p, v[0] if v else None, v[1] if v else 0) for p, v in final.items()]
            db.executemany("INSERT OR REPLACE INTO deltas VALUES(?,?,?,?)", rows)
            if auto:
                self._finish(db, row)
            return self._commit_row(db, row.id)

    # -- pipeline output ----------------------------------------------------------------------
    def finish_with_tree(self, commit_key: str, files: Optional[dict], inline=(), error: str = "") -> bool:
        """A pipeline job's end, in one transaction: the open commit's whole tree becomes `files`
        ({path: (hash, size)}; deltas against its parent are computed here) and it is finished,
        with `error` for a failed job (then `files` is None and the commit adds nothing, so nothing
        of the failed job reaches later commits). False when the commit was finished already (a
        job re-run after a crash that happened after this call)."""
        with self._write() as db:
            row = self._commit_row(db, commit_key)
            if row is None:
                raise NotFound(f"commit {commit_key} not found")
            if row.finished is not None:
                return False
            if files is not None:
                self.save_inline(list(inline), db)
                old = {e.path: e for e in self.files_under(row.parent)} if row.parent else {}
                rows = [(row.id, p, None, 0) for p in old if p not in files]
                rows += [(row.id, p, h, s) for p, (h, s) in files.items() if p not in old or old[p].hash != h]
                db.execute("DELETE FROM deltas WHERE commit_id=?", (row.id,))
                db.executemany("INSERT OR REPLACE INTO deltas VALUES(?,?,?,?)", rows)
            else:
                db.execute("DELETE FROM deltas WHERE commit_id=?", (row.id,))
            self._finish(db, row, error=error)
            return True

    def open_commits(self, repo: RepoRow) -> list[CommitRow]:
        """The unfinished commits of a repo, oldest first (a pipeline's pending jobs)."""
        rows = self._conn().execute(
            "SELECT * FROM commits WHERE repo_id=? AND finished IS NULL ORDER BY seq", (repo.id,)
        )
        return [CommitRow(*r) for r in rows]
