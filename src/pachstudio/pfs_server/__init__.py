"""Embedded single-node Pachyderm server, laid out like pachd's `src/server/<service>/`.

Each service is a plain engine (state and Pachyderm's rules) with its gRPC translation next to it:
`pfs/`, `pps/`, `auth/`, `transaction/`. The server's own plumbing stays here: `rpc` (handlers from
the SDK's stubs), `handlers` (every service behind the auth gate), `grpc_server`, `main`.
"""
