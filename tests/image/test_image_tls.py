"""TLS end to end with the image: a second container of the image runs `pfs-server --tls-cert
--tls-key` (a stand-in for a cluster served over TLS), and the appliance gets a pachctl config.json
whose context has a grpcs:// address and server_cas. With that CA a Source sync imports the files;
with another CA the start-up log and `pachstudio status` name the address and the certificate problem."""
import time

import pytest
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs

from plugins.image import new_name, put_json_tasks, sdk_client
from plugins.tls import TlsFiles, pachctl_config

pytestmark = pytest.mark.image

TEXTS = {"tasks/0.json": "a cat over tls", "tasks/1.json": "a dog over tls"}
PROBLEM = "certificate verify failed: unable to get local issuer certificate"


def tls_pachd(appliance_factory, network, tls: TlsFiles, name: str):
    return appliance_factory(
        name=name, network=network, fuse=False, ports=("30650/tcp",),
        command=["pfs-server", "--tls-cert", "/certs/server.pem", "--tls-key", "/certs/server.key"],
        files={"/certs/server.pem": tls.cert.read_text(), "/certs/server.key": tls.key.read_text()},
    ).wait_healthy()


def tls_client(pachd, ca_pem: bytes, timeout=120) -> Client:
    return sdk_client(f"grpcs://localhost:{pachd.port('30650/tcp')}", timeout, root_certs=ca_pem)


@pytest.fixture(scope="module")
def tls_cluster(module_appliances, module_network, tmp_path_factory):
    """One cluster served over TLS for the module's tests: (container, TlsFiles, name). A test adds
    repos to it at most; the other only reaches it with the wrong CA."""
    name = new_name("pachstudio-tls-pachd")
    tls = TlsFiles(tmp_path_factory.mktemp("tls"), names=(name, "localhost", "127.0.0.1"))
    return tls_pachd(module_appliances, module_network, tls, name), tls, name


def test_the_appliance_syncs_a_source_from_a_cluster_served_over_tls(appliance_factory, module_network, tls_cluster):
    pachd, tls, name = tls_cluster
    assert "serving Pachyderm's gRPC API on grpcs://0.0.0.0:30650" in pachd.logs()
    remote = tls_client(pachd, tls.ca_pem)
    put_json_tasks(remote, TEXTS)

    address = f"grpcs://{name}:30650"
    app = appliance_factory(network=module_network, config_json=pachctl_config(address, tls.ca_pem),
                            ports=("8080/tcp",)).wait_healthy()
    rc, out = app.exec("pachstudio", "status")
    assert rc == 0 and f"{address}: answers (auth off)" in out, out
    api = app.api()
    project = api.create_project()
    source = api.call("POST", "/api/storages/pachyderm", json={
        "project": project["id"], "title": "images", "pach_project": "default", "repo": "images",
        "branch": "master", "prefix": "tasks", "use_blob_urls": False, "recursive_scan": True})
    api.call("POST", f"/api/storages/pachyderm/{source['id']}/sync")
    deadline = time.monotonic() + 120
    while (storage := api.call("GET", f"/api/storages/pachyderm/{source['id']}"))["status"] not in \
            ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert storage["status"] == "completed", storage
    tasks = api.tasks(project["id"])
    assert sorted(t["data"]["text"] for t in tasks) == sorted(TEXTS.values())
    head = remote.pfs.inspect_branch(branch=pfs.Branch.from_uri("images@master")).head.id
    assert {t["data"]["pachyderm_commit"] for t in tasks} == {head}


def test_a_wrong_ca_is_named_at_start_and_in_status(appliance_factory, module_network, tls_cluster):
    _, tls, name = tls_cluster
    address = f"grpcs://{name}:30650"
    app = appliance_factory(network=module_network, config_json=pachctl_config(address, tls.wrong_ca_pem),
                            ports=("8080/tcp",)).wait_healthy()
    deadline = time.monotonic() + 60
    while "cluster check at start:" not in app.logs() and time.monotonic() < deadline:
        time.sleep(0.5)
    line = next((x for x in app.logs().splitlines() if "cluster check at start:" in x), "")
    assert f"Pachyderm cluster at {address} unreachable" in line and PROBLEM in line, app.logs()[-3000:]
    assert "/root/.pachyderm/config.json" in line, line
    rc, out = app.exec("pachstudio", "status")
    assert rc == 0 and f"{address}: NOT ANSWERING" in out and PROBLEM in out, out
    assert "Traceback" not in app.logs()
