"""A pipeline spec's fields: refused by name when the embedded server does not carry them out,
and the values of those it does (durations, memory, CPUs, exit codes) read as pachd's JSON writes
them; what a datum's environment holds; how RestartDatum's filters pick datums; how a symlink in
/pfs/out is read; the launcher's frames."""

import os
import socket

import pytest

from pachstudio.datums import Datum, DatumInput
from pachstudio.pfs_server.errors import InvalidArgument
from pachstudio.pfs_server.pps import launcher as L
from pachstudio.pfs_server.pps.datum_runs import DatumRun, JobContext, OutputError, environment, go_duration, matches
from pachstudio.pfs_server.pps.pipelines import check_spec, normalize
from pachstudio.pfs_server.pps.spec_fields import check_fields, duration, memory_bytes, settings

pytestmark = pytest.mark.fast


def spec(**extra) -> dict:
    base = {"pipeline": {"name": "p"}, "transform": {"image": "x", "cmd": ["true"]},
            "input": {"pfs": {"repo": "r", "glob": "/*"}}}  # fmt: skip
    for key, value in extra.items():
        base[key] = dict(base[key], **value) if key == "transform" else value
    return normalize(base)


@pytest.mark.parametrize(
    "extra, named",
    [
        ({"transform": {"secrets": [{"name": "s"}]}}, "transform.secrets"),
        ({"transform": {"imagePullSecrets": ["x"]}}, "transform.image_pull_secrets"),
        ({"transform": {"user": "1000"}}, "transform.user"),
        ({"transform": {"debug": True}}, "transform.debug"),
        ({"sidecarResourceLimits": {"cpu": 1}}, "sidecar_resource_limits"),
        ({"resourceRequests": {"disk": "1Gi"}}, "resource_requests.disk"),
        ({"tolerations": [{"key": "k"}]}, "tolerations"),
        ({"metadata": {"labels": {"a": "b"}}}, "metadata"),
        ({"service": {"internalPort": 80}}, "service"),
        (
            {"input": {"union": [{"pfs": {"repo": "r", "glob": "/*", "reference": True}}]}},
            "input.union[0].pfs.reference",
        ),
    ],
)
def test_a_field_not_carried_out_is_refused_with_its_name_and_why(extra, named):
    with pytest.raises(InvalidArgument) as e:
        check_fields(spec(**extra))
    assert str(e.value).startswith(f"invalid pipeline spec: {named} is not supported by this server: ")


def test_fields_set_to_their_zero_value_are_not_refused():
    check_fields(spec(transform={"debug": False, "secrets": []}, s3_out=False, pod_spec=""))


def test_an_unknown_field_is_refused_as_pachds_json_parser_does():
    with pytest.raises(InvalidArgument, match='unknown field "transform.cmdd"'):
        check_fields(spec(transform={"cmdd": ["x"]}))


def test_values_read_as_pachds_json_writes_them():
    s = settings(spec(datum_timeout="1.500s", job_timeout="60s", parallelism_spec={"constant": "3"},
                      resource_limits={"memory": "512Mi", "cpu": 0.5}, resource_requests={"memory": "1G"},
                      transform={"accept_return_code": ["3", 4], "env": {"A": 1}},
                      reprocess_spec="every_job"))  # fmt: skip
    assert (s.datum_timeout, s.job_timeout, s.parallelism) == (1.5, 60.0, 3)
    assert (s.memory_limit, s.cpu_limit, s.memory_request) == (512 << 20, 0.5, 10**9)
    assert s.accept_return_code == (3, 4) and dict(s.env) == {"A": "1"} and s.every_job


@pytest.mark.parametrize(
    "value, text",
    [("1m", 'is not a duration: write it in seconds with an "s"'), (5, 'needs a unit: write it as "5s"'),
     ("0s", "must be more than 0s")],  # fmt: skip
)
def test_a_bad_duration_says_how_to_write_one(value, text):
    with pytest.raises(InvalidArgument, match=text):
        duration({"datum_timeout": value}, "datum_timeout")


@pytest.mark.parametrize("value, size", [("2G", 2 * 10**9), ("1.5Gi", 3 << 29), ("1e9", 10**9), ("4194304", 4 << 20)])
def test_memory_quantities_as_kubernetes_writes_them(value, size):
    assert memory_bytes(value, "resource_limits.memory") == size


