"""What a commit started and where a commit came from: the pipeline side of a Sync, read from the
cluster's `pps_v2.API` (pachd's or the embedded server's alike).

- the jobs of a commit: the pipelines reading its branch (ListPipeline, their inputs) and the jobs
  of its commit set (InspectJobSet on the commit's global ID: a job's ID is the ID of the commit
  that started it, downstream jobs included);
- a commit's provenance: a commit with user-repo provenance is a pipeline's output; the pipeline
  is named after its repo, its job has the commit's ID.

A token the cluster refuses for these reads (PERMISSION_DENIED, UNAUTHENTICATED) is an answer,
state `hidden` with the cluster's reason, never an error: the labels themselves still work.
"""

from typing import Optional

import grpc
from fastapi import FastAPI, Path, Query
from pachyderm_sdk.api import pfs, pps
from pydantic import BaseModel, Field

from ..rules import COMMIT_REF_PATTERN, MAX_COMMIT_REF, MAX_NAME, NAME_PATTERN
from .errors import MountError, NotFound, Unauthenticated
from .remote import Remote

ENDED = {"JOB_SUCCESS", "JOB_FAILURE", "JOB_KILLED", "JOB_UNRUNNABLE"}
HIDDEN = "you may not see the pipelines"


class JobAnswer(BaseModel):
    pipeline: str = Field(description="project/name")
    id: str
    state: str = Field(description="pachd's JobState name: JOB_CREATED ... JOB_SUCCESS, JOB_FAILURE, JOB_KILLED")
    ended: bool
    reason: str = ""
    data_processed: int
    data_skipped: int
    data_failed: int
    data_total: int
    output_commit: str = Field(description="project/repo@id")
    started: Optional[str] = None  # ISO 8601, UTC
    finished: Optional[str] = None


class CommitJobsAnswer(BaseModel):
    commit: str
    branch: str
    state: str = Field(description="none (no pipeline reads the branch), hidden (the token may not see), jobs")
    message: str
    pipelines: list[str] = Field(description="project/name of every pipeline reading the branch")
    jobs: list[JobAnswer]
    ended: bool = Field(description="nothing left to wait for: every job of the commit has ended")


class ProvenanceAnswer(BaseModel):
    commit: str
    state: str = Field(description="output (a pipeline's output commit), none (not one), hidden")
    message: str
    pipeline: Optional[str] = None
    job: Optional[JobAnswer] = None
    inputs: list[str] = Field(default_factory=list, description="project/repo@id of the input commits")


class Hidden(MountError):
    """The cluster refused the token these reads (caught by the routes: an answer, not an error)."""

    status = 403

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


REFUSALS = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)


def _iso(when) -> Optional[str]:
    if when is None or when.timestamp() <= 0:  # betterproto reads an unset time as 1970
        return None
    return when.isoformat()


def _job(info: pps.JobInfo) -> JobAnswer:
    state = pps.JobState(info.state).name
    p = info.job.pipeline
    out = info.output_commit
    return JobAnswer(
        pipeline=f"{p.project.name or 'default'}/{p.name}",
        id=info.job.id,
        state=state,
        ended=state in ENDED,
        reason=info.reason or "",
        data_processed=info.data_processed,
        data_skipped=info.data_skipped,
        data_failed=info.data_failed,
        data_total=info.data_total,
        output_commit=f"{out.repo.project.name or 'default'}/{out.repo.name}@{out.id}" if out and out.repo else "",
        started=_iso(info.started),
        finished=_iso(info.finished),
    )


def _reads(node: Optional[pps.Input], project: str, repo: str, branch: str) -> bool:
    """Whether an input tree (pfs, cross, union, join, group) has a pfs input on project/repo@branch
    (any branch of the repo when `branch` is empty)."""
    if node is None:
        return False
    atom = node.pfs
    if atom is not None and atom.repo and (atom.project or "default") == project and atom.repo == repo:
        if not branch or (atom.branch or "master") == branch:
            return True
    return any(
        _reads(child, project, repo, branch)
        for kind in ("cross", "union", "join", "group")
        for child in (getattr(node, kind, None) or ())
    )


