"""Pipelines on the image: a datum runs as nobody in particular (no token, no data, no network),
a datum past its datum_timeout, a StopJob and a killed PFS server leave no process behind, and
the health check notices a PFS server whose workers are all stuck. Processes are looked for in
the whole process table of the machine (psutil on the Docker host sees the container's)."""

import json
import time
import uuid

import grpc
import psutil
import pytest
from pachyderm_sdk.api import pfs, pps

from plugins.image import sdk_client

from .fault_steps import kill9, wait_for, wait_restarted

ROOT_TOKEN = "pachstudio-root-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def appliance(module_appliances):
    """The appliance with the embedded server's auth on, its root token given as the README shows."""
    return module_appliances(env={"PACHSTUDIO_ROOT_TOKEN": ROOT_TOKEN}).wait_healthy()


@pytest.fixture(scope="module")
def admin(appliance):
    return sdk_client(appliance.pachd_address, auth_token=ROOT_TOKEN)


def marked(marker: str) -> list:
    return [p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]


def sleeper(marker: str) -> list:
    """A datum with a child and a grandchild in the background, sleeping for ever."""
    sleep = f"python3 -c 'import time; time.sleep(1000)' {marker}"
    return ["sh", "-c", f"({sleep} &) ; {sleep} & {sleep}; : {marker}", marker]


def new_pipeline(client, cmd, files=("/a",), **extra) -> str:
    """A pipeline over a new repo holding `files`, one datum each."""
    repo, name = f"in-{uuid.uuid4().hex[:6]}", f"p-{uuid.uuid4().hex[:6]}"
    client.pfs.create_repo(repo=pfs.Repo.from_uri(repo))
    with client.pfs.commit(branch=pfs.Branch.from_uri(f"{repo}@master")) as c:
        for path in files:
            c.put_file_from_bytes(path=path, data=b"1")
    spec = {"pipeline": {"name": name}, "transform": {"image": "debian", "cmd": cmd},
            "input": {"pfs": {"repo": repo, "glob": "/*", "name": "in"}}, **extra}  # fmt: skip
    client.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))
    return name


def the_job(client, name):
    return next(iter(client.pps.list_job(pipeline=pps.Pipeline(name=name))))


def wait_job(client, name):
    return client.pps.inspect_job(job=the_job(client, name).job, wait=True)


def logs(client, name) -> list[str]:
    return [m.message for m in client.pps.get_logs(pipeline=pps.Pipeline(name=name))]


def gone_after(marker: str, timeout=60) -> float:
    """Seconds until no process carries `marker` (fails past `timeout`, naming what is left)."""
    started = time.monotonic()
    while marked(marker) and time.monotonic() - started < timeout:
        time.sleep(0.1)
    left = [(p.pid, p.info["cmdline"]) for p in marked(marker)]
    assert not left, f"processes left behind: {left}"
    return time.monotonic() - started


ATTEMPTS = r"""
import json, os, socket
tried = {}
for what, path in (("the root token", "/data/pfs/root-token"),
                   ("the Label Studio database", "/data/label-studio/label_studio.sqlite3"),
                   ("the PFS data", "/data/pfs")):
    try:
        tried[what] = f"read {len(os.listdir(path) if os.path.isdir(path) else open(path, 'rb').read())}"
    except OSError as e:
        tried[what] = f"{type(e).__name__}: {e.strerror}"
tried["PACHSTUDIO_ROOT_TOKEN"] = "set" if "PACHSTUDIO_ROOT_TOKEN" in os.environ else "not in its environment"
for port in (9002, 8080, 30650):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        tried[f"127.0.0.1:{port}"] = "connected"
    except OSError as e:
        tried[f"127.0.0.1:{port}"] = f"{type(e).__name__}: {e.strerror}"
tried["processes it sees"] = len([p for p in os.listdir("/proc") if p.isdigit()])
tried["uid"] = os.getuid()
for what, got in tried.items():
    print(f"tried {what}: {got}")
open("/pfs/out/tried.json", "w").write(json.dumps(tried))
"""