def test_a_relative_working_dir_and_a_bad_env_name_are_refused():
    with pytest.raises(InvalidArgument, match="must be an absolute path"):
        settings(spec(transform={"working_dir": "pfs/in"}))
    with pytest.raises(InvalidArgument, match="cannot be an environment variable"):
        settings(spec(transform={"env": {"A=B": "c"}}))


def test_check_spec_keeps_a_given_salt_and_refuses_tf_job_in_pachds_words():
    assert check_spec(spec(salt="s1"))["salt"] == "s1"
    with pytest.raises(Exception, match="embedding TFJobs in pipelines is not supported yet"):
        check_spec(spec(tf_job={"tf_job": "x"}))


IN = DatumInput(name="in", project="default", repo="images", branch="master", path="/cats/", hash="h1",
                files=(("/cats/a.png", "f1"),), join_on="a")  # fmt: skip
DATUM = Datum(id="d1", hash="dh", inputs=(IN,))


def context(**kw) -> JobContext:
    base = dict(project="default", pipeline="p", job_id="j1", spec_commit="s1", cmd=["true"], stdin=[], tries=1,
                settings=settings(spec(transform={"env": {"PACH_JOB_ID": "mine", "GREETING": "hi"}})), limits={},
                commits={("default", "images"): "c1"}, empty_files=frozenset(), sandbox=None, store=None,
                log=lambda *a: None, halted=lambda: False)  # fmt: skip
    base.update(kw)
    return JobContext(**base)


def test_a_datums_environment_is_an_allow_list_the_specs_env_and_pachds_variables(monkeypatch):
    monkeypatch.setenv("PACHSTUDIO_ROOT_TOKEN", "secret")
    monkeypatch.setenv("LANG", "C.UTF-8")
    env = environment(context(), DATUM, "/tmp")
    assert env["in"] == "/pfs/in/cats" and env["in_COMMIT"] == "c1" and env["PACH_DATUM_in_JOIN_ON"] == "a"
    assert env["PACH_JOB_ID"] == "j1" and env["GREETING"] == "hi"  # pachd's variables win over the spec's
    assert env["LANG"] == "C.UTF-8" and env["HOME"] == "/tmp" and "PACHSTUDIO_ROOT_TOKEN" not in env


def test_restart_datum_filters_match_an_input_path_hash_or_file():
    assert matches(DATUM, []) and matches(DATUM, ["/cats/"]) and matches(DATUM, ["h1", "/cats/a.png"])
    assert not matches(DATUM, ["/dogs/"]) and not matches(DATUM, ["/cats/", "nope"])


def test_a_symlink_in_out_is_read_only_within_the_datums_pfs(tmp_path):
    run = DatumRun(context(), DATUM, "slot", str(tmp_path), lambda stop: None)
    os.makedirs(tmp_path / "pfs" / "in")
    os.makedirs(tmp_path / "pfs" / "out")
    (tmp_path / "pfs" / "in" / "a").write_text("A")
    (tmp_path / "secret").write_text("S")
    os.symlink("/pfs/in/a", tmp_path / "pfs" / "out" / "abs")
    os.symlink("../in/a", tmp_path / "pfs" / "out" / "rel")
    os.symlink("rel", tmp_path / "pfs" / "out" / "chain")
    os.symlink("../../secret", tmp_path / "pfs" / "out" / "up")
    os.symlink(str(tmp_path / "secret"), tmp_path / "pfs" / "out" / "host")
    for name in ("abs", "rel", "chain"):
        assert run.resolve(str(tmp_path / "pfs" / "out" / name)) == str(tmp_path / "pfs" / "in" / "a")
    for name in ("up", "host"):
        with pytest.raises(OutputError, match="outside /pfs"):
            run.resolve(str(tmp_path / "pfs" / "out" / name))


def test_durations_print_as_go_prints_them():
    assert (go_duration(2.0171), go_duration(0.25), go_duration(61)) == ("2.017s", "250ms", "61s")


def test_launcher_frames_carry_json_and_descriptors():
    a, b = socket.socketpair()
    r, w = os.pipe()
    try:
        L.send_frame(a, {"op": "run", "env": {"A": "x" * 100_000}}, [r, w])
        reader = L.FrameReader()
        data, fds, _, _ = socket.recv_fds(b, 1 << 20, 4)
        reader.feed(data, fds)
        while (message := reader.next()) is None:
            reader.feed(b.recv(1 << 20))
        assert message["op"] == "run" and len(message["env"]["A"]) == 100_000 and len(reader.fds) == 2
        reader.close_fds()
    finally:
        for fd in (r, w):
            os.close(fd)
        a.close()
        b.close()
