"""Fixtures that run the embedded PFS server on loopback: in the test's own process (the default), or
as a real process for a test marked `pfs_process`, whose point is the process itself."""
import os
import signal
import socket
import subprocess
import sys
import time

import grpc
import pytest
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs

from pachstudio.pfs_server.grpc_server import Limits
from pachstudio.pfs_server.main import build_server
from pachstudio.pfswire import add_file


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


def commit_files(pach: Client, uri: str, files: dict, description: str = "") -> pfs.Commit:
    """One SDK commit on `uri` (project/repo@branch): {path: bytes, or None to delete}."""
    with pach.pfs.commit(branch=pfs.Branch.from_uri(uri), description=description) as c:
        for path, data in files.items():
            if data is None:
                c.delete_file(path=path)
            else:
                c.put_file_from_bytes(path=path, data=data)
    return c


def put_many(server, uri: str, files: dict) -> None:
    """One ModifyFile stream over raw gRPC to `server` (a ServerProcess): thousands of files in one
    call, where the SDK's messages cost a millisecond each."""
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        modify = channel.stream_unary("/pfs_v2.API/ModifyFile")

        def ops():
            yield bytes(pfs.ModifyFileRequest(set_commit=pfs.Commit.from_uri(uri)))
            for path, data in files.items():
                yield add_file(path, data)

        modify(ops())


def read(pach: Client, uri: str) -> bytes:
    return b"".join(m.value for m in pach.pfs.get_file(file=pfs.File.from_uri(uri)))


class ServerProcess:
    """A program of ours run as a real process for a test: stop, kill -9, restart, its log.
    Subclasses set `log_path`, and define start() and, if needed, after_stop()."""

    proc = None
    log_path = ""

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.after_stop()
        return self.proc.returncode if self.proc else None

    def after_stop(self):
        pass

    def kill(self):
        return self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""


class PfsEndpoint:
    """What a test reaches a server by: its `address`, `port`, `data_dir`, and SDK clients."""

    data_dir = ""
    port = 0
    root_token = None

    @property
    def address(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def client(self, token=None) -> Client:
        return Client.from_pachd_address(self.address, auth_token=token)

    def root(self) -> Client:
        return self.client(self.root_token)


class InProcessPfsServer(PfsEndpoint):
    """The embedded server in the test's own process, built as `pachstudio pfs-server` builds it
    (`build_server`, then its collector), on a port the system picks: no interpreter to start, no
    port to race for. For every test whose point is not the process (see `PfsServer`), and that
    does not wait on it while holding this process's GIL: a page fault on a memory-mapped file of
    a FUSE mount it serves does, and never ends."""

    def __init__(self, data_dir, root_token=None, limits: Limits = Limits()):
        self.data_dir = str(data_dir)
        self.root_token = root_token  # auth on, with this root token
        self.limits = limits
        self.server = self.store = None

    def start(self):
        self.server, self.store, self.port = build_server(self.data_dir, "127.0.0.1", 0, root_token=self.root_token,
                                                          limits=self.limits)
        self.server.start()
        self.store.collector.start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.stop(0).wait()
            self.server.runner.stop()
            self.store.collector.stop()
            self.server = None


class PfsServer(PfsEndpoint, ServerProcess):
    """A `pachstudio pfs-server` process; restartable on the same data directory. For tests whose
    point is the process: a kill or a crash, a restart, a signal, its start-up from flags and
    files, its log or exit code, the modes of the files it writes."""

    def __init__(self, data_dir, port=None, log_path=None, root_token=None, env=None, prefix=()):
        self.data_dir = str(data_dir)
        self.port = port or free_port()
        self.log_path = log_path or os.path.join(self.data_dir + ".log")
        self.proc = None
        self.root_token = root_token  # auth on, with this root token (given in a file)
        self.env = env  # extra environment variables of the server
        self.prefix = list(prefix)  # a command the server runs under (e.g. `unshare --user`)

    def start(self):
        log = open(self.log_path, "ab")
        args = [sys.executable, "-m", "pachstudio.cli", "pfs-server", "--data", self.data_dir,
                "--host", "127.0.0.1", "--port", str(self.port)]
        if self.root_token:
            token_file = self.data_dir + ".root-token"
            with open(token_file, "w") as f:
                f.write(self.root_token + "\n")
            args += ["--root-token-file", token_file]
        env = dict(os.environ, **self.env) if self.env else None
        self.proc = subprocess.Popen(self.prefix + args, stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_for_port(self.port, self.proc)
        return self


def pytest_configure(config):
    config.addinivalue_line("markers", "pfs_process: the test's `pfs_server` (or `auth_pfs_server`) is a real "
                                       "process: the test kills, restarts or signals it, reads its log or files, "
                                       "or maps a file of a FUSE mount it serves into memory")


def fresh_server(request, data_dir, root_token=None):
    """A started server for one test: a process if the test is marked `pfs_process`, else in-process."""
    if request.node.get_closest_marker("pfs_process"):
        return PfsServer(data_dir, root_token=root_token).start()
    return InProcessPfsServer(data_dir, root_token=root_token).start()


def stop_server(server):
    if isinstance(server, PfsServer):
        server.stop(signal.SIGKILL)
    else:
        server.stop()


@pytest.fixture
def pfs_server(request, tmp_path):
    """A fresh server for one test, stopped afterwards (in-process unless marked `pfs_process`)."""
    server = fresh_server(request, tmp_path / "pfs")
    yield server
    stop_server(server)


ROOT_TOKEN = "root-token-for-tests-0123456789"


@pytest.fixture
def auth_pfs_server(request, tmp_path):
    """A fresh server with auth on (root token ROOT_TOKEN), stopped afterwards (in-process unless
    marked `pfs_process`)."""
    server = fresh_server(request, tmp_path / "pfs", root_token=ROOT_TOKEN)
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def shared_pfs_server(tmp_path_factory):
    """One server for tests that only need some cluster and make their own repos."""
    server = PfsServer(tmp_path_factory.mktemp("shared") / "pfs").start()
    yield server
    server.stop(signal.SIGKILL)


@pytest.fixture
def pach(pfs_server) -> Client:
    return pfs_server.client()
