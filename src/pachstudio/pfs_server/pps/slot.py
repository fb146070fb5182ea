"""One jailed slot: the datum launcher's child that runs one connection's datums, one at a time.

The launcher forks it when a client opens a slot (`launcher.py`), handing it that connection and
the slot's folders (descriptors the launcher checked) and a uid of the slot's own. It enters the
slot's mount, network and UTS namespaces with the datum's root once (`jail.enter_slot`): building
them is most of what isolating a datum costs, so a slot is opened once per job and worker and
serves that job's datums; the server never shares one between jobs or pipelines.

For each run request: `pfs/out` and `tmp` are given to the slot's uid, and a starter is forked
that makes new pid, mount and IPC namespaces and forks the datum into them as their first process
(`jail.start_datum`); when that process ends, the kernel ends everything the datum started. Then
`pfs/out`'s files go back to the server's user and `tmp/` is emptied, so the next datum of the
slot finds nothing of this one: its processes, /proc, /dev/shm and IPC objects went with its
namespaces. A closed connection, the launcher's SIGTERM or the launcher's death (PDEATHSIG) ends
the running datum, and the slot with it (`tmp/` removed, `pfs/out` handed back).

    -> {"op": "run", "cmd", "env", "cwd", "timeout", "limits"} with 3 descriptors (stdin, stdout, stderr)
    -> {"op": "kill"}          (optional: ends the running datum now)
                               <- {"exit", "signal", "timed_out", "killed", "stage", "error", "uid"}
"""

from __future__ import annotations

import json
import os
import resource
import select
import shutil
import signal
import socket
import stat
import time
from typing import Optional

from . import jail
from .frames import FrameReader, send_frame

LIMITS = {
    "as": resource.RLIMIT_AS,
    "cpu": resource.RLIMIT_CPU,
    "nproc": resource.RLIMIT_NPROC,
    "fsize": resource.RLIMIT_FSIZE,
    "nofile": resource.RLIMIT_NOFILE,
}


class Refused(Exception):
    """A request the launcher will not carry out; the text goes back to the client."""


def check_type(value, kind, what: str):
    if not isinstance(value, kind):
        raise Refused(f"{what} must be a {kind.__name__}")
    return value


def _strings(value, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and "\0" not in v for v in value):
        raise Refused(f"{what} must be a list of strings without NUL")
    return value


def _environment(value) -> dict:
    check_type(value, dict, "env")
    for k, v in value.items():
        if not isinstance(v, str) or not k or "=" in k or "\0" in k + v:
            raise Refused(f"env {k!r}: not an environment variable")
    return value


def _limits(value) -> dict:
    out = {}
    for name, limit in check_type(value or {}, dict, "limits").items():
        if name not in LIMITS or not isinstance(limit, int) or limit < 0:
            raise Refused(f"limits: {name}={limit!r} is not a limit (one of {', '.join(LIMITS)}, a whole number)")
        out[LIMITS[name]] = limit
    return out


def check_run(request: dict, uid: int, stdio: list, probe: bool = False) -> jail.Run:
    """A run request as the datum it asks for (Refused when it is not one)."""
    cmd = _strings(request.get("cmd"), "cmd") if not probe else ["true"]
    if not cmd:
        raise Refused("cmd is empty")
    env = _environment(request.get("env") or {})
    cwd = check_type(request.get("cwd") or "/pfs", str, "cwd")
    if not cwd.startswith("/") or "\0" in cwd:
        raise Refused(f"cwd {cwd!r} must be an absolute path")
    timeout = request.get("timeout")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise Refused("timeout must be a number of seconds")
    return jail.Run(uid=uid, gid=uid, cmd=cmd, env=env, cwd=cwd, rlimits=_limits(request.get("limits")),
                    stdio=tuple(stdio), probe=probe)  # fmt: skip


def hand_back(out_fd: int, datum_uid: int, uid: int, gid: int) -> None:
    """Everything under `out_fd` the datum's uid owns becomes `uid:gid`'s: chown by name relative
    to a descriptor of its folder, never following a symlink (os.fwalk holds each folder open)."""
    os.fchown(out_fd, uid, gid)
    for _, dirs, files, dir_fd in os.fwalk(".", dir_fd=out_fd, follow_symlinks=False):
        for name in dirs + files:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if st.st_uid == datum_uid or st.st_gid == datum_uid:
                os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)


