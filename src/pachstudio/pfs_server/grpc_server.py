"""The embedded server's gRPC server: grpcio's own, with the limits a server owes its clients.

Every limit below is enforced by grpcio's C core; this module only chooses the numbers:
- a client's deadline (`grpc-timeout`) cancels its call, so `is_active()` turns false and the
  handlers' waits end (they poll it);
- keepalive pings find a client that vanished without closing its connection, and a connection
  with no call for `idle_s` is closed, so neither holds a worker;
- calls per connection are limited to half the workers (HTTP/2 MAX_CONCURRENT_STREAMS: the client
  waits for a free stream), so one client cannot take every worker; a call beyond the workers
  waits for one, as long as its client's deadline allows;
- a message's size, and its size once decompressed, are checked against `max_message`;
- `stop(grace)` sends GOAWAY at once, lets running calls end within the grace, then cancels them.
"""

from concurrent import futures
from dataclasses import dataclass
from typing import Optional

import grpc

MAX_MESSAGE = 20 << 20  # clients send chunks of up to 19 MiB


@dataclass(frozen=True)
class Limits:
    workers: int = 128
    streams_per_connection: int = 0  # 0: half the workers
    keepalive_s: float = 60  # ping a connection that has been silent this long
    keepalive_timeout_s: float = 20  # and close it when the ping is not answered within this
    idle_s: float = 30 * 60  # close a connection with no call for this long
    max_message: int = MAX_MESSAGE

    def options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.max_receive_message_length", self.max_message),
            ("grpc.max_send_message_length", self.max_message),
            ("grpc.max_concurrent_streams", self.streams_per_connection or max(1, self.workers // 2)),
            ("grpc.keepalive_time_ms", int(self.keepalive_s * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.keepalive_timeout_s * 1000)),
            ("grpc.max_connection_idle_ms", int(self.idle_s * 1000)),
            # clients' own keepalive pings (pachd's grpc-go accepts one per 5 s, with or without calls)
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 5000),
            ("grpc.http2.ping_timeout_ms", int(self.keepalive_timeout_s * 1000)),
            # grpc's overload protection also counts streams whose calls have ended but are not yet
            # released, refusing calls a client rightly thinks fit (UNAVAILABLE in bursts); without
            # it the advertised limit is still enforced (REFUSED_STREAM beyond it)
            ("grpc.http.overload_protection", 0),
            ("grpc.so_reuseport", 0),
            # no window growth: an uploading client waits for us rather than us buffering its chunks
            ("grpc.http2.bdp_probe", 0),
        ]


def make_server(handlers, limits: Limits = Limits()) -> grpc.Server:
    return grpc.server(
        futures.ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="pfs"),
        handlers=handlers,
        options=limits.options(),
    )


def listen(server: grpc.Server, host: str, port: int, tls: Optional[tuple[bytes, bytes]]) -> int:
    """Binds the port (0: any free one) and returns it; `tls` is (certificate chain, key) in PEM.
    grpcio negotiates ALPN h2 on a TLS port, as gRPC clients require."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if tls is None:
        bound = server.add_insecure_port(address)
    else:
        cert, key = tls
        bound = server.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)]))
    if not bound:
        raise OSError(f"cannot listen on {host}:{port}: is another server using the port?")
    return bound
