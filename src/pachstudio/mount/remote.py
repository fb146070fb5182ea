"""The mount server's only door to the cluster: SDK calls, their errors in our words, call counts.

gRPC errors become `MountError`s a person can act on. After the cluster was unreachable the
channel is rebuilt, so a restarted pachd is used at once instead of after gRPC's reconnect
back-off. Counters let tests and operators see how many calls a FUSE operation cost.

No call waits forever: gRPC sets no deadline of its own, so a cluster that stops answering without
closing the connection (a cut network, a frozen host) would hold a Sync, a FUSE read or the HTTP
API for the ~15 minutes TCP takes to give up. Unary calls get a deadline; streams are cancelled
when they deliver nothing for a while, an upload when it can send nothing for a while.
"""

import collections
import contextvars
import dataclasses
import logging
import os
import threading
import time
import weakref
from typing import Iterable, Iterator, Optional

import grpc
from pachyderm_sdk.api import pfs
from pachyderm_sdk.errors import AuthServiceNotActivated

from .. import pfswire
from ..cluster import ClusterConfig
from .errors import BadRequest, Conflict, MountError, NotFound, Refused, Unavailable
from .tls_probe import diagnose

# Seconds a unary call may take, and a stream may go without a message (an upload without sending).
# Waiting for a commit to finish, and for the answer to an upload once all of it is sent, is the
# cluster's own work on the data: allowed much longer. Set from PACHSTUDIO_CLUSTER_TIMEOUT when a
# Remote is made (the mount server's start), not at import.
log = logging.getLogger("pachstudio.mount")
DEFAULT_CALL_TIMEOUT = 30.0
CALL_TIMEOUT = DEFAULT_CALL_TIMEOUT
STREAM_IDLE = 2 * CALL_TIMEOUT
FINISH_TIMEOUT = 20 * CALL_TIMEOUT
LOGIN_CHECK_TTL = 5.0  # seconds a "no token, is a login needed?" answer is reused


def set_timeouts(call_timeout: Optional[float] = None) -> None:
    """Sets the deadlines from `call_timeout`, else from PACHSTUDIO_CLUSTER_TIMEOUT (default 30 s)."""
    global CALL_TIMEOUT, STREAM_IDLE, FINISH_TIMEOUT
    if call_timeout is None:
        raw = os.environ.get("PACHSTUDIO_CLUSTER_TIMEOUT", "").strip()
        try:
            call_timeout = float(raw) if raw else DEFAULT_CALL_TIMEOUT
        except ValueError:
            raise ValueError(f"PACHSTUDIO_CLUSTER_TIMEOUT={raw!r} is not a number of seconds") from None
        if call_timeout <= 0:
            raise ValueError(f"PACHSTUDIO_CLUSTER_TIMEOUT={raw!r} must be more than 0 seconds")
    CALL_TIMEOUT = call_timeout
    STREAM_IDLE = 2 * call_timeout
    FINISH_TIMEOUT = 20 * call_timeout


_deadline = contextvars.ContextVar("pachstudio_deadline", default=None)


class NoAnswer(Exception):
    """The cluster sent nothing back within `seconds` (the call was cancelled)."""

    def __init__(self, seconds: float):
        super().__init__(f"no answer within {seconds:g} s")
        self.seconds = seconds