@pytest.mark.reliability(
    "Security",
    "a pipeline an admin created (auth on, root token given as PACHSTUDIO_ROOT_TOKEN) whose datum reads the "
    "root token, the Label Studio database, the PFS data and its environment, and connects to 127.0.0.1:9002, "
    "8080 and 30650",
)
def test_a_datum_gets_no_token_no_data_and_no_network(appliance, admin, outcome):
    for path in ("/data/pfs/root-token", "/data/label-studio/label_studio.sqlite3"):
        rc, out = appliance.exec("test", "-s", path)
        assert rc == 0, f"{path} should exist in the container, else this test proves nothing"
    name = new_pipeline(admin, ["python3", "-c", ATTEMPTS])
    job = wait_job(admin, name)
    assert job.state == pps.JobState.JOB_SUCCESS, (job.reason, logs(admin, name))
    tried = b"".join(m.value for m in admin.pfs.get_file(file=pfs.File.from_uri(f"{name}@master:/tried.json")))
    tried = json.loads(tried)
    lines = logs(admin, name)
    outcome("; ".join(f"{what}: {got}" for what, got in tried.items()))
    assert all(f"tried {what}: {got}" in lines for what, got in tried.items()), lines
    for what in ("the root token", "the Label Studio database", "the PFS data"):
        assert tried[what] == "FileNotFoundError: No such file or directory", tried
    assert tried["PACHSTUDIO_ROOT_TOKEN"] == "not in its environment"
    for port in (9002, 8080, 30650):
        assert tried[f"127.0.0.1:{port}"] == "OSError: Network is unreachable", tried
    assert tried["uid"] >= 200000 and tried["processes it sees"] <= 3, tried
    assert ROOT_TOKEN not in "\n".join(lines)
    info = admin.pps.inspect_pipeline(pipeline=pps.Pipeline(name=name), details=True)
    assert "a user of its own" in info.details.worker_rc and "no network at all" in info.details.worker_rc
    outcome("the job's log says each; the token is in no log line")


@pytest.mark.reliability("Fault", "a datum that sleeps (with a child and a grandchild) past a datum_timeout of 3s")
def test_a_datum_past_its_timeout_fails_the_job_with_pachds_reason(admin, outcome):
    marker = f"marker-{uuid.uuid4().hex}"
    started = time.monotonic()
    name = new_pipeline(admin, sleeper(marker), datum_timeout="3s", datum_tries=1)
    job = wait_job(admin, name)
    took = time.monotonic() - started
    (datum,) = list(admin.pps.list_datum(job=job.job))
    assert (job.state, job.reason) == (pps.JobState.JOB_FAILURE, f"datum {datum.datum.id} failed")
    [line] = [m for m in logs(admin, name) if m.startswith("errored running user code")]
    assert line.endswith("signal: killed because context deadline exceeded"), line
    left = gone_after(marker)
    state = pps.JobState(job.state).name
    outcome(f"{state} '{job.reason[:22]}... failed' {took:.0f} s after its creation; log: '{line}'; "
            f"processes of the datum left: 0 ({left:.1f} s after the job's end)")  # fmt: skip


@pytest.mark.reliability("Fault", "StopJob while two datums run, each with a child and a grandchild")
def test_stop_job_leaves_no_process(admin, outcome):
    marker = f"marker-{uuid.uuid4().hex}"
    name = new_pipeline(admin, sleeper(marker), files=("/a", "/b"))
    running = wait_for(lambda: len(marked(marker)) >= 6 and len(marked(marker)), "two datums with their children")
    job = the_job(admin, name)
    admin.pps.stop_job(job=job.job, reason="stopped by the test")
    done = admin.pps.inspect_job(job=job.job, wait=True)
    assert (done.state, done.reason) == (pps.JobState.JOB_KILLED, "stopped by the test")
    left = gone_after(marker)
    outcome(f"{running} processes of the datums before; {pps.JobState(done.state).name} '{done.reason}'; none left "
            f"{left:.1f} s after StopJob answered")  # fmt: skip


