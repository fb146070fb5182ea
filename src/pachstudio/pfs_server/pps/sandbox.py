"""How the embedded server runs one datum's command, and what it says about it.

Chosen once per server (`choose`):
- "launcher": the datum launcher (`launcher.py`, `slot.py`, `jail.py`) runs it as a user of its
  own in a slot: network and UTS namespaces and a root that shows only the system folders, its
  /pfs and a /tmp, built once per job and worker (`open_slot`) for that job's datums, and pid,
  mount and IPC namespaces of each datum's own. The image starts the launcher as root beside the
  server and gives the server its socket (`--datum-launcher`); a server that runs as root itself
  (tests on a host) starts one of its own, its child, on a private socket.
- otherwise the command runs as this server's own user, with its network ("local"): in a private
  mount namespace with /pfs = the datum where `/pfs` exists and user namespaces allow one
  ("namespace"), else with `/pfs` at the start of an argument or inside a stdin line rewritten to
  the datum's folder, also given as PACHSTUDIO_PFS_DIR ("paths"). `describe()` says what that
  leaves open, for the pipeline's info and each job's log.

Either way the datum gets only the environment it is given (never the server's), resource limits,
a wall-clock timeout, and is killed with everything it started when stopped (the launcher: its pid
namespace; locally: its process group).
"""

from __future__ import annotations

import os
import re
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from . import frames as F, jail
from .jail import MS_BIND, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT

PFS = "/pfs"
MOUNT_SERVER, LABEL_STUDIO = "127.0.0.1:9002", "port 8080"


@dataclass
class Request:
    cmd: list
    stdin: bytes
    env: dict
    cwd: str = PFS
    timeout: Optional[float] = None  # seconds, wall clock
    limits: dict = field(default_factory=dict)  # slot.LIMITS names -> numbers


@dataclass
class Result:
    exit: Optional[int] = None
    signal: Optional[int] = None
    timed_out: bool = False
    killed: bool = False
    stage: Optional[str] = None  # where it failed before the command ran: setup, working_dir, exec, ...
    error: Optional[str] = None


class Stop:
    """A running datum's off switch, for StopJob, RestartDatum, a job's timeout, shutdown."""

    def __init__(self):
        self.requested = threading.Event()
        self._hooks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def on_stop(self, hook: Callable[[], None]) -> None:
        with self._lock:
            self._hooks.append(hook)
            now = self.requested.is_set()
        if now:
            hook()

    def stop(self) -> None:
        with self._lock:
            self.requested.set()
            hooks = list(self._hooks)
        for hook in hooks:
            try:
                hook()
            except OSError:
                pass


OnLine = Callable[[str], None]


def pump(fds: list[int], on_line: OnLine, done: Optional[int] = None, grace: float = 2.0) -> None:
    """Reads the datum's output pipes line by line until they all close; with `done` (a pidfd),
    at most `grace` seconds more once that process ended (what it left running holds no pipe
    open for ever)."""
    sel = selectors.DefaultSelector()
    parts = {}
    for fd in fds:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
        parts[fd] = b""
    if done is not None:
        sel.register(done, selectors.EVENT_READ)
    until = None
    while len(sel.get_map()) > (1 if done is not None and done in sel.get_map() else 0):
        wait = None if until is None else max(0.0, until - time.monotonic())
        events = sel.select(wait)
        if not events and until is not None:
            break
        for key, _ in events:
            fd = key.fd
            if fd == done:
                sel.unregister(done)
                until = time.monotonic() + grace
                continue
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                sel.unregister(fd)
                continue
            parts[fd] += chunk
            *lines, parts[fd] = parts[fd].split(b"\n")
            for line in lines:
                on_line(line.decode(errors="replace"))
    for fd, rest in parts.items():
        if rest:
            on_line(rest.decode(errors="replace"))
    sel.close()


def _stdin_fd(data: bytes) -> int:
    """The datum's stdin: a file in memory holding `data` (never this server's own stdin)."""
    fd = os.memfd_create("datum-stdin", os.MFD_CLOEXEC)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


# -- through the datum launcher ------------------------------------------------------------------


