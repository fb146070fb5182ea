"""Who runs as whom in the image: Label Studio and the PFS server as the unprivileged user
`pachstudio` (uid 999) without capabilities, the mount server as root with only what mounting FUSE
needs, the datum launcher as root with only what isolating a datum needs; Label Studio still reads
and writes /pfs; a /data volume from the old all-root layout comes up with everything in it; a
first start on PostgreSQL loads the image's pre-migrated schema."""
import json

import pytest
from pachyderm_sdk.api import pfs, pps

from image.test_compose import compose, compose_tools  # noqa: F401 - fixtures
from image.test_image_appliance import (
    TEXTS,
    commits,
    import_and_label,
    put_source_files,
    target_sync_makes_one_commit,
    wait_storage,
)
from plugins.image import ADMIN, IMAGE, files_at, sdk_client

pytestmark = pytest.mark.image

APP_UID = 999
CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SYS_CHROOT, CAP_SYS_ADMIN = 0, 1, 5, 6, 7, 18, 21
LAUNCHER_CAPS = (CAP_SYS_ADMIN, CAP_SYS_CHROOT, CAP_SETUID, CAP_SETGID, CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_KILL)

# Every process of the container: pid, uid, effective capabilities, no_new_privs, command line.
PROCESSES = r"""
import json, os
out = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":" in line)
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode().strip()
    except OSError:
        continue
    out.append({"pid": int(pid), "uid": int(status["Uid"].split()[0]), "cap_eff": int(status["CapEff"], 16),
                "no_new_privs": int(status.get("NoNewPrivs", "0")), "cmd": cmd})
print(json.dumps(out))
"""


def processes(app) -> list[dict]:
    rc, out = app.exec("python", "-c", PROCESSES)
    assert rc == 0, out
    return [p for p in json.loads(out) if "-c import json, os" not in p["cmd"]]


def program(procs, needle) -> list[dict]:
    found = [p for p in procs if needle in p["cmd"]]
    assert found, f"no process runs {needle!r}: {[p['cmd'] for p in procs]}"
    return found


def not_owned_by_app_user(app, *paths) -> str:
    rc, out = app.exec("find", *paths, "!", "-user", "pachstudio")
    assert rc == 0, out
    return out.strip()


def test_label_studio_and_the_pfs_server_run_unprivileged_and_still_use_pfs(appliance_factory, data_volume):
    app = appliance_factory(volume=data_volume).wait_healthy()
    procs = processes(app)
    for p in program(procs, "gunicorn") + program(procs, "pfs-server"):
        assert p["uid"] == APP_UID, p
        assert p["cap_eff"] == 0 and p["no_new_privs"] == 1, p
    [mount] = [p for p in program(procs, "mount-server") if "setpriv" not in p["cmd"]]
    assert mount["uid"] == 0
    assert mount["cap_eff"] == (1 << CAP_SYS_ADMIN) | (1 << CAP_DAC_OVERRIDE), hex(mount["cap_eff"])
    # the datum launcher: root with what isolating a datum takes (config/supervisord-pfs-server.conf)
    [launcher] = [p for p in program(procs, "pachstudio datum-launcher") if "setpriv" not in p["cmd"]]
    assert launcher["uid"] == 0 and launcher["no_new_privs"] == 1, launcher
    assert launcher["cap_eff"] == sum(1 << c for c in LAUNCHER_CAPS), hex(launcher["cap_eff"])
    rc, out = app.exec("stat", "-c", "%U %a", "/run/pachstudio/datum-launcher.sock")
    assert (rc, out.strip()) == (0, "pachstudio 600"), out
    rc, out = app.exec("id", "pachstudio")
    assert rc == 0 and out.startswith(f"uid={APP_UID}(pachstudio) gid={APP_UID}(pachstudio)"), out

    # Label Studio (as pachstudio) reads the Source's files under /pfs and writes the Target's.
    client = sdk_client(app.pachd_address)
    put_source_files(client)
    api = app.api()
    project, target, annotations = import_and_label(api, client)
    target_sync_makes_one_commit(api, client, target, annotations)
    assert not_owned_by_app_user(app, "/data/label-studio", "/data/pfs") == ""
    rc, out = app.exec("stat", "-c", "%U", "/data/mount")
    assert (rc, out.strip()) == (0, "root"), "the mount server's state stays root's"


