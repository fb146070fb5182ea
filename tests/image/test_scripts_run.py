"""`scripts/run`, the README's first command, run as a user runs it: it starts the appliance, prints
the URL and the login, and publishes the embedded server's port on loopback only (that server runs
without authentication there), unless PACHSTUDIO_PFS_BIND asks for more, which turns its auth on."""
import os
import socket
import subprocess

import pytest
import requests

from plugins.image import REPO, new_name

pytestmark = pytest.mark.image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def run_env(tmp_path, docker_client):
    name, volume = new_name("pachstudio-run"), new_name("pachstudio-run-data")
    env = dict(os.environ, HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state"),
               PACHSTUDIO_NAME=name, PACHSTUDIO_VOLUME=volume,
               PACHSTUDIO_PORT=str(free_port()), PACHSTUDIO_PFS_PORT=str(free_port()))
    env.pop("PACH_CONFIG", None)
    yield env
    subprocess.run([str(REPO / "scripts" / "run"), "--stop"], env=env, capture_output=True)
    for v in docker_client.volumes.list(filters={"name": volume}):
        v.remove(force=True)


def run(env, *args):
    return subprocess.run([str(REPO / "scripts" / "run"), *args], env=env, capture_output=True,
                          text=True, timeout=400)


def test_scripts_run_starts_the_appliance_with_the_sdk_port_on_loopback_only(run_env, docker_client):
    done = run(run_env)
    assert done.returncode == 0, done.stderr[-3000:]
    password_file = os.path.join(run_env["XDG_STATE_HOME"], "pachstudio", run_env["PACHSTUDIO_VOLUME"] + ".password")
    with open(password_file) as f:
        password = f.read().strip()
    assert f"http://localhost:{run_env['PACHSTUDIO_PORT']}" in done.stdout
    assert password in done.stdout
    assert f"grpc://localhost:{run_env['PACHSTUDIO_PFS_PORT']}" in done.stdout

    container = docker_client.containers.get(run_env["PACHSTUDIO_NAME"])
    bindings = container.attrs["HostConfig"]["PortBindings"]["30650/tcp"]
    assert [(b["HostIp"], b["HostPort"]) for b in bindings] == [("127.0.0.1", run_env["PACHSTUDIO_PFS_PORT"])]
    health = requests.get(f"http://localhost:{run_env['PACHSTUDIO_PORT']}/health", timeout=10)
    assert health.status_code == 200

    again = run(run_env)  # idempotent: a second run finds it running and prints the same login
    assert again.returncode == 0, again.stderr[-3000:]
    assert password in again.stdout


def test_scripts_run_publishes_the_sdk_port_wider_only_when_asked_and_turns_auth_on(run_env, docker_client):
    import re

    from pachyderm_sdk import Client

    run_env["PACHSTUDIO_PFS_BIND"] = "0.0.0.0"
    done = run(run_env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING: publishing the embedded PFS server on 0.0.0.0: its auth is turned on" in done.stderr
    container = docker_client.containers.get(run_env["PACHSTUDIO_NAME"])
    bindings = container.attrs["HostConfig"]["PortBindings"]["30650/tcp"]
    assert [b["HostIp"] for b in bindings] == ["0.0.0.0"]
    # The root token is printed once in the log; the SDK needs it.
    logs = container.logs().decode()
    [token] = re.findall(r"root token: ([0-9a-f]{32})", logs)
    address = f"grpc://localhost:{run_env['PACHSTUDIO_PFS_PORT']}"
    with pytest.raises(Exception, match="no authentication token"):
        list(Client.from_pachd_address(address).pfs.list_repo())
    assert list(Client.from_pachd_address(address, auth_token=token).pfs.list_repo()) == []
    assert f"docker exec {run_env['PACHSTUDIO_NAME']} cat /data/pfs/root-token" in done.stdout
