"""Pipelines of the embedded server: specs, their validation with pachd's texts, and their state.

Plain Python over its own SQLite file (`pps.sqlite3` under --data) next to the PFS store. A
pipeline is what pachd makes of one: an output repo named after it whose `master` branch has the
input branches and the pipeline's spec repo in its provenance, so that every input commit (and
every spec commit: creating, updating or restarting the pipeline) opens an output commit of the
same commit set; each such open commit is one job (`jobs.py` runs them).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

from ... import datums as D, rules
from ..errors import AlreadyExists, InvalidArgument, NotFound, PfsError
from ..pfs.store import Store
from . import spec_fields


class SpecError(PfsError):
    """A spec pachd refuses with a plain error (gRPC UNKNOWN), in pachd's words."""


DEFAULT_DATUM_TRIES = 3  # pachd's DefaultDatumTries
TERMINAL = ("JOB_SUCCESS", "JOB_FAILURE", "JOB_KILLED", "JOB_UNRUNNABLE")

SCHEMA = """
CREATE TABLE IF NOT EXISTS pipelines(
    project TEXT, name TEXT, version INTEGER, spec TEXT, salt TEXT, stopped INTEGER DEFAULT 0,
    created REAL, updated REAL, spec_commit TEXT, PRIMARY KEY(project, name));
CREATE TABLE IF NOT EXISTS jobs(
    project TEXT, pipeline TEXT, id TEXT, version INTEGER, state TEXT, reason TEXT DEFAULT '',
    created REAL, started REAL, finished REAL, processed INTEGER DEFAULT 0, skipped INTEGER DEFAULT 0,
    failed INTEGER DEFAULT 0, total INTEGER DEFAULT 0, output_key TEXT, restart INTEGER DEFAULT 0,
    seq INTEGER, recovered INTEGER DEFAULT 0, PRIMARY KEY(project, pipeline, id));
CREATE TABLE IF NOT EXISTS datums(
    project TEXT, pipeline TEXT, job TEXT, id TEXT, hash TEXT, state TEXT, outputs TEXT, files TEXT,
    PRIMARY KEY(project, pipeline, job, id));
"""


@dataclass
class Pipeline:
    project: str
    name: str
    version: int
    spec: dict
    salt: str
    stopped: bool
    created: float
    updated: float
    spec_commit: str

    @property
    def key(self) -> tuple:
        return self.project, self.name

    def __str__(self):  # pachd's Pipeline.String()
        return f"{self.project}/{self.name}"


@dataclass
class Job:
    project: str
    pipeline: str
    id: str
    version: int
    state: str
    reason: str
    created: float
    started: Optional[float]
    finished: Optional[float]
    processed: int
    skipped: int
    failed: int
    total: int
    output_key: str
    restart: int
    seq: int
    recovered: int = 0


def _camel_to_snake(name: str) -> str:
    out = []
    for c in name:
        if c.isupper():
            out.append("_" + c.lower())
        else:
            out.append(c)
    return "".join(out)


def normalize(spec: dict) -> dict:
    """A user's JSON spec (proto JSON: snake_case or camelCase keys) in snake_case, env untouched."""
    if not isinstance(spec, dict):
        raise InvalidArgument("a pipeline spec must be a JSON object")
    out = {}
    for k, v in spec.items():
        key = _camel_to_snake(k)
        if isinstance(v, dict) and key not in ("env", "metadata"):
            v = normalize(v)
        elif isinstance(v, list):
            v = [normalize(x) if isinstance(x, dict) else x for x in v]
        out[key] = v
    return out


def _int(spec: dict, key: str, default: int) -> int:
    value = spec.get(key)
    if value in (None, "", 0, "0"):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{key} must be a number, not {value!r}") from None


