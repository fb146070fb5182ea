"""TLS material made at test time (never committed): a CA, a server certificate it signs for the
names a test needs, and a second, unrelated CA to play the wrong one. Plus the embedded server
serving `grpcs://` with them, and a pachctl config.json that trusts a given CA."""
import base64
import datetime
import ipaddress
import json
import pathlib
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from plugins.pfs import PfsServer, wait_for_port


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_ca(cn: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_server_cert(ca_key, ca_cert, names):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    sans = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    cert = (x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


class TlsFiles:
    """In `folder`: ca.pem, wrong-ca.pem, server.pem (signed by ca.pem for `names`), server.key."""

    def __init__(self, folder, names=("localhost", "127.0.0.1")):
        self.folder = pathlib.Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        ca_key, ca = make_ca("pachstudio test CA")
        _, wrong = make_ca("pachstudio unrelated CA")
        key, cert = make_server_cert(ca_key, ca, list(names))
        self.ca_pem, self.wrong_ca_pem = _pem(ca), _pem(wrong)
        self.ca = self._write("ca.pem", self.ca_pem)
        self.wrong_ca = self._write("wrong-ca.pem", self.wrong_ca_pem)
        self.cert = self._write("server.pem", _pem(cert))
        self.key = self._write("server.key", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        self.key.chmod(0o600)

    def _write(self, name, data: bytes) -> pathlib.Path:
        path = self.folder / name
        path.write_bytes(data)
        return path


def pachctl_config(address: str, ca_pem: bytes = None, context: str = "tls") -> str:
    """A config.json as pachctl writes it: server_cas is the base64 of the CA's PEM."""
    ctx = {"pachd_address": address, "cluster_deployment_id": "test"}
    if ca_pem is not None:
        ctx["server_cas"] = base64.b64encode(ca_pem).decode()
    return json.dumps({"user_id": "u", "v2": {"active_context": context, "contexts": {context: ctx}}})


class TlsPfsServer(PfsServer):
    """`pachstudio pfs-server --tls-cert --tls-key`: the embedded server on grpcs://."""

    def __init__(self, data_dir, tls: TlsFiles, **kw):
        super().__init__(data_dir, **kw)
        self.tls = tls

    @property
    def address(self) -> str:
        return f"grpcs://localhost:{self.port}"

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pachstudio.cli", "pfs-server", "--data", self.data_dir, "--host", "127.0.0.1",
             "--port", str(self.port), "--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, self.proc)
        return self

    def client(self, ca_pem: bytes = None):
        from pachyderm_sdk import Client

        return Client.from_pachd_address(self.address, root_certs=self.tls.ca_pem if ca_pem is None else ca_pem)


@pytest.fixture
def tls_files(tmp_path):
    return TlsFiles(tmp_path / "tls")


@pytest.fixture
def tls_pfs_server(tmp_path, tls_files):
    server = TlsPfsServer(tmp_path / "pfs-tls", tls_files).start()
    yield server
    server.kill()
