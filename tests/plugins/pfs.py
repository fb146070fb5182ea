"""Fixtures that run the embedded PFS server as a real process on loopback."""
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


class PfsServer(ServerProcess):
    """A `pachstudio pfs-server` process; restartable on the same data directory."""

    def __init__(self, data_dir, port=None, log_path=None, root_token=None):
        self.data_dir = str(data_dir)
        self.port = port or free_port()
        self.log_path = log_path or os.path.join(self.data_dir + ".log")
        self.proc = None
        self.root_token = root_token  # auth on, with this root token (given in a file)

    @property
    def address(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def start(self):
        log = open(self.log_path, "ab")
        args = [sys.executable, "-m", "pachstudio.cli", "pfs-server", "--data", self.data_dir,
                "--host", "127.0.0.1", "--port", str(self.port)]
        if self.root_token:
            token_file = self.data_dir + ".root-token"
            with open(token_file, "w") as f:
                f.write(self.root_token + "\n")
            args += ["--root-token-file", token_file]
        # the venv first on PATH, as the image puts its own: a datum's `python3` has numpy and Pillow
        path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PATH=path))
        wait_for_port(self.port, self.proc)
        return self

    def client(self, token=None) -> Client:
        return Client.from_pachd_address(self.address, auth_token=token)

    def root(self) -> Client:
        return self.client(self.root_token)



@pytest.fixture
def pfs_server(tmp_path):
    """A fresh server for one test, stopped afterwards."""
    server = PfsServer(tmp_path / "pfs").start()
    yield server
    server.stop(signal.SIGKILL)


ROOT_TOKEN = "root-token-for-tests-0123456789"


@pytest.fixture
def auth_pfs_server(tmp_path):
    """A fresh server with auth on (root token ROOT_TOKEN), stopped afterwards."""
    server = PfsServer(tmp_path / "pfs", root_token=ROOT_TOKEN).start()
    yield server
    server.stop(signal.SIGKILL)


@pytest.fixture(scope="session")
def shared_pfs_server(tmp_path_factory):
    """One server for tests that only need some cluster and make their own repos."""
    server = PfsServer(tmp_path_factory.mktemp("shared") / "pfs").start()
    yield server
    server.stop(signal.SIGKILL)


@pytest.fixture
def pach(pfs_server) -> Client:
    return pfs_server.client()