def check_spec(spec: dict) -> dict:
    """pachd's validatePipelineRequest, validatePipeline and validateInput, in its words, on a
    normalized spec; returns it with pachd's defaults filled in (input names and branches, the
    datum tries)."""
    pipeline = spec.get("pipeline") or {}
    if not spec.get("pipeline"):
        raise SpecError("invalid pipeline spec: request.Pipeline cannot be nil")
    name = pipeline.get("name") or ""
    if not name:
        raise SpecError("invalid pipeline spec: request.Pipeline.Name cannot be empty")
    if not rules.NAME_RE.match(name):
        raise SpecError(
            f"invalid pipeline name: name ({name}) invalid: only alphanumeric characters, underscores, and dashes "
            "are allowed"
        )
    if not (name[0].isalnum()):
        raise SpecError("pipeline names must start with an alphanumeric character")
    if len(name) > 63:
        raise SpecError(f"pipeline name is {len(name)} characters long, but must have at most 63: {name!r}")
    project = (pipeline.get("project") or {}).get("name") or "default"
    spec["pipeline"] = {"name": name, "project": {"name": project}}
    if spec.get("tf_job"):
        raise SpecError("embedding TFJobs in pipelines is not supported yet")
    spec_fields.check_fields(spec)
    transform = spec.get("transform")
    if transform is None:
        raise SpecError("pipeline must specify a transform")
    if not transform.get("image"):
        raise SpecError("invalid transform: pipeline transform must contain an image")
    if not transform.get("cmd"):
        raise InvalidArgument("invalid transform: this server needs transform.cmd: the command each datum runs")
    spec_fields.settings(spec)  # every value it carries out can be carried out
    if not spec.get("input"):
        raise SpecError("no input set")
    _fill_inputs(spec["input"], project)
    try:
        D.pfs_inputs(spec["input"])
    except D.DatumError as e:
        raise SpecError(str(e)) from None
    _check_names(spec["input"], set())
    spec["datum_tries"] = _int(spec, "datum_tries", DEFAULT_DATUM_TRIES)
    spec["output_branch"] = spec.get("output_branch") or "master"
    if spec.get("reprocess_spec") not in (None, "", "until_success", "every_job"):
        raise SpecError("invalid pipeline spec: ReprocessSpec must be one of 'until_success' or 'every_job'")
    return spec


def _fill_inputs(inp, project: str) -> None:
    """pachd's setInputDefaults: project, branch, name; a glob cleaned; a commit refused."""
    if not isinstance(inp, dict):
        raise InvalidArgument("an input must be an object")
    pfs = inp.get("pfs")
    if pfs:
        if pfs.get("commit"):
            raise SpecError("input cannot come from a commit; use a branch with head pointing to the commit")
        if not pfs.get("repo"):
            raise SpecError("input must specify a repo")
        pfs["project"] = pfs.get("project") or project
        pfs["branch"] = pfs.get("branch") or "master"
        if not pfs.get("name"):
            if pfs["repo"] == "out":
                raise SpecError(
                    "inputs based on repos named \"out\" must have 'name' set, as pachyderm already creates /pfs/out "
                    "to collect job output"
                )
            pfs["name"] = pfs["repo"]
        if not pfs.get("glob"):
            raise SpecError("input must specify a glob")
        pfs["glob"] = D.clean_glob(pfs["glob"])
        try:
            D.compile_glob(pfs["glob"])
        except D.DatumError as e:
            raise InvalidArgument(str(e)) from None
    for kind in ("cross", "union", "join", "group"):
        for sub in inp.get(kind) or []:
            _fill_inputs(sub, project)


def _check_names(inp: dict, names: set) -> set:
    """ppsutil.ValidateNames: input names are unique, except across the branches of a union."""
    if inp.get("pfs"):
        n = inp["pfs"]["name"]
        if n in names:
            raise SpecError(f'name "{n}" was used more than once')
        names.add(n)
    elif inp.get("union"):
        seen = set()
        for sub in inp["union"]:
            seen |= _check_names(sub, set(names))
        names |= seen
    else:
        for kind in ("cross", "join", "group"):
            for sub in inp.get(kind) or []:
                _check_names(sub, names)
    return names


def input_branches(spec: dict) -> list[tuple[str, str, str]]:
    """(project, repo, branch) of every pfs input, once each, in spec order."""
    out = []
    for p in D.pfs_inputs(spec["input"]):
        key = (p["project"], p["repo"], p["branch"])
        if key not in out:
            out.append(key)
    return out


