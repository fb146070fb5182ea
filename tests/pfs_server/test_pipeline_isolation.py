"""Datums as nobody in particular, and the spec fields pachd carries out: the embedded server run
as root (as these tests run it) starts a datum launcher of its own, so every datum here runs as
a uid of its own in its own namespaces. Driven through the real SDK; processes are looked for in
the machine's whole process table (psutil), by a marker in the datum's command line."""

import json
import signal
import time
import uuid

import grpc
import psutil
import pytest
from pachyderm_sdk.api import pfs, pps

from plugins.pfs import PfsServer

from .conftest import put, read
from .test_pipelines import COPY, create, files_of, jobs_of, make_repo, name, pfs_in, wait_job, wait_last

CANARY = "root-token-canary-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Started as the README shows a server with auth: the root token in PACHSTUDIO_ROOT_TOKEN."""
    s = PfsServer(tmp_path_factory.mktemp("iso") / "pfs", env={"PACHSTUDIO_ROOT_TOKEN": CANARY}).start()
    yield s
    s.stop(signal.SIGKILL)


@pytest.fixture
def pach(server):
    return server.client(CANARY)


def marked(marker: str) -> list:
    """Processes of the whole machine whose command line holds `marker`."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if marker in " ".join(p.info["cmdline"] or []):
            found.append(p)
    return found


def wait_for(check, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"no {what} after {timeout}s")


def wait_gone(marker: str, timeout=30) -> None:
    deadline = time.monotonic() + timeout
    while marked(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [(p.pid, p.info["cmdline"]) for p in marked(marker)]
    assert not left, f"processes left behind: {left}"


def sleeper(marker: str) -> list:
    """A datum that starts a child and a grandchild (in the background) and sleeps for ever."""
    sleep = f"python3 -c 'import time; time.sleep(1000)' {marker}"
    return ["sh", "-c", f"({sleep} &) ; {sleep} & {sleep}; : {marker}", marker]


def messages(pach, p, **kw) -> list[str]:
    return [m.message for m in pach.pps.get_logs(pipeline=pps.Pipeline(name=p), **kw)]


PROBE = r"""
import json, os, socket, sys
data_dir, port, canary = sys.argv[1], int(sys.argv[2]), sys.argv[3]
report = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "root": sorted(os.listdir("/"))}
for what, path in (("data", data_dir), ("home", "/root"), ("run", "/run")):
    try:
        report[what] = sorted(os.listdir(path))
    except OSError as e:
        report[what] = f"{type(e).__name__}: {e.strerror}"
report["token_in_env"] = [k for k, v in os.environ.items() if canary in v or k == "PACHSTUDIO_ROOT_TOKEN"]
report["env"] = sorted(os.environ)
try:
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
    report["server"] = "connected"
except OSError as e:
    report["server"] = f"{type(e).__name__}: {e.strerror}"