def test_a_volume_from_the_all_root_layout_comes_up_with_its_data(appliance_factory, data_volume, docker_client):
    first = appliance_factory(volume=data_volume).wait_healthy()
    client = sdk_client(first.pachd_address)
    put_source_files(client)
    api = first.api()
    project, target, annotations = import_and_label(api, client, annotate=2)
    first.stop()
    first.remove()
    # Images before this one ran everything as root: every file of the volume was root's.
    docker_client.containers.run(IMAGE, ["chown", "-R", "root:root", "/data"],
                                 volumes={data_volume: {"bind": "/data", "mode": "rw"}}, remove=True)

    second = appliance_factory(volume=data_volume, env={
        "LABEL_STUDIO_USERNAME": None, "LABEL_STUDIO_PASSWORD": None, "LABEL_STUDIO_USER_TOKEN": None}).wait_healthy()
    assert not_owned_by_app_user(second, "/data/label-studio", "/data/pfs") == ""
    api = second.api()
    client = sdk_client(second.pachd_address)
    assert [p["id"] for p in api.call("GET", "/api/projects/")["results"]] == [project["id"]]
    assert len(api.tasks(project["id"])) == len(TEXTS)
    assert files_at(client, "images@master:/tasks/") == {f"/{p}" for p in TEXTS}
    # A new label is written and synced by the unprivileged Label Studio into the old volume's repo.
    [task] = [t for t in api.tasks(project["id"]) if not t["total_annotations"]]
    annotations.append(api.annotate(task["id"], "cat"))
    target_sync_makes_one_commit(api, client, target, annotations)


def test_pfs_server_mode_drops_to_the_user(appliance_factory, data_volume, docker_client):
    docker_client.containers.run(docker_client.images.get("debian:bookworm-slim"), ["mkdir", "-p", "/data/pfs"],
                                 volumes={data_volume: {"bind": "/data", "mode": "rw"}}, remove=True)
    app = appliance_factory(command=["pfs-server"], volume=data_volume, fuse=False,
                            ports=("30650/tcp",)).wait_healthy()
    procs = processes(app)
    [server] = [p for p in program(procs, "pachstudio pfs-server") if "setpriv" not in p["cmd"]]
    assert server["uid"] == APP_UID and server["cap_eff"] == 0 and server["no_new_privs"] == 1, server
    [launcher] = [p for p in program(procs, "pachstudio datum-launcher") if "setpriv" not in p["cmd"]]
    assert launcher["uid"] == 0 and launcher["cap_eff"] & ~sum(1 << c for c in LAUNCHER_CAPS) == 0, launcher
    assert not [p for p in procs if "gunicorn" in p["cmd"] or "mount-server" in p["cmd"]], procs
    put_source_files(sdk_client(app.pachd_address))
    assert not_owned_by_app_user(app, "/data/pfs") == ""


# What a datum is and may read, as it writes it to /pfs/out.
DATUM_REPORT = r"""
import json, os
report = {"uid": os.getuid()}
for what, path in (("data", "/data"), ("root_token", "/data/pfs/root-token")):
    try:
        report[what] = sorted(os.listdir(path)) if what == "data" else open(path).read()
    except OSError as e:
        report[what] = type(e).__name__
open("/pfs/out/report.json", "w").write(json.dumps(report))
"""


def run_report_pipeline(client):
    client.pfs.create_repo(repo=pfs.Repo.from_uri("inputs"))
    with client.pfs.commit(branch=pfs.Branch.from_uri("inputs@master")) as c:
        c.put_file_from_bytes(path="/a", data=b"1")
    spec = {"pipeline": {"name": "report"}, "transform": {"image": "debian", "cmd": ["python3", "-c", DATUM_REPORT]},
            "input": {"pfs": {"repo": "inputs", "glob": "/*"}}, "datum_tries": 1}  # fmt: skip
    client.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))
    [job] = client.pps.list_job(pipeline=pps.Pipeline(name="report"))
    job = client.pps.inspect_job(job=job.job, wait=True)
    worker_rc = client.pps.inspect_pipeline(pipeline=pps.Pipeline(name="report"), details=True).details.worker_rc
    return job, worker_rc


def test_pfs_server_mode_runs_datums_as_users_of_their_own(appliance_factory):
    """`docker run --cap-add SYS_ADMIN IMAGE pfs-server`: the datum launcher beside the server runs
    each datum as a uid of its own that sees no /data (the server's user is 999, root is 0)."""
    app = appliance_factory(command=["pfs-server"], fuse=False, cap_add=["SYS_ADMIN"],
                            env={"PACHSTUDIO_PFS_AUTH": "1"}, ports=("30650/tcp",)).wait_healthy()
    rc, token = app.exec("cat", "/data/pfs/root-token")
    assert rc == 0, token
    client = sdk_client(app.pachd_address, auth_token=token.strip())
    job, worker_rc = run_report_pipeline(client)
    assert job.state == pps.JobState.JOB_SUCCESS, (job.reason, worker_rc)
    out = pfs.File.from_uri("report@master:/report.json")
    report = json.loads(b"".join(m.value for m in client.pfs.get_file(file=out)))
    assert report["uid"] >= 200000 and report["uid"] not in (0, APP_UID), report
    assert report["data"] == "FileNotFoundError" and report["root_token"] == "FileNotFoundError", report
    assert "each datum runs as a user of its own" in worker_rc, worker_rc


