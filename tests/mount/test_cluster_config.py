"""Cluster config discovery (pachstudio.cluster): pachctl's precedence, tolerant of unknown keys,
clear errors naming the file, and the entrypoint's `--check` that never prints a token."""
import base64
import json
import subprocess
import sys

import pytest

from pachstudio.cluster import ConfigError, discover

TOKEN = "s3cret-session-token-0123456789"


def write_config(path, contexts, active="local", **extra):
    path.write_text(json.dumps({"user_id": "u1", "v2": {"active_context": active,
                                                        "contexts": contexts, "metrics": True},
                                **extra}))
    return str(path)


def full_context(**over):
    ctx = {"pachd_address": "grpc://pachd.example:30650", "session_token": TOKEN,
           "project": "vision", "cluster_deployment_id": "dep", "port_forwarders": {"pachd": 1},
           "some_future_key": {"nested": True}}
    ctx.update(over)
    return ctx


def test_active_context_with_unknown_keys_gives_address_token_and_project(tmp_path):
    cfg = discover(env={"PACH_CONFIG": write_config(tmp_path / "c.json", {"local": full_context()})})
    assert cfg.address == "grpc://pachd.example:30650"
    assert cfg.token == TOKEN and cfg.project == "vision"
    assert TOKEN not in repr(cfg)


def test_pach_context_overrides_the_active_context(tmp_path):
    path = write_config(tmp_path / "c.json", {"local": full_context(),
                                              "other": {"pachd_address": "other:1234"}})
    cfg = discover(env={"PACH_CONFIG": path, "PACH_CONTEXT": "other"})
    assert cfg.address == "grpc://other:1234" and cfg.project == "default"


def test_pachd_address_overrides_the_address_but_keeps_the_token(tmp_path):
    path = write_config(tmp_path / "c.json", {"local": full_context()})
    cfg = discover(env={"PACH_CONFIG": path, "PACHD_ADDRESS": "grpcs://secure.example"})
    assert cfg.address == "grpcs://secure.example:30650" and cfg.token == TOKEN and cfg.tls
    explicit = discover("10.0.0.5:31000", env={"PACH_CONFIG": path, "PACHD_ADDRESS": "x:1"})
    assert explicit.address == "grpc://10.0.0.5:31000"


def test_home_config_is_found_and_nothing_means_none(tmp_path):
    assert discover(env={"HOME": str(tmp_path)}) is None
    (tmp_path / ".pachyderm").mkdir()
    write_config(tmp_path / ".pachyderm" / "config.json", {"local": {"pachd_address": "h:5"}})
    assert discover(env={"HOME": str(tmp_path)}).address == "grpc://h:5"


def test_server_cas_is_decoded_and_means_tls(tmp_path):
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    path = write_config(tmp_path / "c.json", {"local": full_context(
        server_cas=base64.b64encode(pem).decode())})
    cfg = discover(env={"PACH_CONFIG": path})
    assert cfg.server_cas == pem and cfg.tls


@pytest.mark.parametrize("content, problem", [
    ("{not json", "not valid JSON"),
    ('{"v2": {"active_context": "gone", "contexts": {"local": {}}}}', "'gone'"),
    ('{"v2": {"active_context": "local", "contexts": {"local": {"pachd_address": 5}}}}',
     "pachd_address must be a string"),
    ('{"v2": {"active_context": "local", "contexts": {"local": {"server_cas": "%%%"}}}}',
     "server_cas is not base64"),
    ('{"v2": {"active_context": "local", "contexts": {"local": {"pachd_address": "ftp://x"}}}}',
     "scheme"),
])
def test_malformed_config_names_the_file_and_the_problem(tmp_path, content, problem):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        discover(env={"PACH_CONFIG": str(path)})
    assert str(path) in str(info.value) and problem in str(info.value)


def check(env):
    return subprocess.run([sys.executable, "-m", "pachstudio.cluster", "--check"],
                          capture_output=True, text=True, env=env, timeout=60)


def test_check_command_for_the_entrypoint(tmp_path):
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    none = check(base)
    assert none.returncode == 0 and none.stdout.strip() == "none"

    good = write_config(tmp_path / "good.json", {"local": full_context()})
    remote = check({**base, "PACH_CONFIG": good})
    assert remote.returncode == 0 and remote.stdout.strip() == "remote grpc://pachd.example:30650"
    assert TOKEN not in remote.stdout + remote.stderr

    bad = tmp_path / "bad.json"
    bad.write_text('{"v2": {"active_context": "local", "contexts": {"local": '
                   '{"session_token": "%s", "pachd_address": "bad://x"}}}}' % TOKEN)
    broken = check({**base, "PACH_CONFIG": str(bad)})
    assert broken.returncode == 1 and str(bad) in broken.stderr
    assert TOKEN not in broken.stdout + broken.stderr

    env_only = check({**base, "PACHD_ADDRESS": "pachd:30650"})
    assert env_only.returncode == 0 and env_only.stdout.strip() == "remote grpc://pachd:30650"
