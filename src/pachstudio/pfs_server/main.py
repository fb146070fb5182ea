"""`pachstudio pfs-server`: serve the embedded PFS engine over Pachyderm's gRPC protocol.

With `--tls-cert` and `--tls-key` it serves TLS (clients use `grpcs://` and the CA that signed the
certificate, pachctl's `server_cas`); without them, plaintext `grpc://`.
"""

import argparse
import logging
import os
import signal
import ssl
import sys
import threading
from typing import Optional

from .auth import Auth
from .grpc_server import Limits, listen, make_server
from .jobs import JobRunner
from .pipelines import Pipelines
from .pps_service import PpsService
from .service import build_handlers
from .store import Store

log = logging.getLogger("pachstudio.pfs_server")


ROOT_TOKEN_ENV = "PACHSTUDIO_ROOT_TOKEN"


def read_root_token(path: Optional[str]) -> Optional[str]:
    """The root token from `--root-token-file` (it wins), else PACHSTUDIO_ROOT_TOKEN; None: no auth
    asked for. A file that cannot be read or holds nothing stops the start, naming the file."""
    if path:
        try:
            with open(path) as f:
                token = f.read().strip()
        except OSError as e:
            raise RuntimeError(f"--root-token-file {path}: cannot read it ({e.strerror})") from None
        if not token:
            raise RuntimeError(f"--root-token-file {path}: the file is empty; put the root token in it")
        return token
    token = os.environ.get(ROOT_TOKEN_ENV, "").strip()
    return token or None


class TlsError(Exception):
    """The certificate or key cannot be used; the message names the file and the problem."""


def load_tls(cert_path: str, key_path: str) -> tuple[bytes, bytes]:
    """(certificate chain PEM, private key PEM), checked with Python's ssl so a wrong file is named
    here, not found later as a failed handshake."""
    pems = []
    for flag, path in (("--tls-cert", cert_path), ("--tls-key", key_path)):
        try:
            with open(path, "rb") as f:
                pems.append(f.read())
        except OSError as e:
            raise TlsError(f"{flag} {path}: cannot be read: {e.strerror}") from None
    cert, key = pems
    if b"-----BEGIN CERTIFICATE-----" not in cert:
        raise TlsError(f"--tls-cert {cert_path}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    if b"PRIVATE KEY-----" not in key:
        raise TlsError(f"--tls-key {key_path}: holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path)
    except ssl.SSLError as e:
        reason = e.reason or str(e)
        if "KEY_VALUES_MISMATCH" in reason.upper():
            raise TlsError(
                f"--tls-key {key_path} is not the key of the certificate in --tls-cert {cert_path}"
            ) from None
        raise TlsError(f"--tls-cert {cert_path} / --tls-key {key_path}: cannot be used: {reason}") from None
    return cert, key


def build_server(
    data_dir: str,
    host: str,
    port: int,
    tls: Optional[tuple[bytes, bytes]] = None,
    root_token: Optional[str] = None,
    limits: Limits = Limits(),
):
    """The gRPC server over the engine in `data_dir`; `tls` from `load_tls`."""
    store = Store(data_dir)
    auth = Auth(data_dir)
    if root_token:
        projects = [row[0] for row in store.list_projects()]
        repos = [f"{r.project}/{r.name}" for r in store.list_repos("user")]
        auth.activate(root_token, projects, repos)
    pipelines = Pipelines(store, data_dir)
    runner = JobRunner(store, pipelines)
    handlers, _ = build_handlers(store, auth, PpsService(pipelines, runner, auth))
    server = make_server(handlers, limits)
    try:
        bound = listen(server, host, port, tls)
    except OSError:
        server.stop(0).wait()
        raise
    server.auth = auth
    server.runner = runner  # for a caller that serves in its own process and stops it (the tests)
    runner.start()
    return server, store, bound


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pachstudio pfs-server", description=__doc__)
    parser.add_argument("--data", required=True, help="directory for metadata and file contents")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    parser.add_argument("--port", type=int, default=30650)
    parser.add_argument(
        "--root-token-file",
        help=f"file holding the root token: turns auth on, as pachd's Activate (else env {ROOT_TOKEN_ENV})",
    )
    parser.add_argument("--tls-cert", metavar="FILE", help="PEM certificate (chain) to serve TLS with (grpcs://)")
    parser.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together: give both to serve TLS, or neither")
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s pfs-server %(levelname)s %(message)s", stream=sys.stderr
    )
    try:
        tls = load_tls(args.tls_cert, args.tls_key) if args.tls_cert else None
        server, store, port = build_server(
            args.data, args.host, args.port, tls=tls, root_token=read_root_token(args.root_token_file)
        )
    except (OSError, RuntimeError, TlsError) as e:
        log.error("%s", e)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    store.collector.start()  # frees what a crash or an older version left, then what deletes free
    log.info(
        "serving Pachyderm's gRPC API on %s://%s:%d, data in %s (deployment %s)",
        "grpcs" if tls else "grpc",
        args.host,
        port,
        args.data,
        store.deployment_id,
    )
    if server.auth.active:
        log.info("auth is on: every call needs a token (root: pach:root)")
    else:
        log.info("auth is off: whoever reaches the port can read, change or delete every repo")
    stop.wait()
    log.info("stopping")
    server.stop(grace=5).wait()
    store.collector.stop()
    return 0
