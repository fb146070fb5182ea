"""Client of the mount server's HTTP API (docs/INTERFACES.md): the app's only way to the cluster.

Every failure becomes a `MountServerError` whose message a person can act on; the mount server's
own `detail` text is kept, since it names the repo, branch or commit that is wrong.

A connection that cannot be made is tried again (CONNECT_RETRIES times, httpx's short backoff):
that covers a restart of the mount server, and it is safe for every call, `_commit` included,
since nothing of the request was sent. A request that was sent is never repeated.
"""

import functools
import json
import logging
import ssl
from typing import Iterator
from urllib.parse import quote

import httpx
from django.conf import settings

logger = logging.getLogger(__name__)

CONNECT_RETRIES = 2


class MountServerError(Exception):
    """A mount-server call failed; `status` is its HTTP code (503 when it cannot be reached)."""

    def __init__(self, message: str, status: int = 503):
        super().__init__(message)
        self.status = status


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One per process. httpx builds a verifying TLS context for every new transport, loading the
    whole CA bundle: 60-80 ms of CPU per call on a busy 2-core machine, and a Target Sync makes
    three calls. The mount server speaks plain HTTP, so this context is never used and needs no CA."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _client(timeout=None) -> httpx.Client:
    base = settings.PACHSTUDIO_MOUNT_API
    timeout = settings.PACHSTUDIO_MOUNT_TIMEOUT if timeout is None else timeout
    if base.startswith("unix:"):
        transport = httpx.HTTPTransport(uds=base[len("unix:") :], retries=CONNECT_RETRIES, verify=_tls_context())
        base = "http://mount-server"
    else:
        transport = httpx.HTTPTransport(retries=CONNECT_RETRIES, verify=_tls_context())
    return httpx.Client(transport=transport, base_url=base, timeout=timeout)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
        if isinstance(body, dict) and body.get("detail"):
            detail = body["detail"]
            return detail if isinstance(detail, str) else json.dumps(detail)
    except ValueError:
        pass
    return response.text[:500] or f"HTTP {response.status_code}"


def _unreachable(exc: Exception) -> MountServerError:
    return MountServerError(f"mount server unreachable at {settings.PACHSTUDIO_MOUNT_API}: {exc.__class__.__name__}")


def call(method: str, url: str, body=None, params=None, timeout=None):
    try:
        with _client(timeout) as client:
            response = client.request(method, url, json=body, params=params)
    except httpx.HTTPError as exc:
        raise _unreachable(exc) from None
    if response.status_code >= 400:
        raise MountServerError(_detail(response), response.status_code)
    return response.json() if response.content else None


def stream_ndjson(url: str, params=None) -> Iterator[dict]:
    """Yield one dict per line; stop early and the connection is closed (used to peek a listing)."""
    try:
        with _client() as client:
            with client.stream("GET", url, params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    raise MountServerError(_detail(response), response.status_code)
                for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)
    except httpx.HTTPError as exc:
        raise _unreachable(exc) from None


def health():
    return call("GET", "/health", timeout=10)


def config():
    return call("GET", "/config", timeout=30)


def projects() -> list:
    return call("GET", "/projects")


def repos() -> list:
    return call("GET", "/repos")


def mount(spec: dict) -> dict:
    answer = call("PUT", "/_mount", {"mounts": [spec]})
    for state in answer.get("mounted", []):
        if state.get("name") == spec["name"]:
            return state
    raise MountServerError(f"mount server did not report mount {spec['name']} as mounted", 502)


def refresh(name: str) -> dict:
    return call("PUT", "/_refresh", {"mount": name})


def commit(name: str, description: str) -> dict:
    # Uploading a big staged set legitimately takes long; the caller is a background job.
    return call(
        "PUT",
        "/_commit",
        {"mount": name, "description": description},
        timeout=max(settings.PACHSTUDIO_MOUNT_TIMEOUT, 3600),
    )


def staged(name: str) -> dict:
    return call("GET", f"/mounts/{quote(name)}/staged")


def files(name: str, prefix: str = "", recursive: bool = True) -> Iterator[dict]:
    params = {"prefix": prefix, "recursive": "true" if recursive else "false"}
    return stream_ndjson(f"/mounts/{quote(name)}/files", params)


def diff(name: str, since: str) -> Iterator[dict]:
    return stream_ndjson(f"/mounts/{quote(name)}/diff", {"since": since})


def _branch_url(project: str, repo: str, branch: str) -> str:
    return f"/repos/{quote(project, safe='')}/{quote(repo, safe='')}/branches/{quote(branch, safe='')}"


def versions(project: str, repo: str, branch: str, page: int, page_size: int) -> dict:
    """The branch's commits newest first (one page) and the tags at them."""
    return call("GET", _branch_url(project, repo, branch) + "/versions", params={"page": page, "page_size": page_size})