print(json.dumps(report))
open("/pfs/out/report.json", "w").write(json.dumps(report))
"""


def test_a_datum_runs_as_a_user_of_its_own_and_sees_nothing_of_the_server(server, pach):
    repo = make_repo(pach, {"/a": b"1"})
    p = name()
    create(pach, p, pfs_in(repo, name="in"), ["python3", "-c", PROBE, server.data_dir, str(server.port), CANARY])
    job = wait_last(pach, p)
    assert job.state == pps.JobState.JOB_SUCCESS, (job.reason, messages(pach, p))
    report = json.loads(read(pach, f"{p}@master:/report.json"))
    assert report["uid"] >= 200000 and report["gid"] == report["uid"] and report["groups"] in ([], [report["gid"]])
    assert report["data"] == "FileNotFoundError: No such file or directory"  # the server's data folder
    assert report["home"].startswith("FileNotFoundError") and report["run"].startswith("FileNotFoundError")
    assert set(report["root"]) <= {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "opt", "pfs",
                                   "tmp", "dev", "proc"}, report["root"]  # fmt: skip
    assert report["token_in_env"] == [] and report["server"] == "OSError: Network is unreachable", report
    assert "HOME" in report["env"] and "PACH_DATUM_ID" in report["env"]
    logs = "\n".join(messages(pach, p))
    assert CANARY not in logs and json.dumps(report) in logs
    info = pach.pps.inspect_pipeline(pipeline=pps.Pipeline(name=p), details=True)
    assert "no network at all" in info.details.worker_rc and "127.0.0.1:9002" in info.details.worker_rc


def test_the_datum_gets_pachds_variables_for_its_inputs(pach):
    repo = make_repo(pach, {"/one.txt": b"1"})
    p = name()
    cmd = ["sh", "-c", 'env > /pfs/out/env; echo "$in" > /pfs/out/path']
    c = put(pach, f"{repo}@master", {"/two.txt": b"2"})
    create(pach, p, pfs_in(repo, name="in", glob="/*"), cmd, transform={"image": "x", "cmd": cmd, "env": {"A": "b"}})
    job = wait_last(pach, p)
    assert job.state == pps.JobState.JOB_SUCCESS, job.reason
    env = dict(line.split("=", 1) for line in read(pach, f"{p}@master:/env").decode().splitlines() if "=" in line)
    assert env["in_COMMIT"] == c.id and env["in"] in ("/pfs/in/one.txt", "/pfs/in/two.txt")
    assert env["PPS_PIPELINE_NAME"] == p and env["PPS_PROJECT_NAME"] == "default" and env["A"] == "b"
    assert env["PACH_JOB_ID"] == job.job.id and env["HOME"] == "/tmp"
    assert not {k for k in env if k.startswith("PACHSTUDIO_ROOT") or k.startswith("PYTEST")}


def test_a_datum_past_its_datum_timeout_is_killed_and_fails_the_job_with_pachds_reason(pach):
    repo = make_repo(pach, {"/a": b"1"})
    p, marker = name(), f"marker-{uuid.uuid4().hex}"
    started = time.monotonic()
    create(pach, p, pfs_in(repo, name="in"), sleeper(marker), datum_timeout="2s", datum_tries=2)
    job = wait_last(pach, p)
    took = time.monotonic() - started
    (datum,) = list(pach.pps.list_datum(job=job.job))
    assert (job.state, job.reason) == (pps.JobState.JOB_FAILURE, f"datum {datum.datum.id} failed")
    assert datum.state == pps.DatumState.FAILED and took < 60
    logs = messages(pach, p)
    timed_out = [m for m in logs if m.startswith("errored running user code after 2")]
    assert len(timed_out) == 2
    assert all(m.endswith("signal: killed because context deadline exceeded") for m in timed_out), timed_out
    wait_gone(marker)
    info = pach.pps.inspect_job(job=job.job, details=True)
    assert info.details.datum_timeout.total_seconds() == 2


def test_a_job_past_its_job_timeout_is_killed(pach):
    repo = make_repo(pach, {"/a": b"1"})
    p, marker = name(), f"marker-{uuid.uuid4().hex}"
    create(pach, p, pfs_in(repo, name="in"), sleeper(marker), job_timeout="3s")
    job = wait_last(pach, p)
    assert (job.state, job.reason) == (pps.JobState.JOB_KILLED, " jobtimed out")
    wait_gone(marker)
    out = pach.pfs.inspect_commit(commit=pfs.Commit(repo=pfs.Repo.from_uri(p), id=job.job.id))
    assert out.error == " jobtimed out"


@pytest.mark.parametrize("how", ["StopJob", "StopPipeline", "DeletePipeline"])
def test_stopping_a_job_or_its_pipeline_or_deleting_it_leaves_no_process(pach, how):
    repo = make_repo(pach, {"/a": b"1", "/b": b"2"})
    p, marker = name(), f"marker-{uuid.uuid4().hex}"
    create(pach, p, pfs_in(repo, name="in"), sleeper(marker))
    (job,) = jobs_of(pach, p)
    wait_for(lambda: len(marked(marker)) >= 6, what="two datums with their children")  # sh and 3 sleepers each
    if how == "StopJob":
        pach.pps.stop_job(job=job.job, reason="enough")
        done = wait_job(pach, p, job.job.id)
        assert (done.state, done.reason) == (pps.JobState.JOB_KILLED, "enough")
    elif how == "StopPipeline":
        pach.pps.stop_pipeline(pipeline=pps.Pipeline(name=p))
        done = wait_job(pach, p, job.job.id)
        reason = "all jobs killed because pipeline was stopped for user pach:root"  # pachd's, with the caller
        assert (done.state, done.reason) == (pps.JobState.JOB_KILLED, reason)
    else:
        pach.pps.delete_pipeline(pipeline=pps.Pipeline(name=p))
        assert not pach.pps.pipeline_exists(pps.Pipeline(name=p))
    wait_gone(marker)


def test_a_killed_server_leaves_no_process_and_runs_the_job_again(tmp_path):
    server = PfsServer(tmp_path / "pfs").start()
    marker = f"marker-{uuid.uuid4().hex}"
    try:
        pach = server.client()
        repo = make_repo(pach, {"/a": b"1"})
        p = name()
        create(pach, p, pfs_in(repo, name="in"), sleeper(marker), datum_timeout="20s", datum_tries=1)
        wait_for(lambda: len(marked(marker)) >= 3, what="a datum with its children")
        server.kill()
        wait_gone(marker)
        server.start()
        job = wait_last(server.client(), p)
        assert job.state == pps.JobState.JOB_FAILURE and job.restart == 1
        wait_gone(marker)
    finally:
        server.stop(signal.SIGKILL)


def test_err_cmd_recovers_a_failed_datum_as_pachd_does(pach):
    repo = make_repo(pach, {"/good": b"g", "/bad": b"b"})
    p = name()
    cmd = ["sh", "-c", "cp /pfs/in/* /pfs/out/; if [ -e /pfs/in/bad ]; then exit 1; fi"]
    transform = {"image": "x", "cmd": cmd, "err_cmd": ["sh"], "err_stdin": ["echo handled $PACH_DATUM_ID"]}
    create(pach, p, pfs_in(repo, name="in"), cmd, transform=transform, datum_tries=1)
    job = wait_last(pach, p)
    assert job.state == pps.JobState.JOB_SUCCESS, job.reason
    assert (job.data_processed, job.data_recovered, job.data_failed) == (1, 1, 0)
    states = {d.data[0].file.path: d.state for d in pach.pps.list_datum(job=job.job)}
    assert states == {"/good": pps.DatumState.SUCCESS, "/bad": pps.DatumState.RECOVERED}
    assert files_of(pach, f"{p}@master") == {"/good": b"g"}  # a recovered datum gives no output
    assert any(m.startswith("handled ") for m in messages(pach, p))
    # an err_cmd that fails too: the datum fails, and the job
    failing = dict(transform, err_cmd=["false"], err_stdin=[])
    create(pach, p, pfs_in(repo, name="in"), cmd, transform=failing, datum_tries=1, update=True, reprocess=True)
    assert wait_last(pach, p).state == pps.JobState.JOB_FAILURE


def test_accept_return_code_counts_as_success(pach):
    repo = make_repo(pach, {"/a": b"1"})
    p = name()
    cmd = ["sh", "-c", "cp /pfs/in/* /pfs/out/; exit 3"]
    create(pach, p, pfs_in(repo, name="in"), cmd, transform={"image": "x", "cmd": cmd, "accept_return_code": [3]})
    job = wait_last(pach, p)
    assert job.state == pps.JobState.JOB_SUCCESS and files_of(pach, f"{p}@master") == {"/a": b"1"}


SPAN = ["python3", "-c", "import os, time; t = time.time(); time.sleep(0.6); "
        "open('/pfs/out/' + os.listdir('/pfs/in')[0], 'w').write(f'{t} {time.time()}')"]  # fmt: skip


LEFTOVERS = r"""
import glob, json, os, subprocess, sys
name = os.listdir("/pfs/in")[0]
seen = {
    "uid": os.getuid(),
    "tmp": sorted(os.listdir("/tmp")),
    "shm": sorted(os.listdir("/dev/shm")),
    "out": sorted(os.listdir("/pfs/out")),
    "inputs": sorted(os.listdir("/pfs/in")),
    "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "ipc": sorted(open("/proc/sysvipc/shm").read().splitlines()[1:]),
}
for folder in ("/tmp", "/dev/shm"):
    open(f"{folder}/left-by-{name}", "w").write("x")
