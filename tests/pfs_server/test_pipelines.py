"""Pipelines in the embedded server, driven by the real pachyderm-sdk over gRPC: pachd's semantics
for output repos, jobs per commit set, datums, skipping, retries, failures and logs."""

import json
import signal
import time
import uuid

import grpc
import pytest
from pachyderm_sdk.api import pfs, pps

from pachstudio import datums as D
from plugins.pfs import InProcessPfsServer, PfsServer

from .conftest import is_finished, put, read


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = InProcessPfsServer(tmp_path_factory.mktemp("pps") / "pfs").start()
    yield s
    s.stop()


@pytest.fixture
def pach(server):
    return server.client()


def name(prefix="p"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_repo(pach, files=None, repo=None):
    repo = repo or name("in")
    pach.pfs.create_repo(repo=pfs.Repo.from_uri(repo))
    if files:
        put(pach, f"{repo}@master", files)
    return repo


def create(pach, pipeline, input_, cmd, **extra):
    spec = {"pipeline": {"name": pipeline}, "transform": {"image": "python:3.11", "cmd": cmd}, "input": input_}
    spec.update(extra)
    return pach.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))


def pfs_in(repo, glob="/*", **kw):
    return {"pfs": {"repo": repo, "glob": glob, **kw}}


def jobs_of(pach, pipeline):
    return list(pach.pps.list_job(pipeline=pps.Pipeline(name=pipeline)))


def wait_job(pach, pipeline, job_id):
    return pach.pps.inspect_job(job=pps.Job(pipeline=pps.Pipeline(name=pipeline), id=job_id), wait=True)


def wait_last(pach, pipeline):
    return wait_job(pach, pipeline, jobs_of(pach, pipeline)[0].job.id)


def files_of(pach, uri):
    return {
        f.file.path: read(pach, f"{uri}:{f.file.path}")
        for f in pach.pfs.walk_file(file=pfs.File.from_uri(uri + ":/"))
        if f.file_type == pfs.FileType.FILE
    }


COPY = ["sh", "-c", "cp -r /pfs/in/* /pfs/out/"]


def test_sdk_create_pipeline_makes_the_output_repo_and_runs_a_job_for_the_current_heads(pach):
    repo = make_repo(pach, {"/a.txt": b"A", "/b.txt": b"B"}, name("in"))
    p = name()
    pach.pps.create_pipeline(
        pipeline=pps.Pipeline(name=p),
        transform=pps.Transform(image="alpine:3", cmd=["sh", "-c", "cp /pfs/src/* /pfs/out/"]),
        input=pps.Input(pfs=pps.PfsInput(repo=repo, glob="/*", name="src")),
    )
    branch = pach.pfs.inspect_branch(branch=pfs.Branch.from_uri(f"{p}@master"))
    assert (repo, "master") in {(b.repo.name, b.name) for b in branch.direct_provenance}
    (job,) = jobs_of(pach, p)
    done = wait_job(pach, p, job.job.id)
    assert done.state == pps.JobState.JOB_SUCCESS and done.data_processed == 2 and done.data_total == 2
    assert files_of(pach, f"{p}@master") == {"/a.txt": b"A", "/b.txt": b"B"}
    assert done.output_commit.id == job.job.id
    info = pach.pps.inspect_pipeline(pipeline=pps.Pipeline(name=p), details=True)
    assert info.details.transform.image == "alpine:3"
    # a server that runs as root (this test's) starts a datum launcher of its own
    assert "runs no containers" in info.details.worker_rc and "a user of its own" in info.details.worker_rc


