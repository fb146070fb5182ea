"""Pachyderm's `pps_v2.API` over the pipeline engine: messages in, engine calls, messages out."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta
from typing import Optional

import betterproto
from betterproto.lib.google.protobuf import Empty
from pachyderm_sdk.api import pfs, pps

from ... import datums as D
from ..auth.permissions import Permissions, caller
from ..errors import InvalidArgument, NotFound, PfsError, Unimplemented
from ..rpc import ts
from . import spec_fields
from .jobs import JobRunner
from .pipelines import TERMINAL, Job, Pipeline, Pipelines, check_spec, input_branches, normalize


def _username() -> str:
    """Who asks, as pachd names them in the reasons of the jobs it kills."""
    return caller() or "unknown_username"


def _timeouts(settings: spec_fields.RunSettings) -> dict:
    """datum_timeout and job_timeout as PipelineInfo/JobInfo details hold them (only when set)."""
    out = {}
    for key in ("datum_timeout", "job_timeout"):
        seconds = getattr(settings, key)
        if seconds:
            out[key] = timedelta(seconds=seconds)
    return out


def _project(msg) -> str:
    return (msg.project.name if msg is not None and msg.project else "") or "default"


class PpsService:
    def __init__(self, pipelines: Pipelines, runner: JobRunner, auth=None):
        self.pipelines, self.runner, self.auth = pipelines, runner, auth
        self.store = pipelines.store
        self.perms = Permissions(auth)  # pachd's check of each call; none when auth is off

    def _need(self, call: str, j) -> None:
        """pachd's refusal unless the caller may make `call` on the output repo of `j` (a Job or
        a Pipeline)."""
        self.perms.need(call, j.project, getattr(j, "pipeline", None) or j.name)

    def _allowed(self, call: str, j) -> bool:
        return self.perms.allowed(call, j.project, getattr(j, "pipeline", None) or j.name)

    @staticmethod
    def _inputs(spec: dict) -> list[tuple[str, str]]:
        return [(project, repo) for project, repo, _ in input_branches(spec)]

    def _authorize(self, spec: dict, old: Optional[Pipeline]) -> None:
        """pachd's authorizePipelineOp at create (read every input) or update (and write the
        output), then, for a new pipeline, the right to create its output repo."""
        project, name = spec["pipeline"]["project"]["name"], spec["pipeline"]["name"]
        self.perms.pipeline("UpdatePipeline" if old is not None else "", self._inputs(spec), project, name)
        if old is None:
            self.perms.need("CreatePipelineOutput", project, name)

    def _datums_of_input(self, input_):
        """The datums an input spec makes over its repos' heads (ListDatum and CreateDatum of an
        input), once the caller may read each input repo."""
        spec = input_.to_dict(casing=betterproto.Casing.SNAKE)
        self._datum_inputs(spec)
        try:
            return D.datums(spec, self._head_files)
        except D.DatumError as e:
            raise InvalidArgument(str(e)) from None

    def _datum_inputs(self, spec: dict) -> None:
        try:
            inputs = [(p["project"], p["repo"]) for p in D.pfs_inputs(spec)]
        except D.DatumError as e:
            raise InvalidArgument(str(e)) from None
        self.perms.datum_inputs(inputs)

    # -- references ---------------------------------------------------------------------------
    def _pipeline(self, msg: Optional[pps.Pipeline]) -> Pipeline:
        if msg is None or not msg.name:
            raise InvalidArgument("pipeline must be specified")
        return self.pipelines.get(_project(msg), msg.name)

    def _job(self, msg: Optional[pps.Job]) -> Job:
        if msg is None or not msg.id:
            raise InvalidArgument("must specify a job")
        self.runner.discover()
        if msg.pipeline and msg.pipeline.name:
            return self.pipelines.job(_project(msg.pipeline), msg.pipeline.name, msg.id)
        found = self.pipelines.jobs(job_id=msg.id)
        if not found:
            raise NotFound(f"job {msg.id} not found")
        return found[0]

    # -- messages -----------------------------------------------------------------------------
    @staticmethod
    def _pipeline_msg(project: str, name: str) -> pps.Pipeline:
        return pps.Pipeline(name=name, project=pfs.Project(name=project))

    def pipeline_info(self, p: Pipeline) -> pps.PipelineInfo:
        jobs = self.pipelines.jobs(p.project, p.name)
        if p.stopped:
            state = pps.PipelineState.PIPELINE_PAUSED
        elif any(j.state not in TERMINAL for j in jobs):
            state = pps.PipelineState.PIPELINE_RUNNING
        else:
            state = pps.PipelineState.PIPELINE_STANDBY
        spec = p.spec
        settings = spec_fields.stored_settings(spec)
        at_once = self.runner.parallelism(settings)
        details = pps.PipelineInfoDetails(
            transform=pps.Transform().from_dict(spec["transform"]),
            input=pps.Input().from_dict(spec["input"]),
            description=spec.get("description", ""),
            output_branch=spec["output_branch"],
            datum_tries=int(spec["datum_tries"]),
            salt=p.salt,
            reprocess_spec=spec.get("reprocess_spec") or "until_success",
            created_at=ts(p.created),
            updated_at=ts(p.updated),
            # where pachd names the workers' replication controller: where this server runs them
            worker_rc=f"none: pachstudio's embedded server runs no containers; {self.runner.describe(spec)}",
            parallelism_spec=pps.ParallelismSpec(constant=settings.parallelism or at_once),
            workers_requested=at_once,
            workers_available=at_once,
            resource_limits=pps.ResourceSpec().from_dict(spec.get("resource_limits") or {}),
            resource_requests=pps.ResourceSpec().from_dict(spec.get("resource_requests") or {}),
            autoscaling=bool(spec.get("autoscaling")),
            **_timeouts(settings),
        )
        return pps.PipelineInfo(
            pipeline=self._pipeline_msg(p.project, p.name),
            version=p.version,
            spec_commit=pfs.Commit(
                repo=pfs.Repo(name=p.name, type="spec", project=pfs.Project(name=p.project)), id=p.spec_commit
            ),
            stopped=p.stopped,
            state=state,
            last_job_state=getattr(pps.JobState, jobs[0].state) if jobs else pps.JobState.JOB_STATE_UNKNOWN,
            parallelism=at_once,
            type=pps.PipelineInfoPipelineType.PIPELINE_TYPE_TRANSFORM,
            details=details,
            user_spec_json=json.dumps(spec),
            effective_spec_json=json.dumps(spec),
        )

    def job_info(self, j: Job, details: bool = True) -> pps.JobInfo:
        info = pps.JobInfo(
            job=pps.Job(pipeline=self._pipeline_msg(j.project, j.pipeline), id=j.id),
            pipeline_version=j.version,
            output_commit=pfs.Commit(
                repo=pfs.Repo(name=j.pipeline, type="user", project=pfs.Project(name=j.project)), id=j.id
            ),
            restart=j.restart,
            data_processed=j.processed,
            data_skipped=j.skipped,
            data_total=j.total,
            data_failed=j.failed,
            data_recovered=j.recovered,
            state=getattr(pps.JobState, j.state),
            reason=j.reason or "",
            created=ts(j.created),
            started=ts(j.started),
            finished=ts(j.finished),
        )
        if details:
            try:
                p = self.pipelines.get(j.project, j.pipeline)
                info.details = pps.JobInfoDetails(
                    transform=pps.Transform().from_dict(p.spec["transform"]),
                    input=pps.Input().from_dict(p.spec["input"]),
                    datum_tries=int(p.spec["datum_tries"]),
                    salt=p.salt,
                    resource_limits=pps.ResourceSpec().from_dict(p.spec.get("resource_limits") or {}),
                    resource_requests=pps.ResourceSpec().from_dict(p.spec.get("resource_requests") or {}),
                    **_timeouts(spec_fields.stored_settings(p.spec)),
                )
            except NotFound:
                pass
        return info

    # -- pipelines ----------------------------------------------------------------------------
    def _own_output(self, p: Pipeline) -> None:
        """pachd makes the creator of a pipeline the repoOwner of its output repo (auth on)."""
        if self.auth is not None and caller():
            self.auth.ensure_binding("REPO", f"{p.project}/{p.name}", caller(), ["repoOwner"])

    def CreatePipeline(self, req: pps.CreatePipelineRequest, ctx):
        spec = req.to_dict(casing=betterproto.Casing.SNAKE)
        for flag in spec_fields.FLAGS:
            spec.pop(flag, None)
        if req.dry_run:
            check_spec(normalize(spec))
            return Empty()
        self._create(spec, req.update, req.reprocess)
        return Empty()

    def _create(self, spec: dict, update: bool, reprocess: bool) -> Pipeline:
        """Creates or updates; an update's killed jobs lose their running datums too."""
        running = set()
        if update:
            name = (spec.get("pipeline") or {}).get("name") or ""
            project = ((spec.get("pipeline") or {}).get("project") or {}).get("name") or "default"
            running = {j.output_key for j in self.pipelines.jobs(project, name) if j.state not in TERMINAL}
        created = self.pipelines.create(
            spec, update=update, reprocess=reprocess, authorize=self._authorize, user=_username()
        )
        self._own_output(created)
        for j in self.pipelines.jobs(created.project, created.name):
            if j.output_key in running and j.state == "JOB_KILLED":
                self.runner.halt(j.output_key)
        self.runner.discover()
        return created

    def CreatePipelineV2(self, req: pps.CreatePipelineV2Request, ctx):
        try:
            spec = json.loads(req.create_pipeline_request_json or "{}")
        except json.JSONDecodeError as e:
            raise InvalidArgument(f"the pipeline spec is not valid JSON: {e}") from None
        if not isinstance(spec, dict):
            raise InvalidArgument("a pipeline spec must be a JSON object")
        update = req.update or bool(spec.pop("update", False))
        reprocess = req.reprocess or bool(spec.pop("reprocess", False))
        if req.dry_run or spec.pop("dry_run", False):
            effective = check_spec(normalize(spec))
        else:
            effective = self._create(spec, update, reprocess).spec
        return pps.CreatePipelineV2Response(effective_create_pipeline_request_json=json.dumps(effective))

    def InspectPipeline(self, req: pps.InspectPipelineRequest, ctx):
        self.runner.discover()
        return self.pipeline_info(self._pipeline(req.pipeline))

    def ListPipeline(self, req: pps.ListPipelineRequest, ctx):
        self.runner.discover()
        if req.pipeline and req.pipeline.name:
            found = [self._pipeline(req.pipeline)]
        else:
            found = self.pipelines.list({p.name for p in req.projects or []})
        for p in found:
            if self.perms.may_see(p.project, p.name):  # pachd lists only what the caller may see
                yield self.pipeline_info(p)

    def DeletePipeline(self, req: pps.DeletePipelineRequest, ctx):
        if req.all:
            self._delete_all(self.pipelines.list({"default"}), keep_repo=req.keep_repo, force=req.force)
            return Empty()
        try:
            p = self._pipeline(req.pipeline)
        except NotFound:
            if req.must_exist:
                raise
            return Empty()
        self._need("DeletePipeline", p)  # pachd stops it, then deletes it: both checked before either
        self._delete(p, keep_repo=req.keep_repo, force=req.force)
        return Empty()

    def _delete_all(self, found: list, keep_repo: bool = False, force: bool = False) -> list:
        """pachd's DeletePipelines: each pipeline stopped, then each deleted; here every check comes
        before any change, so a refusal leaves every pipeline as it was."""
        for p in found:
            self._need("DeletePipelines", p)
        for p in found:
            self._delete(p, keep_repo=keep_repo, force=force)
        return found

    def _delete(self, p: Pipeline, keep_repo: bool = False, force: bool = False) -> None:
        """The pipeline, its jobs (their running datums ended) and its logs (and its output repo
        unless keep_repo)."""
        for j in self.pipelines.jobs(p.project, p.name):
            if j.state not in TERMINAL:
                self.runner.halt(j.output_key)
        self.pipelines.delete(p.project, p.name, keep_repo=keep_repo, force=force)
        try:
            os.unlink(self.runner.log_path(p.project, p.name))
        except FileNotFoundError:
            pass

    def DeletePipelines(self, req: pps.DeletePipelinesRequest, ctx):
        projects = None if req.all else {p.name for p in req.projects or []}
        found = [] if projects is not None and not projects else self.pipelines.list(projects or ())
        deleted = self._delete_all(found, keep_repo=req.keep_repo, force=req.force)
        return pps.DeletePipelinesResponse(pipelines=[self._pipeline_msg(p.project, p.name) for p in deleted])

    def DeleteAll(self, req, ctx):
        for p in self.pipelines.list():
            self._delete(p, force=True)
        return Empty()

    def StopPipeline(self, req: pps.StopPipelineRequest, ctx):
        """pachd's: no new job, and the running ones killed (their datums end)."""
        p = self._pipeline(req.pipeline)
        self._need("StopPipeline", p)
        self.pipelines.set_stopped(p.project, p.name, True)
        for j in self.pipelines.jobs(p.project, p.name):
            if j.state not in TERMINAL:
                self.runner.kill(j, f"all jobs killed because pipeline was stopped for user {_username()}")
        return Empty()

    def StartPipeline(self, req: pps.StartPipelineRequest, ctx):
        p = self._pipeline(req.pipeline)
        self._need("StartPipeline", p)
        self.pipelines.set_stopped(p.project, p.name, False)
        self.runner.discover()
        return Empty()

    # -- jobs ---------------------------------------------------------------------------------
    def InspectJob(self, req: pps.InspectJobRequest, ctx):
        job = self._job(req.job)
        self._need("InspectJob", job)
        if req.wait:
            self.runner.wait(lambda: self._fresh(job).state in TERMINAL, lambda: not ctx.is_active())
        return self.job_info(self._fresh(job), details=True)

    def StopJob(self, req: pps.StopJobRequest, ctx):
        if req.job is None:
            raise PfsError("Job must be specified")
        job = self._job(req.job)
        self._need("StopJob", job)
        self.runner.kill(job, req.reason or "job stopped")
        return Empty()

    def DeleteJob(self, req: pps.DeleteJobRequest, ctx):
        if req.job is None:
            raise PfsError("job cannot be nil")
        job = self._job(req.job)
        self._need("DeleteJob", job)
        self.runner.kill(job, "job deleted", delete=True)
        return Empty()

    def RestartDatum(self, req: pps.RestartDatumRequest, ctx):
        """pachd's: the running try of each datum of the job matching the filters (its input
        paths or hashes; none: every running datum) is ended, and the datum runs again while it
        has tries left; none running: pachd's error."""
        job = self._job(req.job)
        self._need("RestartDatum", job)
        if not self.runner.restart_datum(job, list(req.data_filters or [])):
            filters = "[" + " ".join(req.data_filters or []) + "]"
            raise PfsError(f"datum matching filter {filters} could not be found for job ID {job.id}")
        return Empty()

    def RunCron(self, req: pps.RunCronRequest, ctx):
        self._pipeline(req.pipeline)
        raise PfsError("pipeline doesn't have a cron input")

    def CreateDatum(self, requests, ctx):
        """Datums of an input in batches the client asks for (pachd's CreateDatum stream)."""
        first = next(requests, None)
        kind, start = betterproto.which_one_of(first, "body") if first is not None else ("", None)
        if kind != "start":
            raise PfsError("first message must be a StartCreateDatumRequest message")
        if start.input is None:
            raise PfsError("first message must specify an input")
        ds = self._datums_of_input(start.input)
        infos = [self._input_datum_info(d) for d in ds]
        number = start.number or 100
        while True:
            batch, infos = infos[:number], infos[number:]
            yield from batch
            if not infos:
                return
            nxt = next(requests, None)
            if nxt is None:
                return
            kind, more = betterproto.which_one_of(nxt, "body")
            if kind != "continue_":
                raise PfsError("subsequent messages must be a ContinueCreateDatumRequest message")
            number = more.number or 100

    def _fresh(self, job: Job) -> Job:
        return self.pipelines.job(job.project, job.pipeline, job.id)

    def ListJob(self, req: pps.ListJobRequest, ctx):
        self.runner.discover()
        project = _project(req.pipeline) if req.pipeline and req.pipeline.name else ""
        jobs = self.pipelines.jobs(project, req.pipeline.name if req.pipeline else "")
        # pachd: PIPELINE_LIST_JOB on the output repo of the pipeline asked for; without one,
        # the jobs the caller may not list are skipped silently
        if req.pipeline and req.pipeline.name:
            self.perms.need("ListJob", project, req.pipeline.name)
        jobs = [j for j in jobs if self._allowed("ListJob", j)]
        projects = {p.name for p in req.projects or []}
        if projects:
            jobs = [j for j in jobs if j.project in projects]
        if req.input_commit:
            ids = {c.id for c in req.input_commit}
            jobs = [j for j in jobs if j.id in ids]
        if req.reverse:
            jobs = jobs[::-1]
        if req.number:
            jobs = jobs[: req.number]
        for j in jobs:
            yield self.job_info(j, details=req.details or bool(req.input_commit))

    def SubscribeJob(self, req: pps.SubscribeJobRequest, ctx):
        p = self._pipeline(req.pipeline)
        self._need("SubscribeJob", p)
        seen: dict[str, tuple] = {}
        while ctx.is_active():
            self.runner.discover()
            for j in reversed(self.pipelines.jobs(p.project, p.name)):
                snap = (j.state, j.processed, j.skipped, j.failed, j.total)
                if seen.get(j.id) != snap:
                    seen[j.id] = snap
                    yield self.job_info(j, details=req.details)
            with self.pipelines.changed:
                self.pipelines.changed.wait(0.5)

    def InspectJobSet(self, req: pps.InspectJobSetRequest, ctx):
        if req.job_set is None or not req.job_set.id:
            raise InvalidArgument("must specify a job set")
        if req.wait:  # pachd waits for the whole commit set, then answers its jobs
            try:
                rows = self.store.commit_set(req.job_set.id)
            except NotFound:
                rows = []
            for row in rows:
                self.store.wait_finished(row.id, cancelled=lambda: not ctx.is_active())
        self.runner.discover()
        jobs = self.pipelines.jobs(job_id=req.job_set.id)
        for j in jobs:  # pachd walks the commit set: inspecting each output commit needs this
            self._need("InspectCommit", j)
        if req.wait:
            for j in jobs:
                self.runner.wait(lambda j=j: self._fresh(j).state in TERMINAL, lambda: not ctx.is_active())
        for j in sorted(jobs, key=self._topological):
            yield self.job_info(self._fresh(j), details=req.details)

    def _topological(self, j: Job) -> int:
        """Upstream jobs first: their output commits were opened first."""
        try:
            return self.store.get_commit(j.output_key).seq
        except NotFound:
            return j.seq

    def ListJobSet(self, req: pps.ListJobSetRequest, ctx):
        self.runner.discover()
        order: list[str] = []
        by_id: dict[str, list] = {}
        for j in self.pipelines.jobs():
            if not self._allowed("ListJob", j):  # as ListJob: the jobs the caller may not list are left out
                continue
            if j.id not in by_id:
                order.append(j.id)
            by_id.setdefault(j.id, []).append(j)
        for jid in order[: req.number or None]:
            yield pps.JobSetInfo(
                job_set=pps.JobSet(id=jid), jobs=[self.job_info(j, details=req.details) for j in by_id[jid]]
            )

    # -- datums -------------------------------------------------------------------------------
    def _datum_info(self, job: Job, row: dict) -> pps.DatumInfo:
        data = [
            pfs.FileInfo(
                file=pfs.File(
                    commit=pfs.Commit(repo=pfs.Repo(name=repo, project=pfs.Project(name=job.project))), path=path
                ),
                hash=bytes.fromhex(h) if h else b"",
            )
            for _, repo, path, h in row["files"]
        ]
        return pps.DatumInfo(
            datum=pps.Datum(
                job=pps.Job(pipeline=self._pipeline_msg(job.project, job.pipeline), id=job.id), id=row["id"]
            ),
            state=getattr(pps.DatumState, row["state"]),
            data=data,
        )

    def ListDatum(self, req: pps.ListDatumRequest, ctx):
        states = set(req.filter.state) if req.filter else set()
        if req.input is not None and (req.input.pfs or req.input.cross or req.input.union or req.input.join):
            if req.job and req.job.id:
                raise InvalidArgument("cannot specify both job and input")
            ds = self._datums_of_input(req.input)
            for d in ds:
                yield self._input_datum_info(d)
            return
        job = self._job(req.job)
        self._need("ListDatum", job)
        for row in self.pipelines.datum_rows(job):
            info = self._datum_info(job, row)
            if not states or info.state in states:
                yield info

    @staticmethod
    def _input_datum_info(d: D.Datum) -> pps.DatumInfo:
        return pps.DatumInfo(
            datum=pps.Datum(id=d.id),
            state=pps.DatumState.UNKNOWN,
            data=[
                pfs.FileInfo(
                    file=pfs.File(
                        commit=pfs.Commit(repo=pfs.Repo(name=i.repo, project=pfs.Project(name=i.project))), path=p
                    ),
                    hash=bytes.fromhex(h) if h else b"",
                )
                for i in d.inputs
                for p, h in i.files
            ],
        )

    def _head_files(self, project: str, repo: str, ref: str):
        row = self.store.get_repo(project, repo)
        c = self.store.resolve_commit(row, "", ref)
        return ((e.path, e.hash) for e in self.store.files_under(c.id))

    def InspectDatum(self, req: pps.InspectDatumRequest, ctx):
        if req.datum is None or not req.datum.id:
            raise InvalidArgument("must specify a datum")
        job = self._job(req.datum.job)
        self._need("InspectDatum", job)
        for row in self.pipelines.datum_rows(job):
            if row["id"] == req.datum.id:
                return self._datum_info(job, row)
        raise NotFound(f"datum {req.datum.id} not found in job {job.project}/{job.pipeline}@{job.id}")

    # -- logs ---------------------------------------------------------------------------------
    def GetLogs(self, req: pps.GetLogsRequest, ctx):
        if req.job and req.job.id and req.job.pipeline and req.job.pipeline.name:
            p = self._pipeline(req.job.pipeline)
        elif req.pipeline and req.pipeline.name:
            p = self._pipeline(req.pipeline)
        elif req.datum and req.datum.job and req.datum.job.pipeline:
            p = self._pipeline(req.datum.job.pipeline)
        elif req.job and req.job.id:
            raise PfsError("pipeline must be specified for the given job")
        elif req.datum or req.data_filters:
            raise InvalidArgument("must specify the Job or Pipeline that the datum is from to get logs for it")
        else:  # pachd's own logs: a cluster permission, and this server keeps none to give
            self.perms.need("PachdLogs")
            raise Unimplemented("the embedded server has no pachd logs; ask for a pipeline's or a job's logs")
        self.perms.pipeline("GetLogs", self._inputs(p.spec), p.project, p.name)
        job_id = (req.job.id if req.job else "") or (req.datum.job.id if req.datum and req.datum.job else "")
        datum_id = req.datum.id if req.datum else ""
        filters = list(req.data_filters or [])

        def wanted(e: dict) -> bool:
            if job_id and e["job"] != job_id:
                return False
            if datum_id and e["datum"] != datum_id:
                return False
            if req.master and not e["master"]:
                return False
            if filters and not all(any(f in (path, h) for path, h in e["data"]) for f in filters):
                return False
            return True

        def msg(e: dict) -> pps.LogMessage:
            return pps.LogMessage(
                project_name=p.project,
                pipeline_name=p.name,
                job_id=e["job"],
                datum_id=e["datum"],
                master=e["master"],
                user=e["user"],
                data=[pps.InputFile(path=path, hash=bytes.fromhex(h) if h else b"") for path, h in e["data"]],
                ts=datetime.fromisoformat(e["ts"]),
                message=e["message"],
                worker_id="pachstudio-embedded",
            )

        entries = [e for e in self.runner.read_logs(p.project, p.name) if wanted(e)]
        if req.tail:
            entries = entries[-req.tail :]
        yield from (msg(e) for e in entries)
        if not req.follow:
            return
        seen = len(self.runner.read_logs(p.project, p.name))
        while ctx.is_active():
            with self.pipelines.changed:
                self.pipelines.changed.wait(0.5)
            now = self.runner.read_logs(p.project, p.name)
            for e in now[seen:]:
                if wanted(e):
                    yield msg(e)
            seen = len(now)
            time.sleep(0)