@pytest.mark.reliability("Fault", "`kill -9` of the embedded PFS server while a datum runs")
def test_a_killed_pfs_server_takes_its_datums_along(appliance, admin, outcome):
    marker = f"marker-{uuid.uuid4().hex}"
    name = new_pipeline(admin, sleeper(marker), datum_timeout="15s", datum_tries=1)
    wait_for(lambda: len(marked(marker)) >= 3, "the datum with its children")
    old = kill9(appliance, "pfs-server")
    left = gone_after(marker)
    new = wait_restarted(appliance, "pfs-server", old)
    client = sdk_client(appliance.pachd_address, auth_token=ROOT_TOKEN)
    job = wait_job(client, name)
    assert job.restart == 1 and job.state == pps.JobState.JOB_FAILURE, job
    outcome(f"killed pid {old}; the datum's processes gone {left:.1f} s later (its launcher ended them); "
            f"supervisord restarted the server (pid {new}); the job ran again (restart {job.restart}) and ended "
            f"{pps.JobState(job.state).name} past its datum_timeout")  # fmt: skip
    gone_after(marker)


def hold(address: str, repo: str, connections: int, per_connection: int) -> list:
    """SubscribeCommit watches (they never end by themselves), over separate connections (a
    connection may carry only half of the server's workers)."""
    calls = []
    request = bytes(pfs.SubscribeCommitRequest(repo=pfs.Repo.from_uri(repo), branch="master"))
    for _ in range(connections):
        own = [("grpc.use_local_subchannel_pool", 1)]  # a connection of its own, not one shared by channels
        channel = grpc.insecure_channel(address.removeprefix("grpc://"), options=own)
        for _ in range(per_connection):
            call = channel.unary_stream("/pfs_v2.API/SubscribeCommit")(request)
            next(call)  # the branch's commit: the call now holds a worker until cancelled
            calls.append((channel, call))
    return calls


def docker_verdict(app, wanted: str) -> bool:
    """True once Docker's health status is `wanted`; until then, fails with what its last checks said."""
    health = app.state()["Health"]
    if health["Status"] == wanted:
        return True
    last = [(entry["ExitCode"], entry["Output"].strip()[-200:]) for entry in health.get("Log", [])[-3:]]
    raise AssertionError(f"{health['Status']}, failing streak {health.get('FailingStreak')}, last checks {last}")


@pytest.mark.reliability("Fault", "every worker of the PFS server held by SubscribeCommit watches (4 workers)")
def test_the_health_check_notices_a_pfs_server_whose_workers_are_all_stuck(module_appliances, outcome):
    app = module_appliances(env={"PACHSTUDIO_PFS_WORKERS": "4"}).wait_healthy()
    client = sdk_client(app.pachd_address)
    client.pfs.create_repo(repo=pfs.Repo.from_uri("watched"))
    with client.pfs.commit(branch=pfs.Branch.from_uri("watched@master")) as c:
        c.put_file_from_bytes(path="/a", data=b"1")
    rc, out = app.exec("healthcheck")
    assert rc == 0, out
    # Docker counts failures only once a check has passed (until then its start period forgives them)
    wait_for(lambda: docker_verdict(app, "healthy"), "Docker's verdict healthy", timeout=180)
    started = time.monotonic()
    calls = hold(app.pachd_address, "watched", connections=2, per_connection=2)
    try:
        rc, out = app.exec("healthcheck")
        assert rc == 1 and "DEADLINE_EXCEEDED" in out, out
        wait_for(lambda: docker_verdict(app, "unhealthy"), "Docker's verdict unhealthy", timeout=120)
        unhealthy = time.monotonic() - started
        outcome(f"healthcheck: '{out.strip()}'; Docker: unhealthy {unhealthy:.0f} s after the workers were taken")
    finally:
        for channel, call in calls:
            call.cancel()
            channel.close()
    released = time.monotonic()
    wait_for(lambda: docker_verdict(app, "healthy"), "healthy again", timeout=120)
    outcome(f"watches cancelled: healthy again {time.monotonic() - released:.0f} s later")