def test_json_spec_like_pachctl_create_pipeline_answers_the_effective_spec(pach):
    repo = make_repo(pach, {"/x": b"1"})
    p = name()
    spec = {
        "pipeline": {"name": p},
        "description": "copies",
        "transform": {"cmd": ["sh", "-c", "cp /pfs/in/* /pfs/out/"], "image": "alpine"},
        "input": {"pfs": {"repo": repo, "glob": "/*", "name": "in"}},
    }
    answer = pach.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))
    effective = json.loads(answer.effective_create_pipeline_request_json)
    assert effective["datum_tries"] == 3 and effective["input"]["pfs"]["branch"] == "master"
    assert wait_last(pach, p).state == pps.JobState.JOB_SUCCESS
    assert pach.pps.inspect_pipeline(pipeline=pps.Pipeline(name=p)).details.description == "copies"
    assert p in [i.pipeline.name for i in pach.pps.list_pipeline()]


def test_each_input_commit_starts_one_job_with_its_id_in_the_same_commit_set(pach):
    repo = make_repo(pach, {"/a": b"1"})
    p = name()
    create(pach, p, pfs_in(repo, name="in"), COPY)
    wait_last(pach, p)
    c = put(pach, f"{repo}@master", {"/b": b"2"})
    job = wait_job(pach, p, c.id)
    assert job.state == pps.JobState.JOB_SUCCESS
    members = {
        (ci.commit.repo.name, ci.commit.id) for ci in pach.pfs.inspect_commit_set(commit_set=pfs.CommitSet(id=c.id))
    }
    assert (p, c.id) in members and (repo, c.id) in members
    out = pach.pfs.inspect_commit(commit=pfs.Commit(repo=pfs.Repo.from_uri(p), id=c.id))
    assert is_finished(out) and out.error == ""
    assert [j.job.id for j in pach.pps.inspect_job_set(job_set=pps.JobSet(id=c.id), wait=True)] == [c.id]
    assert len(jobs_of(pach, p)) == 2


def test_unchanged_datums_are_skipped_and_deleted_inputs_leave_the_output(pach):
    repo = make_repo(pach, {f"/f{i}": str(i).encode() for i in range(5)})
    p = name()
    create(pach, p, pfs_in(repo, name="in"), COPY)
    first = wait_last(pach, p)
    assert (first.data_processed, first.data_skipped) == (5, 0)
    c = put(pach, f"{repo}@master", {"/f0": b"changed", "/f1": None, "/new": b"n"})
    job = wait_job(pach, p, c.id)
    assert (job.data_processed, job.data_skipped, job.data_total) == (2, 3, 6 - 1)
    out = files_of(pach, f"{p}@master")
    assert out == {"/f0": b"changed", "/f2": b"2", "/f3": b"3", "/f4": b"4", "/new": b"n"}
    states = {d.state for d in pach.pps.list_datum(job=job.job)}
    assert states == {pps.DatumState.SUCCESS, pps.DatumState.SKIPPED}


def test_a_failing_datum_is_retried_then_fails_the_job_and_nothing_reaches_the_output(pach):
    repo = make_repo(pach, {"/good": b"ok"})
    p = name()
    cmd = ["sh", "-c", "if [ -e /pfs/in/bad ]; then echo boom >&2; exit 3; fi; cp /pfs/in/* /pfs/out/"]
    create(pach, p, pfs_in(repo, name="in"), cmd, datum_tries=2)
    assert wait_last(pach, p).state == pps.JobState.JOB_SUCCESS
    before = files_of(pach, f"{p}@master")
    c = put(pach, f"{repo}@master", {"/bad": b"x", "/more": b"y"})
    job = wait_job(pach, p, c.id)
    bad = [d for d in pach.pps.list_datum(job=job.job) if d.state == pps.DatumState.FAILED]
    assert job.state == pps.JobState.JOB_FAILURE
    assert len(bad) == 1 and job.reason == f"datum {bad[0].datum.id} failed" and job.data_failed == 1
    out = pach.pfs.inspect_commit(commit=pfs.Commit(repo=pfs.Repo.from_uri(p), id=c.id))
    assert is_finished(out) and out.error == job.reason
    assert files_of(pach, f"{p}@master") == before  # not /more: nothing of the failed job
    logs = [m.message for m in pach.pps.get_logs(job=job.job, datum=pps.Datum(job=job.job, id=bad[0].datum.id))]
    assert logs.count("boom") == 2 and any("try 2 of 2" in m for m in logs)
    # the next good commit builds on the last good output, not the failed one
    c2 = put(pach, f"{repo}@master", {"/bad": None})
    assert wait_job(pach, p, c2.id).state == pps.JobState.JOB_SUCCESS
    assert files_of(pach, f"{p}@master") == {"/good": b"ok", "/more": b"y"}


