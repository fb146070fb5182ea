"""What the pipeline jobs of a branch's versions measured: for each commit asked, the jobs of its
commit set (a job's ID is the ID of the commit that started it, downstream jobs included) and,
per successful job, the flat `{key: number}` of `metrics.json` at the root of its output commit.

One request answers a whole page of versions: one ListPipeline (none reads the branch: that is
the answer), then only when some commits were not answered before one ListCommit (they must be
versions of the branch) and for each of them one InspectJobSet and one read of each successful
job's `metrics.json`, a few at a time. What cannot change is kept: a finished commit whose jobs
have all ended has the same jobs and metrics for good (an output commit is never rewritten), so a
page seen once costs one ListPipeline the next time, plus one ListBranch per output repo for the
tags. A pipeline deleted or made anew under the same name (its salt changes) drops its cached jobs.

A `metrics.json` that is not a JSON object of numbers is reported as unreadable with its path and
why; it breaks nothing else. A token the cluster refuses for these reads is an answer (`hidden`).
"""

import json
import math
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Union

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pachyderm_sdk.api import pfs, pps
from pydantic import BaseModel, Field

from ..rules import is_commit_id, is_name
from . import versions
from .errors import BadRequest, Conflict, NotFound
from .name_checks import check_branch
from .pipeline_jobs import HIDDEN, Hidden, PipelineJobs, _job, _reads

METRICS_FILE = "/metrics.json"
MAX_METRICS_BYTES = 64 * 1024
MAX_METRICS_KEYS = 200
MAX_COMMITS = versions.MAX_PAGE_SIZE
READERS = 8
CACHED_COMMITS = 100_000


class JobMetrics(BaseModel):
    pipeline: str = Field(description="project/name")
    id: str
    state: str = Field(description="pachd's JobState name")
    ended: bool
    reason: str = ""
    output_commit: str = Field(description="project/repo@id")
    metrics: str = Field(
        description="ok, none (no metrics.json), unreadable, running (the job has not ended), "
        "failed (the job ended without success)"
    )
    values: dict[str, Union[int, float]] = Field(default_factory=dict, description="metrics.json's numbers when ok")
    path: str = Field("", description="project/repo@id:/metrics.json")
    problem: str = Field("", description="why metrics.json is unreadable")
    tags: list[str] = Field(default_factory=list, description="branches of the output repo at the output commit")


class CommitMetrics(BaseModel):
    commit: str
    ended: bool = Field(description="every job of the commit has ended")
    jobs: list[JobMetrics]


class MetricsRequest(BaseModel):
    commits: list[str] = Field(max_length=MAX_COMMITS)


class MetricsAnswer(BaseModel):
    state: str = Field(description="none (no pipeline reads the branch), hidden (the token may not see), jobs")
    message: str
    pipelines: list[str] = Field(description="project/name of every pipeline reading the branch")
    commits: list[CommitMetrics] = Field(description="in the order asked")


class JobTagRequest(BaseModel):
    name: str = Field(max_length=1000)
    commit: str = Field(max_length=1000, description="the version (a commit of the branch) whose job made the output")
    pipeline: str = Field(max_length=200, description="project/name, or the name in the branch's project")


class JobTagAnswer(BaseModel):
    name: str
    repo: str = Field(description="project/repo: the pipeline's output repo")
    commit: str = Field(description="the job's output commit")
    pipeline: str
    version: str
    created: bool


def parse_metrics(data: bytes) -> tuple[dict, str]:
    """({key: number}, "") of a metrics.json, or ({}, why it is not one)."""
    try:
        content = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return {}, f"not JSON ({exc.__class__.__name__}: {str(exc)[:120]})"
    if not isinstance(content, dict):
        return {}, f'a JSON {type(content).__name__}, not an object of numbers like {{"accuracy": 0.9}}'
    if len(content) > MAX_METRICS_KEYS:
        return {}, f"{len(content)} keys, more than {MAX_METRICS_KEYS}"
    for key, value in content.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return {}, f'"{key[:80]}" holds a {type(value).__name__}, not a number: keys must be flat, values numbers'
        if not math.isfinite(value):
            return {}, f'"{key[:80]}" is {value}, not a finite number'
    return {k: float(v) if isinstance(v, float) else v for k, v in content.items()}, ""