def tags(project: str, repo: str, branch: str) -> list:
    return call("GET", _branch_url(project, repo, branch) + "/tags")


def create_tag(project: str, repo: str, branch: str, name: str, commit: str) -> dict:
    """A branch `name` at `commit` (a commit of `branch`); `created` false when it was already there."""
    return call("POST", _branch_url(project, repo, branch) + "/tags", {"name": name, "commit": commit})


def version_metrics(project: str, repo: str, branch: str, commits: list) -> dict:
    """The jobs each of `commits` (versions of `branch`) started and their metrics.json: one call a page."""
    return call("POST", _branch_url(project, repo, branch) + "/metrics", {"commits": list(commits)})


def tag_job_output(project: str, repo: str, branch: str, name: str, commit: str, pipeline: str) -> dict:
    """A branch `name` of `pipeline`'s output repo at the output commit of the job version `commit` started."""
    body = {"name": name, "commit": commit, "pipeline": pipeline}
    return call("POST", _branch_url(project, repo, branch) + "/job-tags", body)


# -- versions of a repo (issue 17: diff and restore) --------------------------------------------
def _repo_url(project: str, repo: str) -> str:
    return f"/repos/{quote(project)}/{quote(repo)}"


def branch_commit(project: str, repo: str, branch: str, commit: str) -> dict:
    """{"id", "parent", "finished", "description"}; 404 unless `commit` is on `branch`."""
    return call("GET", f"{_repo_url(project, repo)}/branches/{quote(branch)}/commits/{quote(commit, safe='')}")


def diff_commits(project: str, repo: str, old: str, new: str, prefix: str = "") -> list:
    """[{"path", "change", "size", "old_size"}]: pachd's DiffFile of `new` against `old` under `prefix`."""
    return call("GET", f"{_repo_url(project, repo)}/diff", params={"from": old, "to": new, "prefix": prefix})


def read_files(project: str, repo: str, commit: str, paths: list) -> dict:
    """{path: text or None (absent at that commit)}."""
    paths, out = list(paths), {}
    for start in range(0, len(paths), 5000):
        chunk = paths[start : start + 5000]
        rows = call("POST", f"{_repo_url(project, repo)}/read", {"commit": commit, "paths": chunk}, timeout=600)
        out.update((row["path"], row["data"]) for row in rows)
    return out


def branch_head(project: str, repo: str, branch: str) -> str:
    """The id of the branch's newest finished commit; 404 names the missing repo or branch."""
    return call("GET", _branch_url(project, repo, branch) + "/head")["commit"]


def glob_files(project: str, repo: str, commit: str, pattern: str, max_size: int) -> bytes:
    """The NDJSON of the files of `commit` matching the glob, all read by the mount server in one
    cluster call, as one body (`ndjson_rows` reads it): {"path", "size", "data" (text or null),
    "problem"} per file. Taken whole, so a thread can wait for it while the caller's works."""
    url = f"{_repo_url(project, repo)}/commits/{quote(commit, safe='')}/glob"
    return get_bytes(url, {"pattern": pattern, "max_size": max_size})


def ndjson_rows(body: bytes) -> Iterator[dict]:
    for line in body.splitlines():
        if line.strip():
            yield json.loads(line)


def commit_jobs(project: str, repo: str, commit: str, branch: str) -> dict:
    """The jobs `commit` started: {"commit", "branch", "state": none|hidden|jobs, "message", "jobs", ...}."""
    return call("GET", f"{_repo_url(project, repo)}/commits/{quote(commit)}/jobs", params={"branch": branch})


def commit_provenance(project: str, repo: str, commit: str) -> dict:
    """Whether `commit` is a pipeline's output: {"commit", "state": output|none|hidden, "pipeline", "job", ...}."""
    return call("GET", f"{_repo_url(project, repo)}/commits/{quote(commit)}/provenance")


def file_history(project: str, repo: str, branch: str, paths: list, contents: bool = False) -> dict:
    """The commits of `branch` that added, changed or deleted any of `paths`, oldest first."""
    params = {"branch": branch, "path": list(paths), "contents": "true" if contents else "false"}
    return call("GET", f"{_repo_url(project, repo)}/history", params=params)


def file_at(project: str, repo: str, commit: str, path: str) -> bytes:
    """One file's bytes as commit `commit` holds it."""
    return get_bytes(f"{_repo_url(project, repo)}/file", {"commit": commit, "path": path})


def get_bytes(url: str, params=None) -> bytes:
    try:
        with _client() as client:
            response = client.get(url, params=params)
    except httpx.HTTPError as exc:
        raise _unreachable(exc) from None
    if response.status_code >= 400:
        raise MountServerError(_detail(response), response.status_code)
    return response.content
