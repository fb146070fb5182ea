"""`pachstudio pfs-server --tls-cert --tls-key`: the embedded server on grpcs://, used by the real SDK
with the CA as pachctl's server_cas holds it; a client trusting another CA is refused; bad flags
stop the start with the file and the problem."""
import subprocess
import sys

import grpc
import pytest
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs

from plugins.pfs import commit_files, free_port, read
from plugins.tls import TlsFiles


def test_the_sdk_works_over_tls_with_the_servers_ca(tls_pfs_server):
    assert "serving Pachyderm's gRPC API on grpcs://127.0.0.1:" in tls_pfs_server.log()
    pach = tls_pfs_server.client()
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("images"))
    commit = commit_files(pach, "images@master", {"/a.txt": b"over tls", "/d/b.txt": b"2"})
    assert read(pach, "images@master:/a.txt") == b"over tls"
    assert {f.file.path for f in pach.pfs.walk_file(file=pfs.File.from_uri(f"images@{commit.id}:/"))} == \
        {"/", "/a.txt", "/d/", "/d/b.txt"}
    assert pach.get_version().major == 2


def test_a_client_with_another_ca_is_refused(tls_pfs_server):
    pach = tls_pfs_server.client(ca_pem=tls_pfs_server.tls.wrong_ca_pem)
    # the SDK turns an UNAVAILABLE whose text says "failed to connect to all addresses" (grpc's
    # wording depends on timing) into a ConnectionError raised from the gRPC error
    with pytest.raises((grpc.RpcError, ConnectionError)) as info:
        list(pach.pfs.list_repo())
    error = info.value if isinstance(info.value, grpc.RpcError) else info.value.__cause__
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate" in error.details()


def test_a_plaintext_client_gets_nothing_from_a_tls_server(tls_pfs_server):
    pach = Client.from_pachd_address(f"grpc://127.0.0.1:{tls_pfs_server.port}")
    # The SDK answers UNAVAILABLE, or its own ConnectionError when grpcio's
    # handshake failure reads "failed to connect to all addresses": either
    # way the client gets no repos.
    with pytest.raises((grpc.RpcError, ConnectionError)) as info:
        list(pach.pfs.list_repo())
    if isinstance(info.value, grpc.RpcError):
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    else:
        assert "Could not connect to pachyderm instance" in str(info.value)


def start_with(tmp_path, *flags):
    return subprocess.run([sys.executable, "-m", "pachstudio.cli", "pfs-server", "--data", str(tmp_path / "d"),
                           "--port", str(free_port()), *flags], capture_output=True, text=True, timeout=60)


def test_tls_flags_go_together(tmp_path, tls_files):
    done = start_with(tmp_path, "--tls-cert", str(tls_files.cert))
    assert done.returncode == 2
    assert "--tls-cert and --tls-key go together" in done.stderr


def test_a_missing_certificate_file_is_named(tmp_path, tls_files):
    done = start_with(tmp_path, "--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(tls_files.key))
    assert done.returncode == 1
    assert f"--tls-cert {tmp_path / 'nope.pem'}: cannot be read: No such file or directory" in done.stderr
    assert "Traceback" not in done.stderr


def test_key_and_certificate_swapped_or_mismatched_are_named(tmp_path, tls_files):
    swapped = start_with(tmp_path, "--tls-cert", str(tls_files.key), "--tls-key", str(tls_files.cert))
    assert swapped.returncode == 1
    assert f"--tls-cert {tls_files.key}: holds no PEM certificate" in swapped.stderr
    other = TlsFiles(tmp_path / "other")
    mismatch = start_with(tmp_path, "--tls-cert", str(tls_files.cert), "--tls-key", str(other.key))
    assert mismatch.returncode == 1
    assert f"--tls-key {other.key} is not the key of the certificate in --tls-cert {tls_files.cert}" \
        in mismatch.stderr
    assert "Traceback" not in mismatch.stderr + swapped.stderr
