"""Fixtures that run the mount server as a real process with a real FUSE mount."""
import os
import subprocess
import sys
import time

import httpx
import pytest

from plugins.pfs import ServerProcess, free_port


class MountServer(ServerProcess):
    """A `pachstudio mount-server` process; restartable on the same state folder."""

    def __init__(self, root, pachd_address: str, env=None, socket: str = None):
        self.root = str(root)
        self.mount_dir = os.path.join(self.root, "pfs")
        self.state_dir = os.path.join(self.root, "state")
        self.log_path = os.path.join(self.root, "mount-server.log")
        self.pachd_address = pachd_address
        self.port = free_port()
        self.socket = socket  # serve HTTP on this unix socket instead of the port
        self.env = {**os.environ, "HOME": self.root, **(env or {})}
        self.env.pop("PACH_CONFIG", None)
        self.proc = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30):
        os.makedirs(self.root, exist_ok=True)
        log = open(self.log_path, "ab")
        cmd = [sys.executable, "-m", "pachstudio.cli", "mount-server", "--mount-dir",
               self.mount_dir, "--state", self.state_dir]
        cmd += ["--socket", self.socket] if self.socket else ["--port", str(self.port)]
        if self.pachd_address:
            cmd += ["--pachd-address", self.pachd_address]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mount server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.call("GET", "/health", timeout=1).status_code == 200 and \
                        os.path.ismount(self.mount_dir):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"mount server not ready after {timeout}s:\n{self.log()}")

    def after_stop(self):
        self.unmount()

    def unmount(self):
        if os.path.exists(self.mount_dir) or os.path.ismount(self.mount_dir):
            subprocess.run(["fusermount", "-u", "-z", self.mount_dir], capture_output=True)

    def call(self, method: str, path: str, json=None, timeout: float = 120, **kw) -> httpx.Response:
        if self.socket:
            with httpx.Client(transport=httpx.HTTPTransport(uds=self.socket), timeout=timeout) as c:
                return c.request(method, "http://mount-server" + path, json=json, **kw)
        return httpx.request(method, self.api + path, json=json, timeout=timeout, **kw)


@pytest.fixture
def mount_server(pfs_server, tmp_path):
    server = MountServer(tmp_path / "mount", pfs_server.address).start()
    yield server
    server.stop(timeout=10)
