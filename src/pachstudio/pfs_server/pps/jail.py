"""A datum's world, built by the datum launcher's children (Linux, as root), in two steps.

Once per slot (`enter_slot`, in the slot's process, `slot.py`): new mount, network and UTS
namespaces. The network namespace has only its own loopback, left down, so nothing on the
appliance (the mount server on 127.0.0.1:9002, Label Studio, the PFS server) or beyond can be
reached. The root is a small tmpfs holding only the system folders a program needs (SYSTEM,
read-only), `/pfs` (the slot's inputs, read-only) with `/pfs/out` (read-write), `/tmp` (read-write,
on the slot's disk folder) and a minimal `/dev`; nothing else of the machine (no /data, /run,
/root, /home, /srv, /var, /sys) exists there, and no process can reach back out of it
(`_switch_root`). The slot's process stays root in it: it starts each datum.

Per datum (`start_datum`, in the datum's first process, which its starter forked into new pid,
mount and IPC namespaces: when it ends, the kernel kills whatever the datum started): its own
`/proc` and `/dev/shm`, the resource limits, every supplementary group dropped, the slot's uid/gid
(one no file on the machine belongs to: its capabilities go with root) and no_new_privs, so no
setuid binary gives anything back; then the command.

Nothing here is privileged by itself: it is the launcher that runs it as root. Every failure
before exec is reported on `status_fd` and ends the child, so a datum never runs half-isolated.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import platform
import resource
import select
import signal
import socket
from dataclasses import dataclass, field
from typing import Optional

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWUSER = 0x20000000, 0x40000000, 0x10000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 32, 4096, 8192, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}

# The folders of the machine a datum sees, read-only (symlinks such as Debian's /bin -> usr/bin are
# copied as symlinks). /opt holds the appliance's Python environment (pachyderm-sdk included).
SYSTEM = ("bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "opt")
DEVICES = ("null", "zero", "full", "random", "urandom")
HOSTNAME = "pachstudio-datum"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _call(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(src: Optional[str], dst: str, fstype: Optional[str], flags: int, data: Optional[str] = None) -> None:
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    _call(_libc.mount(enc(src), enc(dst), enc(fstype), flags, enc(data)), f"mount {src or fstype} on {dst}")


def unshare(flags: int) -> None:
    _call(_libc.unshare(flags), "unshare")


def prctl(option: int, arg: int) -> None:
    _call(_libc.prctl(option, arg, 0, 0, 0), f"prctl({option})")


def _switch_root(new_root: str) -> None:
    """Makes `new_root` (the current directory) the root: pivot_root with the old root detached
    where the kernel lets us (Docker's default seccomp profile does not), else the mount moved
    over / and chroot into it (what switch_root does; the old root stays below, out of reach of a
    process without CAP_SYS_CHROOT, which a datum never has)."""
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is not None and _libc.syscall(number, b".", b".") == 0:  # the old root is stacked on "."
        _call(_libc.umount2(b".", MNT_DETACH), "detach the old root")
    else:
        mount(new_root, "/", None, MS_MOVE)
        os.chroot(".")
    os.chdir("/")


@dataclass
class Plan:
    """The slot the launcher checked: where its folders are, and what they must be."""

    root: str  # an empty folder of the launcher's, where the slot's root tmpfs is mounted
    work: str  # the folder of the slots, and this slot in it (a name)
    slot: str
    ids: dict  # "pfs", "out", "tmp" -> (st_dev, st_ino) of the folders the launcher checked


@dataclass
class Run:
    """One datum of a slot."""

    uid: int
    gid: int
    cmd: list = field(default_factory=list)
    env: dict = field(default_factory=dict)
    cwd: str = "/pfs"
    rlimits: dict = field(default_factory=dict)  # resource.RLIMIT_* -> limit (soft = hard)
    stdio: tuple = ()  # fds to become 0, 1, 2
    probe: bool = False  # set everything up, then exit 0 instead of exec (the launcher's self-test)


def _mountpoints_under(root: str) -> list[str]:
    """Mount points at or under `root`, parents first (from /proc/self/mountinfo)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")  # \040 and the like
            if point == root or point.startswith(root + "/"):
                out.append(point)
    return sorted(set(out), key=len)


def _bind(src: str, dst: str, recursive: bool = False) -> None:
    mount(src, dst, None, MS_BIND | (MS_REC if recursive else 0))


def _reopen(plan: Plan) -> dict:
    """The slot's folders opened again from inside the new mount namespace (a bind mount's source
    must be a mount of the caller's namespace, and the launcher's own descriptors point into its
    namespace), with no symlink followed, and checked to be the very folders the launcher checked."""
    nofollow = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    work = os.open(plan.work, nofollow)
    slot = os.open(plan.slot, nofollow, dir_fd=work)
    fds = {"pfs": os.open("pfs", nofollow, dir_fd=slot), "tmp": os.open("tmp", nofollow, dir_fd=slot)}
    fds["out"] = os.open("out", nofollow, dir_fd=fds["pfs"])
    for name, fd in fds.items():
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != tuple(plan.ids[name]):
            raise OSError(f"the slot's {name} folder changed while the datum started")
    return fds


def _build_root(plan: Plan) -> None:
    root = plan.root
    fds = _reopen(plan)
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
    for name in SYSTEM:
        src = "/" + name
        if os.path.islink(src):
            os.symlink(os.readlink(src), f"{root}/{name}")
        elif os.path.isdir(src):
            os.mkdir(f"{root}/{name}")
            _bind(src, f"{root}/{name}", recursive=True)
    os.mkdir(f"{root}/pfs")
    _bind(f"/proc/self/fd/{fds['pfs']}", f"{root}/pfs")
    _bind(f"/proc/self/fd/{fds['out']}", f"{root}/pfs/out")
    os.mkdir(f"{root}/tmp")
    _bind(f"/proc/self/fd/{fds['tmp']}", f"{root}/tmp")
    os.mkdir(f"{root}/dev")
    mount("tmpfs", f"{root}/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=64k")
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            open(f"{root}/dev/{name}", "w").close()
            _bind(f"/dev/{name}", f"{root}/dev/{name}")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):  # fmt: skip
        os.symlink(target, f"{root}/dev/{name}")
    os.mkdir(f"{root}/dev/shm")  # each datum's own tmpfs and /proc are mounted here by start_datum
    os.mkdir(f"{root}/proc")
    # read-only, no setuid, no devices: everything but what the datum writes and its devices
    writable = {f"{root}/pfs/out", f"{root}/tmp"}
    for point in _mountpoints_under(root):
        if point == root or point.startswith((f"{root}/dev", f"{root}/proc")):
            continue
        flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (0 if point in writable else MS_RDONLY)
        mount(None, point, None, flags)
    mount(None, f"{root}/dev", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC)