class _Details(
    collections.namedtuple(
        "_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
    grpc.ClientCallDetails,
):
    pass


class _Watched:
    """A server stream that the watchdog cancels when a reader has waited `STREAM_IDLE` seconds
    for its next message. (A reader that merely pauses between messages is never cut off.)"""

    def __init__(self, call):
        self.call, self.waiting_since, self.timed_out = call, None, False
        _watched.add(self)

    def __iter__(self):
        return self

    def __next__(self):
        self.waiting_since = time.monotonic()
        try:
            return next(self.call)
        except grpc.RpcError:
            if self.timed_out:
                raise NoAnswer(STREAM_IDLE) from None
            raise
        finally:
            self.waiting_since = None

    def __getattr__(self, name):  # the grpc.Call side: cancel(), code(), details()...
        return getattr(self.call, name)


_watched: "weakref.WeakSet[_Watched]" = weakref.WeakSet()
_watchdog_started = threading.Lock()
_watchdog_running = False


def _watchdog():
    while True:
        time.sleep(1)
        try:
            streams = list(_watched)
        except RuntimeError:  # another thread added one meanwhile: look again next second
            continue
        now = time.monotonic()
        for stream in streams:
            since = stream.waiting_since
            if since is not None and now - since > STREAM_IDLE and not stream.timed_out:
                stream.timed_out = True
                try:
                    stream.call.cancel()
                except Exception:  # noqa: BLE001 - the watchdog must outlive any one stream
                    pass


def _start_watchdog():
    global _watchdog_running
    with _watchdog_started:
        if not _watchdog_running:
            threading.Thread(target=_watchdog, name="grpc-watchdog", daemon=True).start()
            _watchdog_running = True


class _Deadlines(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Every unary call gets a deadline (the caller's, else CALL_TIMEOUT); every server stream
    is watched."""

    def intercept_unary_unary(self, continuation, details, request):
        if details.timeout is None:
            details = _Details(
                details.method,
                _deadline.get() or CALL_TIMEOUT,
                details.metadata,
                details.credentials,
                getattr(details, "wait_for_ready", None),
                getattr(details, "compression", None),
            )
        return continuation(details, request)

    def intercept_unary_stream(self, continuation, details, request):
        return _Watched(continuation(details, request))


class _Pulled:
    """The request stream of an upload, noting when gRPC last took a message (it takes the next
    one only once the previous is sent) and when it took the last."""

    def __init__(self, requests: Iterable[bytes]):
        self.requests = iter(requests)
        self.last = time.monotonic()
        self.finished: Optional[float] = None

    def __iter__(self):
        return self

    def __next__(self):
        try:
            item = next(self.requests)
        except StopIteration:
            self.finished = time.monotonic()
            raise
        self.last = time.monotonic()
        return item


# what gRPC's UNAVAILABLE details say when TLS is the problem (BoringSSL's codes, or the socket a
# TLS server closes on a plaintext client)
TLS_HINTS = (
    "ssl",
    "tls",
    "handshake",
    "certificate",
    "verification",
    "socket closed",
    "connection reset",
    "end of tcp stream",
)

NOT_CONFIGURED = (
    "not connected to a cluster: no pachd address configured (set PACHD_ADDRESS, "
    "mount a Pachyderm config, or PUT /config)"
)


class Remote:
    def __init__(self, config: Optional[ClusterConfig]):
        set_timeouts()
        self.config = config
        self._client = None
        self._lock = threading.Lock()
        self.calls = collections.Counter()
        self._login_check = None  # (config, when, needed)
        self.last_error: Optional[str] = None  # why the last status check found the cluster INVALID

    @property
    def address(self) -> str:
        return self.config.address if self.config else ""

    @property
    def project(self) -> str:
        return self.config.project if self.config else "default"

    def reconfigure(self, config: Optional[ClusterConfig]) -> None:
        with self._lock:
            self.config, self._client, self.last_error = config, None, None

    def client(self):
        with self._lock:
            if self.config is None:
                raise Unavailable(NOT_CONFIGURED)
            if self._client is None:
                client = self.config.client()
                # The SDK's stubs take no timeout: the deadlines go on through an interceptor.
                client._channel = grpc.intercept_channel(client._channel, _Deadlines())
                client._init_api()
                _start_watchdog()
                self._client = client
            return self._client

    def translate(self, error: BaseException, what: str) -> MountError:
        """An SDK/gRPC failure as the MountError to raise (never carrying the token)."""
        if isinstance(error, MountError):
            return error
        if isinstance(error, NoAnswer):
            self._drop_channel()
            return Unavailable(f"Pachyderm cluster at {self.address} unreachable while {what}: {error}")
        if isinstance(error, grpc.RpcError) and hasattr(error, "code"):
            code, details = error.code(), error.details() or ""
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
                self._drop_channel()
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    details = f"no answer within {_deadline.get() or CALL_TIMEOUT:g} s"
                elif code == grpc.StatusCode.UNAVAILABLE:
                    details = self._tls_problem(details) or details
                return Unavailable(
                    f"Pachyderm cluster at {self.address} unreachable while {what}: {details or code.name}"
                )
            if code == grpc.StatusCode.NOT_FOUND:
                return NotFound(details or f"not found while {what}")
            if code in (grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION):
                return Conflict(details)
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                return BadRequest(details)
            if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                return Refused(f"the cluster refused {what}: {details} (log in again with pachctl)")
            return MountError(f"cluster error while {what}: {code.name} {details}")
        if isinstance(error, ConnectionError) and not isinstance(error, AuthServiceNotActivated):
            self._drop_channel()  # the SDK's word for UNAVAILABLE on a unary call
            cause = error.__cause__
            why = self._tls_problem(cause.details() or "") if isinstance(cause, grpc.RpcError) else None
            suffix = f": {why}" if why else ""
            return Unavailable(f"Pachyderm cluster at {self.address} unreachable while {what}{suffix}")
        return MountError(f"cluster error while {what}: {error.__class__.__name__}")

    def _tls_problem(self, details: str) -> Optional[str]:
        """OpenSSL's words for a failure gRPC reports as a broken handshake or a closed socket (a
        refused certificate, TLS on one side only); None for anything else, which needs no probe."""
        if self.config is None or not any(hint in details.lower() for hint in TLS_HINTS):
            return None
        return diagnose(self.address, self.config.server_cas, self.config.source)

    def _drop_channel(self):
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client._channel.close()
            except Exception:  # noqa: BLE001 - closing a broken channel must not hide the error
                pass

    def call(self, name: str, what: str, fn, *args, timeout: Optional[float] = None, **kwargs):
        self.calls[name] += 1
        token = _deadline.set(timeout)
        try:
            return fn(self.client(), *args, **kwargs)
        except Exception as e:  # noqa: BLE001 - translated for the caller
            raise self.translate(e, what) from None
        finally:
            _deadline.reset(token)

    def stream(self, name: str, what: str, fn) -> Iterator:
        """Iterate a server stream, translating errors raised mid-way."""
        self.calls[name] += 1
        try:
            yield from fn(self.client())
        except GeneratorExit:
            raise
        except Exception as e:  # noqa: BLE001
            raise self.translate(e, what) from None

    # -- the calls the mount server makes ------------------------------------------------------
    def status(self) -> str:
        """INVALID, AUTH_ENABLED or AUTH_DISABLED, as pachctl mount-server reports it."""
        if self.config is None:
            self.last_error = NOT_CONFIGURED
            return "INVALID"
        try:
            self.call("inspect_cluster", "checking the cluster", lambda c: c.admin.inspect_cluster())
        except MountError as e:
            log.debug("cluster status INVALID: %s", e.message)
            self.last_error = str(e)
            return "INVALID"
        self.last_error = None
        try:
            self.client().auth.who_am_i()
            return "AUTH_ENABLED"
        except AuthServiceNotActivated:
            return "AUTH_DISABLED"
        except Exception:  # noqa: BLE001 - any other answer means auth is there
            return "AUTH_ENABLED"

    # -- the session token (pachctl mount-server's /auth calls) ---------------------------------
    def who_am_i(self) -> str:
        """The username the cluster sees for our token; AuthServiceNotActivated when auth is off."""
        try:
            return self.client().auth.who_am_i().username
        except AuthServiceNotActivated:
            raise
        except Exception as e:  # noqa: BLE001 - translated for the caller
            raise self.translate(e, "checking the session token") from None

    def needs_login(self) -> bool:
        """True when the cluster has auth on and we hold no token (pachctl answers 401 then). A
        held token the cluster refuses is the calls' own 403. Cached a few seconds: Label Studio
        polls, and this costs a call."""
        if self.config is None or self.config.token:
            return False
        now = time.monotonic()
        cached = self._login_check
        if cached and cached[0] is self.config and now - cached[1] < LOGIN_CHECK_TTL:
            return cached[2]
        try:
            self.client().auth.who_am_i()
            needed = False
        except AuthServiceNotActivated:
            needed = False
        except grpc.RpcError as e:
            needed = e.code() == grpc.StatusCode.UNAUTHENTICATED
        except Exception:  # noqa: BLE001 - an unreachable cluster is the calls' own 503
            needed = False
        self._login_check = (self.config, now, needed)
        return needed

    def set_token(self, token: Optional[str]) -> None:
        """Use `token` from now on (None: none); the channel is rebuilt to carry it."""
        with self._lock:
            if self.config is None:
                raise Unavailable(NOT_CONFIGURED)
            self.config = dataclasses.replace(self.config, token=token or None)
            client, self._client = self._client, None
            self._login_check = None
        if client is not None:
            try:
                client._channel.close()
            except Exception:  # noqa: BLE001
                pass

    def oidc_login(self) -> tuple[str, str]:
        info = self.call("get_oidc_login", "asking for the OIDC login", lambda c: c.auth.get_oidc_login())
        return info.login_url, info.state

    def authenticate(self, oidc_state: str) -> str:
        return self.call("authenticate", "logging in", lambda c: c.auth.authenticate(oidc_state=oidc_state)).pach_token

    def projects(self) -> list:
        return list(self.stream("list_project", "listing projects", lambda c: c.pfs.list_project()))

    def repos(self) -> list:
        return list(self.stream("list_repo", "listing repos", lambda c: c.pfs.list_repo()))

    def inspect_repo(self, repo: pfs.Repo):
        return self.call("inspect_repo", f"looking up repo {repo.as_uri()}", lambda c: c.pfs.inspect_repo(repo=repo))

    def inspect_branch(self, branch: pfs.Branch):
        return self.call(
            "inspect_branch", f"looking up branch {branch.as_uri()}", lambda c: c.pfs.inspect_branch(branch=branch)
        )

    def create_branch(self, branch: pfs.Branch):
        return self.call(
            "create_branch", f"creating branch {branch.as_uri()}", lambda c: c.pfs.create_branch(branch=branch)
        )

    def inspect_commit(self, commit: pfs.Commit, wait: bool = False):
        state = pfs.CommitState.FINISHED if wait else pfs.CommitState.STARTED
        return self.call(
            "inspect_commit",
            f"looking up commit {commit.id or commit.branch.name}",
            lambda c: c.pfs.inspect_commit(commit=commit, wait=state),
            timeout=FINISH_TIMEOUT if wait else None,
        )

    def list_commits(self, repo: pfs.Repo, to: pfs.Commit, since: Optional[pfs.Commit]) -> list:
        return list(
            self.stream(
                "list_commit",
                f"listing commits of {repo.as_uri()}",
                lambda c: c.pfs.list_commit(repo=repo, to=to, from_=since),
            )
        )

    @staticmethod
    def _raw(client, method: str, decode):
        """A server-streaming call of pfs_v2.API decoded by `pfswire` (through the SDK's channel,
        so its token metadata is sent)."""
        return client._channel.unary_stream(
            f"/pfs_v2.API/{method}", request_serializer=bytes, response_deserializer=decode
        )

    def list_dir(self, commit: pfs.Commit, path: str) -> Iterator[tuple]:
        """(path, is_dir, size) of a folder's entries, in one streamed ListFile."""
        req = pfs.ListFileRequest(file=pfs.File(commit=commit, path=path))
        return self.stream("list_file", f"listing {path}", lambda c: self._raw(c, "ListFile", pfswire.file_info)(req))

    def walk(self, commit: pfs.Commit, path: str) -> Iterator[tuple]:
        """(path, is_dir, size) of everything below `path`, in one streamed WalkFile."""
        req = pfs.WalkFileRequest(file=pfs.File(commit=commit, path=path))
        return self.stream("walk_file", f"walking {path}", lambda c: self._raw(c, "WalkFile", pfswire.file_info)(req))

    def read(self, commit: pfs.Commit, path: str, offset: int) -> Iterator[bytes]:
        """File bytes from `offset` on; stop iterating and the stream is cancelled."""
        req = pfs.GetFileRequest(file=pfs.File(commit=commit, path=path), offset=offset)
        yield from self.stream(
            "get_file", f"reading {path}", lambda c: self._raw(c, "GetFile", pfswire.bytes_value_of)(req)
        )

    def read_tar(self, commit: pfs.Commit, pattern: str) -> Iterator[memoryview]:
        """The files matching a glob as one tar stream (GetFileTAR), in chunks."""
        req = pfs.GetFileRequest(file=pfs.File(commit=commit, path=pattern))
        yield from self.stream(
            "get_file_tar", f"reading {pattern}", lambda c: self._raw(c, "GetFileTAR", pfswire.bytes_value_of)(req)
        )

    def diff(self, new: pfs.Commit, old: pfs.Commit) -> Iterator:
        return self.stream(
            "diff_file",
            "comparing commits",
            lambda c: c.pfs.diff_file(new_file=pfs.File(commit=new, path="/"), old_file=pfs.File(commit=old, path="/")),
        )

    def start_commit(self, branch: pfs.Branch, description: str) -> pfs.Commit:
        return self.call(
            "start_commit",
            f"starting a commit on {branch.as_uri()}",
            lambda c: c.pfs.start_commit(branch=branch, description=description),
        )

    def finish_commit(self, commit: pfs.Commit):
        return self.call("finish_commit", "finishing the commit", lambda c: c.pfs.finish_commit(commit=commit))

    def drop_commit(self, commit_id: str):
        return self.call(
            "drop_commit_set",
            f"dropping the unfinished commit {commit_id}",
            lambda c: c.pfs.drop_commit_set(commit_set=pfs.CommitSet(id=commit_id)),
        )

    def modify_file(self, requests: Iterable[bytes]):
        """One ModifyFile of already encoded messages (see pfswire.add_file). Cancelled when gRPC
        can send nothing for STREAM_IDLE seconds, or the answer takes FINISH_TIMEOUT once all is sent."""

        def upload(c):
            pulled = _Pulled(requests)
            future = c._channel.stream_unary(
                "/pfs_v2.API/ModifyFile", request_serializer=bytes, response_deserializer=bytes
            ).future(pulled)
            while True:
                try:
                    return future.result(timeout=1)
                except grpc.FutureTimeoutError:
                    now = time.monotonic()
                    if pulled.finished is None and now - pulled.last > STREAM_IDLE:
                        limit = STREAM_IDLE
                    elif pulled.finished is not None and now - pulled.finished > FINISH_TIMEOUT:
                        limit = FINISH_TIMEOUT
                    else:
                        continue
                    future.cancel()
                    raise NoAnswer(limit) from None

        return self.call("modify_file", "uploading the staged changes", upload)
