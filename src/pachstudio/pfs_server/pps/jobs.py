"""Runs the embedded server's pipeline jobs in the background, with pachd's semantics.

A job is an open commit on a pipeline's output branch (opened by provenance when an input or the
spec got a commit); its ID is that commit's ID. Per pipeline one job runs at a time, oldest
first; its datums run in parallel (`parallelism_spec`, at most `workers` at once in the whole
server), each in a slot folder of its own (`datum_runs.py`, through `sandbox.py`). A datum whose
hash (its input paths and contents, and the pipeline's salt) a previous successful job of the
pipeline processed is skipped and its output reused, unless `reprocess_spec` is "every_job". The
output commit is written and finished in one PFS transaction, so a crash never leaves half of a
job's output: on restart every job whose output commit is still open runs again from the start.
StopJob, a job's `job_timeout`, a pipeline's update or deletion and the server's stop end the
datums that run (with everything they started); RestartDatum ends a datum's running try.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import shutil
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from typing import Callable, Optional

from ... import datums as D
from ..errors import NotFound
from ..pfs.records import CommitRow
from ..pfs.store import Store
from . import sandbox as S, spec_fields
from .datum_runs import DatumRun, JobContext, make_removable, matches
from .pipelines import TERMINAL, Job, Pipeline, Pipelines, input_branches

JOB_TIMED_OUT = " jobtimed out"  # pachd's reason for a job past its job_timeout, leading space and all
PHYSICAL_MEMORY = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
DEFAULT_MEMORY = PHYSICAL_MEMORY // 2  # a datum's address space when resource_limits.memory is unset
DEFAULT_CPU_SECONDS = 3600  # a datum's CPU time per core when it has no datum_timeout
MAX_PROCESSES = 1024  # processes and threads of one datum
MAX_FILE_SIZE = 64 << 30  # bytes of one file a datum writes

log = logging.getLogger("pachstudio.pfs_server.pps.jobs")


def slot_name(job: Job, k: int) -> str:
    """The slot (and folder) of a job's k-th worker. A job's ID is its commit set's, which every
    pipeline reading the same input commit shares: the project and pipeline keep their jobs'
    folders apart ("." is in no Pachyderm name, so no two jobs' names meet)."""
    return f"{job.id}.{job.project}.{job.pipeline}.{k}"


class JobRunner:
    def __init__(self, store: Store, pipelines: Pipelines, workers: Optional[int] = None,
                 launcher: Optional[str] = None):  # fmt: skip
        self.store, self.pipelines = store, pipelines
        self.work_dir = os.path.join(pipelines.dir, "work")
        self.log_dir = os.path.join(pipelines.dir, "logs")
        if os.path.isdir(self.work_dir):  # folders of datums cut by a crash
            make_removable(self.work_dir)
            shutil.rmtree(self.work_dir, ignore_errors=True)
        os.makedirs(self.work_dir, exist_ok=True)
        os.chmod(self.work_dir, 0o755)
        os.makedirs(self.log_dir, exist_ok=True)
        self._launcher, self._workers = launcher, workers
        self._sandbox: Optional[object] = None  # chosen when a pipeline first needs it (it may start a launcher)
        self._pool: Optional[ThreadPoolExecutor] = None
        self._made = threading.Lock()
        self.running: dict[tuple, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.killed: set[str] = set()  # output commit keys of jobs stopped while they ran
        self.active: dict[str, dict[str, tuple]] = {}  # output key -> datum id -> (datum, its try's Stop)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._recover()
        self._thread = threading.Thread(target=self._loop, name="pps-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """The server stops: every running datum is ended (its job stays open and runs again at
        the next start), and a launcher of our own ends."""
        self._stop.set()
        with self._lock:
            stops = [stop for datums in self.active.values() for _, stop in datums.values()]
        for stop in stops:
            stop.stop()
        with self._made:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
            if self._sandbox is not None:
                self._sandbox.close()

    @property
    def sandbox(self):
        with self._made:
            if self._sandbox is None:
                self._sandbox = S.choose(self.work_dir, self._launcher)
            return self._sandbox

    @property
    def workers(self) -> int:
        """Datums at once in the whole server: the cores (or as asked), no more than the launcher runs."""
        return min(self._workers or os.cpu_count() or 1, self.sandbox.max_datums or 1 << 30)

    @property
    def pool(self) -> ThreadPoolExecutor:
        workers = self.workers
        with self._made:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="datum")
            return self._pool

    # -- what a pipeline's datums get ------------------------------------------------------------
    def parallelism(self, s: spec_fields.RunSettings) -> int:
        """Datums of one job at once: parallelism_spec (else as many as allowed), no more than
        resource_requests fit on this machine, never more than `workers`."""
        n = s.parallelism or self.workers
        if s.cpu_request:
            n = min(n, max(1, int((os.cpu_count() or 1) // s.cpu_request)))
        if s.memory_request:
            n = min(n, max(1, PHYSICAL_MEMORY // s.memory_request))
        return max(1, min(n, self.workers))

    @staticmethod
    def limits(s: spec_fields.RunSettings) -> dict:
        """Each datum's resource limits: address space, CPU seconds (its cores times its
        datum_timeout, else DEFAULT_CPU_SECONDS a core), processes, file size."""
        cores = s.cpu_limit or 1
        return {
            "as": s.memory_limit or DEFAULT_MEMORY,
            "cpu": math.ceil(cores * (s.datum_timeout or DEFAULT_CPU_SECONDS)) + 1,
            "nproc": MAX_PROCESSES,
            "fsize": MAX_FILE_SIZE,
        }

    def describe(self, spec: dict) -> str:
        """How this pipeline's datums run here: the sandbox, then its own numbers."""
        s = spec_fields.stored_settings(spec)
        lim = self.limits(s)
        gib = 1 << 30
        parts = [
            f"{self.parallelism(s)} datum(s) of a job at once (parallelism_spec "
            f"{s.parallelism or 'unset'}; this server runs at most {self.workers} at once)",
            f"memory {lim['as'] / gib:.1f} GiB of address space"
            + ("" if s.memory_limit else " (half this machine's; resource_limits.memory sets it)"),
            f"CPU time {lim['cpu']} s" + ("" if s.datum_timeout else " (no datum_timeout: 1 hour a core)"),
            f"datum_timeout {s.datum_timeout:g}s" if s.datum_timeout else "no datum_timeout",
            f"job_timeout {s.job_timeout:g}s" if s.job_timeout else "no job_timeout",
        ]
        return f"{self.sandbox.describe()}; this pipeline: " + ", ".join(parts)

    # -- stopping what runs ----------------------------------------------------------------------
    def halt(self, output_key: str) -> None:
        """Ends the datums of a job that run, and starts none of it any more."""
        self.killed.add(output_key)
        with self._lock:
            stops = [stop for _, stop in self.active.get(output_key, {}).values()]
        for stop in stops:
            stop.stop()

    def _time_out(self, job: Job) -> None:
        try:
            self.kill(self.pipelines.job(job.project, job.pipeline, job.id), JOB_TIMED_OUT)
        except NotFound:
            pass

    def restart_datum(self, job: Job, filters: list) -> int:
        """pachd's RestartDatum: the running try of each datum of `job` matching `filters` is
        ended (it counts as a failed try: the datum runs again while it has tries left); how many."""
        with self._lock:
            found = [stop for d, stop in self.active.get(job.output_key, {}).values() if matches(d, filters)]
        for stop in found:
            stop.stop()
        return len(found)

    def _recover(self) -> None:
        """Jobs cut by a crash: finished output commit -> the state it says; open -> run again."""
        with self.pipelines.write() as db:
            for job in self.pipelines.jobs():
                if job.state in TERMINAL:
                    continue
                row = self._output_row(job)
                if row is None:
                    state, reason = "JOB_KILLED", "the output commit was deleted"
                elif row.finished is not None:
                    state, reason = ("JOB_FAILURE", row.error) if row.error else ("JOB_SUCCESS", "")
                else:
                    db.execute(
                        "UPDATE jobs SET state='JOB_CREATED', restart=restart+1, processed=0, skipped=0, failed=0 "
                        "WHERE project=? AND pipeline=? AND id=?",
                        (job.project, job.pipeline, job.id),
                    )
                    db.execute(
                        "DELETE FROM datums WHERE project=? AND pipeline=? AND job=?",
                        (job.project, job.pipeline, job.id),
                    )
                    self._log(job, "", "the server restarted while this job ran: running it again from the start")
                    continue
                db.execute(
                    "UPDATE jobs SET state=?, reason=?, finished=? WHERE project=? AND pipeline=? AND id=?",
                    (state, reason, time.time(), job.project, job.pipeline, job.id),
                )

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.discover()
                self._schedule()
            except Exception:  # noqa: BLE001 - the scheduler must outlive one bad pass
                log.exception("pipeline scheduler pass failed")
            self.store.wait_for_change(0.5)

    # -- finding and starting jobs ------------------------------------------------------------
    def discover(self) -> None:
        """A job row for every open output commit that has none yet (cheap; callers that read
        jobs call it first, so a job exists as soon as its commit does)."""
        with self.pipelines.lock:
            for p in self.pipelines.list():
                try:
                    out_repo = self.store.get_repo(p.project, p.name)
                except NotFound:
                    continue
                known = {j.id for j in self.pipelines.jobs(p.project, p.name)}
                new = [c for c in self.store.open_commits(out_repo) if c.cid not in known]
                if not new:
                    continue
                with self.pipelines.write() as db:
                    seq = db.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs").fetchone()[0]
                    for c in new:
                        seq += 1
                        db.execute(
                            "INSERT INTO jobs(project, pipeline, id, version, state, created, output_key, seq) "
                            "VALUES(?,?,?,?,?,?,?,?)",
                            (p.project, p.name, c.cid, p.version, "JOB_CREATED", c.started, c.id, seq),
                        )

    def _schedule(self) -> None:
        with self._lock:
            for key, t in list(self.running.items()):
                if not t.is_alive():
                    del self.running[key]
            for p in self.pipelines.list():
                if p.key in self.running:
                    continue
                pending = [j for j in self.pipelines.jobs(p.project, p.name) if j.state not in TERMINAL]
                if not pending:
                    continue
                job = min(pending, key=lambda j: j.seq)
                t = threading.Thread(target=self._run_safely, args=(p, job), name=f"job-{p.name}", daemon=True)
                self.running[p.key] = t
                t.start()

    def _run_safely(self, p: Pipeline, job: Job) -> None:
        try:
            self.run_job(p, job)
        except Exception as e:  # noqa: BLE001 - a job's bug fails that job, not the server
            if self._stop.is_set():
                return  # cut by the server's stop: it runs again at the next start
            log.exception("job %s of %s failed", job.id, p)
            self._finish(job, None, [], "JOB_FAILURE", f"internal error: {type(e).__name__}: {e}")
        finally:
            self.pipelines.notify()
            with self.store.changed:
                self.store.changed.notify_all()

    # -- running one job ----------------------------------------------------------------------
    def _output_row(self, job: Job) -> Optional[CommitRow]:
        try:
            return self.store.get_commit(job.output_key)
        except NotFound:
            return None

    def _input_commits(self, out: CommitRow, spec: dict) -> dict:
        """(project, repo) -> the input commit of this job: the output commit's provenance (the
        heads of the input branches when the job's commit was opened)."""
        _, _, prov = self.store.relations(out)
        found = {(r.project, r.name): cid for r, cid in prov}
        out_map = {}
        for project, repo, branch in input_branches(spec):
            row = self.store.get_repo(project, repo)
            cid = found.get((project, repo))
            out_map[(project, repo)] = self.store.resolve_commit(row, cid, "" if cid else branch)
        return out_map

    def run_job(self, p: Pipeline, job: Job) -> None:
        out = self._output_row(job)
        if out is None or out.finished is not None:
            self._recover()
            return
        settings = spec_fields.settings(p.spec)  # a spec an older version accepted may fail here, naming why
        started = time.time()
        self._set(job, state="JOB_STARTING", started=started)
        self._log(
            job,
            "",
            f"job {job.id} of pipeline {p} started; image {p.spec['transform'].get('image')!r} "
            f"is recorded, not pulled: {self.describe(p.spec)}",
        )
        commits = self._input_commits(out, p.spec)
        for c in commits.values():  # pachd waits for its input commits to be finished
            self.store.wait_finished(c.id, cancelled=self._stop.is_set)

        def list_files(project, repo, ref):
            c = commits[(project, repo)]
            return ((e.path, e.hash) for e in self.store.files_under(c.id))

        ds = D.datums(p.spec["input"], list_files, salt=p.salt)
        self._set(job, state="JOB_RUNNING", total=len(ds))
        previous = self._previous_outputs(p, job)
        results: dict[str, dict] = {}
        todo = []
        pins = self.store.blobs.pins
        for d in ds:
            reused = previous.get(d.hash)
            if reused is not None:
                for h, _ in reused.values():  # held against the collector until the output commit is in
                    pins.pin(h)
                if self.store.missing_contents([h for h, _ in reused.values()]):
                    for h, _ in reused.values():
                        pins.unpin(h)
                    todo.append(d)  # its old output was freed (its commits deleted): run it again
                    continue
                results[d.id] = {"state": "SKIPPED", "outputs": reused, "datum": d}
            else:
                todo.append(d)
        if settings.every_job:  # reprocess_spec "every_job": nothing is skipped
            for r in results.values():
                for h, _ in r["outputs"].values():
                    pins.unpin(h)
            todo, results = list(ds), {}
        timer = None
        if settings.job_timeout:
            left = max(0.0, settings.job_timeout - (time.time() - started))  # pachd counts from the job's start
            timer = threading.Timer(left, self._time_out, (job,))
            timer.daemon = True
            timer.start()
        ctx = JobContext(
            project=p.project,
            pipeline=p.name,
            job_id=job.id,
            spec_commit=p.spec_commit,
            cmd=list(p.spec["transform"]["cmd"]),
            stdin=list(p.spec["transform"].get("stdin") or []),
            tries=max(1, int(p.spec.get("datum_tries") or 3)),
            settings=settings,
            limits=self.limits(settings),
            commits={key: c.cid for key, c in commits.items()},
            empty_files=frozenset(i["name"] for i in D.pfs_inputs(p.spec["input"]) if i.get("empty_files")),
            sandbox=self.sandbox,
            store=self.store,
            log=lambda d, message, user: self._log(job, d, message, user=user),
            halted=lambda: job.output_key in self.killed or self._stop.is_set(),
        )
        try:
            self._run_datums(ctx, job, ds, todo, results, self.parallelism(settings))
        finally:
            if timer is not None:
                timer.cancel()
            for r in results.values():  # every output digest was pinned once: by its writer or above
                for h, _ in r["outputs"].values():
                    pins.unpin(h)

    def _run_datums(self, ctx: JobContext, job: Job, ds: list, todo: list, results: dict, at_once: int) -> None:
        self._save_datums(job, [(r["datum"], "SKIPPED", r["outputs"]) for r in results.values()])
        self._set(job, skipped=len(results))
        failed: Optional[str] = None
        slots: queue.Queue = queue.Queue()  # (k, slot): a worker's slot serves its datums of this job only
        opened = []
        for k in range(at_once):
            name = slot_name(job, k)
            opened.append((name, self.sandbox.open_slot(name, os.path.join(self.work_dir, name))))
            slots.put((k, opened[-1][1]))
        counts = {"SUCCESS": 0, "RECOVERED": 0, "FAILED": 0}
        pending = iter(todo)
        running: dict = {}
        try:
            while True:
                while len(running) < at_once and not ctx.halted():
                    d = next(pending, None)
                    if d is None:
                        break
                    running[self.pool.submit(self._run_datum, ctx, job, d, slots)] = d
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:  # progress is saved as each datum ends
                    d = running.pop(fut)
                    state, outputs = fut.result()
                    if ctx.halted():
                        continue  # stopped: the job's end is written by whoever stopped it
                    results[d.id] = {"state": state, "outputs": outputs, "datum": d}
                    self._save_datums(job, [(d, state, outputs)])
                    counts[state] += 1
                    self._set(job, processed=counts["SUCCESS"], recovered=counts["RECOVERED"])
                    if state == "FAILED" and (failed is None or d.id < failed):
                        failed = d.id  # the same datum named whatever order they end in
        finally:
            for fut in running:
                fut.result()
            for name, slot in opened:
                slot.close()
                folder = os.path.join(self.work_dir, name)
                make_removable(folder)
                shutil.rmtree(folder, ignore_errors=True)
        if ctx.halted():
            return  # killed (its end is written), or the server stops (the job runs again at the next start)
        if failed is not None:
            self._set(job, failed=counts["FAILED"])
            self._finish(job, None, [], "JOB_FAILURE", f"datum {failed} failed")
            return
        self._set(job, state="JOB_FINISHING")
        tree, inline, merged = self._merge(ds, results)
        try:
            self._finish(job, tree, inline, "JOB_SUCCESS", "")
        finally:
            for h in merged:
                self.store.blobs.pins.unpin(h)

    def _previous_outputs(self, p: Pipeline, job: Job) -> dict:
        """datum hash -> outputs, from the pipeline's last successful job (pachd's parent job)."""
        done = [j for j in self.pipelines.jobs(p.project, p.name) if j.state == "JOB_SUCCESS" and j.seq < job.seq]
        if not done:
            return {}
        rows = self.pipelines.datum_rows(done[0])
        return {r["hash"]: r["outputs"] for r in rows if r["state"] in ("SUCCESS", "SKIPPED")}

    def _merge(self, ds: list, results: dict) -> tuple[dict, list, list]:
        """The output tree: every datum's /pfs/out, in datum order; a path two datums wrote holds
        both contents, one after the other (pachd appends them too)."""
        tree: dict[str, tuple] = {}
        inline = []
        clashes: dict[str, list] = {}
        merged: list = []  # digests of appended contents, pinned by their writers
        for d in ds:
            for path, (h, size) in results[d.id]["outputs"].items():
                if path in tree:
                    clashes.setdefault(path, [tree[path]]).append((h, size))
                tree[path] = (h, size)
        for path, parts in clashes.items():
            w = self.store.blobs.writer()
            for h, _ in parts:
                w.copy_from(self.store.open_blob(h))
            data = w.inline()
            tree[path] = w.commit()
            if data is not None:
                inline.append((tree[path][0], data))
            merged.append(tree[path][0])
        return tree, inline, merged

    def _finish(self, job: Job, tree: Optional[dict], inline: list, state: str, reason: str) -> None:
        try:
            if not self.store.finish_with_tree(
                job.output_key, tree, inline, error=reason if state != "JOB_SUCCESS" else ""
            ):
                return  # stopped meanwhile (StopJob finished the commit and set the state)
        except NotFound:
            state, reason = "JOB_KILLED", "the output commit was deleted"
        self._set(job, state=state, reason=reason, finished=time.time())
        self._log(job, "", f"job {job.id} finished: {state}{': ' + reason if reason else ''}")

    # -- one datum ----------------------------------------------------------------------------
    def kill(self, job: Job, reason: str, delete: bool = False) -> None:
        """pachd's stopJob: the output commit is finished with `reason` as its error, the job is
        JOB_KILLED (a finished job keeps its state); its running datums end, and datums not yet
        started are not run."""
        self.halt(job.output_key)
        try:
            self.store.finish_with_tree(job.output_key, None, error=reason)
        except NotFound:
            pass
        with self.pipelines.write() as db:
            key = (job.project, job.pipeline, job.id)
            if delete:
                db.execute("DELETE FROM jobs WHERE project=? AND pipeline=? AND id=?", key)
                db.execute("DELETE FROM datums WHERE project=? AND pipeline=? AND job=?", key)
            elif job.state not in TERMINAL:
                db.execute(
                    "UPDATE jobs SET state='JOB_KILLED', reason=?, finished=? WHERE project=? AND pipeline=? AND id=?",
                    (reason, time.time(), *key),
                )
        self._log(job, "", f"job {job.id} stopped: {reason}")

    def _run_datum(self, ctx: JobContext, job: Job, d: D.Datum, slots: queue.Queue) -> tuple[str, dict]:
        if ctx.halted():
            return "FAILED", {}
        k, slot = slots.get()
        folder = os.path.join(self.work_dir, slot_name(job, k))

        def on_try(stop: S.Stop) -> None:
            with self._lock:
                self.active.setdefault(job.output_key, {})[d.id] = (d, stop)
            if ctx.halted():
                stop.stop()

        run = DatumRun(ctx, d, slot, folder, on_try)
        try:
            return run.run()
        finally:
            with self._lock:
                datums = self.active.get(job.output_key, {})
                datums.pop(d.id, None)
                if not datums:
                    self.active.pop(job.output_key, None)
            slots.put((k, slot))

    # -- state and logs -----------------------------------------------------------------------
    def _set(self, job: Job, **fields) -> None:
        """Progress of a running job; never over an end already reached (a StopJob may have
        killed it meanwhile: its JOB_KILLED must stay, not turn back into JOB_RUNNING)."""
        with self.pipelines.write() as db:
            sets = ", ".join(f"{k}=?" for k in fields)
            db.execute(
                f"UPDATE jobs SET {sets} WHERE project=? AND pipeline=? AND id=? "
                f"AND state NOT IN ({','.join('?' * len(TERMINAL))})",
                (*fields.values(), job.project, job.pipeline, job.id, *TERMINAL),
            )

    def _save_datums(self, job: Job, rows: list) -> None:
        if not rows:
            return
        with self.pipelines.write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO datums VALUES(?,?,?,?,?,?,?,?)",
                [
                    (
                        job.project,
                        job.pipeline,
                        job.id,
                        d.id,
                        d.hash,
                        state,
                        json.dumps(outputs),
                        json.dumps([[i.name, i.repo, p, h] for i in d.inputs for p, h in i.files]),
                    )
                    for d, state, outputs in rows
                ],
            )

    def log_path(self, project: str, pipeline: str) -> str:
        return os.path.join(self.log_dir, f"{project}--{pipeline}.jsonl")

    def _log(self, job: Job, d, message: str, user: bool = False) -> None:
        entry = {
            "ts": datetime.now(timezone.utc).isoformat(),
            "job": job.id,
            "datum": d.id if isinstance(d, D.Datum) else "",
            "data": [[p, h] for i in d.inputs for p, h in i.files][:50] if isinstance(d, D.Datum) else [],
            "user": user,
            "master": not isinstance(d, D.Datum),
            "message": message,
        }
        with self._lock_for_logs():
            with open(self.log_path(job.project, job.pipeline), "a") as f:
                f.write(json.dumps(entry) + "\n")

    _log_lock = threading.Lock()

    def _lock_for_logs(self):
        return self._log_lock

    def read_logs(self, project: str, pipeline: str) -> list[dict]:
        try:
            with open(self.log_path(project, pipeline)) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def wait(self, until: Callable[[], bool], cancelled: Callable[[], bool], timeout: float = 0.5) -> None:
        """Blocks until `until()` or `cancelled()`: for InspectJob(wait) and SubscribeJob."""
        while not until() and not cancelled():
            self.discover()
            with self.pipelines.changed:
                self.pipelines.changed.wait(timeout)