def enter_slot(plan: Plan) -> None:
    """Runs in the slot's process: new mount, network and UTS namespaces, the slot's root built
    and made this process's root. Raises when any of it fails (the slot is then refused)."""
    unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWUTS)
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here reaches the launcher's mounts
    _build_root(plan)
    os.chdir(plan.root)
    _switch_root(plan.root)
    mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    socket.sethostname(HOSTNAME)


def start_datum(run: Run, alive_fd: int, status_fd: int) -> None:
    """Runs in the first process of the datum's new pid, mount and IPC namespaces, inside the
    slot's root: its own /proc and /dev/shm, then its limits and uid, then its command; never
    returns. `alive_fd` reads EOF once the parent is gone; `status_fd` (close on exec) gets
    {"stage", "error"} when anything fails before the command runs."""
    stage = "setup"
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=64m")
        for which, limit in run.rlimits.items():
            resource.setrlimit(which, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.setgroups([])
        os.setresgid(run.gid, run.gid, run.gid)
        os.setresuid(run.uid, run.uid, run.uid)
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # a change of uid cleared it
        if select.select([alive_fd], [], [], 0)[0]:  # the parent died before that: end here
            os._exit(137)
        os.umask(0o022)
        stage = "working_dir"
        os.chdir(run.cwd)
        if run.probe:
            os._exit(0)
        for target, fd in enumerate(run.stdio):
            os.dup2(fd, target)
        os.closerange(3, status_fd)
        os.closerange(status_fd + 1, os.sysconf("SC_OPEN_MAX"))
        stage = "exec"
        os.execvpe(run.cmd[0], run.cmd, run.env)
    except BaseException as e:  # noqa: BLE001 - whatever it is, the datum must not run
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        try:
            os.write(status_fd, json.dumps({"stage": stage, "errno": getattr(e, "errno", None), "error": why}).encode())
        finally:
            os._exit(127 if stage == "exec" and isinstance(e, FileNotFoundError) else 126)