class PipelineJobs:
    """The reads behind the routes, over the mount server's one cluster connection."""

    def __init__(self, remote):
        self.remote = remote

    def _call(self, name: str, what: str, fn, stream: bool = False):
        """One cluster call (a stream read to its end); a refusal becomes Hidden with pachd's words."""

        def guarded(client):
            try:
                return list(fn(client)) if stream else fn(client)
            except grpc.RpcError as e:
                if hasattr(e, "code") and e.code() in REFUSALS:
                    raise Hidden(e.details() or e.code().name) from None
                raise

        r: Remote = self.remote()
        try:
            return r.call(name, what, guarded)
        except Unauthenticated as e:
            raise Hidden(e.message) from None

    def _commit(self, project: str, repo: str, commit: str) -> pfs.CommitInfo:
        c = pfs.Commit(repo=pfs.Repo(name=repo, type="user", project=pfs.Project(name=project)), id=commit)
        return self._call(
            "inspect_commit",
            f"looking up commit {commit} of {project}/{repo}",
            lambda cl: cl.pfs.inspect_commit(commit=c),
        )

    def readers(self, project: str, repo: str, branch: str) -> list[str]:
        infos = self._call(
            "list_pipeline", "listing pipelines", lambda c: c.pps.list_pipeline(details=True), stream=True
        )
        found = []
        for info in infos:
            spec_input = info.details.input if info.details else None
            if _reads(spec_input, project, repo, branch):
                found.append(f"{info.pipeline.project.name or 'default'}/{info.pipeline.name}")
        return sorted(found)

    def jobs(self, project: str, repo: str, commit: str, branch: Optional[str]) -> CommitJobsAnswer:
        answer = dict(commit=commit, branch=branch or "", pipelines=[], jobs=[], ended=True)
        where = f"{project}/{repo}@{branch}" if branch else f"any branch of {project}/{repo}"
        try:
            info = self._commit(project, repo, commit)
            commit = info.commit.id
            branch = branch or (info.commit.branch.name if info.commit.branch else "") or "master"
            answer.update(commit=commit, branch=branch)
            readers = self.readers(project, repo, branch)
            if not readers:
                return CommitJobsAnswer(**answer, state="none", message=f"no pipeline reads {project}/{repo}@{branch}")
            infos = self._call(
                "inspect_job_set",
                f"listing the jobs of commit {commit}",
                lambda c: c.pps.inspect_job_set(job_set=pps.JobSet(id=commit)),
                stream=True,
            )
        except Hidden as e:
            return CommitJobsAnswer(**answer, state="hidden", message=f"{HIDDEN}: {e.reason}")
        jobs = [_job(i) for i in infos]
        # a pipeline reading the branch has a job for every commit of it: none yet means it is coming
        waiting = [p for p in readers if not any(j.pipeline == p for j in jobs)]
        answer.update(pipelines=readers, jobs=jobs, ended=not waiting and all(j.ended for j in jobs))
        running = sum(not j.ended for j in jobs) + len(waiting)
        message = f"{len(jobs)} job(s) of {len(readers)} pipeline(s) reading {where}"
        if running:
            message += f", {running} not ended yet"
        return CommitJobsAnswer(**answer, state="jobs", message=message)

    def provenance(self, project: str, repo: str, commit: str) -> ProvenanceAnswer:
        try:
            info = self._commit(project, repo, commit)
            commit = info.commit.id
            inputs = [
                f"{c.repo.project.name or 'default'}/{c.repo.name}@{c.id}"
                for c in info.direct_provenance or ()
                if c.repo and (c.repo.type or "user") == "user"
            ]
            if not inputs:
                return ProvenanceAnswer(
                    commit=commit, state="none", message=f"{project}/{repo}@{commit} is not a pipeline output"
                )
            pipeline = f"{project}/{repo}"
            job_msg = pps.Job(pipeline=pps.Pipeline(name=repo, project=pfs.Project(name=project)), id=commit)
            try:
                job = _job(
                    self._call("inspect_job", f"looking up job {commit}", lambda c: c.pps.inspect_job(job=job_msg))
                )
            except NotFound:
                job = None
        except Hidden as e:
            return ProvenanceAnswer(commit=commit, state="hidden", message=f"{HIDDEN}: {e.reason}")
        message = f"output of pipeline {pipeline}" + (f", job {job.id} ({job.state})" if job else "")
        return ProvenanceAnswer(
            commit=commit, state="output", message=message, pipeline=pipeline, job=job, inputs=sorted(inputs)
        )


def register(app: FastAPI, remote) -> None:
    """GET /repos/{project}/{repo}/commits/{commit}/jobs and .../provenance (docs/INTERFACES.md)."""
    reads = PipelineJobs(remote)

    def name():
        return Path(pattern=NAME_PATTERN, max_length=MAX_NAME)

    def ref():
        return Path(pattern=COMMIT_REF_PATTERN, max_length=MAX_COMMIT_REF)

    @app.get("/repos/{project}/{repo}/commits/{commit}/jobs", response_model=CommitJobsAnswer)
    def commit_jobs(
        project: str = name(),
        repo: str = name(),
        commit: str = ref(),
        branch: Optional[str] = Query(None, pattern=NAME_PATTERN, max_length=MAX_NAME),
    ):
        return reads.jobs(project, repo, commit, branch)

    @app.get("/repos/{project}/{repo}/commits/{commit}/provenance", response_model=ProvenanceAnswer)
    def commit_provenance(project: str = name(), repo: str = name(), commit: str = ref()):
        return reads.provenance(project, repo, commit)