def test_pfs_server_mode_without_sys_admin_runs_no_datum_and_says_why(appliance_factory):
    """Without the capability namespaces need, the launcher cannot isolate a datum: the job fails,
    and the pipeline says what is missing; no datum runs as the server's user."""
    app = appliance_factory(command=["pfs-server"], fuse=False, ports=("30650/tcp",)).wait_healthy()
    job, worker_rc = run_report_pipeline(sdk_client(app.pachd_address))
    assert job.state == pps.JobState.JOB_FAILURE, job
    assert "; datums cannot run: the datum launcher cannot isolate them here: " in worker_rc, worker_rc
    assert "datums cannot be isolated here" in app.logs()


# What `migrate` would still apply, as Label Studio (the user pachstudio) sees the database.
UNAPPLIED = (
    "import os, sys, label_studio; sys.path.insert(0, os.path.dirname(label_studio.__file__)); import django; "
    "django.setup(); from django.db import connection; from django.db.migrations.executor import MigrationExecutor; "
    "e = MigrationExecutor(connection); print(len(e.migration_plan(e.loader.graph.leaf_nodes())))"
)


def test_a_first_start_on_postgresql_loads_the_pre_migrated_schema(compose, appliance_factory):  # noqa: F811
    compose("up", "-d", "--no-build", "postgres")
    compose.wait_healthy("postgres")
    app = appliance_factory(network=compose.network(), env={
        "DJANGO_DB": "postgresql", "POSTGRE_HOST": "postgres", "POSTGRE_PORT": "5432", "POSTGRE_NAME": "labelstudio",
        "POSTGRE_USER": "labelstudio", "POSTGRE_PASSWORD": compose.pg_password}).wait_healthy()
    logs = app.logs()
    assert "new database from the image's pre-migrated schema" in logs, logs[-3000:]
    assert compose.pg_password not in logs
    rc, out = app.exec("setpriv", "--reuid=pachstudio", "--regid=pachstudio", "--init-groups", "env",
                       "DJANGO_SETTINGS_MODULE=pachstudio.labelstudio.settings", "python", "-c", UNAPPLIED)
    assert rc == 0 and out.strip().splitlines()[-1] == "0", out[-2000:]
    assert app.api().call("GET", "/api/current-user/whoami")["email"] == ADMIN
    # The whole flow on that schema: Source sync, labels, Target Sync.
    client = sdk_client(app.pachd_address)
    put_source_files(client)
    project, target, annotations = import_and_label(app.api(), client)
    target_sync_makes_one_commit(app.api(), client, target, annotations)


# The processes whose command line or environment holds the root token (read here from its file).
TOKEN_IN_PROCESSES = r"""
import os
token = open("/data/pfs/root-token").read().strip().encode()
for pid in filter(str.isdigit, os.listdir("/proc")):
    for part in ("cmdline", "environ"):
        try:
            if token in open(f"/proc/{pid}/{part}", "rb").read():
                print(pid, part, open(f"/proc/{pid}/cmdline", "rb").read()[:80])
        except OSError:
            pass
"""


def test_pfs_auth_makes_a_root_token_prints_it_once_and_the_appliance_uses_it(appliance_factory, data_volume):
    import re

    from pachyderm_sdk import Client

    app = appliance_factory(volume=data_volume, env={"PACHSTUDIO_PFS_AUTH": "1"}).wait_healthy()
    [token] = re.findall(r"root token: ([0-9a-f]{32})", app.logs())
    with pytest.raises(Exception, match="no authentication token"):
        list(Client.from_pachd_address(app.pachd_address).pfs.list_repo())
    client = Client.from_pachd_address(app.pachd_address, auth_token=token)
    assert client.auth.who_am_i().username == "pach:root"
    rc, out = app.exec("stat", "-c", "%U %a", "/data/pfs/root-token")
    assert (rc, out.strip()) == (0, "pachstudio 600")
    rc, out = app.exec("python", "-c", TOKEN_IN_PROCESSES)
    assert rc == 0 and out.strip() == "", f"the token is on a command line or in an environment: {out}"

    # The mount server holds the token (its own config): Source sync and Target Sync work.
    put_source_files(client)
    api = app.api()
    project, target, annotations = import_and_label(api, client, annotate=2)
    target_sync_makes_one_commit(api, client, target, annotations)

    # A restart keeps auth on with the same token, never printed again.
    app.container.restart(timeout=30)
    app.wait_healthy()
    assert app.logs().count(token) == 1
    with pytest.raises(Exception, match="no authentication token"):
        list(Client.from_pachd_address(app.pachd_address).pfs.list_repo())
    api = app.api()  # the published ports may change on a restart
    [task] = [t for t in api.tasks(project["id"]) if not t["total_annotations"]]
    new = api.annotate(task["id"], "dog")
    client = Client.from_pachd_address(app.pachd_address, auth_token=token)
    before = {c.commit.id for c in commits(client, "labels")}
    api.call("POST", f"/api/storages/export/pachyderm/{target['id']}/sync")
    wait_storage(api, f"/api/storages/export/pachyderm/{target['id']}")
    [head] = [c for c in commits(client, "labels") if c.commit.id not in before]
    assert f"/annotations/{new['id']}.json" in files_at(client, f"labels@{head.commit.id}:/")