open(f"/pfs/out/{name}.json", "w").write(json.dumps(seen))
# left running (named by the test's marker, so no other run's process counts): it must end with its datum
subprocess.Popen(["python3", "-c", "import time; time.sleep(300)", sys.argv[1]], start_new_session=True)
"""


def test_datums_of_one_worker_share_its_slot_but_nothing_of_each_other(pach):
    """One worker's datums run in the jail its first datum's slot built, as the same uid; none
    sees what an earlier one left in /tmp, /dev/shm, /pfs/out or /proc."""
    repo = make_repo(pach, {f"/f{i}": str(i).encode() for i in range(4)})
    p, marker = name(), f"marker-{uuid.uuid4().hex}"
    cmd = ["python3", "-c", LEFTOVERS, marker]
    create(pach, p, pfs_in(repo, name="in"), cmd, parallelism_spec={"constant": 1}, datum_tries=1)
    job = wait_last(pach, p)
    assert job.state == pps.JobState.JOB_SUCCESS, (job.reason, messages(pach, p))
    seen = {path: json.loads(data) for path, data in files_of(pach, f"{p}@master").items()}
    assert len(seen) == 4 and len({s["uid"] for s in seen.values()}) == 1, seen
    for path, s in seen.items():
        assert (s["tmp"], s["shm"], s["out"], s["ipc"]) == ([], [], [], []), (path, s)
        assert s["inputs"] == [path[1:].removesuffix(".json")] and s["processes"] == [1], s  # python3 is pid 1
    wait_gone(marker)


@pytest.mark.parametrize("constant", [1, 2])
def test_parallelism_spec_sets_how_many_datums_run_at_once(pach, constant):
    repo = make_repo(pach, {f"/f{i}": b"x" for i in range(4)})
    p = name()
    create(pach, p, pfs_in(repo, name="in"), SPAN, parallelism_spec={"constant": constant})
    assert wait_last(pach, p).state == pps.JobState.JOB_SUCCESS
    spans = sorted(tuple(map(float, v.split())) for v in files_of(pach, f"{p}@master").values())
    overlaps = sum(1 for a, b in zip(spans, spans[1:]) if b[0] < a[1])
    info = pach.pps.inspect_pipeline(pipeline=pps.Pipeline(name=p), details=True)
    assert info.parallelism == constant and f"{constant} datum(s) of a job at once" in info.details.worker_rc
    assert overlaps == 0 if constant == 1 else overlaps > 0, spans


def test_reprocess_spec_every_job_runs_every_datum_again(pach):
    repo = make_repo(pach, {"/a": b"1", "/b": b"2"})
    p = name()
    create(pach, p, pfs_in(repo, name="in"), COPY, reprocess_spec="every_job")
    wait_last(pach, p)
    c = put(pach, f"{repo}@master", {"/c": b"3"})
    job = wait_job(pach, p, c.id)
    assert (job.data_processed, job.data_skipped) == (3, 0)


def test_resource_limits_memory_bounds_what_a_datum_may_allocate(pach):
    repo = make_repo(pach, {"/a": b"1"})
    p = name()
    cmd = ["python3", "-c", "b = bytearray(256 << 20); open('/pfs/out/done', 'w').write('x')"]
    create(pach, p, pfs_in(repo, name="in"), cmd, resource_limits={"memory": "128Mi"}, datum_tries=1)
    job = wait_last(pach, p)
    assert job.state == pps.JobState.JOB_FAILURE
    assert any("MemoryError" in m for m in messages(pach, p))
    create(pach, p, pfs_in(repo, name="in"), cmd, resource_limits={"memory": "1Gi"}, update=True)
    assert wait_last(pach, p).state == pps.JobState.JOB_SUCCESS


def test_restart_datum_ends_the_running_try_as_pachd_does(pach):
    repo = make_repo(pach, {"/a": b"1"})
    p, marker = name(), f"marker-{uuid.uuid4().hex}"
    create(pach, p, pfs_in(repo, name="in"), sleeper(marker), datum_tries=2)
    (job,) = jobs_of(pach, p)
    wait_for(lambda: marked(marker), what="the datum")
    with pytest.raises(grpc.RpcError) as e:
        pach.pps.restart_datum(job=job.job, data_filters=["/nope"])
    assert e.value.details() == f"datum matching filter [/nope] could not be found for job ID {job.job.id}"
    pach.pps.restart_datum(job=job.job, data_filters=["/a"])
    wait_for(lambda: messages(pach, p).count("beginning to run user code") == 2, what="a second try")
    assert any(m.endswith("signal: killed because context canceled") for m in messages(pach, p))
    pach.pps.stop_job(job=job.job)
    wait_gone(marker)


def test_symlinks_in_out_are_uploaded_only_from_the_datums_own_pfs(pach):
    repo = make_repo(pach, {"/a": b"inside"})
    p = name()
    cmd = ["sh", "-c", "ln -s /pfs/in/a /pfs/out/copy; mkdir /pfs/out/d; chmod 000 /pfs/out/d; ln -s ../in/a l"]
    create(pach, p, pfs_in(repo, name="in"), cmd, transform={"image": "x", "cmd": cmd, "working_dir": "/pfs/out"})
    assert wait_last(pach, p).state == pps.JobState.JOB_SUCCESS
    assert files_of(pach, f"{p}@master") == {"/copy": b"inside", "/l": b"inside"}
    create(pach, p, pfs_in(repo, name="in"), ["ln", "-s", "/etc/passwd", "/pfs/out/x"], update=True, reprocess=True,
           datum_tries=1)  # fmt: skip
    job = wait_last(pach, p)
    assert job.state == pps.JobState.JOB_FAILURE
    why = "errored uploading output: /pfs/out/x is a symlink to /etc/passwd, outside /pfs: only files of /pfs"
    assert any(m.startswith(why) for m in messages(pach, p)), messages(pach, p)


@pytest.mark.parametrize(
    "change, text",
    [
        ({"transform": {"secrets": [{"name": "s", "env_var": "S", "key": "k"}]}}, "transform.secrets is not supported"),
        ({"transform": {"user": "root"}}, "transform.user is not supported"),
        ({"resource_limits": {"gpu": {"type": "nvidia.com/gpu", "number": 1}}}, "resource_limits.gpu is not supported"),
        ({"pod_patch": "[]"}, "pod_patch is not supported by this server: there is no Kubernetes here"),
        ({"input": {"pfs": {"repo": "REPO", "glob": "/*", "s3": True}}}, "input.pfs.s3 is not supported"),
        ({"input": {"cross": [{"pfs": {"repo": "REPO", "glob": "/*", "lazy": True, "trigger": {"size": "1M"}}}]}},
         "input.cross[0].pfs.trigger is not supported"),
        ({"transfrom": {}}, 'unknown field "transfrom"'),
        ({"datum_timeout": "1m"}, 'datum_timeout "1m" is not a duration: write it in seconds with an "s"'),
        ({"resource_limits": {"memory": "lots"}}, 'resource_limits.memory "lots" is not a memory quantity'),
    ],
)
def test_spec_fields_this_server_does_not_carry_out_are_refused_by_name(pach, change, text):
    repo = make_repo(pach, {"/a": b"1"})
    p = name()
    spec = {"pipeline": {"name": p}, "transform": {"image": "x", "cmd": ["true"]}, "input": pfs_in(repo)}
    for key, value in json.loads(json.dumps(change).replace("REPO", repo)).items():
        spec[key] = dict(spec[key], **value) if isinstance(spec.get(key), dict) and key == "transform" else value
    with pytest.raises(grpc.RpcError) as e:
        pach.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert text in e.value.details() and e.value.details().startswith("invalid pipeline spec: ")
    assert not pach.pps.pipeline_exists(pps.Pipeline(name=p))
    assert p not in {r.repo.name for r in pach.pfs.list_repo()}


def test_without_a_launcher_the_pipeline_and_job_log_say_what_is_missing(tmp_path):
    """A server that is not root and has no launcher (here: in a user namespace of its own without
    a uid mapping, so it is uid 65534 to itself) runs datums as itself, and says so; it still
    gives them only their own environment, and kills them past their datum_timeout."""
    server = PfsServer(tmp_path / "pfs", env={"PACHSTUDIO_ROOT_TOKEN": CANARY}, prefix=["unshare", "--user"]).start()
    marker = f"marker-{uuid.uuid4().hex}"
    try:
        pach = server.client(CANARY)
        repo = make_repo(pach, {"/a": b"1"})
        p = name()
        create(pach, p, pfs_in(repo, name="in"), ["sh", "-c", f"env | grep -c {CANARY}; sleep 100; : {marker}"],
               datum_timeout="6s", datum_tries=1)  # fmt: skip  (2 s was too short under load for sh to reach grep)
        job = wait_last(pach, p)
        assert job.state == pps.JobState.JOB_FAILURE
        wait_gone(marker)
        expected = (
            "datums run as this server's own user, with its network: no datum launcher (this server runs as "
            "uid 65534, not root, and was given no --datum-launcher)"
        )
        info = pach.pps.inspect_pipeline(pipeline=pps.Pipeline(name=p), details=True)
        assert expected in info.details.worker_rc
        assert any(expected in m for m in messages(pach, p, master=True))
        assert "0" in [m for m in messages(pach, p) if m.isdigit()]  # grep counted no canary in its env
    finally:
        server.stop(signal.SIGKILL)
        for left in marked(marker):  # only ours (its unique marker), should the test have failed
            left.kill()
