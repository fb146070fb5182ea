"""`pachstudio mount-server`: one FUSE filesystem of Pachyderm mounts plus its HTTP API.

The HTTP server runs in a thread; FUSE runs in the main thread, where libfuse handles SIGTERM
(it unmounts and returns). A cluster that cannot be reached does not stop the start; a malformed
config does, with the file and the problem.
"""

import argparse
import base64
import binascii
import ctypes
import ctypes.util
import logging
import os
import subprocess
import sys
import threading
import time

from ..cluster import ClusterConfig, ConfigError, discover

log = logging.getLogger("pachstudio.mount")

LOOPBACK = ("127.0.0.1", "::1", "localhost")
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def parse_args(argv):
    p = argparse.ArgumentParser(prog="pachstudio mount-server", description=__doc__)
    p.add_argument("--mount-dir", required=True, help="where the FUSE filesystem is mounted")
    p.add_argument("--state", required=True, help="folder for staged changes, cache, mount table")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--port", type=int, help="HTTP port on loopback (default 9002)")
    where.add_argument("--socket", help="HTTP on this unix socket instead of a port")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (loopback only)")
    p.add_argument("--pachd-address", help="cluster address (else PACHD_ADDRESS, else the config)")
    p.add_argument("--cache-size", type=int, default=2048, help="file cache limit in MiB")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    if args.host not in LOOPBACK:
        p.error(
            f"--host {args.host}: the mount server holds the cluster token and binds to "
            "loopback only (127.0.0.1 or ::1); use --socket for other local clients"
        )
    if args.socket is None and args.port is None:
        args.port = 9002
    return args


def unmount_stale(mount_dir: str) -> None:
    """A server killed with SIGKILL leaves a dead mount ('Transport endpoint is not connected')."""
    try:
        os.stat(mount_dir)
        if not os.path.ismount(mount_dir):
            return
    except OSError:
        pass
    subprocess.run(["fusermount", "-u", "-z", mount_dir], capture_output=True)


def start_http(app, args):
    import uvicorn

    if args.socket and os.path.exists(args.socket):
        os.unlink(args.socket)
    config = uvicorn.Config(
        app, host=args.host, port=args.port or 0, uds=args.socket, log_level="warning", access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="http", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise OSError(f"cannot serve HTTP on {args.socket or f'{args.host}:{args.port}'}")
        time.sleep(0.02)
    return server


def keep_large_buffers() -> None:
    """GetFile chunks and FUSE requests are 1-2 MiB: glibc would map and unmap each one, and
    fresh pages cost a fault and a zeroing each (far more on a VM that backs memory lazily).
    Serving them from the heap, kept rather than trimmed, reuses the same memory."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(M_TRIM_THRESHOLD, 256 << 20)
    except (OSError, AttributeError):  # not glibc: its defaults stay
        pass


def check_cluster(remote) -> None:
    """One look at the cluster at start-up, so a wrong address or a refused TLS certificate is in
    the log at once (the server keeps running: GET /config and `pachstudio status` show it too)."""
    status = remote.status()
    if status == "INVALID":
        log.error("cluster check at start: %s", remote.last_error)
    else:
        log.info("cluster %s answers (%s)", remote.address, status)


def main(argv=None) -> int:
    keep_large_buffers()
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s mount-server %(levelname)s %(message)s"
    )
    try:
        config = discover(args.pachd_address)
    except ConfigError as e:
        log.error("cluster config: %s", e)
        return 1

    from .api import build_app
    from .cache import ContentCache
    from .fs import PachydermFS, serve
    from .remote import Remote
    from .table import MountTable

    os.makedirs(args.state, exist_ok=True)
    unmount_stale(args.mount_dir)
    os.makedirs(args.mount_dir, exist_ok=True)
    remote = Remote(config)
    if config is None:
        log.warning("no cluster configured: mounts answer 503 until PUT /config")
    else:
        log.info("cluster %s (from %s), default project %s", config.address, config.source, config.project)
        threading.Thread(target=check_cluster, args=(remote,), name="cluster-check", daemon=True).start()
    cache = ContentCache(os.path.join(args.state, "cache"), args.cache_size << 20)
    table = MountTable(remote, args.state, args.mount_dir, cache)
    table.restore()
    table.start_recovery()
    table.start_idle_reclaim()

    def reconfigure(address: str, server_cas) -> None:
        old = remote.config
        cas = None
        if server_cas:
            try:
                cas = base64.b64decode(server_cas, validate=True)
            except (binascii.Error, ValueError):
                from .errors import BadRequest

                raise BadRequest("server_cas: base64 of the PEM certificates") from None
        remote.reconfigure(
            ClusterConfig(
                address=address,
                project=old.project if old else "default",
                token=old.token if old else None,
                server_cas=cas or (old.server_cas if old else None),
                source="PUT /config",
            )
        )

    try:
        http = start_http(build_app(table, reconfigure), args)
    except OSError as e:
        log.error("%s", e)
        return 1
    log.info("HTTP API on %s; FUSE at %s", args.socket or f"http://{args.host}:{args.port}", args.mount_dir)
    try:
        serve(PachydermFS(table), args.mount_dir)
    except RuntimeError as e:
        log.error("cannot mount FUSE at %s: %s (is /dev/fuse available, with SYS_ADMIN?)", args.mount_dir, e)
        return 1
    finally:
        http.should_exit = True
    log.info("unmounted %s; stopping", args.mount_dir)
    return 0
