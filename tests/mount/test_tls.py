"""The mount server on a cluster served over TLS, configured as pachctl configures it (a context whose
pachd_address is grpcs:// and whose server_cas is the base64 of the CA's PEM): with the right CA it
mounts and reads; with a wrong CA, or TLS on one side only, the start-up log, GET /config and
`pachstudio status` name the address and the certificate problem."""
import os
import subprocess
import sys
import time

import pytest
from pachyderm_sdk.api import pfs

from plugins.mount import MountServer
from plugins.pfs import InProcessPfsServer, commit_files
from plugins.tls import TlsFiles, TlsPfsServer, pachctl_config


def mount_server_with_config(tmp_path, config_json: str) -> MountServer:
    server = MountServer(tmp_path / "mount", None)  # no --pachd-address: the config decides
    (tmp_path / "mount" / ".pachyderm").mkdir(parents=True)
    (tmp_path / "mount" / ".pachyderm" / "config.json").write_text(config_json)
    return server.start()


@pytest.fixture
def stopped():
    servers = []
    yield servers.append
    for s in servers:
        s.stop(timeout=10)


def wait_log(server, text, timeout=30):
    deadline = time.monotonic() + timeout
    while text not in server.log():
        assert time.monotonic() < deadline, f"{text!r} not in the log:\n{server.log()}"
        time.sleep(0.1)
    return server.log()


def test_with_the_right_ca_the_mount_server_mounts_and_reads(tmp_path, tls_pfs_server, stopped):
    pach = tls_pfs_server.client()
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("images"))
    commit_files(pach, "images@master", {"/cats/1.txt": b"a cat over tls"})
    ms = mount_server_with_config(tmp_path, pachctl_config(tls_pfs_server.address, tls_pfs_server.tls.ca_pem))
    stopped(ms)
    wait_log(ms, f"cluster {tls_pfs_server.address} answers (AUTH_DISABLED)")
    config = ms.call("GET", "/config").json()
    assert config["cluster_status"] == "AUTH_DISABLED"
    assert config["pachd_address"] == tls_pfs_server.address
    assert config.get("cluster_error") is None
    r = ms.call("PUT", "/_mount", {"mounts": [{"name": "img", "repo": "images", "mode": "ro"}]})
    assert r.status_code == 200, r.text
    with open(os.path.join(ms.mount_dir, "img", "cats", "1.txt"), "rb") as f:
        assert f.read() == b"a cat over tls"


def test_a_wrong_ca_is_named_at_start_in_config_and_in_status(tmp_path, tls_pfs_server, stopped):
    address = tls_pfs_server.address
    ms = mount_server_with_config(tmp_path, pachctl_config(address, tls_pfs_server.tls.wrong_ca_pem))
    stopped(ms)
    problem = "certificate verify failed: unable to get local issuer certificate"
    log = wait_log(ms, "cluster check at start:")
    line = next(x for x in log.splitlines() if "cluster check at start:" in x)
    assert f"Pachyderm cluster at {address} unreachable" in line and problem in line, line
    assert "server_cas" in line and str(tmp_path / "mount" / ".pachyderm" / "config.json") in line, line
    assert "Traceback" not in log

    config = ms.call("GET", "/config").json()
    assert config["cluster_status"] == "INVALID"
    assert address in config["cluster_error"] and problem in config["cluster_error"]

    env = {**os.environ, "PACHSTUDIO_MOUNT_API": ms.api}
    done = subprocess.run([sys.executable, "-m", "pachstudio.cli", "status"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"{address}: NOT ANSWERING" in done.stdout and problem in done.stdout, done.stdout

    r = ms.call("PUT", "/_mount", {"mounts": [{"name": "img", "repo": "images", "mode": "ro"}]})
    assert r.status_code == 503 and problem in r.text, r.text


def test_a_certificate_for_another_name_is_named(tmp_path, stopped):
    tls = TlsFiles(tmp_path / "tls", names=("pachd.elsewhere.example",))
    server = TlsPfsServer(tmp_path / "pfs", tls).start()
    try:
        ms = mount_server_with_config(tmp_path, pachctl_config(server.address, tls.ca_pem))
        stopped(ms)
        error = ms.call("GET", "/config").json()["cluster_error"]
        assert "certificate verify failed: Hostname mismatch" in error, error
        assert "a name or IP address the server's certificate lists" in error
    finally:
        server.kill()


def test_grpcs_to_a_plaintext_server_says_it_does_not_answer_tls(tmp_path, stopped):
    plain = InProcessPfsServer(tmp_path / "pfs").start()
    try:
        tls = TlsFiles(tmp_path / "tls")
        ms = mount_server_with_config(tmp_path, pachctl_config(f"grpcs://localhost:{plain.port}", tls.ca_pem))
        stopped(ms)
        error = ms.call("GET", "/config").json()["cluster_error"]
        assert f"the server at localhost:{plain.port} does not answer TLS" in error, error
        assert f"use grpc://localhost:{plain.port}" in error
    finally:
        plain.stop()


def test_grpc_to_a_tls_server_says_to_use_grpcs(tmp_path, tls_pfs_server, stopped):
    ms = mount_server_with_config(tmp_path, pachctl_config(f"grpc://localhost:{tls_pfs_server.port}"))
    stopped(ms)
    error = ms.call("GET", "/config").json()["cluster_error"]
    assert f"the server at localhost:{tls_pfs_server.port} speaks TLS: use grpcs://localhost:" in error, error