def test_the_transform_gets_pachds_env_and_the_specs_env(pach):
    repo = make_repo(pach, {"/one": b"1"})
    p = name()
    cmd = [
        "sh",
        "-c",
        'printf "%s %s %s %s" "$PACH_JOB_ID" "$PACH_DATUM_ID" "$PACH_OUTPUT_COMMIT_ID" "$GREETING" > /pfs/out/env',
    ]
    create(pach, p, pfs_in(repo, name="in"), cmd, transform={"image": "x", "cmd": cmd, "env": {"GREETING": "hi"}})
    job = wait_last(pach, p)
    (datum,) = list(pach.pps.list_datum(job=job.job))
    job_id, datum_id, out_id, greeting = read(pach, f"{p}@master:/env").decode().split()
    assert (job_id, datum_id, out_id, greeting) == (job.job.id, datum.datum.id, job.job.id, "hi")


def test_each_datum_sees_only_its_own_files_and_stdin_paths_work(pach):
    repo = make_repo(pach, {"/a/1.txt": b"a1", "/a/2.txt": b"a2", "/b/1.txt": b"b1", "/top": b"t"})
    p = name()
    script = ["cd /pfs/in && find . -type f | sort | tr '\\n' ' ' > /pfs/out/$(ls /pfs/in | head -1).list"]
    create(
        pach, p, pfs_in(repo, glob="/*/", name="in"), ["sh"], transform={"image": "x", "cmd": ["sh"], "stdin": script}
    )
    assert wait_last(pach, p).state == pps.JobState.JOB_SUCCESS
    # pachd cleans "/*/" to "/*": the top-level file is a datum of its own too
    assert files_of(pach, f"{p}@master") == {
        "/a.list": b"./a/1.txt ./a/2.txt ",
        "/b.list": b"./b/1.txt ",
        "/top.list": b"./top ",
    }


def test_datum_ids_are_pachds_and_list_datum_of_an_input_needs_no_pipeline(pach):
    repo = make_repo(pach, {"/x.png": b"1", "/y.png": b"2"})
    infos = list(
        pach.pps.list_datum(input=pps.Input(pfs=pps.PfsInput(repo=repo, glob="/*", branch="master", name=repo)))
    )
    expected = {
        D.datum_id([D.DatumInput(repo, "default", repo, "master", path, "", ())]) for path in ("/x.png", "/y.png")
    }
    assert {i.datum.id for i in infos} == expected
    assert sorted(f.file.path for i in infos for f in i.data) == ["/x.png", "/y.png"]


def test_join_pairs_each_image_with_its_label_by_capture_group(pach):
    images = make_repo(pach, {"/cat.png": b"C", "/dog.png": b"D", "/eel.png": b"E"})
    labels = make_repo(pach, {"/cat.json": b"c", "/dog.json": b"d"})
    p = name()
    join = {
        "join": [
            pfs_in(images, glob="/(*).png", join_on="$1", name="img"),
            pfs_in(labels, glob="/(*).json", join_on="$1", name="lab"),
        ]
    }
    cmd = ["sh", "-c", "for f in /pfs/img/*; do b=$(basename $f .png); cat $f /pfs/lab/$b.json > /pfs/out/$b; done"]
    create(pach, p, join, cmd)
    job = wait_last(pach, p)
    assert job.state == pps.JobState.JOB_SUCCESS and job.data_total == 2
    assert files_of(pach, f"{p}@master") == {"/cat": b"Cc", "/dog": b"Dd"}


