"""The appliance image end to end: real Docker engine, real FUSE in the container, real Label Studio,
the real pachyderm-sdk over gRPC. What a user does: start it, import files from Pachyderm, label,
sync the labels back as one commit; restart on the same volume; get clear errors on bad set-ups."""
import json
import pathlib

import pytest
from pachyderm_sdk.api import pfs, pps

from plugins.image import (
    ADMIN,
    PASSWORD,
    TEXTS,
    TOKEN,
    commits,
    files_at,
    import_and_label,
    put_source_files,
    sdk_client,
    target_sync_makes_one_commit,
    wait_storage,
)

pytestmark = pytest.mark.image

LABEL_COUNTS = pathlib.Path(__file__).resolve().parents[2] / "examples" / "label-counts" / "pipeline.json"
def test_embedded_default_flow(appliance_factory, data_volume):
    """The README one-liner without a config: embedded PFS server, SDK on the published port; the
    Target Sync starts examples/label-counts (reading labels@master), whose output holds the counts
    of the synced labels, and the Target's jobs endpoint shows that job."""
    app = appliance_factory(volume=data_volume).wait_healthy()
    assert "starting the embedded PFS server" in app.logs()
    client = sdk_client(app.pachd_address)
    put_source_files(client)
    api = app.api()
    project, target, annotations = import_and_label(api, client)
    client.pps.create_pipeline_v2(create_pipeline_request_json=LABEL_COUNTS.read_text())
    commit = target_sync_makes_one_commit(api, client, target, annotations)
    assert commit.description, "the commit says what it holds"
    job_id = pps.Job(pipeline=pps.Pipeline(name="label-counts"), id=commit.commit.id)
    job = client.pps.inspect_job(job=job_id, wait=True)
    assert job.state == pps.JobState.JOB_SUCCESS, job.reason
    counts = client.pfs.pfs_file(file=pfs.File.from_uri(f"label-counts@{commit.commit.id}:/counts.json")).read()
    assert json.loads(counts) == {"cat": 2, "dog": 1}  # TEXTS: two cats, one dog, each labeled by its word
    jobs = api.call("GET", f"/api/storages/export/pachyderm/{target['id']}/jobs")
    assert jobs["commit"] == commit.commit.id and jobs["state"] == "jobs" and jobs["ended"], jobs
    [shown] = jobs["jobs"]
    assert (shown["pipeline"], shown["state"], shown["data_processed"]) == ("default/label-counts", "JOB_SUCCESS", 1)
    assert shown["output_commit"] == f"default/label-counts@{commit.commit.id}"
    # A second Target Sync with nothing new adds no commit.
    count = len(commits(client, "labels"))
    api.call("POST", f"/api/storages/export/pachyderm/{target['id']}/sync")
    wait_storage(api, f"/api/storages/export/pachyderm/{target['id']}")
    assert len(commits(client, "labels")) == count


def test_signup_without_invite_is_refused_and_token_stays_secret(appliance_factory, data_volume):
    # The password comes as a Docker secret file (LABEL_STUDIO_PASSWORD_FILE).
    app = appliance_factory(volume=data_volume, env={
        "LABEL_STUDIO_PASSWORD": None, "LABEL_STUDIO_PASSWORD_FILE": "/run/secrets/ls-password"},
        files={"/run/secrets/ls-password": PASSWORD + "\n"}).wait_healthy()
    import requests

    http = requests.Session()
    assert http.get(app.url + "/user/signup/", timeout=30).status_code == 200
    csrf = http.cookies.get("csrftoken")
    r = http.post(app.url + "/user/signup/", data={"email": "intruder@example.com", "password": "intruder-pass-1",
                  "csrfmiddlewaretoken": csrf}, headers={"Referer": app.url + "/user/signup/"},
                  timeout=30, allow_redirects=False)
    assert r.status_code == 403
    users = app.api().call("GET", "/api/users/")
    users = users["results"] if isinstance(users, dict) else users
    assert [u["email"] for u in users] == [ADMIN]
    assert TOKEN not in app.logs()
    assert PASSWORD not in app.logs()
    # The first user's token works for the API (the legacy token is enabled for it).
    me = app.api().call("GET", "/api/current-user/whoami")
    assert me["email"] == ADMIN
    # The secrets given at first start are not passed on to the programs.
    assert "password:" not in app.logs(), "no password generated when one is given"
    http = requests.Session()
    http.get(app.url + "/user/login/", timeout=30)
    login = http.post(app.url + "/user/login/", data={"email": ADMIN, "password": PASSWORD,
                      "csrfmiddlewaretoken": http.cookies.get("csrftoken")},
                      headers={"Referer": app.url + "/user/login/"}, timeout=30, allow_redirects=False)
    assert login.status_code == 302
    rc, env = app.exec("sh", "-c", "cat /proc/$(cat /run/pachstudio/supervisord.pid)/environ | tr '\\0' '\\n'")
    assert rc == 0 and TOKEN not in env and PASSWORD not in env


def test_pfs_server_mode_serves_the_sdk(appliance_factory, data_volume):
    """`docker run IMAGE pfs-server`: only the embedded server, a stand-in cluster; no FUSE needed."""
    app = appliance_factory(command=["pfs-server"], volume=data_volume, fuse=False,
                            ports=("30650/tcp",)).wait_healthy()
    client = sdk_client(app.pachd_address)
    put_source_files(client)
    assert files_at(client, "images@master:/tasks/") >= {f"/{p}" for p in TEXTS}
    rc, out = app.exec("ls", "/data/pfs")
    assert rc == 0 and out.strip(), "the data is under /data/pfs"


