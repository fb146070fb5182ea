"""`pachstudio <program> ...`: one command for every process the appliance runs.

Each program's module is imported only when chosen, so `pfs-server` never pays for Label Studio.
"""

import importlib
import sys

PROGRAMS = {
    "pfs-server": ("pachstudio.pfs_server.main", "embedded single-node PFS server (Pachyderm gRPC)"),
    "mount-server": ("pachstudio.mount.main", "FUSE mount server with its HTTP API"),
    "datum-launcher": ("pachstudio.pfs_server.pps.launcher", "runs the PFS server's pipeline datums isolated (root)"),
    "status": ("pachstudio.status", "what the mount server says: cluster, mounts (--json: raw)"),
}


def usage() -> str:
    lines = ["usage: pachstudio <program> [options]", "", "programs:"]
    lines += [f"  {name:<14} {help_}" for name, (_, help_) in PROGRAMS.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in PROGRAMS:
        print(f"pachstudio: unknown program {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(PROGRAMS[name][0])
    return module.main(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
