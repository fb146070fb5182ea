"""Fixtures that run the mount server as a real process with a real FUSE mount."""
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MountServer:
    """A `pachstudio mount-server` process; restartable on the same state folder."""

    def __init__(self, root, pachd_address: str, env=None):
        self.root = str(root)
        self.mount_dir = os.path.join(self.root, "pfs")
        self.state_dir = os.path.join(self.root, "state")
        self.log_path = os.path.join(self.root, "mount-server.log")
        self.pachd_address = pachd_address
        self.port = free_port()
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
               self.mount_dir, "--state", self.state_dir, "--port", str(self.port)]
        if self.pachd_address:
            cmd += ["--pachd-address", self.pachd_address]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mount server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.api + "/health", timeout=1).status_code == 200 and \
                        os.path.ismount(self.mount_dir):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"mount server not ready after {timeout}s:\n{self.log()}")

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.unmount()
        return self.proc.returncode if self.proc else None

    def kill(self):
        return self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def unmount(self):
        if os.path.exists(self.mount_dir) or os.path.ismount(self.mount_dir):
            subprocess.run(["fusermount", "-u", "-z", self.mount_dir], capture_output=True)

    def call(self, method: str, path: str, json=None, timeout: float = 120, **kw) -> httpx.Response:
        return httpx.request(method, self.api + path, json=json, timeout=timeout, **kw)

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""


@pytest.fixture
def mount_server(pfs_server, tmp_path):
    server = MountServer(tmp_path / "mount", pfs_server.address).start()
    yield server
    server.stop(timeout=10)