def test_remote_cluster_on_a_user_defined_network(appliance_factory, test_network):
    """A second container runs `pfs-server`; the appliance gets its config.json like the README shows."""
    pachd = appliance_factory(command=["pfs-server"], network=test_network, fuse=False,
                              ports=("30650/tcp",)).wait_healthy()
    remote = sdk_client(pachd.pachd_address)
    put_source_files(remote)
    config = {"v2": {"active_context": "lab", "contexts": {
        "lab": {"pachd_address": f"grpc://{pachd.name}:30650"}}}}
    app = appliance_factory(network=test_network, config_json=config, ports=("8080/tcp",)).wait_healthy()
    logs = app.logs()
    assert f"using the Pachyderm cluster at grpc://{pachd.name}:30650" in logs
    assert "embedded PFS server" not in logs
    rc, _ = app.exec("sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/30650")
    assert rc != 0, "no embedded server runs when a cluster is configured"
    rc, out = app.exec("pachstudio", "status")  # the README's diagnostic command (no curl in the image)
    assert rc == 0 and f"grpc://{pachd.name}:30650: answers (auth off)" in out, out
    api = app.api()
    project, target, annotations = import_and_label(api, remote)
    target_sync_makes_one_commit(api, remote, target, annotations)


def test_restart_on_the_same_volume_keeps_everything(appliance_factory, data_volume):
    """Label, `docker stop`, start a new container on the same /data, then Sync: one commit, all labels."""
    init_script = {"/docker-entrypoint-init.d/10-mark.sh": "echo ran >> /data/init-script-ran\n"}
    first = appliance_factory(volume=data_volume, files=init_script).wait_healthy()
    client = sdk_client(first.pachd_address)
    put_source_files(client)
    api = first.api()
    project, target, annotations = import_and_label(api, client, annotate=2)
    first.stop()
    assert first.state()["ExitCode"] == 0, first.logs()[-3000:]
    logs = first.logs()
    # docker stop: Label Studio stops first, then the mount server unmounts, then the PFS server.
    order = [logs.find("stopped: label-studio"), logs.find("stopped: mount-server"), logs.find("stopped: pfs-server")]
    assert -1 not in order and order == sorted(order), logs[-3000:]
    first.remove()

    # Nothing given this time: the user, its token and everything else come from /data.
    second = appliance_factory(volume=data_volume, files=init_script, env={
        "LABEL_STUDIO_USERNAME": None, "LABEL_STUDIO_PASSWORD": None, "LABEL_STUDIO_USER_TOKEN": None}).wait_healthy()
    assert second.exec("cat", "/data/init-script-ran") == (0, "ran\n"), "init scripts run once, on the first start"
    assert "already initialized" in second.logs()
    assert "password:" not in second.logs()
    api = second.api()
    client = sdk_client(second.pachd_address)
    assert [p["id"] for p in api.call("GET", "/api/projects/")["results"]] == [project["id"]]
    assert len(api.tasks(project["id"])) == len(TEXTS)
    storages = api.call("GET", f"/api/storages/export?project={project['id']}")
    assert [s["id"] for s in storages] == [target["id"]]
    target_sync_makes_one_commit(api, client, target, annotations)


def test_generated_password_is_printed_once(appliance_factory, data_volume):
    import re

    import requests

    app = appliance_factory(volume=data_volume, env={"LABEL_STUDIO_PASSWORD": None}).wait_healthy()
    found = re.search(r"password: (\S+)", app.logs())
    assert found, app.logs()[-3000:]
    password = found.group(1)
    http = requests.Session()
    page = http.get(app.url + "/user/login/", timeout=30)
    csrf = http.cookies.get("csrftoken")
    assert page.status_code == 200 and csrf
    login = http.post(app.url + "/user/login/", data={"email": ADMIN, "password": password,
                      "csrfmiddlewaretoken": csrf}, headers={"Referer": app.url + "/user/login/"},
                      timeout=30, allow_redirects=False)
    assert login.status_code == 302, login.text[:1000]
    assert http.get(app.url + "/api/current-user/whoami", timeout=30).json()["email"] == ADMIN
    app.container.restart(timeout=30)
    app.wait_healthy()
    assert app.logs().count(password) == 1


def test_without_fuse_the_message_gives_the_docker_flags(appliance_factory):
    app = appliance_factory(fuse=False)
    assert app.wait_exit() != 0
    logs = app.logs()
    assert "/dev/fuse" in logs and "--device /dev/fuse --cap-add SYS_ADMIN" in logs, logs


def test_without_mount_permission_the_message_gives_the_docker_flags(appliance_factory):
    app = appliance_factory(fuse="device-only")
    assert app.wait_exit() != 0
    logs = app.logs()
    assert "SYS_ADMIN" in logs and "--device /dev/fuse --cap-add SYS_ADMIN" in logs, logs


@pytest.mark.parametrize("content, problem", [
    ('{"v2": {"active_context": "lab", "contexts": {', "json"),
    ({"v2": {"active_context": "nowhere", "contexts": {
        "lab": {"pachd_address": "grpc://pachd:30650", "session_token": "s3cr3t-session-token"}}}}, "nowhere"),
])
def test_malformed_config_names_the_file_and_the_problem(appliance_factory, content, problem):
    app = appliance_factory(config_json=content, ports=("8080/tcp",))
    assert app.wait_exit() == 1
    logs = app.logs()
    assert "/root/.pachyderm/config.json" in logs, logs
    assert problem.lower() in logs.lower(), logs
    assert "s3cr3t-session-token" not in logs
    assert "Traceback" not in logs
