"""The HTTP API (pachctl mount-server v2.5+ shape plus what Label Studio needs): FastAPI routes
that validate requests and translate them onto the mount table. docs/INTERFACES.md is the contract.
"""

import json
import logging
from dataclasses import asdict, fields
from typing import Any, Iterator, Literal, Optional

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, create_model

from ..cluster import ConfigError, normalize_address, save_session_token
from ..rules import (
    COMMIT_REF_PATTERN as COMMIT_ID,
    MAX_COMMIT_REF,
    MAX_NAME,
    NAME_PATTERN as PACH_NAME,
    clean_path,
    climbs,
)
from . import diffs, glob_read, history, model_metrics, versions
from .datum_mounts import DatumMounts
from .errors import BadRequest, MountError, Unauthenticated, Unavailable
from .pipeline_jobs import register as register_pipeline_jobs
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


class DatumMountRequest(BaseModel):
    """A pipeline spec, or just its `input` (pachctl reads the body as a pipeline manifest)."""

    input: Any = Field(description="the input spec: pfs (repo, glob, branch?, project?, name?), cross, union, join")


class ConfigRequest(BaseModel):
    pachd_address: str = Field(min_length=1)
    server_cas: Optional[str] = None


log = logging.getLogger("pachstudio.mount")


# -- answers -------------------------------------------------------------------------------------
class Health(BaseModel):
    status: str


class Config(BaseModel):
    cluster_status: Literal["INVALID", "AUTH_ENABLED", "AUTH_DISABLED"]
    pachd_address: str
    project: str  # the context's project, else "default"
    cluster_error: Optional[str] = None  # why cluster_status is INVALID (e.g. a refused TLS certificate)


class ProjectName(BaseModel):
    name: str


class ProjectAnswer(BaseModel):
    """pfs ProjectInfo, as pachctl's mount-server answers it."""

    project: ProjectName
    description: str = ""
    created_at: Optional[dict[str, int]] = Field(
        None, description='{"seconds", "nanos"}: pachctl marshals the protobuf Timestamp with encoding/json'
    )


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
        description="every repo, mounted or not (as pachctl's; empty when the cluster cannot be reached)"
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


class DatumPositionAnswer(BaseModel):
    """pachctl's MountDatumResponse; `id` is pachd's datum ID (pachctl answers "")."""

    id: str
    idx: int
    num_datums: int
    all_datums_received: bool


class DatumsAnswer(BaseModel):
    """pachctl's DatumsResponse: zero values when no datums are mounted."""

    num_datums: int
    input: Optional[dict] = Field(description="the input spec being shown, with pachctl's defaults filled in")
    idx: int
    all_datums_received: bool


class StagedAnswer(BaseModel):
    added: list[str]
    changed: list[str]
    deleted: list[str]


class LoginTokenRequest(BaseModel):
    token: Optional[str] = Field(None, min_length=1, description="a Pachyderm token (robot or session)")
    oidc: Optional[str] = Field(None, min_length=1, description="the oidc_state of PUT /auth/_login")


class LoginAnswer(BaseModel):
    auth_url: str
    oidc_state: str


class LoginTokenAnswer(Config):
    username: str  # who the cluster says the token is; the token itself is never answered


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


def _ndjson_response(rows: Iterator[dict]) -> StreamingResponse:
    return StreamingResponse(_ndjson(_first_then_rest(rows)), media_type="application/x-ndjson")


