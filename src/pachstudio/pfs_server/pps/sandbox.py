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

import base64
import ctypes
import ctypes.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
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


def _enter(pfs_dir: str):
    """Returns the function the child runs between fork and exec: a private mount namespace with
    `pfs_dir` on /pfs, read-only but for /pfs/out."""
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
        _mount(None, PFS, MS_BIND | MS_REMOUNT | MS_RDONLY)
        _mount(os.path.join(pfs_dir, "out"), os.path.join(PFS, "out"), MS_BIND)
        os.chdir(PFS)

    return child


# The slot's own loop: runs each datum's command it is sent, inside the slot's mount namespace
# (a new namespace per datum costs ~20 ms to tear down; one per slot and job costs it once).
_SLOT_LOOP = """
import base64, json, subprocess, sys
for line in sys.stdin:
    r = json.loads(line)
    data = base64.b64decode(r["stdin"]) if r["stdin"] is not None else b""
    try:
        p = subprocess.run(r["cmd"], input=data, env=r["env"], cwd="/pfs", capture_output=True)
        res = [p.returncode, p.stdout, p.stderr]
    except OSError as e:
        code = 127 if isinstance(e, FileNotFoundError) else 126
        res = [code, b"", f"cannot run {r['cmd'][0]!r}: {e.strerror}\\n".encode()]
    res[1:] = [base64.b64encode(b).decode() for b in res[1:]]
    sys.stdout.write(json.dumps(res) + "\\n")
    sys.stdout.flush()
"""


class Slot:
    """One worker of a job in "namespace" mode: a folder whose `pfs/` is /pfs inside a long-lived
    helper process's private mount namespace; each datum's files are put in the folder from
    outside, then the helper runs the command."""

    def __init__(self, folder: str):
        self.folder = folder
        self.pfs_dir = os.path.join(folder, "pfs")
        os.makedirs(os.path.join(self.pfs_dir, "out"), exist_ok=True)
        self.err_path = folder + ".err"
        self._start()

    def _start(self) -> None:
        with open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-c", _SLOT_LOOP],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                preexec_fn=_enter(self.pfs_dir),
                text=True,
            )

    def clear(self) -> None:
        """Empties the folder for the next datum, keeping pfs/out itself (it is a mount point)."""
        for name in os.listdir(self.pfs_dir):
            path = os.path.join(self.pfs_dir, name)
            if name == "out":
                for child in os.listdir(path):
                    c = os.path.join(path, child)
                    shutil.rmtree(c) if os.path.isdir(c) and not os.path.islink(c) else os.unlink(c)
            else:
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)

    def run(self, cmd: list[str], stdin: Optional[bytes], env: dict):
        request = {"cmd": cmd, "env": env, "stdin": base64.b64encode(stdin).decode() if stdin is not None else None}
        for attempt in (1, 2):  # a helper that died (it should not) is replaced once
            try:
                self.proc.stdin.write(json.dumps(request) + "\n")
                self.proc.stdin.flush()
                line = self.proc.stdout.readline()
            except OSError:
                line = ""
            if line:
                code, out, err = json.loads(line)
                return code, base64.b64decode(out), base64.b64decode(err)
            self.proc.kill()
            self.proc.wait()
            if attempt == 1:
                self._start()
        with open(self.err_path, "rb") as f:
            why = f.read()[-2000:]
        return 126, b"", b"the datum's sandbox process ended: " + why + b"\n"

    def close(self) -> None:
        """Ends the helper; its namespace's teardown (~20 ms) and the folder's removal happen in
        the background, so the job's end does not wait for them."""

        def reap():
            try:
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
            shutil.rmtree(self.folder, ignore_errors=True)
            if os.path.exists(self.err_path):
                os.unlink(self.err_path)

        threading.Thread(target=reap, name="slot-reaper", daemon=True).start()


def mode() -> str:
    """'namespace' or 'paths' (see the module's docstring), probed once."""
    global _mode, _why
    if _mode is None:
        if not os.path.isdir(PFS):
            _mode, _why = "paths", f"{PFS} does not exist on this machine"
        else:
            with tempfile.TemporaryDirectory() as d:
                os.makedirs(os.path.join(d, "in"))
                os.makedirs(os.path.join(d, "out"))
                open(os.path.join(d, "in", "probe"), "w").close()
                try:
                    r = subprocess.run(
                        [
                            "sh",
                            "-c",
                            f"test -f {PFS}/in/probe && ! touch {PFS}/in/probe 2>/dev/null && touch {PFS}/out/x",
                        ],
                        preexec_fn=_enter(d),
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


def run(cmd: list[str], stdin: list[str], env: dict, pfs_dir: str, slot: Optional[Slot] = None):
    """Runs the command for one datum (in `slot` in "namespace" mode, else with rewritten paths);
    returns (exit code, stdout bytes, stderr bytes)."""
    data = ("\n".join(stdin) + "\n").encode() if stdin else b""  # no stdin: an empty one, never ours
    if slot is not None:
        return slot.run(cmd, data, dict(env, PACHSTUDIO_PFS_DIR=PFS))
    cmd = [rewrite(a, pfs_dir) for a in cmd]
    data = rewrite(data.decode(), pfs_dir).encode()
    try:
        p = subprocess.run(cmd, input=data, env=dict(env, PACHSTUDIO_PFS_DIR=pfs_dir), cwd=pfs_dir, capture_output=True)
    except FileNotFoundError as e:
        return 127, b"", f"cannot run {cmd[0]!r}: {e.strerror}\n".encode()
    except PermissionError as e:
        return 126, b"", f"cannot run {cmd[0]!r}: {e.strerror}\n".encode()
    except subprocess.SubprocessError as e:
        return 126, b"", f"cannot start the datum's command: {e}\n".encode()
    return p.returncode, p.stdout, p.stderr