class Pipelines:
    """The pipelines and jobs tables, and the PFS side of creating, stopping and deleting."""

    def __init__(self, store: Store, data_dir: str):
        self.store = store
        self.dir = os.path.join(data_dir, "pps")
        os.makedirs(self.dir, exist_ok=True)
        self.db_path = os.path.join(self.dir, "pps.sqlite3")
        self._local = threading.local()
        self.lock = threading.RLock()
        self.changed = threading.Condition()
        self._conn().executescript(SCHEMA)
        columns = {row[1] for row in self._conn().execute("PRAGMA table_info(jobs)")}
        if "recovered" not in columns:  # a data folder of a version that had no err_cmd
            self._conn().execute("ALTER TABLE jobs ADD COLUMN recovered INTEGER DEFAULT 0")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False, timeout=60)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def write(self):
        with self.lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self.notify()

    def notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    # -- reading ------------------------------------------------------------------------------
    @staticmethod
    def _pipeline(row) -> Pipeline:
        p = Pipeline(*row)
        p.spec = json.loads(p.spec)
        p.stopped = bool(p.stopped)
        return p

    def get(self, project: str, name: str) -> Pipeline:
        row = (
            self._conn()
            .execute("SELECT * FROM pipelines WHERE project=? AND name=?", (project or "default", name))
            .fetchone()
        )
        if not row:
            raise NotFound(f'pipeline "{project or "default"}/{name}" not found')
        return self._pipeline(row)

    def list(self, projects=()) -> list[Pipeline]:
        rows = self._conn().execute("SELECT * FROM pipelines ORDER BY created DESC").fetchall()
        out = [self._pipeline(r) for r in rows]
        return [p for p in out if not projects or p.project in projects]

    def jobs(self, project: str = "", pipeline: str = "", job_id: str = "") -> list[Job]:
        sql, args = "SELECT * FROM jobs WHERE 1=1", []
        for col, val in (("project", project), ("pipeline", pipeline), ("id", job_id)):
            if val:
                sql += f" AND {col}=?"
                args.append(val)
        return [Job(*r) for r in self._conn().execute(sql + " ORDER BY seq DESC", args)]

    def job(self, project: str, pipeline: str, job_id: str) -> Job:
        found = self.jobs(project or "default", pipeline, job_id)
        if not found:
            raise NotFound(f'job "{project or "default"}/{pipeline}@{job_id}" not found')
        return found[0]

    def datum_rows(self, job: Job) -> list[dict]:
        rows = self._conn().execute(
            "SELECT id, hash, state, outputs, files FROM datums WHERE project=? AND pipeline=? AND job=? ORDER BY id",
            (job.project, job.pipeline, job.id),
        )
        return [
            {"id": i, "hash": h, "state": s, "outputs": json.loads(o or "{}"), "files": json.loads(f or "[]")}
            for i, h, s, o, f in rows
        ]

    # -- creating and changing ----------------------------------------------------------------
    def create(
        self,
        spec: dict,
        update: bool = False,
        reprocess: bool = False,
        authorize=None,
        user: str = "unknown_username",
    ) -> Pipeline:
        """pachd's CreatePipelineInTransaction: check, make the output and spec repos, a spec
        commit, and the output branch provenant on the inputs and the spec; all in one PFS
        transaction whose commit set id is the first job's id. `authorize(spec, old)` (old: the
        pipeline it updates, or None) runs where pachd authorizes: once the inputs are found,
        before anything is made."""
        spec = check_spec(normalize(spec))
        project, name = spec["pipeline"]["project"]["name"], spec["pipeline"]["name"]
        with self.lock:
            try:
                old = self.get(project, name)
            except NotFound:
                old = None
            if old is not None and not update:
                raise AlreadyExists(f'pipeline "{project}/{name}" already exists')
            store = self.store
            inputs = []
            for p_project, p_repo, p_branch in input_branches(spec):
                inputs.append((store.get_repo(p_project, p_repo), p_branch))  # NotFound: "repo x/y not found"
            if authorize is not None:
                authorize(spec, old)
            # pachd: the spec's salt, else a new one; an update keeps the old one; reprocess, a new one
            if reprocess or (old is None and not spec.get("salt")):
                salt = uuid.uuid4().hex
            else:
                salt = old.salt if old is not None else spec["salt"]
            cid = uuid.uuid4().hex
            now = time.time()
            with store.transaction(cid):
                if old is None:
                    try:
                        store.create_repo(project, name, description=f"Output repo for pipeline {project}/{name}.")
                    except AlreadyExists:
                        raise SpecError(
                            f'pipeline "{name}" cannot be created because a repo with the same name already exists'
                        ) from None
                    store.create_repo(
                        project, name, "spec", description=f"Spec repo for pipeline {project}/{name}.", update=True
                    )
                spec_repo = store.get_repo(project, name, "spec")
                out_repo = store.get_repo(project, name)
                stopped = bool(old.stopped) if old is not None else bool(spec.get("stopped"))
                provenance = () if stopped else tuple(inputs) + ((spec_repo, "master"),)
                # a new pipeline: the spec commit, then the output branch (its first open commit);
                # an update: the provenance first (a change opens the commit), then the spec
                # commit (which opens it otherwise): either way one output commit of this set
                if old is None:
                    store.finish_commit(store.start_commit(spec_repo, "master", description=json.dumps(spec)))
                store.create_branch(out_repo, spec["output_branch"], None, provenance)
                if old is not None:
                    store.finish_commit(store.start_commit(spec_repo, "master", description=json.dumps(spec)))
            version = old.version + 1 if old is not None else 1
            with self.write() as db:
                db.execute(
                    "INSERT OR REPLACE INTO pipelines VALUES(?,?,?,?,?,?,?,?,?)",
                    (
                        project,
                        name,
                        version,
                        json.dumps(spec),
                        salt,
                        int(stopped),
                        old.created if old is not None else now,
                        now,
                        cid,
                    ),
                )
                if old is not None:  # pachd: unfinished jobs of the previous version are killed
                    db.execute(
                        "UPDATE jobs SET state='JOB_KILLED', reason=?, finished=? "
                        "WHERE project=? AND pipeline=? AND state NOT IN (?,?,?,?) AND version<?",
                        (
                            f"all jobs killed because pipeline was updated for user {user}",
                            now,
                            project,
                            name,
                            *TERMINAL,
                            version,
                        ),
                    )
            return self.get(project, name)

    def set_stopped(self, project: str, name: str, stopped: bool) -> None:
        """pachd's Stop/StartPipeline: a stopped pipeline's output branch loses its provenance, so
        input commits start no jobs; starting it restores the provenance, which opens an output
        commit (a job) for the inputs' current heads."""
        with self.lock:
            p = self.get(project, name)
            store = self.store
            out_repo = store.get_repo(p.project, p.name)
            if stopped:
                store.create_branch(out_repo, p.spec["output_branch"], None, ())
            else:
                inputs = [(store.get_repo(a, b), c) for a, b, c in input_branches(p.spec)]
                spec_repo = store.get_repo(p.project, p.name, "spec")
                store.create_branch(out_repo, p.spec["output_branch"], None, tuple(inputs) + ((spec_repo, "master"),))
            with self.write() as db:
                db.execute(
                    "UPDATE pipelines SET stopped=?, updated=? WHERE project=? AND name=?",
                    (int(stopped), time.time(), p.project, p.name),
                )

    def delete(self, project: str, name: str, keep_repo: bool = False, force: bool = False) -> Pipeline:
        """pachd's DeletePipeline: its jobs, its spec repo, and its output repo unless keep_repo
        (then the output branch keeps its commits and loses its provenance)."""
        with self.lock:
            p = self.get(project, name)
            store = self.store
            out_repo = store.get_repo(p.project, p.name)
            if keep_repo:
                store.create_branch(out_repo, p.spec["output_branch"], None, ())
            else:
                store.delete_repo(p.project, p.name, force=force)
            store.delete_repo(p.project, p.name, "spec", force=True)
            with self.write() as db:
                db.execute("DELETE FROM pipelines WHERE project=? AND name=?", p.key)
                db.execute("DELETE FROM jobs WHERE project=? AND pipeline=?", p.key)
                db.execute("DELETE FROM datums WHERE project=? AND pipeline=?", p.key)
            return p
