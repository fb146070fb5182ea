"""PFS: the engine (projects, repos, branches, commits, files over SQLite and a blob store) and
`pfs_v2.API` over it (`service`)."""
