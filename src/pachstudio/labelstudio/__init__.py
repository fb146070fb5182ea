"""Label Studio glue for Pachyderm: a storage type (Source and Target) over the mount server.

Thin on purpose: the cluster connection belongs to the mount server; this app only calls its
HTTP API (`mount_client`) and reads/writes files under the mount directory.
"""