def test_cross_runs_every_pair(pach):
    a = make_repo(pach, {"/1": b"1", "/2": b"2"})
    b = make_repo(pach, {"/x": b"x", "/y": b"y", "/z": b"z"})
    p = name()
    cmd = ["sh", "-c", "cat /pfs/a/* /pfs/b/* > /pfs/out/$(ls /pfs/a)$(ls /pfs/b)"]
    create(pach, p, {"cross": [pfs_in(a, name="a"), pfs_in(b, name="b")]}, cmd)
    assert wait_last(pach, p).data_total == 6
    assert files_of(pach, f"{p}@master") == {f"/{i}{j}": f"{i}{j}".encode() for i in "12" for j in "xyz"}


def test_stdout_and_stderr_of_each_datum_reach_get_logs(pach):
    repo = make_repo(pach, {"/q": b"1"})
    p = name()
    create(pach, p, pfs_in(repo, name="in"), ["sh", "-c", "echo to-out; echo to-err >&2; cp /pfs/in/q /pfs/out/"])
    job = wait_last(pach, p)
    user = [m for m in pach.pps.get_logs(pipeline=pps.Pipeline(name=p)) if m.user]
    assert {m.message for m in user} == {"to-out", "to-err"}
    assert all(m.job_id == job.job.id and m.datum_id and m.data[0].path == "/q" for m in user)
    master = [m.message for m in pach.pps.get_logs(pipeline=pps.Pipeline(name=p), master=True)]
    assert any("recorded, not pulled" in m and "a user of its own" in m for m in master)


def test_stop_starts_no_job_and_start_runs_one_for_the_current_heads(pach):
    repo = make_repo(pach, {"/a": b"1"})
    p = name()
    create(pach, p, pfs_in(repo, name="in"), COPY)
    wait_last(pach, p)
    pach.pps.stop_pipeline(pipeline=pps.Pipeline(name=p))
    assert pach.pps.inspect_pipeline(pipeline=pps.Pipeline(name=p)).state == pps.PipelineState.PIPELINE_PAUSED
    put(pach, f"{repo}@master", {"/b": b"2"})
    time.sleep(1)
    assert len(jobs_of(pach, p)) == 1
    pach.pps.start_pipeline(pipeline=pps.Pipeline(name=p))
    assert wait_last(pach, p).state == pps.JobState.JOB_SUCCESS
    assert len(jobs_of(pach, p)) == 2
    assert files_of(pach, f"{p}@master") == {"/a": b"1", "/b": b"2"}


def test_update_runs_a_new_job_and_reprocess_runs_every_datum_again(pach):
    repo = make_repo(pach, {"/a": b"1", "/b": b"2"})
    p = name()
    create(pach, p, pfs_in(repo, name="in"), COPY)
    wait_last(pach, p)
    with pytest.raises(grpc.RpcError) as e:
        create(pach, p, pfs_in(repo, name="in"), COPY)
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert e.value.details() == f'pipeline "default/{p}" already exists'
    create(pach, p, pfs_in(repo, name="in"), COPY, update=True)
    job = wait_last(pach, p)
    assert (job.data_processed, job.data_skipped) == (0, 2) and job.pipeline_version == 2
    create(pach, p, pfs_in(repo, name="in"), COPY, update=True, reprocess=True)
    job = wait_last(pach, p)
    assert (job.data_processed, job.data_skipped) == (2, 0)