class ModelMetrics:
    """The reads behind the routes, over the mount server's cluster connection, with the cache."""

    def __init__(self, remote: Callable):
        self.remote = remote
        self.jobs = PipelineJobs(remote)
        # ((project, repo, branch), commit id) -> (CommitMetrics, {pipeline: salt})
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def _pipelines(self) -> list:
        return self.jobs._call(
            "list_pipeline", "listing pipelines", lambda c: c.pps.list_pipeline(details=True), stream=True
        )

    def _read_metrics(self, job: JobMetrics) -> JobMetrics:
        project, rest = job.output_commit.split("/", 1)
        repo, commit = rest.split("@", 1)
        job.path = f"{job.output_commit}:{METRICS_FILE}"
        c = pfs.Commit(repo=pfs.Repo(name=repo, type="user", project=pfs.Project(name=project)), id=commit)
        data = bytearray()
        try:
            for chunk in self.remote().read(c, METRICS_FILE, 0):
                data += chunk
                if len(data) > MAX_METRICS_BYTES:
                    break
        except NotFound:
            job.metrics = "none"
            return job
        if len(data) > MAX_METRICS_BYTES:
            job.metrics, job.problem = "unreadable", f"larger than {MAX_METRICS_BYTES // 1024} KiB"
            return job
        values, problem = parse_metrics(bytes(data))
        job.metrics, job.values, job.problem = ("unreadable", {}, problem) if problem else ("ok", values, "")
        return job

    def _commit_jobs(self, commit: str) -> list[JobMetrics]:
        infos = self.jobs._call(
            "inspect_job_set",
            f"listing the jobs of commit {commit}",
            lambda c: c.pps.inspect_job_set(job_set=pps.JobSet(id=commit)),
            stream=True,
        )
        found = []
        for info in infos:
            j = _job(info)
            state = "running" if not j.ended else "failed" if j.state != "JOB_SUCCESS" else "ok"
            found.append(
                JobMetrics(
                    pipeline=j.pipeline, id=j.id, state=j.state, ended=j.ended, reason=j.reason,
                    output_commit=j.output_commit, metrics=state,
                )
            )  # fmt: skip
        return found

    def _fresh(self, where: tuple, commit: str, finished: bool, salts: dict, head: bool = False) -> CommitMetrics:
        jobs = self._commit_jobs(commit)
        successful = [j for j in jobs if j.metrics == "ok" and j.output_commit]
        with ThreadPoolExecutor(max_workers=READERS) as pool:
            list(pool.map(self._read_metrics, successful))
        answer = CommitMetrics(commit=commit, ended=all(j.ended for j in jobs), jobs=jobs)
        # nothing of it can change any more; but the branch's head with no job yet may still get
        # some (a commit's jobs are listed a moment after it), so it is asked again next time
        if finished and answer.ended and (jobs or not head):
            with self._lock:
                self._cache[(where, commit)] = (answer, {j.pipeline: salts.get(j.pipeline) for j in jobs})
                while len(self._cache) > CACHED_COMMITS:
                    self._cache.popitem(last=False)
        return answer

    def _cached(self, where: tuple, commit: str, salts: dict) -> Optional[CommitMetrics]:
        with self._lock:
            hit = self._cache.get((where, commit))
            if hit is not None:
                self._cache.move_to_end((where, commit))
        if hit is None:
            return None
        answer, made_by = hit
        jobs = [j for j in answer.jobs if salts.get(j.pipeline) == made_by.get(j.pipeline)]
        return CommitMetrics(commit=commit, ended=answer.ended, jobs=[j.model_copy(deep=True) for j in jobs])

    def _tags(self, answers: list[CommitMetrics]) -> None:
        """Each job's output commit's tags: one ListBranch per output repo on the page."""
        repos = {j.output_commit.split("@", 1)[0] for a in answers for j in a.jobs if j.output_commit}
        heads = {}
        for uri in sorted(repos):
            project, repo = uri.split("/", 1)
            r = pfs.Repo(name=repo, type="user", project=pfs.Project(name=project))
            try:
                branches = self.jobs._call(
                    "list_branch", f"listing the branches of {uri}", lambda c: c.pfs.list_branch(repo=r), stream=True
                )
            except NotFound:  # the output repo went with its pipeline
                continue
            for b in branches:
                heads.setdefault(f"{uri}@{b.head.id}", []).append(b.branch.name)
        for a in answers:
            for j in a.jobs:
                j.tags = sorted(n for n in heads.get(j.output_commit, []) if n != "master")

    def metrics(self, project: str, repo: str, branch: str, commits: list[str]) -> MetricsAnswer:
        for commit in commits:
            if not is_commit_id(commit):
                raise BadRequest(f"commits: {commit[:100]!r} is not a commit id (32 lowercase hex characters)")
        empty = dict(pipelines=[], commits=[CommitMetrics(commit=c, ended=True, jobs=[]) for c in commits])
        where = (project, repo, branch)
        try:
            infos = self._pipelines()
            salts = {f"{i.pipeline.project.name or 'default'}/{i.pipeline.name}": i.details.salt for i in infos}
            readers = sorted(
                f"{i.pipeline.project.name or 'default'}/{i.pipeline.name}"
                for i in infos
                if _reads(i.details.input if i.details else None, project, repo, branch)
            )
            if not readers:
                return MetricsAnswer(state="none", message=f"no pipeline reads {project}/{repo}@{branch}", **empty)
            answers = {c: self._cached(where, c, salts) for c in commits}
            todo = [c for c, a in answers.items() if a is None]
            # what is kept was checked to be a version; the others are checked by the branch's history
            # (one ListCommit; pachd does not say a commit's branch)
            history = versions.history(self.remote(), *where) if todo else []
            finished = {r[0]: bool(r[3]) for r in history}
            strangers = [c for c in todo if c not in finished]
            if strangers:
                raise BadRequest(f"commits: {strangers[0]} is not a version of {project}/{repo}@{branch}")
            with ThreadPoolExecutor(max_workers=READERS) as pool:
                head = history[0][0] if history else None
                fresh = pool.map(lambda c: self._fresh(where, c, finished[c], salts, head=c == head), todo)
                for c, a in zip(todo, fresh):
                    answers[c] = a
            ordered = [answers[c] for c in commits]
            self._tags(ordered)
        except Hidden as e:
            return MetricsAnswer(state="hidden", message=f"{HIDDEN}: {e.reason}", **empty)
        running = sum(1 for a in ordered if not a.ended)
        message = f"{len(readers)} pipeline(s) read {project}/{repo}@{branch}"
        if running:
            message += f"; the jobs of {running} version(s) have not ended yet"
        return MetricsAnswer(state="jobs", message=message, pipelines=readers, commits=ordered)

    def tag_job_output(self, project: str, repo: str, branch: str, req: JobTagRequest) -> JobTagAnswer:
        """A branch `name` of the pipeline's output repo at the output commit of the job that
        version `commit` started; the naming rules of a version's tag (versions.place_tag)."""
        if not is_commit_id(req.commit):
            raise BadRequest(f"commit: {req.commit[:100]!r} is not a commit id (32 lowercase hex characters)")
        pipe_project, _, pipe_name = req.pipeline.rpartition("/")
        pipe_project = pipe_project or project
        if not (is_name(pipe_project) and is_name(pipe_name)):
            raise BadRequest(f"pipeline: {req.pipeline[:100]!r} is not project/name of a pipeline")
        pipeline = f"{pipe_project}/{pipe_name}"
        ids = {row[0] for row in versions.history(self.remote(), project, repo, branch)}
        if req.commit not in ids:
            raise BadRequest(f"commit: {req.commit} is not a version of {project}/{repo}@{branch}")
        job_msg = pps.Job(pipeline=pps.Pipeline(name=pipe_name, project=pfs.Project(name=pipe_project)), id=req.commit)
        try:
            info = self.jobs._call(
                "inspect_job", f"looking up job {req.commit} of {pipeline}", lambda c: c.pps.inspect_job(job=job_msg)
            )
        except Hidden as e:
            raise Conflict(f"pipeline: {HIDDEN}: {e.reason}") from None
        except (NotFound, BadRequest):
            raise NotFound(
                f"pipeline: {pipeline} has no job for version {req.commit} (the jobs a version started are on "
                "its row of the Versions page)"
            ) from None
        job = _job(info)
        if job.state != "JOB_SUCCESS":
            raise Conflict(
                f"the job of {pipeline} for version {req.commit} is {job.state}: only the output of a job that "
                "succeeded can be tagged"
            )
        out = info.output_commit
        out_repo = pfs.Repo(
            name=out.repo.name, type="user", project=pfs.Project(name=out.repo.project.name or "default")
        )
        output_branch = out.branch.name if out.branch and out.branch.name else "master"
        tag, created = versions.place_tag(self.remote(), out_repo, req.name, out.id, output_branch)
        return JobTagAnswer(
            name=tag.name, repo=f"{out_repo.project.name}/{out_repo.name}", commit=tag.commit, pipeline=pipeline,
            version=req.commit, created=created,
        )  # fmt: skip


def add_routes(app: FastAPI, remote: Callable, login: list) -> None:
    """POST .../metrics and POST .../job-tags under /repos/{project}/{repo}/branches/{branch}."""
    reads = ModelMetrics(remote)
    base = "/repos/{project}/{repo}/branches/{branch}"

    @app.post(base + "/metrics", response_model=MetricsAnswer, dependencies=login)
    def version_metrics(project: str, repo: str, branch: str, req: MetricsRequest):
        check_branch(project, repo, branch)
        return reads.metrics(project, repo, branch, req.commits)

    @app.post(base + "/job-tags", response_model=JobTagAnswer, status_code=201, dependencies=login)
    def tag_job_output(project: str, repo: str, branch: str, req: JobTagRequest):
        check_branch(project, repo, branch)
        made = reads.tag_job_output(project, repo, branch, req)
        return JSONResponse(made.model_dump(), status_code=201 if made.created else 200)
