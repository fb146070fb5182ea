"""`pachstudio datum-launcher`: runs the embedded PFS server's datums isolated, with privileges
the server must not have.

The PFS server answers the network and runs unprivileged, so it cannot isolate a datum itself.
This program is started as root (supervisord, in the appliance) with only the capabilities the
isolation needs, and listens on a unix socket only the server's user may use (the socket's owner
and mode, and SO_PEERCRED checked again on every connection). It reads nothing else from anyone.

One connection carries one datum at a time:

    -> {"op": "hello"}                   <- {"ok", "why", "uids": [first, count]}
    -> {"op": "run", "slot", "cmd", "env", "cwd", "timeout", "limits"}, with 3 descriptors
       (the datum's stdin, stdout, stderr)
    -> {"op": "kill"}                    (optional: ends the datum now)
                                         <- {"exit", "signal", "timed_out", "killed", "stage", "error", "uid"}

Each frame is a 4-byte big-endian length and JSON; the descriptors ride on the run frame. A
connection that closes (the server stopped or crashed) kills its datum; so does `timeout`
(seconds, wall clock) and this program's own stop.

A datum runs in the slot folder `<work>/<slot>` that the server filled: `pfs/` (its inputs) with
an empty `pfs/out/`. The launcher checks the path (no symlink, every part owned by the server's
user), makes `tmp/` there, gives `pfs/out` and `tmp` to the datum's uid, and starts it (`jail.py`)
as the first process of a new pid namespace: when that process ends, the kernel ends every other
process of the datum. Afterwards `pfs/out`'s files are handed back to the server's user (chown,
never following a symlink) and `tmp/` is removed. Each datum running at once has its own uid and
gid from `--uids FIRST:COUNT`, which no file on the machine belongs to.

Per datum, two processes: a relay (a fork of this program, root, in the launcher's mount
namespace) that makes the pid namespace, forks the datum, waits for it and tidies up; and the
datum itself. The relay dies with the launcher (PDEATHSIG) and the datum with the relay.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import select
import selectors
import shutil
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

from . import jail

log = logging.getLogger("pachstudio.pfs_server.pps.launcher")

MAX_FRAME = 1 << 20
SLOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
LIMITS = {
    "as": resource.RLIMIT_AS,
    "cpu": resource.RLIMIT_CPU,
    "nproc": resource.RLIMIT_NPROC,
    "fsize": resource.RLIMIT_FSIZE,
    "nofile": resource.RLIMIT_NOFILE,
}
NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


# -- frames ---------------------------------------------------------------------------------------


def send_frame(sock: socket.socket, message: dict, fds=()) -> None:
    data = json.dumps(message).encode()
    frame = struct.pack(">I", len(data)) + data
    if fds:
        sent = socket.send_fds(sock, [frame], list(fds))
        frame = frame[sent:]
    if frame:
        sock.sendall(frame)


class FrameReader:
    """Frames from a stream of bytes and descriptors, as they come."""

    def __init__(self):
        self.buf = b""
        self.fds: list[int] = []

    def feed(self, data: bytes, fds=()) -> None:
        self.buf += data
        self.fds += list(fds)

    def next(self) -> Optional[dict]:
        if len(self.buf) < 4:
            return None
        (size,) = struct.unpack(">I", self.buf[:4])
        if size > MAX_FRAME:
            raise ValueError(f"a frame of {size} bytes (at most {MAX_FRAME})")
        if len(self.buf) < 4 + size:
            return None
        data, self.buf = self.buf[4 : 4 + size], self.buf[4 + size :]
        message = json.loads(data)
        if not isinstance(message, dict):
            raise ValueError("a frame must hold a JSON object")
        return message

    def close_fds(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def recv_frame(sock: socket.socket, reader: Optional[FrameReader] = None) -> Optional[dict]:
    """Blocks for the next frame; None at EOF."""
    reader = reader or FrameReader()
    while True:
        message = reader.next()
        if message is not None:
            return message
        data = sock.recv(65536)
        if not data:
            return None
        reader.feed(data)


# -- one datum ------------------------------------------------------------------------------------


@dataclass
class Datum:
    relay: int  # pid of the relay (our child)
    pid: int  # pid of the datum's first process
    index: int  # its place in the uid range
    results: int  # read end of the relay's pipe
    deadline: Optional[float]
    conn: Optional["Conn"]
    timed_out: bool = False
    killed: bool = False
    buf: bytes = b""


@dataclass
class Conn:
    sock: socket.socket
    reader: FrameReader = field(default_factory=FrameReader)
    datum: Optional[Datum] = None


class Refused(Exception):
    """A request the launcher will not carry out; the text goes back to the client."""


def _check(value, kind, what: str):
    if not isinstance(value, kind):
        raise Refused(f"{what} must be a {kind.__name__}")
    return value


def _strings(value, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and "\0" not in v for v in value):
        raise Refused(f"{what} must be a list of strings without NUL")
    return value


def _environment(value) -> dict:
    _check(value, dict, "env")
    for k, v in value.items():
        if not isinstance(v, str) or not k or "=" in k or "\0" in k + v:
            raise Refused(f"env {k!r}: not an environment variable")
    return value


def _limits(value) -> dict:
    out = {}
    for name, limit in _check(value or {}, dict, "limits").items():
        if name not in LIMITS or not isinstance(limit, int) or limit < 0:
            raise Refused(f"limits: {name}={limit!r} is not a limit (one of {', '.join(LIMITS)}, a whole number)")
        out[LIMITS[name]] = limit
    return out


class Launcher:
    def __init__(self, socket_path: str, work: str, client_uid: int, client_gid: int, first_uid: int, count: int,
                 state: str):  # fmt: skip
        self.socket_path, self.work = socket_path, work
        self.client_uid, self.client_gid = client_uid, client_gid
        self.first_uid, self.count = first_uid, count
        self.state = state
        self.root = os.path.join(state, "root")
        self.free = list(range(count))
        self.sel = selectors.DefaultSelector()
        self.running: dict[int, Datum] = {}  # results fd -> datum
        self.stopping = False
        self.why: Optional[str] = None

    # -- the parts of a run ---------------------------------------------------------------------
    def _open_slot(self, base: str, slot: str, owner: int) -> tuple[int, dict]:
        """(slot fd, {"pfs", "out": fds}) with no symlink followed and each folder `owner`'s."""
        if not SLOT_NAME.match(slot) or ".." in slot:
            raise Refused(f"slot {slot!r} is not a slot name")
        opened = []
        try:
            work = os.open(base, NOFOLLOW_DIR)
            opened.append(work)
            slot_fd = os.open(slot, NOFOLLOW_DIR, dir_fd=work)
            opened.append(slot_fd)
            pfs = os.open("pfs", NOFOLLOW_DIR, dir_fd=slot_fd)
            opened.append(pfs)
            out = os.open("out", NOFOLLOW_DIR, dir_fd=pfs)
            opened.append(out)
        except OSError as e:
            for fd in opened:
                os.close(fd)
            raise Refused(f"slot {slot!r}: {e.strerror} (it needs pfs/ and pfs/out/, and no symlink)") from None
        for fd in opened:
            if os.fstat(fd).st_uid != owner:
                for fd_ in opened:
                    os.close(fd_)
                raise Refused(f"slot {slot!r}: a folder of it is not the server's user's")
        os.close(work)
        return slot_fd, {"pfs": pfs, "out": out}

    def start(self, request: dict, stdio: list[int], conn: Optional[Conn], probe: bool = False) -> Datum:
        """Checks a run request, prepares the slot, forks the relay; returns once the datum's
        first process exists (Refused when it cannot)."""
        if not self.free:
            raise Refused(f"{self.count} datums run already (the launcher's --uids range is full)")
        cmd = _strings(request.get("cmd"), "cmd") if not probe else ["true"]
        if not cmd:
            raise Refused("cmd is empty")
        env = _environment(request.get("env") or {})
        cwd = _check(request.get("cwd") or "/pfs", str, "cwd")
        if not cwd.startswith("/") or "\0" in cwd:
            raise Refused(f"cwd {cwd!r} must be an absolute path")
        timeout = request.get("timeout")
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise Refused("timeout must be a number of seconds")
        rlimits = _limits(request.get("limits"))
        slot = _check(request.get("slot"), str, "slot")
        base, owner = (self.state, os.getuid()) if probe else (self.work, self.client_uid)
        slot_fd, fds = self._open_slot(base, slot, owner)
        index = self.free.pop(0)
        uid = gid = self.first_uid + index
        try:
            try:
                os.mkdir("tmp", 0o700, dir_fd=slot_fd)
            except FileExistsError:
                raise Refused(f"slot {slot!r} has a tmp/ already: a datum of it still runs") from None
            fds["tmp"] = os.open("tmp", NOFOLLOW_DIR, dir_fd=slot_fd)
            for name in ("out", "tmp"):
                os.fchown(fds[name], uid, gid)
            ids = {name: (os.fstat(fd).st_dev, os.fstat(fd).st_ino) for name, fd in fds.items()}
            plan = jail.Plan(root=self.root, work=base, slot=slot, ids=ids,
                             uid=uid, gid=gid, cmd=cmd, env=env, cwd=cwd, rlimits=rlimits, stdio=tuple(stdio),
                             probe=probe)  # fmt: skip
            read_end, write_end = os.pipe2(os.O_CLOEXEC)
            relay = os.fork()
            if relay == 0:
                self._relay(plan, slot_fd, fds, write_end, owner, self.client_gid if not probe else os.getgid())
            os.close(write_end)
        except BaseException:
            self.free.insert(0, index)
            for fd in fds.values():
                os.close(fd)
            if "tmp" in fds:  # made here: the slot's next datum needs it gone
                shutil.rmtree("tmp", dir_fd=slot_fd, ignore_errors=True)
            os.close(slot_fd)
            raise
        for fd in list(fds.values()) + [slot_fd]:
            os.close(fd)
        first = self._read_line(read_end, timeout=30)
        if not first or "pid" not in first:
            os.close(read_end)
            os.waitpid(relay, 0)
            self.free.insert(0, index)
            raise Refused(f"the datum could not be started: {(first or {}).get('error', 'the relay ended')}")
        deadline = time.monotonic() + timeout if timeout else None
        return Datum(relay=relay, pid=first["pid"], index=index, results=read_end, deadline=deadline, conn=conn)

    @staticmethod
    def _read_line(fd: int, timeout: float) -> Optional[dict]:
        """The relay's next line (one byte at a time: what follows it is read by the loop)."""
        buf = b""
        end = time.monotonic() + timeout
        while not buf.endswith(b"\n"):
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1)
            if not chunk:
                return None
            buf += chunk
        return json.loads(buf)

    def _relay(self, plan: jail.Plan, slot_fd: int, fds: dict, results: int, owner: int, group: int) -> None:
        """The relay process: new pid namespace, the datum forked into it, its end awaited, the
        slot handed back. Writes {"pid"} then {"status", "stage", "error"} on `results`."""
        try:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
            jail.prctl(jail.PR_SET_PDEATHSIG, signal.SIGKILL)
            keep = sorted({results, slot_fd, *fds.values(), *plan.stdio})
            low = 3
            for fd in keep:
                os.closerange(low, fd)
                low = fd + 1
            os.closerange(low, os.sysconf("SC_OPEN_MAX"))
            jail.unshare(jail.CLONE_NEWPID)
            status_r, status_w = os.pipe2(os.O_CLOEXEC)
            alive_r, alive_w = os.pipe2(os.O_CLOEXEC)
            pid = os.fork()
            if pid == 0:
                os.close(status_r)
                os.close(alive_w)
                os.close(results)
                jail.enter(plan, alive_r, status_w)  # never returns
            os.close(status_w)
            os.close(alive_r)
            for fd in set(plan.stdio):
                os.close(fd)
            reaped = False

            def kill(*_):
                if not reaped:
                    os.kill(pid, signal.SIGKILL)

            signal.signal(signal.SIGUSR1, kill)
            signal.signal(signal.SIGTERM, kill)
            os.write(results, json.dumps({"pid": pid}).encode() + b"\n")
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # ended, not reaped: the pid stays its own
            reaped = True
            _, status = os.waitpid(pid, 0)
            failure = os.read(status_r, 65536)
            report = json.loads(failure) if failure else {}
            try:
                hand_back(fds["out"], plan.uid, owner, group)
                shutil.rmtree("tmp", dir_fd=slot_fd)
            except OSError as e:
                report.setdefault("error", f"the slot could not be handed back: {e}")
                report.setdefault("stage", "cleanup")
            report["status"] = status
            os.write(results, json.dumps(report).encode() + b"\n")
            os._exit(0)
        except BaseException as e:  # noqa: BLE001 - report and end; never return into the launcher's loop
            try:
                os.write(results, json.dumps({"error": f"{type(e).__name__}: {e}"}).encode() + b"\n")
            finally:
                os._exit(1)

    def probe(self) -> Optional[str]:
        """Runs a datum that sets everything up and exits before its command: None when the
        isolation works here, else why not."""
        folder = os.path.join(self.state, "probe")
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(os.path.join(folder, "pfs", "out"), mode=0o755)
        try:
            d = self.start({"slot": "probe"}, [], None, probe=True)
        except Refused as e:
            return str(e)
        result = self._finish_sync(d)
        if result.get("exit") == 0:
            return None
        return f"{result.get('stage') or 'setup'}: {result.get('error') or result}"

    def _finish_sync(self, d: Datum) -> dict:
        line = self._read_line(d.results, timeout=60) or {}
        os.close(d.results)
        os.waitpid(d.relay, 0)
        self.free.insert(0, d.index)
        return self._answer(d, line)

    def _answer(self, d: Datum, report: dict) -> dict:
        status = report.get("status")
        answer = {
            "exit": os.waitstatus_to_exitcode(status) if status is not None and os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if status is not None and os.WIFSIGNALED(status) else None,
            "timed_out": d.timed_out,
            "killed": d.killed,
            "stage": report.get("stage"),
            "error": report.get("error") if status is None or report.get("stage") else None,
            "uid": self.first_uid + d.index,
        }
        if status is None and not answer["error"]:
            answer["error"] = "the datum's relay ended without a report"
        return answer

    def kill(self, d: Datum) -> None:
        try:
            os.kill(d.relay, signal.SIGUSR1)
        except ProcessLookupError:
            pass

    # -- the loop -------------------------------------------------------------------------------
    def listen(self) -> socket.socket:
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(self.socket_path)
        finally:
            os.umask(old)
        os.chmod(self.socket_path, 0o600)
        os.chown(self.socket_path, self.client_uid, self.client_gid)
        sock.listen(64)
        sock.setblocking(False)
        return sock

    def serve(self, watch_stdin: bool = False) -> int:
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        self.why = self.probe()
        if self.why:
            log.error("datums cannot be isolated here: %s", self.why)
        else:
            log.info("isolation works here: each datum in its own namespaces, as uids %d-%d", self.first_uid,
                     self.first_uid + self.count - 1)  # fmt: skip
        hand_back_leftovers(self.work, self.first_uid, self.count, self.client_uid, self.client_gid)
        listener = self.listen()
        self.sel.register(listener, selectors.EVENT_READ, self._accept)
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        signal.set_wakeup_fd(wake_w.fileno())
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: setattr(self, "stopping", True))
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.sel.register(wake_r, selectors.EVENT_READ, lambda s: s.recv(4096))
        if watch_stdin:
            self.sel.register(sys.stdin.fileno(), selectors.EVENT_READ, self._stdin)
        log.info("listening on %s for uid %d", self.socket_path, self.client_uid)
        while not self.stopping:
            now = time.monotonic()
            deadlines = [d.deadline for d in self.running.values() if d.deadline and not d.timed_out]
            wait = max(0.0, min(deadlines) - now) if deadlines else None
            for key, _ in self.sel.select(wait):
                key.data(key.fileobj)
            now = time.monotonic()
            for d in list(self.running.values()):
                if d.deadline and not d.timed_out and now >= d.deadline:
                    d.timed_out = True
                    self.kill(d)
        self.sel.unregister(listener)
        listener.close()
        for d in list(self.running.values()):
            self.kill(d)
        end = time.monotonic() + 10
        while self.running and time.monotonic() < end:
            for key, _ in self.sel.select(0.2):
                if key.fileobj in self.running:
                    key.data(key.fileobj)
        if watch_stdin:  # a server's own launcher (sandbox.start_own_launcher): its folder goes with it
            shutil.rmtree(self.state, ignore_errors=True)
        log.info("stopped")
        return 0

    def _stdin(self, fd) -> None:
        if not os.read(fd, 4096):  # the server that started us is gone
            self.sel.unregister(fd)
            self.stopping = True

    def _accept(self, listener: socket.socket) -> None:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        pid, uid, gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        if uid != self.client_uid:
            log.warning("refused a connection from pid %d, uid %d (only uid %d may use this launcher)", pid, uid,
                        self.client_uid)  # fmt: skip
            sock.close()
            return
        sock.settimeout(10)
        conn = Conn(sock)
        self.sel.register(sock, selectors.EVENT_READ, lambda s: self._readable(conn))

    def _close(self, conn: Conn) -> None:
        self.sel.unregister(conn.sock)
        conn.sock.close()
        conn.reader.close_fds()
        if conn.datum is not None:
            conn.datum.conn = None
            conn.datum.killed = True
            self.kill(conn.datum)

    def _readable(self, conn: Conn) -> None:
        try:
            data, fds, _, _ = socket.recv_fds(conn.sock, 65536, 8)
        except OSError:
            data, fds = b"", []
        if not data:
            for fd in fds:
                os.close(fd)
            self._close(conn)
            return
        conn.reader.feed(data, fds)
        try:
            while (message := conn.reader.next()) is not None:
                self._handle(conn, message)
        except (ValueError, Refused) as e:
            self._reply(conn, {"error": str(e), "stage": "request"})
            self._close(conn)

    def _reply(self, conn: Conn, message: dict) -> None:
        try:
            send_frame(conn.sock, message)
        except OSError:
            pass

    def _handle(self, conn: Conn, message: dict) -> None:
        op = message.get("op")
        if op == "hello":
            self._reply(conn, {"ok": self.why is None, "why": self.why, "uids": [self.first_uid, self.count]})
        elif op == "kill":
            if conn.datum is not None:
                conn.datum.killed = True
                self.kill(conn.datum)
        elif op == "run":
            fds, conn.reader.fds = conn.reader.fds, []
            try:
                if conn.datum is not None:
                    raise Refused("a datum of this connection runs already")
                if self.why:
                    raise Refused(f"datums cannot be isolated here: {self.why}")
                if len(fds) != 3:
                    raise Refused(f"a run needs 3 descriptors (stdin, stdout, stderr), got {len(fds)}")
                d = self.start(message, fds, conn)
            except Refused as e:
                self._reply(conn, {"error": str(e), "stage": "request"})
                return
            finally:
                for fd in fds:
                    os.close(fd)
            conn.datum = d
            self.running[d.results] = d
            self.sel.register(d.results, selectors.EVENT_READ, lambda fd: self._relay_output(d))
        else:
            raise Refused(f"unknown op {op!r}")

    def _relay_output(self, d: Datum) -> None:
        chunk = os.read(d.results, 65536)
        d.buf += chunk
        if chunk:
            return
        self.sel.unregister(d.results)
        os.close(d.results)
        del self.running[d.results]
        os.waitpid(d.relay, 0)
        self.free.append(d.index)
        self.free.sort()
        lines = [json.loads(line) for line in d.buf.splitlines() if line.strip()]
        answer = self._answer(d, lines[-1] if lines else {})
        if d.conn is not None:
            d.conn.datum = None
            self._reply(d.conn, answer)


