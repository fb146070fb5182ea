"""The HTTP API (pachctl mount-server v2.5+ shape plus what Label Studio needs): FastAPI routes
that validate requests and translate them onto the mount table. docs/INTERFACES.md is the contract.
"""
import json
from typing import Iterator, Optional

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from ..cluster import ConfigError, normalize_address
from ..rules import COMMIT_REF_PATTERN as COMMIT_ID
from ..rules import MAX_COMMIT_REF, MAX_NAME, climbs
from ..rules import NAME_PATTERN as PACH_NAME
from ..rules import clean_path
from .errors import BadRequest, MountError
from .table import MountSpec, MountTable, check_mount_name


class MountRequestItem(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    project: str = Field("default", pattern=PACH_NAME, max_length=MAX_NAME)
    repo: str = Field(pattern=PACH_NAME, max_length=MAX_NAME)
    branch: str = Field("master", pattern=PACH_NAME, max_length=MAX_NAME)
    commit: Optional[str] = Field(None, pattern=COMMIT_ID, max_length=MAX_COMMIT_REF)
    mode: str = Field("ro", pattern=r"^(ro|rw)$")
    paths: Optional[list[str]] = Field(None, max_length=10_000)  # read-only: show only these


class MountRequest(BaseModel):
    mounts: list[MountRequestItem] = Field(min_length=1)


class UnmountRequest(BaseModel):
    mounts: list[str] = Field(min_length=1)
    discard: bool = False
    commit: bool = False


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
    app = FastAPI(title="pachstudio mount server",
                  description="Pachyderm repos as folders under one FUSE mount; read-write "
                              "mounts stage changes locally and commit them as one commit.")

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

    @app.get("/health")
    def health():
        return {"status": "running"}

    def config_answer():
        r = remote()
        return {"cluster_status": r.status(), "pachd_address": r.address, "project": r.project}

    @app.get("/config")
    def get_config():
        return config_answer()

    @app.put("/config")
    def put_config(req: ConfigRequest):
        try:
            address = normalize_address(req.pachd_address, "pachd_address")
        except ConfigError as e:
            raise BadRequest(str(e)) from None
        reconfigure(address, req.server_cas)
        return config_answer()

    @app.get("/projects")
    def projects():
        return [{"project": p.project.name} for p in remote().projects()]

    @app.get("/repos")
    def repos():
        out = []
        for info in remote().repos():
            if info.repo.type and info.repo.type != "user":
                continue
            out.append({"project": info.repo.project.name if info.repo.project else "default",
                        "repo": info.repo.name,
                        "branches": sorted(b.name for b in info.branches or []),
                        "authorization": "off"})
        return out

    @app.get("/mounts")
    def mounts():
        with table.lock:
            current = list(table.mounts.values())
            failed = list(table.failed.values())
        return {"mounted": [table.state(m) for m in current],
                "unmounted": [table.failed_state(spec, why) for spec, why in failed]}

    @app.put("/_mount")
    def mount(req: MountRequest):
        names = [m.name for m in req.mounts]
        if len(set(names)) != len(names):
            raise BadRequest("mounts: each name may appear once")
        done = []
        for item in req.mounts:
            spec = MountSpec(name=check_mount_name(item.name), project=item.project, repo=item.repo,
                             branch=item.branch, commit=item.commit or None, mode=item.mode,
                             paths=_mount_paths(item.paths))
            done.append(table.mount(spec))
        return {"mounted": [table.state(m) for m in done]}

    @app.put("/_unmount")
    def unmount(req: UnmountRequest):
        for name in req.mounts:
            table.get(name)
        for name in req.mounts:
            table.unmount(name, discard=req.discard, commit=req.commit)
        return mounts()

    @app.put("/_unmount_all")
    def unmount_all(req: Optional[UnmountAllRequest] = None):
        req = req or UnmountAllRequest()
        for name in list(table.mounts):
            table.unmount(name, discard=req.discard, commit=req.commit)
        with table.lock:
            table.failed.clear()
            table._save()
        return mounts()

    @app.put("/_refresh")
    def refresh(req: RefreshRequest):
        return table.state(table.refresh(req.mount))

    @app.put("/_commit")
    def commit(req: CommitRequest):
        return table.commit(req.mount, req.description)

    @app.get("/mounts/{name}/files")
    def files(name: str, prefix: str = "", recursive: bool = True):
        _check_prefix(prefix)
        rows = _first_then_rest(table.files(name, prefix, recursive))
        return StreamingResponse(_ndjson(rows), media_type="application/x-ndjson")

    @app.get("/mounts/{name}/diff")
    def diff(name: str, since: str = Query(..., min_length=1, pattern=COMMIT_ID)):
        rows = _first_then_rest(table.diff(name, since))
        return StreamingResponse(_ndjson(rows), media_type="application/x-ndjson")

    @app.get("/mounts/{name}/staged")
    def staged(name: str):
        mount = table.get(name)
        if mount.staging is None:
            return {"added": [], "changed": [], "deleted": []}
        return mount.staging.staged()

    @app.get("/stats")
    def stats():
        """Cluster calls made so far, by SDK method: shows what an operation cost."""
        return {"calls": dict(remote().calls), "cache_bytes": table.cache.total}

    return app


def _mount_paths(paths: Optional[list[str]]) -> tuple:
    """Repo paths, normalised; () when the whole repo is asked for."""
    out = []
    for p in paths or ():
        if not p or len(p) > 4096 or any(c < " " for c in p) or "\\" in p or climbs(p):
            raise BadRequest(f"paths: {p[:200]!r} is not a path inside the repo (no '..', "
                             "backslashes or control characters, at most 4096 characters)")
        out.append(clean_path(p))
    return () if "/" in out else tuple(sorted(set(out)))


def _check_prefix(prefix: str) -> None:
    if "\x00" in prefix or "\\" in prefix or climbs(prefix):
        raise BadRequest(f"prefix {prefix!r}: a path inside the repo, without '..'")