class LauncherSandbox:
    kind = "launcher"
    copies_inputs = True  # the datum's uid reads only files this server made readable to all

    def __init__(self, socket_path: str, process: Optional[subprocess.Popen] = None):
        self.socket_path = socket_path
        self.process = process  # a launcher of our own (the server runs as root), else None
        self._hello: Optional[dict] = None
        self._why = ""

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        return sock

    def hello(self) -> Optional[dict]:
        """The launcher's answer (kept once it said it can isolate); None when it does not answer."""
        if self._hello is not None and self._hello.get("ok"):
            return self._hello
        try:
            with self._connect() as sock:
                F.send_frame(sock, {"op": "hello"})
                self._hello = F.recv_frame(sock)
        except OSError as e:
            self._hello, self._why = None, f"{e.strerror or e} at {self.socket_path}"
        return self._hello

    @property
    def max_datums(self) -> Optional[int]:
        hello = self.hello()
        return hello["uids"][1] if hello and hello.get("ok") else None

    def describe(self) -> str:
        hello = self.hello()
        if hello is None:
            return (
                f"datums cannot run: the datum launcher does not answer ({self._why}); they run once it does, "
                "each as a user of its own, never as this server's user"
            )
        if not hello.get("ok"):
            return f"datums cannot run: the datum launcher cannot isolate them here: {hello.get('why')}"
        first, count = hello["uids"]
        return (
            f"each datum runs as a user of its own (uids {first}-{first + count - 1}, which own no file), with no "
            "capability and no_new_privs, in a jail built once per job and worker for that job's datums (network "
            "and UTS namespaces, a root of its own; /tmp emptied between datums) and pid, mount and IPC namespaces "
            f"of its own: its root holds only the system folders (read-only), {PFS} with its inputs (read-only) and "
            f"{PFS}/out, /tmp, /dev and its own /proc; no /data, /run, /root or /home; no network at all (not even a "
            "loopback): no route to "
            f"the mount server ({MOUNT_SERVER}), Label Studio ({LABEL_STUDIO}) or this server; its environment is "
            "pachd's variables and the spec's env, never this server's; limits: memory (address space) from "
            "resource_limits.memory, CPU time from resource_limits.cpu and datum_timeout, processes, file size"
        )

    def open_slot(self, slot: str, folder: str) -> "LauncherSlot":
        return LauncherSlot(self, slot)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()  # its cue to kill what runs and end
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class LauncherSlot:
    """One slot of the launcher (`slot.py`): opened at its first datum (its folder then holds
    pfs/ and pfs/out/), it runs the next datums of the same job and worker in the jail it built
    for the first, and ends at `close()`."""

    def __init__(self, sandbox: LauncherSandbox, slot: str):
        self.sandbox, self.slot = sandbox, slot
        self.sock: Optional[socket.socket] = None
        self.reader = F.FrameReader()

    def _open(self) -> Optional[Result]:
        """Opens the slot; a Result saying why when it cannot."""
        try:
            sock = self.sandbox._connect()
        except OSError as e:
            return Result(stage="launcher", error=f"the datum launcher does not answer: {e.strerror or e}")
        try:
            F.send_frame(sock, {"op": "open", "slot": self.slot})
            answer = F.recv_frame(sock) or {}
        except OSError as e:
            answer = {"stage": "launcher", "error": f"the datum launcher's connection failed: {e.strerror or e}"}
        if not answer.get("ok"):
            sock.close()
            return Result(stage=answer.get("stage") or "launcher",
                          error=answer.get("error") or "the datum launcher closed the slot it was opening")  # fmt: skip
        self.sock, self.reader = sock, F.FrameReader()
        return None

    def run(self, request: Request, on_line: OnLine, stop: Stop) -> Result:
        hello = self.sandbox.hello()
        if hello is None or not hello.get("ok"):
            return Result(stage="launcher", error=self.sandbox.describe())
        if self.sock is None:
            failed = self._open()
            if failed is not None:
                return failed
        sock = self.sock
        stdin = _stdin_fd(request.stdin)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        lock = threading.Lock()
        running = [True]  # a Stop called after this run must not end the slot's next datum
        try:
            message = {
                "op": "run",
                "cmd": request.cmd,
                "env": request.env,
                "cwd": request.cwd,
                "timeout": request.timeout,
                "limits": request.limits,
            }
            sock.settimeout(30)
            F.send_frame(sock, message, [stdin, out_w, err_w])
            for fd in (stdin, out_w, err_w):
                os.close(fd)
            stdin = out_w = err_w = -1

            def kill():
                with lock:
                    if running[0]:
                        try:
                            F.send_frame(sock, {"op": "kill"})
                        except OSError:
                            pass

            stop.on_stop(kill)
            pump([out_r, err_r], on_line)
            sock.settimeout(300)  # the datum has ended: what is left is handing its folder back
            answer = F.recv_frame(sock, self.reader)
        except OSError as e:
            answer = {"stage": "launcher", "error": f"the datum launcher's connection failed: {e.strerror or e}"}
        finally:
            with lock:
                running[0] = False
            for fd in (stdin, out_w, err_w, out_r, err_r):
                if fd >= 0:
                    os.close(fd)
        if answer is None:
            answer = {"stage": "launcher", "error": "the datum launcher ended while the datum ran"}
        if answer.get("stage") in ("launcher", "slot"):
            self.close()  # the next datum opens the slot again
        return Result(
            exit=answer.get("exit"),
            signal=answer.get("signal"),
            timed_out=bool(answer.get("timed_out")),
            killed=bool(answer.get("killed")),
            stage=answer.get("stage"),
            error=answer.get("error"),
        )

    def close(self) -> None:
        """Ends the slot and waits until its process has tidied its folder up (tmp/ removed,
        pfs/out handed back), so this server can remove the folder."""
        sock, self.sock = self.sock, None
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(30)
            while sock.recv(65536):
                pass
        except OSError:
            pass
        finally:
            sock.close()