def hand_back(out_fd: int, datum_uid: int, uid: int, gid: int) -> None:
    """Everything under `out_fd` the datum's uid owns becomes `uid:gid`'s: chown by name relative
    to a descriptor of its folder, never following a symlink (os.fwalk holds each folder open)."""
    os.fchown(out_fd, uid, gid)
    for _, dirs, files, dir_fd in os.fwalk(".", dir_fd=out_fd, follow_symlinks=False):
        for name in dirs + files:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if st.st_uid == datum_uid or st.st_gid == datum_uid:
                os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)


def hand_back_leftovers(work: str, first_uid: int, count: int, uid: int, gid: int) -> None:
    """What datums cut by a crash of the launcher left in the slots goes back to the server's
    user, so the server can delete it."""
    try:
        work_fd = os.open(work, NOFOLLOW_DIR)
    except OSError:
        return
    try:
        if os.fstat(work_fd).st_uid != uid:
            return
        for _, dirs, files, dir_fd in os.fwalk(".", dir_fd=work_fd, follow_symlinks=False):
            for name in dirs + files:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if first_uid <= st.st_uid < first_uid + count:
                    os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
    finally:
        os.close(work_fd)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pachstudio datum-launcher", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--socket", required=True, help="unix socket to listen on (made 0600, the client's)")
    parser.add_argument("--work", required=True, help="the PFS server's folder of datum slots (<data>/pps/work)")
    parser.add_argument("--client", required=True, help="the only user (name or uid) that may connect")
    parser.add_argument("--uids", default="200000:64", help="FIRST:COUNT: the datums' own uids (default %(default)s)")
    parser.add_argument("--state", required=True, help="a folder of the launcher's own (root's, 0700)")
    parser.add_argument("--exit-with-stdin", action="store_true", help="stop when stdin closes (a parent's pipe)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s datum-launcher %(levelname)s %(message)s",
                        stream=sys.stderr)  # fmt: skip
    if os.geteuid() != 0:
        log.error("the datum launcher must run as root (it switches each datum to a uid of its own)")
        return 1
    try:
        first, count = (int(x) for x in args.uids.split(":"))
    except ValueError:
        parser.error(f"--uids {args.uids!r}: use FIRST:COUNT, as 200000:64")
    if first < 1000 or count < 1:
        parser.error("--uids: the first uid must be 1000 or more, and the count at least 1")
    import pwd

    try:
        entry = pwd.getpwuid(int(args.client)) if args.client.isdigit() else pwd.getpwnam(args.client)
        client_uid, client_gid = entry.pw_uid, entry.pw_gid
    except KeyError:
        if not args.client.isdigit():
            parser.error(f"--client {args.client!r}: no such user")
        client_uid = client_gid = int(args.client)
    if first <= client_uid < first + count:
        parser.error("--uids must not hold the client's own uid")
    os.makedirs(args.state, mode=0o700, exist_ok=True)
    os.chmod(args.state, 0o700)
    launcher = Launcher(args.socket, args.work, client_uid, client_gid, first, count, args.state)
    return launcher.serve(watch_stdin=args.exit_with_stdin)
