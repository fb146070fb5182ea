"""Embedded single-node PFS server.

`store` is the engine (plain Python: state and Pachyderm's rules); `service` translates Pachyderm's
gRPC protocol (the pachyderm-sdk message classes) into calls on it, moto-style.
"""
