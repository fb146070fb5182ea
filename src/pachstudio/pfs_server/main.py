"""`pachstudio pfs-server`: serve the embedded PFS engine over Pachyderm's gRPC protocol."""

import argparse
import logging
import signal
import sys
import threading
from concurrent import futures

import grpc

from .service import build_handlers
from .store import Store

MAX_MESSAGE = 20 << 20  # clients send chunks of up to 19 MiB

log = logging.getLogger("pachstudio.pfs_server")


def build_server(data_dir: str, host: str, port: int, workers: int = 64):
    store = Store(data_dir)
    handlers, _ = build_handlers(store)
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
    return server, store, bound


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pachstudio pfs-server", description=__doc__)
    parser.add_argument("--data", required=True, help="directory for metadata and file contents")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    parser.add_argument("--port", type=int, default=30650)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s pfs-server %(levelname)s %(message)s", stream=sys.stderr
    )
    try:
        server, store, port = build_server(args.data, args.host, args.port)
    except (OSError, RuntimeError) as e:
        log.error("%s", e)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    store.collector.start()  # frees what a crash or an older version left, then what deletes free
    log.info(
        "serving Pachyderm's gRPC API on %s:%d, data in %s (deployment %s)",
        args.host,
        port,
        args.data,
        store.deployment_id,
    )
    stop.wait()
    log.info("stopping")
    server.stop(grace=5).wait()
    store.collector.stop()
    return 0