def test_delete_pipeline_removes_its_output_repo_unless_keep_repo(pach):
    repo = make_repo(pach, {"/a": b"1"})
    p, q = name(), name()
    create(pach, p, pfs_in(repo, name="in"), COPY)
    create(pach, q, pfs_in(repo, name="in"), COPY)
    wait_last(pach, p), wait_last(pach, q)
    pach.pps.delete_pipeline(pipeline=pps.Pipeline(name=p))
    pach.pps.delete_pipeline(pipeline=pps.Pipeline(name=q), keep_repo=True)
    repos = {r.repo.name for r in pach.pfs.list_repo()}
    assert p not in repos and q in repos
    assert files_of(pach, f"{q}@master") == {"/a": b"1"}
    assert not pach.pps.pipeline_exists(pps.Pipeline(name=p))
    put(pach, f"{repo}@master", {"/b": b"2"})  # no pipeline reads it any more: no job, no error
    assert pach.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{repo}@master"), wait=pfs.CommitState.FINISHED)


@pytest.mark.parametrize(
    "change, code, text",
    [
        ({"input": pfs_in("no-such-repo")}, grpc.StatusCode.NOT_FOUND, "repo default/no-such-repo not found"),
        (
            {"transform": {}},
            grpc.StatusCode.UNKNOWN,
            "invalid transform: pipeline transform must contain an image",
        ),
        ({"transform": None}, grpc.StatusCode.UNKNOWN, "pipeline must specify a transform"),
        ({"input": pfs_in("REPO", glob="/[a")}, grpc.StatusCode.INVALID_ARGUMENT, "invalid glob pattern '/[a'"),
        ({"input": pfs_in("REPO", glob="")}, grpc.StatusCode.UNKNOWN, "input must specify a glob"),
        (
            {"input": {"cross": [pfs_in("REPO"), pfs_in("REPO")]}},
            grpc.StatusCode.UNKNOWN,
            'name "REPO" was used more than once',
        ),
    ],
)
def test_bad_specs_get_pachds_errors_and_create_nothing(pach, change, code, text):
    repo = make_repo(pach, {"/a": b"1"})
    p = name()
    spec = {"pipeline": {"name": p}, "transform": {"image": "x", "cmd": ["true"]}, "input": pfs_in(repo)}
    spec.update(json.loads(json.dumps(change).replace("REPO", repo)))
    spec = {k: v for k, v in spec.items() if v is not None}
    with pytest.raises(grpc.RpcError) as e:
        pach.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))
    assert e.value.code() == code
    assert text.replace("REPO", repo) in e.value.details()
    assert p not in {r.repo.name for r in pach.pfs.list_repo()}
    assert not pach.pps.pipeline_exists(pps.Pipeline(name=p))


def test_a_pipeline_cannot_take_the_name_of_an_existing_repo(pach):
    repo = make_repo(pach, {"/a": b"1"})
    taken = make_repo(pach, {"/keep": b"k"})
    with pytest.raises(grpc.RpcError) as e:
        create(pach, taken, pfs_in(repo, name="in"), COPY)
    assert e.value.code() == grpc.StatusCode.UNKNOWN
    assert e.value.details() == f'pipeline "{taken}" cannot be created because a repo with the same name already exists'
    assert files_of(pach, f"{taken}@master") == {"/keep": b"k"}
    assert not pach.pps.pipeline_exists(pps.Pipeline(name=taken))


def test_chained_pipelines_share_the_commit_set_and_inspect_job_set_waits_for_both(pach):
    repo = make_repo(pach, {"/a": b"1"})
    first, second = name("first"), name("second")
    create(pach, first, pfs_in(repo, name="in"), COPY)
    create(
        pach,
        second,
        pfs_in(first, name="in"),
        ["sh", "-c", "for f in /pfs/in/*; do cat $f $f > /pfs/out/$(basename $f); done"],
    )
    wait_last(pach, first), wait_last(pach, second)
    c = put(pach, f"{repo}@master", {"/b": b"2"})
    jobs = list(pach.pps.inspect_job_set(job_set=pps.JobSet(id=c.id), wait=True))
    assert [(j.job.pipeline.name, j.state) for j in jobs] == [
        (first, pps.JobState.JOB_SUCCESS),
        (second, pps.JobState.JOB_SUCCESS),
    ]
    assert files_of(pach, f"{second}@master") == {"/a": b"11", "/b": b"22"}