def start_own_launcher(work_dir: str) -> LauncherSandbox:
    """A launcher for a server that runs as root: its child, on a socket in a private folder of
    its own; it ends, removing that folder, when this server's end of its stdin closes (at our
    exit, whatever kills us)."""
    state = tempfile.mkdtemp(prefix="pachstudio-launcher-")
    path = os.path.join(state, "datums.sock")
    cmd = [sys.executable, "-m", "pachstudio.cli", "datum-launcher", "--socket", path, "--work", work_dir,
           "--client", str(os.getuid()), "--state", state, "--exit-with-stdin"]  # fmt: skip
    process = subprocess.Popen(cmd, stdin=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 30
    while not os.path.exists(path) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return LauncherSandbox(path, process)


# -- as this server's own user ---------------------------------------------------------------------


def _enter_namespace(pfs_dir: str) -> None:
    """Between fork and exec: a private mount namespace (through a user namespace mapping us to
    root in it, when we are not root) with `pfs_dir` on /pfs, read-only but for /pfs/out."""
    uid, gid, root = os.geteuid(), os.getegid(), os.geteuid() == 0
    jail.unshare(jail.CLONE_NEWNS | (0 if root else jail.CLONE_NEWUSER))
    if not root:
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"0 {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"0 {gid} 1")
    jail.mount(None, "/", None, MS_REC | MS_PRIVATE)
    jail.mount(pfs_dir, PFS, None, MS_BIND | MS_REC)
    jail.mount(None, PFS, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    jail.mount(os.path.join(pfs_dir, "out"), os.path.join(PFS, "out"), None, MS_BIND)


_PFS_WORD = re.compile(r"(?<![\w./-])/pfs(?=/|\b|$)")


def rewrite(text: str, pfs_dir: str) -> str:
    return _PFS_WORD.sub(pfs_dir.replace("\\", "\\\\"), text)


LOCAL_LIMITS = {"as": resource.RLIMIT_AS, "cpu": resource.RLIMIT_CPU, "fsize": resource.RLIMIT_FSIZE}


class LocalSandbox:
    """Datums as this server's own user: what isolation needs privileges for is missing."""

    max_datums = None  # no limit but the server's own

    def __init__(self, why_no_launcher: str):
        self.why_no_launcher = why_no_launcher
        self.kind, self._why = self._probe()
        # in "namespace" mode /pfs is read-only, so inputs may be hard links to the stored contents;
        # in "paths" mode a datum could write through one
        self.copies_inputs = self.kind == "paths"

    @staticmethod
    def _probe() -> tuple[str, str]:
        if not os.path.isdir(PFS):
            return "paths", f"{PFS} does not exist on this machine"
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "in"))
            os.makedirs(os.path.join(d, "out"))
            open(os.path.join(d, "in", "probe"), "w").close()
            script = f"test -f {PFS}/in/probe && ! touch {PFS}/in/probe 2>/dev/null && touch {PFS}/out/x"
            try:
                r = subprocess.run(["sh", "-c", script], preexec_fn=lambda: _enter_namespace(d), capture_output=True,
                                   timeout=30)  # fmt: skip
            except (OSError, subprocess.SubprocessError) as e:
                return "paths", f"no private mount namespace here ({e})"
            if r.returncode != 0:
                return "paths", f"the probe exited {r.returncode}: {r.stderr.decode(errors='replace')[:200]}"
        return "namespace", ""

    def describe(self) -> str:
        where = (
            f"in a private mount namespace with {PFS} = the datum (read-only but {PFS}/out)"
            if self.kind == "namespace"
            else f"with {PFS} paths in cmd and stdin rewritten to the datum's folder ({self._why})"
        )
        return (
            f"datums run as this server's own user, with its network: no datum launcher ({self.why_no_launcher}); "
            "a datum can read and change what this server can (its data folder, its root token file) and reach "
            f"every port it can (the mount server at {MOUNT_SERVER}, Label Studio, this server); each datum runs "
            f"{where}, with pachd's variables and the spec's env only (never this server's), memory, CPU time "
            "and file size limits, killed with its process group when stopped or timed out"
        )

    def open_slot(self, slot: str, folder: str) -> "LocalSlot":
        return LocalSlot(self, folder)

    def run(self, folder: str, request: Request, on_line: OnLine, stop: Stop) -> Result:
        pfs_dir = os.path.join(folder, "pfs")
        cmd, data, cwd = list(request.cmd), request.stdin, request.cwd
        env = dict(request.env)
        if self.kind == "paths":
            cmd = [rewrite(a, pfs_dir) for a in cmd]
            data = rewrite(data.decode(errors="surrogateescape"), pfs_dir).encode(errors="surrogateescape")
            cwd = rewrite(cwd, pfs_dir)
            env = {k: rewrite(v, pfs_dir) if v.startswith(PFS) else v for k, v in env.items()}
            env["PACHSTUDIO_PFS_DIR"] = pfs_dir
        limits = {LOCAL_LIMITS[k]: v for k, v in request.limits.items() if k in LOCAL_LIMITS}
        namespace = self.kind == "namespace"

        def child():
            jail.prctl(jail.PR_SET_PDEATHSIG, signal.SIGKILL)
            if namespace:
                _enter_namespace(pfs_dir)
            for which, limit in limits.items():
                resource.setrlimit(which, (limit, limit))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            os.chdir(cwd)

        stdin = _stdin_fd(data)
        try:
            proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                    preexec_fn=child, start_new_session=True)  # fmt: skip
        except FileNotFoundError as e:
            return Result(exit=127, stage="exec", error=e.strerror)
        except PermissionError as e:
            return Result(exit=126, stage="exec", error=e.strerror)
        except subprocess.SubprocessError as e:
            return Result(exit=126, stage="setup", error=str(e))
        finally:
            os.close(stdin)
        result = Result()

        def kill_group():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

        def on_stop():
            result.killed = True
            kill_group()

        stop.on_stop(on_stop)
        timer = None
        if request.timeout:

            def expire():
                result.timed_out = True
                kill_group()

            timer = threading.Timer(request.timeout, expire)
            timer.daemon = True
            timer.start()
        pidfd = os.pidfd_open(proc.pid)
        try:
            pump([proc.stdout.fileno(), proc.stderr.fileno()], on_line, done=pidfd)
            proc.wait()
        finally:
            os.close(pidfd)
            if timer is not None:
                timer.cancel()
            kill_group()  # what the command left running goes with it (pachd kills the process group too)
            proc.stdout.close()
            proc.stderr.close()
        if proc.returncode < 0:
            result.signal = -proc.returncode
        else:
            result.exit = proc.returncode
        return result

    def close(self) -> None:
        pass


class LocalSlot:
    """A slot folder whose datums run as this server's own user (nothing to keep between them)."""

    def __init__(self, sandbox: LocalSandbox, folder: str):
        self.sandbox, self.folder = sandbox, folder

    def run(self, request: Request, on_line: OnLine, stop: Stop) -> Result:
        return self.sandbox.run(self.folder, request, on_line, stop)

    def close(self) -> None:
        pass


def choose(work_dir: str, launcher_socket: Optional[str]):
    """The launcher at `launcher_socket`; else one of our own when this server runs as root;
    else this server's own user."""
    if launcher_socket:
        return LauncherSandbox(launcher_socket)
    if os.geteuid() == 0:
        return start_own_launcher(work_dir)
    return LocalSandbox(f"this server runs as uid {os.geteuid()}, not root, and was given no --datum-launcher")