def build_app(table: MountTable, reconfigure) -> FastAPI:
    app = FastAPI(
        title="pachstudio mount server",
        description="Pachyderm repos as folders under one FUSE mount; read-write "
        "mounts stage changes locally and commit them as one commit.",
    )
    app.add_middleware(JsonBodies)
    datum_mounts = DatumMounts(table)

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

    def require_login():
        """pachctl's initialChecks(authCheck): auth on and no token held is 401."""
        if remote().needs_login():
            raise Unauthenticated(
                "user unauthenticated: the cluster has auth on and no token is set; "
                'log in with PUT /auth/_login_token {"token": ...}'
            )

    login = [Depends(require_login)]

    @app.get("/health", response_model=Health)
    def health():
        return Health(status="running")

    def config_answer() -> Config:
        r = remote()
        status = r.status()
        return Config(cluster_status=status, pachd_address=r.address, project=r.project, cluster_error=r.last_error)

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

    @app.get("/projects", response_model=list[ProjectAnswer], dependencies=login)
    def projects():
        return [
            ProjectAnswer(
                project=ProjectName(name=p.project.name),
                description=p.description or "",
                created_at=_timestamp(p.created_at),
            )
            for p in remote().projects()
        ]

    @app.get("/repos", response_model=list[RepoAnswer], dependencies=login)
    def repos():
        return [RepoAnswer(**asdict(r)) for r in table.repos()]

    @app.get("/mounts", response_model=Mounts, dependencies=login)
    def mounts():
        listing = table.listing()
        return Mounts(
            mounted=[MountState.of(m) for m in listing.mounted],
            unmounted=[RepoAnswer(**asdict(r)) for r in listing.unmounted],
            failed=[MountState.of(m) for m in listing.failed],
        )

    @app.put("/_mount", response_model=Mounts, dependencies=login)
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

    @app.put("/_unmount", response_model=Mounts, dependencies=login)
    def unmount(req: UnmountRequest):
        for name in req.mounts:
            table.get(name)
        for name in req.mounts:
            table.unmount(name, discard=req.discard, commit=req.commit, keep_staged=req.keep_staged)
        return mounts()

    @app.put("/_unmount_all", response_model=Mounts, dependencies=login)
    def unmount_all(req: Optional[UnmountAllRequest] = None):
        req = req or UnmountAllRequest()
        table.unmount_all(discard=req.discard, commit=req.commit)
        datum_mounts.reset()
        return mounts()

    @app.put("/datums/_mount", response_model=DatumPositionAnswer, dependencies=login)
    def mount_datums(req: DatumMountRequest):
        return DatumPositionAnswer(**asdict(datum_mounts.mount(req.input)))

    @app.put("/datums/_next", response_model=DatumPositionAnswer, dependencies=login)
    def next_datum():
        return DatumPositionAnswer(**asdict(datum_mounts.step(1)))

    @app.put("/datums/_prev", response_model=DatumPositionAnswer, dependencies=login)
    def prev_datum():
        return DatumPositionAnswer(**asdict(datum_mounts.step(-1)))

    @app.get("/datums", response_model=DatumsAnswer, dependencies=login)
    def datums():
        return DatumsAnswer(**asdict(datum_mounts.state()))

    @app.put("/_refresh", response_model=MountState, dependencies=login)
    def refresh(req: RefreshRequest):
        return MountState.of(table.refresh(req.mount))

    @app.put("/_commit", response_model=CommitAnswer, dependencies=login)
    def commit(req: CommitRequest):
        result = table.commit(req.mount, req.description)
        return CommitAnswer(**dict(mounts()), **asdict(result))

    # -- the session token, as pachctl mount-server's /auth calls -------------------------------
    @app.put("/auth/_login", response_model=LoginAnswer)
    def auth_login():
        """OIDC login: the cluster's login URL and state. The embedded server has no OIDC, so it
        answers 500 as pachctl's does, saying to log in with a token instead."""
        r = remote()
        if r.config is None:
            raise Unavailable("not connected to a cluster")
        if r.status() != "AUTH_ENABLED":
            raise MountError("auth isn't activated on the cluster")
        try:
            url, state = r.oidc_login()
        except MountError:
            raise MountError(
                "no authentication providers configured: OIDC login is not available on this cluster; "
                'log in with PUT /auth/_login_token {"token": ...} (a token from `pachctl auth get-robot-token`)'
            ) from None
        return LoginAnswer(auth_url=url, oidc_state=state)

    @app.put("/auth/_login_token", response_model=LoginTokenAnswer)
    def auth_login_token(req: LoginTokenRequest):
        """Sets the session token (a token, or the OIDC state of /auth/_login) once the cluster
        accepts it, and keeps it as pachctl does: in the config file's active context."""
        r = remote()
        if r.config is None:
            raise Unavailable("not connected to a cluster")
        if bool(req.token) == bool(req.oidc):
            raise BadRequest('send either {"token": "<Pachyderm token>"} or {"oidc": "<oidc_state of /auth/_login>"}')
        old = r.config.token
        token = req.token or r.authenticate(req.oidc)
        r.set_token(token)
        try:
            username = r.who_am_i()
        except Exception as e:
            r.set_token(old)
            if isinstance(e, MountError):
                raise
            raise MountError("auth isn't activated on the cluster") from None
        try:
            save_session_token(token)
        except (OSError, ValueError, KeyError) as e:
            log.warning("session token kept in memory only: cannot write the config file (%s)", type(e).__name__)
        return LoginTokenAnswer(**dict(config_answer()), username=username)

    @app.put("/auth/_logout", dependencies=login)
    def auth_logout():
        """Unmounts everything (committing what is staged, as pachctl), then drops the token."""
        r = remote()
        if r.config is None:
            raise Unavailable("not connected to a cluster")
        table.unmount_all()
        r.set_token(None)
        try:
            save_session_token(None)
        except (OSError, ValueError, KeyError) as e:
            log.warning("cannot remove the session token from the config file (%s)", type(e).__name__)
        return {}

    @app.get("/mounts/{name}/files", dependencies=login)
    def files(name: str, prefix: str = "", recursive: bool = True):
        _check_prefix(prefix)
        return _ndjson_response(table.files(name, prefix, recursive))

    @app.get("/mounts/{name}/diff", dependencies=login)
    def diff(name: str, since: str = Query(..., min_length=1, pattern=COMMIT_ID)):
        return _ndjson_response(table.diff(name, since))

    @app.get("/mounts/{name}/staged", response_model=StagedAnswer)
    def staged(name: str):
        return StagedAnswer(**asdict(table.staged(name)))

    versions.add_routes(app, remote, login)
    register_pipeline_jobs(app, remote)

    @app.get("/stats", response_model=Stats)
    def stats():
        """Cluster calls made so far, by SDK method: shows what an operation cost."""
        return Stats(calls=dict(remote().calls), cache_bytes=table.cache.total)

    diffs.add_routes(app, table, login)
    glob_read.add_routes(app, remote, login, _ndjson_response)
    history.add_routes(app, remote, login)
    model_metrics.add_routes(app, remote, login)
    return app


def _timestamp(when) -> Optional[dict]:
    if when is None or when.timestamp() <= 0:  # betterproto reads an unset time as 1970
        return None
    seconds = int(when.timestamp())
    return {"seconds": seconds, "nanos": when.microsecond * 1000}


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
