"""`pachstudio status`, the diagnostic command the README gives (the image has no curl): run as a
user runs it, against a real mount server."""
import json
import os
import subprocess
import sys

from conftest import mount
from plugins.mount import free_port


def status(*args, api=None):
    env = {**os.environ}
    env.pop("PACHSTUDIO_MOUNT_API", None)
    if api:
        env["PACHSTUDIO_MOUNT_API"] = api
    return subprocess.run([sys.executable, "-m", "pachstudio.cli", "status", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_status_names_the_cluster_and_every_mount(mount_server, pfs_server, images):
    mount(mount_server, "img", images, mode="rw")
    done = status(api=mount_server.api)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"{mount_server.api}: running" in out
    assert f"{pfs_server.address}: answers (auth off)" in out
    assert "1 mounted, 0 failed" in out
    assert "img: default/images@master rw mounted at commit " in out

    raw = status("--json", api=mount_server.api)
    assert raw.returncode == 0, raw.stderr
    answers = json.loads(raw.stdout)
    assert answers["health"] == {"status": "running"}
    assert answers["config"]["cluster_status"] == "AUTH_DISABLED"
    assert [m["name"] for m in answers["mounts"]["mounted"]] == ["img"]


def test_status_without_a_mount_server_says_so_and_fails():
    api = f"http://127.0.0.1:{free_port()}"
    done = status("--api", api)
    assert done.returncode == 1
    assert done.stdout == ""
    assert f"the mount server does not answer at {api}" in done.stderr