def test_two_pipelines_over_one_repo_run_the_same_commit_sets_datums_at_once_apart(pach):
    """Both pipelines' jobs for one input commit share its ID (one commit set) and run at once:
    each datum keeps its own folder."""
    repo = make_repo(pach, {"/seed": b"s"})
    first, second = name("left"), name("right")
    slow_copy = ["sh", "-c", "sleep 0.2; cp /pfs/in/* /pfs/out/"]
    for p in (first, second):
        create(pach, p, pfs_in(repo, name="in"), slow_copy, parallelism_spec={"constant": 2}, datum_tries=1)
    wait_last(pach, first), wait_last(pach, second)
    files = {f"/f{i:02d}": f"file {i}".encode() for i in range(12)}
    c = put(pach, f"{repo}@master", files)
    jobs = {p: wait_job(pach, p, c.id) for p in (first, second)}
    assert {p: (j.state, j.reason, j.data_processed) for p, j in jobs.items()} == {
        first: (pps.JobState.JOB_SUCCESS, "", 12),
        second: (pps.JobState.JOB_SUCCESS, "", 12),
    }
    spans = [(j.started.timestamp(), j.finished.timestamp()) for j in jobs.values()]
    assert max(s for s, _ in spans) < min(e for _, e in spans), f"the two jobs did not overlap: {spans}"
    for p in (first, second):
        assert files_of(pach, f"{p}@master") == {"/seed": b"s", **files}


def test_subscribe_job_streams_each_new_job(pach):
    repo = make_repo(pach, {"/a": b"1"})
    p = name()
    create(pach, p, pfs_in(repo, name="in"), COPY)
    stream = pach.pps.subscribe_job(pipeline=pps.Pipeline(name=p))
    first = next(stream)
    c = put(pach, f"{repo}@master", {"/b": b"2"})
    seen = {first.job.id}
    for info in stream:
        seen.add(info.job.id)
        if info.job.id == c.id and info.state == pps.JobState.JOB_SUCCESS:
            break
    stream.close()
    assert c.id in seen


def test_one_job_at_a_time_per_pipeline(pach):
    repo = make_repo(pach, {"/a": b"1"})
    p = name()
    create(pach, p, pfs_in(repo, name="in"), ["sh", "-c", "sleep 0.5; cp /pfs/in/* /pfs/out/"])
    for i in range(3):
        put(pach, f"{repo}@master", {f"/n{i}": b"x"})
    jobs = [wait_job(pach, p, j.job.id) for j in jobs_of(pach, p)]
    spans = sorted((j.started.timestamp(), j.finished.timestamp()) for j in jobs)
    assert len(spans) == 4 and all(spans[i][1] <= spans[i + 1][0] for i in range(3))
    assert set(files_of(pach, f"{p}@master")) == {"/a", "/n0", "/n1", "/n2"}


def test_a_job_cut_by_a_crash_runs_again_and_is_never_half_committed(tmp_path):
    server = PfsServer(tmp_path / "pfs").start()
    try:
        pach = server.client()
        repo = make_repo(pach, {f"/f{i}": b"x" for i in range(6)})
        p = name()
        create(pach, p, pfs_in(repo, name="in"), ["sh", "-c", "sleep 0.4; cp /pfs/in/* /pfs/out/"])
        (job,) = jobs_of(pach, p)
        deadline = time.monotonic() + 20
        while pach.pps.inspect_job(job=job.job).data_processed < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill()
        server.start()
        pach = server.client()
        out = pach.pfs.inspect_commit(commit=pfs.Commit(repo=pfs.Repo.from_uri(p), id=job.job.id))
        everything = {f"/f{i}": b"x" for i in range(6)}
        # the job's commit is open (its re-run goes on) or finished with all of it: never a part
        assert not is_finished(out) or files_of(pach, f"{p}@{job.job.id}") == everything
        done = wait_job(pach, p, job.job.id)
        assert done.state == pps.JobState.JOB_SUCCESS and done.restart == 1
        assert files_of(pach, f"{p}@master") == {f"/f{i}": b"x" for i in range(6)}
        assert any(
            "running it again" in m.message for m in pach.pps.get_logs(pipeline=pps.Pipeline(name=p), master=True)
        )
    finally:
        server.stop(signal.SIGKILL)


