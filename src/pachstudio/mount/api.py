"""The HTTP API (pachctl mount-server v2.5+ shape plus what Label Studio needs): FastAPI routes
that validate requests and translate them onto the mount table. docs/INTERFACES.md is the contract.
"""

import json
from dataclasses import asdict, fields
from typing import Iterator, Literal, Optional

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, create_model

from ..cluster import ConfigError, normalize_address
from ..rules import (
    COMMIT_REF_PATTERN as COMMIT_ID,
    MAX_COMMIT_REF,
    MAX_NAME,
    NAME_PATTERN as PACH_NAME,
    clean_path,
    climbs,
)
from .errors import BadRequest, MountError
from .table import MountInfo, MountSpec, MountTable, check_mount_name


class MountRequestItem(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    project: str = Field("default", pattern=PACH_NAME, max_length=MAX_NAME)
    repo: str = Field(pattern=PACH_NAME, max_length=MAX_NAME)
    branch: str = Field("master", pattern=PACH_NAME, max_length=MAX_NAME)
    commit: Optional[str] = Field(None, pattern=COMMIT_ID, max_length=MAX_COMMIT_REF)
    mode: str = Field("ro", pattern=r"^(ro|rw)$")
    paths: Optional[list[str]] = Field(None, max_length=10_000)  # read-only: show only these
    idle: int = Field(0, ge=0, le=10**7)  # read-only: unmounted after this many seconds unused (0: never)


class MountRequest(BaseModel):
    mounts: list[MountRequestItem] = Field(min_length=1)


class UnmountRequest(BaseModel):
    mounts: list[str] = Field(min_length=1)
    discard: bool = False
    commit: bool = False
    keep_staged: bool = False  # a rw mount with staged changes stays (status "kept: ...") instead of committing


class UnmountAllRequest(BaseModel):
    discard: bool = False
    commit: bool = False


class CommitRequest(BaseModel):
    mount: str
    description: Optional[str] = Field(None, max_length=100_000)


class RefreshRequest(BaseModel):
    mount: str


class ConfigRequest(BaseModel):
    pachd_address: str = Field(min_length=1)
    server_cas: Optional[str] = None


# -- answers -------------------------------------------------------------------------------------
class Health(BaseModel):
    status: str


class Config(BaseModel):
    cluster_status: Literal["INVALID", "AUTH_ENABLED", "AUTH_DISABLED"]
    pachd_address: str
    project: str  # the context's project, else "default"


class ProjectName(BaseModel):
    name: str


class ProjectAnswer(BaseModel):
    """pfs ProjectInfo, as pachctl's mount-server answers it."""

    project: ProjectName
    description: str = ""
    created_at: Optional[str] = Field(None, description="RFC 3339 time")


class RepoAnswer(BaseModel):
    project: str
    repo: str
    branches: list[str]
    authorization: str


class _MountState(BaseModel):
    @classmethod
    def of(cls, info: MountInfo) -> "MountState":
        return cls(**asdict(info))


# the fields of table.MountInfo; state: mounted, committing, or error (see `failed`)
MountState = create_model("MountState", __base__=_MountState, **{f.name: (f.type, ...) for f in fields(MountInfo)})


class Mounts(BaseModel):
    mounted: list[MountState]
    unmounted: list[RepoAnswer] = Field(
        description="every repo no mount shows (as pachctl's; empty when the cluster cannot be reached)"
    )
    failed: list[MountState] = Field(
        description='remembered mounts that could not mount again (state "error", status says why)'
    )


class CommitAnswer(Mounts):
    """pachctl answers the mounts; the keys below say what the commit held."""

    commit: Optional[str] = Field(description="the new commit; null when nothing was staged")
    added: int
    changed: int
    deleted: int
    message: str


class StagedAnswer(BaseModel):
    added: list[str]
    changed: list[str]
    deleted: list[str]


class Stats(BaseModel):
    calls: dict[str, int]
    cache_bytes: int


class JsonBodies:
    """Every body this API takes is JSON: read it as JSON whatever its Content-Type says (pachctl's
    client sends none, and a form or text/plain type would make FastAPI see a string)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in ("PUT", "POST", "PATCH"):
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-type"]
            scope = dict(scope, headers=headers + [(b"content-type", b"application/json")])
        await self.app(scope, receive, send)


def _ndjson(rows: Iterator[dict]) -> Iterator[bytes]:
    """Lines batched into ~64 KiB writes: 100,000 small writes would dominate the listing."""
    buf = []
    size = 0
    for row in rows:
        line = json.dumps(row, separators=(",", ":")) + "\n"
        buf.append(line)
        size += len(line)
        if size >= 65536:
            yield "".join(buf).encode()
            buf, size = [], 0
    if buf:
        yield "".join(buf).encode()


def _first_then_rest(rows: Iterator[dict]) -> Iterator[dict]:
    """Runs the generator to its first row now, so errors become HTTP codes, not a cut stream."""
    rows = iter(rows)
    try:
        first = next(rows)
    except StopIteration:
        return iter(())

    def gen():
        yield first
        yield from rows

    return gen()


def build_app(table: MountTable, reconfigure) -> FastAPI:
    app = FastAPI(
        title="pachstudio mount server",
        description="Pachyderm repos as folders under one FUSE mount; read-write "
        "mounts stage changes locally and commit them as one commit.",
    )
    app.add_middleware(JsonBodies)

    @app.exception_handler(MountError)
    async def mount_error(request: Request, exc: MountError):
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        problems = []
        for err in exc.errors():
            if err.get("type") == "json_invalid":
                problems.append(f"body: not valid JSON ({err.get('ctx', {}).get('error', '')})")
                continue
            loc = ".".join(str(p) for p in err.get("loc", ())[1:]) or "body"
            problems.append(f"{loc}: {err.get('msg')}")
        return JSONResponse({"detail": "; ".join(problems)}, status_code=400)

    def remote():
        return table.remote

    @app.get("/health", response_model=Health)
    def health():
        return Health(status="running")

    def config_answer() -> Config:
        r = remote()
        return Config(cluster_status=r.status(), pachd_address=r.address, project=r.project)

    @app.get("/config", response_model=Config)
    def get_config():
        return config_answer()

    @app.put("/config", response_model=Config)
    def put_config(req: ConfigRequest):
        try:
            address = normalize_address(req.pachd_address, "pachd_address")
        except ConfigError as e:
            raise BadRequest(str(e)) from None
        reconfigure(address, req.server_cas)
        return config_answer()

    @app.get("/projects", response_model=list[ProjectAnswer])
    def projects():
        return [
            ProjectAnswer(
                project=ProjectName(name=p.project.name),
                description=p.description or "",
                created_at=_rfc3339(p.created_at),
            )
            for p in remote().projects()
        ]

    @app.get("/repos", response_model=list[RepoAnswer])
    def repos():
        return [RepoAnswer(**asdict(r)) for r in table.repos()]

    @app.get("/mounts", response_model=Mounts)
    def mounts():
        listing = table.listing()
        return Mounts(
            mounted=[MountState.of(m) for m in listing.mounted],
            unmounted=[RepoAnswer(**asdict(r)) for r in listing.unmounted],
            failed=[MountState.of(m) for m in listing.failed],
        )

    @app.put("/_mount", response_model=Mounts)
    def mount(req: MountRequest):
        names = [m.name for m in req.mounts]
        if len(set(names)) != len(names):
            raise BadRequest("mounts: each name may appear once")
        for item in req.mounts:
            spec = MountSpec(
                name=check_mount_name(item.name),
                project=item.project,
                repo=item.repo,
                branch=item.branch,
                commit=item.commit or None,
                mode=item.mode,
                paths=_mount_paths(item.paths),
                idle=item.idle,
            )
            if item.idle and item.mode != "ro":
                raise BadRequest("idle: only read-only mounts are unmounted when unused")
            table.mount(spec)
        return mounts()

    @app.put("/_unmount", response_model=Mounts)
    def unmount(req: UnmountRequest):
        for name in req.mounts:
            table.get(name)
        for name in req.mounts:
            table.unmount(name, discard=req.discard, commit=req.commit, keep_staged=req.keep_staged)
        return mounts()

    @app.put("/_unmount_all", response_model=Mounts)
    def unmount_all(req: Optional[UnmountAllRequest] = None):
        req = req or UnmountAllRequest()
        table.unmount_all(discard=req.discard, commit=req.commit)
        return mounts()

    @app.put("/_refresh", response_model=MountState)
    def refresh(req: RefreshRequest):
        return MountState.of(table.refresh(req.mount))

    @app.put("/_commit", response_model=CommitAnswer)
    def commit(req: CommitRequest):
        result = table.commit(req.mount, req.description)
        return CommitAnswer(**dict(mounts()), **asdict(result))

    @app.get("/mounts/{name}/files")
    def files(name: str, prefix: str = "", recursive: bool = True):
        _check_prefix(prefix)
        rows = _first_then_rest(table.files(name, prefix, recursive))
        return StreamingResponse(_ndjson(rows), media_type="application/x-ndjson")

    @app.get("/mounts/{name}/diff")
    def diff(name: str, since: str = Query(..., min_length=1, pattern=COMMIT_ID)):
        rows = _first_then_rest(table.diff(name, since))
        return StreamingResponse(_ndjson(rows), media_type="application/x-ndjson")

    @app.get("/mounts/{name}/staged", response_model=StagedAnswer)
    def staged(name: str):
        return StagedAnswer(**asdict(table.staged(name)))

    @app.get("/stats", response_model=Stats)
    def stats():
        """Cluster calls made so far, by SDK method: shows what an operation cost."""
        return Stats(calls=dict(remote().calls), cache_bytes=table.cache.total)

    return app


def _rfc3339(when) -> Optional[str]:
    if when is None or when.timestamp() <= 0:  # betterproto reads an unset time as 1970
        return None
    return when.isoformat().replace("+00:00", "Z")


def _mount_paths(paths: Optional[list[str]]) -> tuple:
    """Repo paths, normalised; () when the whole repo is asked for."""
    out = []
    for p in paths or ():
        if not p or len(p) > 4096 or any(c < " " for c in p) or "\\" in p or climbs(p):
            raise BadRequest(
                f"paths: {p[:200]!r} is not a path inside the repo (no '..', "
                "backslashes or control characters, at most 4096 characters)"
            )
        out.append(clean_path(p))
    return () if "/" in out else tuple(sorted(set(out)))


def _check_prefix(prefix: str) -> None:
    if "\x00" in prefix or "\\" in prefix or climbs(prefix):
        raise BadRequest(f"prefix {prefix!r}: a path inside the repo, without '..'")
