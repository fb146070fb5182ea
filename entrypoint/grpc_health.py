"""Health of the embedded PFS server, for the image's HEALTHCHECK: one real gRPC call,
grpc.health.v1.Health/Check, with a deadline.

An open port says little: a server whose every worker is held by calls that never end still
accepts connections, but answers nothing. This call waits for a free worker like any other, so it
fails (DEADLINE_EXCEEDED) when none frees up in time.

    python grpc_health.py 127.0.0.1:30650 3      # exit 0: SERVING within 3 s; else 1, and why
"""

import sys

import grpc

SERVING = b"\x08\x01"  # HealthCheckResponse{status: SERVING}


def main() -> int:
    address, deadline = sys.argv[1], float(sys.argv[2])
    try:
        with grpc.insecure_channel(address) as channel:
            answer = channel.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=deadline)
    except grpc.RpcError as e:
        print(f"PFS server at {address}: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    if answer != SERVING:
        print(f"PFS server at {address}: not serving ({answer!r})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