def close_all_but(*keep: int) -> None:
    """Closes every descriptor above 2 but `keep` (a forked child drops what its parent held)."""
    low = 3
    for fd in sorted(set(keep)):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def empty(dir_fd: int) -> None:
    """Removes everything in the folder `dir_fd`, never following a symlink."""
    for name in os.listdir(dir_fd):
        if stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
            shutil.rmtree(name, dir_fd=dir_fd)
        else:
            os.unlink(name, dir_fd=dir_fd)


class Slot:
    """The slot's process: see the module's docstring. `serve()` never returns."""

    def __init__(self, sock: socket.socket, reader: FrameReader, plan: jail.Plan, slot_fd: int, fds: dict,
                 uid: int, owner: tuple, probe: bool = False):  # fmt: skip
        self.sock, self.reader, self.plan = sock, reader, plan
        self.slot_fd, self.fds = slot_fd, fds  # fds: "pfs", "out", "tmp"
        self.uid = uid
        self.owner = owner  # (uid, gid) the datum's output goes back to
        self.probe = probe
        self.stopping = False
        self.closed = False

    # -- the process ----------------------------------------------------------------------------
    def serve(self) -> None:
        code = 1
        try:
            for sig in (signal.SIGINT, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            signal.set_wakeup_fd(wake_w)
            signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
            jail.prctl(jail.PR_SET_PDEATHSIG, signal.SIGKILL)
            close_all_but(self.sock.fileno(), self.slot_fd, *self.fds.values(), self.wake_r, wake_w)
            try:
                jail.enter_slot(self.plan)
            except OSError as e:
                self.reply({"ok": False, "stage": "setup", "error": e.strerror or str(e)})
                return
            self.reply({"ok": True, "uid": self.uid})
            while not self.stopping and not self.closed:
                message = self.next_message()
                if message is None:
                    break
                self.handle(message)
            code = 0
        except BaseException as e:  # noqa: BLE001 - say why, then end: never back into the launcher's loop
            self.reply({"stage": "slot", "error": f"{type(e).__name__}: {e}"})
        finally:
            try:
                hand_back(self.fds["out"], self.uid, *self.owner)
                shutil.rmtree("tmp", dir_fd=self.slot_fd, ignore_errors=True)
            finally:
                os._exit(code)

    def reply(self, message: dict) -> None:
        try:
            send_frame(self.sock, message)
        except OSError:
            self.closed = True

    def next_message(self, block: bool = True) -> Optional[dict]:
        """The client's next frame (its descriptors in `self.reader`); None once it closed, or
        when the launcher stops us, or (not `block`) when none is there yet."""
        while True:
            message = self.reader.next()
            if message is not None:
                return message
            ready = select.select([self.sock, self.wake_r], [], [], None if block else 0)[0]
            if self.wake_r in ready:
                os.read(self.wake_r, 512)
            if self.stopping:
                return None
            if self.sock not in ready:
                if not block:
                    return None
                continue
            if not self.reader.receive(self.sock):
                self.closed = True
                return None

    def handle(self, message: dict) -> None:
        op = message.get("op")
        stdio = self.reader.take_fds()
        try:
            if op == "kill":
                return  # nothing runs
            if op != "run":
                raise Refused(f"unknown op {op!r}")
            if len(stdio) != 3:
                raise Refused(f"a run needs 3 descriptors (stdin, stdout, stderr), got {len(stdio)}")
            answer = self.run(check_run(message, self.uid, stdio, self.probe), message.get("timeout"))
        except Refused as e:
            answer = {"error": str(e), "stage": "request"}
        finally:
            for fd in stdio:
                os.close(fd)
        self.reply(answer)

    # -- one datum ------------------------------------------------------------------------------
    def run(self, run: jail.Run, timeout: Optional[float]) -> dict:
        for name in ("out", "tmp"):  # (no chmod: the launcher has no CAP_FOWNER; no other datum sees either)
            os.fchown(self.fds[name], self.uid, self.uid)
        results_r, results_w = os.pipe2(os.O_CLOEXEC)
        starter = os.fork()
        if starter == 0:
            os.close(results_r)
            _starter(run, results_w)  # never returns
        os.close(results_w)
        deadline = time.monotonic() + timeout if timeout else None
        timed_out = killed = False
        buf = b""

        def kill():
            try:
                os.kill(starter, signal.SIGUSR1)
            except ProcessLookupError:
                pass

        while True:
            wait = None if deadline is None or timed_out else max(0.0, deadline - time.monotonic())
            ready = select.select([results_r, self.sock, self.wake_r], [], [], wait)[0]
            if results_r in ready:
                chunk = os.read(results_r, 65536)
                if not chunk:
                    break
                buf += chunk
            if self.wake_r in ready:
                os.read(self.wake_r, 512)
            if self.sock in ready and not self.closed:
                message = self.next_message(block=False)
                self.reader.close_fds()
                if message is not None and message.get("op") != "kill":
                    self.closed = True  # one datum at a time: a client that sends another is cut off
                if message is not None:
                    killed = True
                    kill()
            if self.stopping or self.closed:
                killed = True
                kill()
            if deadline is not None and not timed_out and time.monotonic() >= deadline:
                timed_out = True
                kill()
        os.close(results_r)
        os.waitpid(starter, 0)
        report = json.loads(buf.splitlines()[-1]) if buf.strip() else {}
        try:
            hand_back(self.fds["out"], self.uid, *self.owner)
            empty(self.fds["tmp"])
        except OSError as e:
            report.setdefault("error", f"the slot could not be handed back: {e}")
            report.setdefault("stage", "cleanup")
        status = report.get("status")
        answer = {
            "exit": os.waitstatus_to_exitcode(status) if status is not None and os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if status is not None and os.WIFSIGNALED(status) else None,
            "timed_out": timed_out,
            "killed": killed,
            "stage": report.get("stage"),
            "error": report.get("error") if status is None or report.get("stage") else None,
            "uid": self.uid,
        }
        if status is None and not answer["error"]:
            answer["error"] = "the datum's starter ended without a report"
        return answer


def _starter(run: jail.Run, results: int) -> None:
    """The datum's starter (a child of the slot's process): new pid, mount and IPC namespaces,
    the datum forked into them, its end awaited. Writes {"status", "stage", "error"} on
    `results`; SIGUSR1 or SIGTERM kill the datum."""
    try:
        signal.set_wakeup_fd(-1)
        asked = []  # a kill that comes before the datum exists is kept, and done once it does
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, lambda *_: asked.append(1))
        jail.prctl(jail.PR_SET_PDEATHSIG, signal.SIGKILL)
        close_all_but(results, *run.stdio)
        jail.unshare(jail.CLONE_NEWPID | jail.CLONE_NEWNS | jail.CLONE_NEWIPC)
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        alive_r, alive_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            os.close(status_r)
            os.close(alive_w)
            os.close(results)
            jail.start_datum(run, alive_r, status_w)  # never returns
        os.close(status_w)
        os.close(alive_r)
        for fd in set(run.stdio):
            os.close(fd)
        reaped = False

        def kill(*_):
            if not reaped:
                os.kill(pid, signal.SIGKILL)

        signal.signal(signal.SIGUSR1, kill)
        signal.signal(signal.SIGTERM, kill)
        if asked:
            kill()
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # ended, not reaped: the pid stays its own
        reaped = True
        _, status = os.waitpid(pid, 0)
        failure = os.read(status_r, 65536)
        report = json.loads(failure) if failure else {}
        report["status"] = status
        os.write(results, json.dumps(report).encode() + b"\n")
        os._exit(0)
    except BaseException as e:  # noqa: BLE001 - report and end
        try:
            os.write(results, json.dumps({"stage": "setup", "error": f"{type(e).__name__}: {e}"}).encode() + b"\n")
        finally:
            os._exit(1)
