"""The mount server: Pachyderm repos as folders under one FUSE filesystem, with an HTTP API.

Plain objects hold the logic (`remote` talks to the cluster, `cache` keeps file contents,
`readonly` is a commit's tree, `staging` the local changes of a read-write mount, `table` the
mounts); `fs` and `api` only translate FUSE and HTTP calls onto them.
"""
