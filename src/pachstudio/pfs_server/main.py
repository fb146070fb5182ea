"""`pachstudio pfs-server`: serve the embedded PFS engine over Pachyderm's gRPC protocol."""

import argparse
import logging
import os
import signal
import sys
import threading
from concurrent import futures
from typing import Optional

import grpc

from .auth import Auth
from .service import build_handlers
from .store import Store

MAX_MESSAGE = 20 << 20  # clients send chunks of up to 19 MiB

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


def build_server(data_dir: str, host: str, port: int, workers: int = 64, root_token: Optional[str] = None):
    store = Store(data_dir)
    auth = Auth(data_dir)
    if root_token:
        projects = [row[0] for row in store.list_projects()]
        repos = [f"{r.project}/{r.name}" for r in store.list_repos("user")]
        auth.activate(root_token, projects, repos)
    handlers, _ = build_handlers(store, auth)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pfs"),
        handlers=handlers,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.so_reuseport", 0),
            # no window growth: the client waits for us rather than us buffering its chunks
            ("grpc.http2.bdp_probe", 0),
        ],
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise OSError(f"cannot listen on {host}:{port}: is another server using the port?")
    server.auth = auth
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
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s pfs-server %(levelname)s %(message)s", stream=sys.stderr
    )
    try:
        server, store, port = build_server(
            args.data, args.host, args.port, root_token=read_root_token(args.root_token_file)
        )
    except (OSError, RuntimeError) as e:
        log.error("%s", e)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    log.info(
        "serving Pachyderm's gRPC API on %s:%d, data in %s (deployment %s)",
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
    return 0