def test_literal_pfs_paths_work_inside_scripts_and_inputs_are_read_only(pach):
    """The datum's root has a /pfs of its own (the launcher's), whether or not the machine has one."""
    repo = make_repo(pach, {"/a.txt": b"hello"})
    p = name()
    script = (
        "import os\n"
        "data = open('/pfs/in/a.txt').read()\n"
        "try:\n    open('/pfs/in/a.txt', 'w').write('overwritten')\n    ro = 'writable'\n"
        "except OSError:\n    ro = 'read-only'\n"
        "open('/pfs/out/result', 'w').write(data + ' ' + ro + ' ' + ' '.join(sorted(os.listdir('/pfs'))))\n"
    )
    create(pach, p, pfs_in(repo, name="in"), ["python3", "-c", script])
    job = wait_last(pach, p)
    assert job.state == pps.JobState.JOB_SUCCESS, job.reason
    logs = [m.message for m in pach.pps.get_logs(pipeline=pps.Pipeline(name=p))]
    assert read(pach, f"{p}@master:/result") == b"hello read-only in out", logs
    assert read(pach, f"{repo}@master:/a.txt") == b"hello"


def test_stop_job_kills_it_and_its_output_commit_carries_the_reason(pach):
    repo = make_repo(pach, {"/a": b"1"})
    p = name()
    create(pach, p, pfs_in(repo, name="in"), COPY)
    wait_last(pach, p)
    before = files_of(pach, f"{p}@master")
    pach.pps.stop_pipeline(pipeline=pps.Pipeline(name=p))
    pach.pps.create_pipeline_v2(
        create_pipeline_request_json=json.dumps(
            {
                "pipeline": {"name": p},
                "transform": {"image": "x", "cmd": ["sh", "-c", "sleep 3; cp /pfs/in/* /pfs/out/"]},
                "input": pfs_in(repo, name="in"),
            }
        ),
        update=True,
    )
    pach.pps.start_pipeline(pipeline=pps.Pipeline(name=p))
    c = put(pach, f"{repo}@master", {f"/n{i}": b"x" for i in range(4)})
    job = pps.Job(pipeline=pps.Pipeline(name=p), id=c.id)
    pach.pps.stop_job(job=job, reason="enough")
    done = pach.pps.inspect_job(job=job, wait=True)
    assert (done.state, done.reason) == (pps.JobState.JOB_KILLED, "enough")
    out = pach.pfs.inspect_commit(commit=pfs.Commit(repo=pfs.Repo.from_uri(p), id=c.id))
    assert is_finished(out) and out.error == "enough"
    assert files_of(pach, f"{p}@master") == before
    pach.pps.delete_job(job=job)
    assert not pach.pps.job_exists(job)


def test_generate_datums_hands_them_out_in_the_batches_asked_for(pach):
    repo = make_repo(pach, {f"/f{i:02d}": b"d" for i in range(23)})
    stream = pach.pps.generate_datums(input_spec=pps.Input(pfs=pps.PfsInput(repo=repo, glob="/*")), batch_size=10)
    sizes = [len(next(stream)), len(stream.send(5)), len(next(stream))]
    assert sizes == [10, 5, 8]
    with pytest.raises(StopIteration):
        next(stream)
