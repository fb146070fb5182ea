"""Runs the embedded server's pipeline jobs in the background, with pachd's semantics.

A job is an open commit on a pipeline's output branch (opened by provenance when an input or the
spec got a commit); its ID is that commit's ID. Per pipeline one job runs at a time, oldest
first; its datums run in parallel up to the cores, each in its own folder (`sandbox.py`). A datum
whose hash (its input paths and contents, and the pipeline's salt) a previous successful job of
the pipeline processed is skipped and its output reused. The output commit is written and
finished in one PFS transaction, so a crash never leaves half of a job's output: on restart every
job whose output commit is still open runs again from the start.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timezone
from typing import Callable, Optional

from ... import datums as D
from ..errors import NotFound
from ..pfs.records import CommitRow
from ..pfs.store import Store
from . import sandbox
from .pipelines import TERMINAL, Job, Pipeline, Pipelines, input_branches

log = logging.getLogger("pachstudio.pfs_server.pps.jobs")


class JobRunner:
    def __init__(self, store: Store, pipelines: Pipelines, workers: Optional[int] = None):
        self.store, self.pipelines = store, pipelines
        self.workers = workers or os.cpu_count() or 1
        self.work_dir = os.path.join(pipelines.dir, "work")
        self.log_dir = os.path.join(pipelines.dir, "logs")
        shutil.rmtree(self.work_dir, ignore_errors=True)  # folders of datums cut by a crash
        os.makedirs(self.work_dir, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        self.running: dict[tuple, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="datum")
        self.killed: set[str] = set()  # output commit keys of jobs stopped while they ran

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._recover()
        self._thread = threading.Thread(target=self._loop, name="pps-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

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
        started = time.time()
        self._set(job, state="JOB_STARTING", started=started)
        self._log(
            job,
            "",
            f"job {job.id} of pipeline {p} started; image {p.spec['transform'].get('image')!r} "
            f"is recorded, not pulled: {sandbox.describe()}",
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
        try:
            self._run_datums(p, job, ds, todo, results)
        finally:
            for r in results.values():  # every output digest was pinned once: by its writer or above
                for h, _ in r["outputs"].values():
                    pins.unpin(h)

    def _run_datums(self, p: Pipeline, job: Job, ds: list, todo: list, results: dict) -> None:
        self._save_datums(job, [(r["datum"], "SKIPPED", r["outputs"]) for r in results.values()])
        self._set(job, skipped=len(results))
        failed: Optional[str] = None
        slots: queue.Queue = queue.Queue()
        if todo and sandbox.mode() == "namespace":
            for k in range(min(self.workers, len(todo))):
                slots.put(sandbox.Slot(os.path.join(self.work_dir, f"{job.id}-slot{k}")))
        processed = 0
        try:
            futures = {self.pool.submit(self._run_datum, p, job, d, slots): d for d in todo}
            for fut in as_completed(futures):  # progress is saved as each datum ends
                d = futures[fut]
                state, outputs = fut.result()
                results[d.id] = {"state": state, "outputs": outputs, "datum": d}
                self._save_datums(job, [(d, state, outputs)])
                if state == "SUCCESS":
                    processed += 1
                    self._set(job, processed=processed)
                elif failed is None or d.id < failed:
                    failed = d.id  # the same datum named whatever order they end in
        finally:
            while not slots.empty():
                slots.get().close()
        if failed is not None:
            n_failed = sum(1 for r in results.values() if r["state"] == "FAILED")
            self._set(job, failed=n_failed)
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
        JOB_KILLED (a finished job keeps its state); datums not yet started are not run."""
        self.killed.add(job.output_key)
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

    def _run_datum(self, p: Pipeline, job: Job, d: D.Datum, slots: queue.Queue) -> tuple[str, dict]:
        if job.output_key in self.killed:
            return "FAILED", {}
        slot = None if slots.empty() and sandbox.mode() != "namespace" else slots.get()
        folder = slot.folder if slot else os.path.join(self.work_dir, f"{job.id}-{d.id[:16]}")
        try:
            tries = max(1, int(p.spec.get("datum_tries") or 3))
            for attempt in range(1, tries + 1):
                if slot:
                    slot.clear()
                else:
                    shutil.rmtree(folder, ignore_errors=True)
                pfs_dir = os.path.join(folder, "pfs")
                self._materialize(pfs_dir, d)
                os.makedirs(os.path.join(pfs_dir, "out"), exist_ok=True)
                t = p.spec["transform"]
                env = dict(os.environ)
                env.update({k: str(v) for k, v in (t.get("env") or {}).items()})
                env.update(
                    PACH_JOB_ID=job.id,
                    PACH_DATUM_ID=d.id,
                    PACH_OUTPUT_COMMIT_ID=job.id,
                    PPS_PIPELINE_NAME=p.name,
                    PPS_PROJECT_NAME=p.project,
                )
                code, out, err = sandbox.run(list(t["cmd"]), list(t.get("stdin") or []), env, pfs_dir, slot)
                for stream in (out, err):
                    for line in stream.decode(errors="replace").splitlines():
                        self._log(job, d, line, user=True)
                if code == 0:
                    return "SUCCESS", self._collect(os.path.join(pfs_dir, "out"))
                self._log(job, d, f"datum {d.id} exited with code {code} (try {attempt} of {tries})")
            return "FAILED", {}
        finally:
            if slot:
                slot.clear()
                slots.put(slot)
            else:
                shutil.rmtree(folder, ignore_errors=True)

    def _materialize(self, pfs_dir: str, d: D.Datum) -> list[str]:
        """The datum's input files under pfs_dir/<input name>/: hard links to the stored contents
        where they are files of their own and /pfs is a read-only mount, else copies."""
        link = sandbox.mode() == "namespace"
        names = []
        for inp in d.inputs:
            names.append(inp.name)
            base = os.path.join(pfs_dir, inp.name)
            os.makedirs(base, exist_ok=True)
            for path, h in inp.files:
                target = os.path.join(base, path.lstrip("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                blob = self.store.blobs.path(h)
                if link and os.path.exists(blob):
                    try:
                        os.link(blob, target)
                        continue
                    except OSError:
                        pass
                with self.store.open_blob(h) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        return sorted(set(names))

    def _collect(self, out_dir: str) -> dict:
        """/pfs/out's files into the blob store: {path: (hash, size)}."""
        outputs = {}
        inline = []
        for root, _, files in os.walk(out_dir):
            for name in files:
                full = os.path.join(root, name)
                if not os.path.isfile(full):
                    continue
                w = self.store.blobs.writer()
                w.copy_from(open(full, "rb"))
                data = w.inline()
                h, size = w.commit()
                if data is not None:
                    inline.append((h, data))
                outputs["/" + os.path.relpath(full, out_dir)] = (h, size)
        if inline:
            self.store.save_inline(inline)
        return outputs

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
