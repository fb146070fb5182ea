"""Runs one datum's command with `/pfs` showing just that datum, as a pachd worker would.

The server is neither a container runtime nor (necessarily) root, so it cannot chroot into an
image. Two ways, chosen once per process (`mode()`):
- "namespace": where `/pfs` exists (the appliance's image has it: the mount server's folder) and
  the kernel lets us make a private mount namespace (as root, or as any user through a user
  namespace mapping them to root), the command runs in its own mount namespace in which the datum
  folder is bind-mounted on `/pfs`, its inputs read-only. Specs with literal `/pfs/in/...` paths,
  in arguments, in stdin or inside scripts, work unchanged; nobody else sees that `/pfs`.
- "paths": otherwise the command runs with its working directory in the datum folder, and every
  `/pfs` at the start of an argument or inside a stdin line is rewritten to the datum folder's
  real path (also given as PACHSTUDIO_PFS_DIR). Scripts that build `/pfs/...` paths themselves
  only work in "namespace" mode; the job's log says which mode ran.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import subprocess
import tempfile
from typing import Optional

PFS = "/pfs"
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_mode: Optional[str] = None
_why = ""


def _mount(src: Optional[str], dst: str, flags: int) -> None:
    if _libc.mount(src.encode() if src else None, dst.encode(), None, flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src} on {dst}: {os.strerror(err)}")


def _enter(pfs_dir: str, read_only: list[str]):
    """Returns the function the child runs between fork and exec: a private mount namespace with
    `pfs_dir` on /pfs and each of `read_only` (inputs, relative to /pfs) made read-only."""
    uid, gid, root = os.geteuid(), os.getegid(), os.geteuid() == 0

    def child():
        if _libc.unshare(CLONE_NEWNS | (0 if root else CLONE_NEWUSER)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"unshare: {os.strerror(err)}")
        if not root:
            with open("/proc/self/setgroups", "w") as f:
                f.write("deny")
            with open("/proc/self/uid_map", "w") as f:
                f.write(f"0 {uid} 1")
            with open("/proc/self/gid_map", "w") as f:
                f.write(f"0 {gid} 1")
        _mount(None, "/", MS_REC | MS_PRIVATE)
        _mount(pfs_dir, PFS, MS_BIND | MS_REC)
        for name in read_only:
            target = os.path.join(PFS, name)
            _mount(target, target, MS_BIND)
            _mount(None, target, MS_BIND | MS_REMOUNT | MS_RDONLY)
        os.chdir(PFS)

    return child


def mode() -> str:
    """'namespace' or 'paths' (see the module's docstring), probed once."""
    global _mode, _why
    if _mode is None:
        if not os.path.isdir(PFS):
            _mode, _why = "paths", f"{PFS} does not exist on this machine"
        else:
            with tempfile.TemporaryDirectory() as d:
                os.makedirs(os.path.join(d, "in"))
                open(os.path.join(d, "in", "probe"), "w").close()
                try:
                    r = subprocess.run(
                        ["sh", "-c", f"test -f {PFS}/in/probe && ! touch {PFS}/in/probe 2>/dev/null"],
                        preexec_fn=_enter(d, ["in"]),
                        capture_output=True,
                        timeout=30,
                    )
                    ok = r.returncode == 0
                    _why = "" if ok else f"the probe exited {r.returncode}: {r.stderr.decode(errors='replace')[:200]}"
                except (OSError, subprocess.SubprocessError) as e:
                    ok, _why = False, f"no private mount namespace here ({e})"
            _mode = "namespace" if ok else "paths"
    return _mode


def describe() -> str:
    """One line for the pipeline's details and the job log."""
    if mode() == "namespace":
        return f"each datum runs in this server's own environment, in a private mount namespace with {PFS} = the datum"
    return (
        f"each datum runs in this server's own environment, with {PFS} paths in cmd and stdin rewritten to the "
        f"datum's folder ({_why})"
    )


_PFS_WORD = re.compile(r"(?<![\w./-])/pfs(?=/|\b|$)")


def rewrite(text: str, pfs_dir: str) -> str:
    return _PFS_WORD.sub(pfs_dir.replace("\\", "\\\\"), text)


def run(cmd: list[str], stdin: list[str], env: dict, pfs_dir: str, inputs: list[str], timeout=None):
    """Runs the command for one datum; returns (exit code, stdout bytes, stderr bytes)."""
    data = ("\n".join(stdin) + "\n").encode() if stdin else None
    if mode() == "namespace":
        kwargs = dict(preexec_fn=_enter(pfs_dir, inputs), cwd=pfs_dir)
    else:
        cmd = [rewrite(a, pfs_dir) for a in cmd]
        data = rewrite(data.decode(), pfs_dir).encode() if data else None
        kwargs = dict(cwd=pfs_dir)
    env = dict(env, PACHSTUDIO_PFS_DIR=PFS if mode() == "namespace" else pfs_dir)
    try:
        p = subprocess.run(cmd, input=data, env=env, capture_output=True, timeout=timeout, **kwargs)
    except FileNotFoundError as e:
        return 127, b"", f"cannot run {cmd[0]!r}: {e.strerror}\n".encode()
    except PermissionError as e:
        return 126, b"", f"cannot run {cmd[0]!r}: {e.strerror}\n".encode()
    except subprocess.SubprocessError as e:
        return 126, b"", f"cannot start the datum's command: {e}\n".encode()
    return p.returncode, p.stdout, p.stderr
