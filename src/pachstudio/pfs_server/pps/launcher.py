"""`pachstudio datum-launcher`: runs the embedded PFS server's datums isolated, with privileges
the server must not have.

The PFS server answers the network and runs unprivileged, so it cannot isolate a datum itself.
This program is started as root (supervisord, in the appliance) with only the capabilities the
isolation needs, and listens on a unix socket only the server's user may use (the socket's owner
and mode, and SO_PEERCRED checked again on every connection). It reads nothing else from anyone.

A connection asks who we are, or opens a slot; an opened slot's connection then carries that
slot's datums, one at a time, until it closes (`slot.py`):

    -> {"op": "hello"}                   <- {"ok", "why", "uids": [first, count]}
    -> {"op": "open", "slot"}            <- {"ok": true, "uid"} or {"ok": false, "stage", "error"}
    -> {"op": "run", ...}, {"op": "kill"}: see slot.py

Each frame is a 4-byte big-endian length and JSON (`frames.py`); descriptors ride on a run frame.

A slot is the folder `<work>/<slot>` that the server filled: `pfs/` (its inputs) with `pfs/out/`.
The launcher checks the path (no symlink, every part owned by the server's user), makes `tmp/`
there, picks a uid for the slot from `--uids FIRST:COUNT` (which no file on the machine belongs
to, one per open slot) and forks the slot's process, which holds the connection from then on: it
builds the slot's jail once (its mount, network and UTS namespaces and root, `jail.py`) and starts
each datum in new pid, mount and IPC namespaces inside it. The slot ends when its connection
closes, on this program's stop (SIGTERM: its datum is killed, `pfs/out` handed back, `tmp/`
removed) or with this program (PDEATHSIG); its uid is then free for another slot.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
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
from .frames import FrameReader, recv_frame, send_frame
from .slot import Refused, Slot, check_type

log = logging.getLogger("pachstudio.pfs_server.pps.launcher")

SLOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class Conn:
    sock: socket.socket
    reader: FrameReader = field(default_factory=FrameReader)


@dataclass
class Opened:
    pid: int  # the slot's process (our child)
    index: int  # its place in the uid range


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
        self.slots: dict[int, Opened] = {}  # pidfd of the slot's process -> it
        self.stopping = False
        self.why: Optional[str] = None

    # -- opening a slot -------------------------------------------------------------------------
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

    def open(self, request: dict, conn: Conn, probe: bool = False) -> Opened:
        """Checks an open request, makes the slot's tmp/, forks the slot's process with the
        connection (it answers the client itself); Refused when it cannot."""
        if not self.free:
            raise Refused(f"{self.count} slots are open already (the launcher's --uids range is full)")
        slot = check_type(request.get("slot"), str, "slot")
        base, owner = (self.state, (os.getuid(), os.getgid())) if probe else (self.work, (self.client_uid,
                                                                                         self.client_gid))  # fmt: skip
        slot_fd, fds = self._open_slot(base, slot, owner[0])
        index = self.free.pop(0)
        uid = self.first_uid + index
        try:
            try:
                os.mkdir("tmp", 0o700, dir_fd=slot_fd)
            except FileExistsError:
                raise Refused(f"slot {slot!r} has a tmp/ already: it is open on another connection") from None
            fds["tmp"] = os.open("tmp", NOFOLLOW_DIR, dir_fd=slot_fd)
            ids = {name: (os.fstat(fd).st_dev, os.fstat(fd).st_ino) for name, fd in fds.items()}
            plan = jail.Plan(root=self.root, work=base, slot=slot, ids=ids)
            pid = os.fork()
            if pid == 0:
                Slot(conn.sock, conn.reader, plan, slot_fd, fds, uid, owner, probe).serve()  # never returns
        except BaseException:
            self.free.insert(0, index)
            for fd in fds.values():
                os.close(fd)
            if "tmp" in fds:  # made here: the slot's next opening needs it gone
                shutil.rmtree("tmp", dir_fd=slot_fd, ignore_errors=True)
            os.close(slot_fd)
            raise
        for fd in list(fds.values()) + [slot_fd]:
            os.close(fd)
        return Opened(pid=pid, index=index)

    def _ended(self, pidfd: int) -> None:
        opened = self.slots.pop(pidfd)
        self.sel.unregister(pidfd)
        os.close(pidfd)
        os.waitpid(opened.pid, 0)
        self.free.append(opened.index)
        self.free.sort()

    def probe(self) -> Optional[str]:
        """Opens a slot and runs a datum that sets everything up and exits before its command:
        None when the isolation works here, else why not."""
        folder = os.path.join(self.state, "probe")
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(os.path.join(folder, "pfs", "out"), mode=0o755)
        ours, theirs = socket.socketpair()
        ours.settimeout(60)
        opened = None
        try:
            try:
                opened = self.open({"slot": "probe"}, Conn(theirs), probe=True)
            except Refused as e:
                return str(e)
            finally:
                theirs.close()
            answer = recv_frame(ours) or {}
            if answer.get("ok"):
                with open(os.devnull, "r+b") as null:
                    send_frame(ours, {"op": "run"}, [null.fileno()] * 3)
                answer = recv_frame(ours) or {}
                if answer.get("exit") == 0:
                    answer = None
        except OSError as e:
            answer = {"stage": "probe", "error": e.strerror or str(e)}
        finally:
            ours.close()
        if opened is not None:
            os.waitpid(opened.pid, 0)
            self.free.append(opened.index)
            self.free.sort()
        if answer is None:
            return None
        return f"{answer.get('stage') or 'setup'}: {answer.get('error') or answer}"

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
        self.sel.register(wake_r, selectors.EVENT_READ, lambda s: s.recv(4096))
        if watch_stdin:
            self.sel.register(sys.stdin.fileno(), selectors.EVENT_READ, self._stdin)
        log.info("listening on %s for uid %d", self.socket_path, self.client_uid)
        while not self.stopping:
            for key, _ in self.sel.select():
                key.data(key.fileobj)
        self.sel.unregister(listener)
        listener.close()
        for opened in self.slots.values():  # each kills its datum, hands its folder back and ends
            try:
                os.kill(opened.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        end = time.monotonic() + 10
        while self.slots and time.monotonic() < end:
            for key, _ in self.sel.select(0.2):
                if key.fileobj in self.slots:
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

    def _readable(self, conn: Conn) -> None:
        if not conn.reader.receive(conn.sock):
            self._close(conn)
            return
        try:
            while (message := conn.reader.next()) is not None:
                if self._handle(conn, message):
                    return  # the connection is the slot's now
        except (ValueError, Refused) as e:
            self._reply(conn, {"ok": False, "error": str(e), "stage": "request"})
            self._close(conn)

    def _reply(self, conn: Conn, message: dict) -> None:
        try:
            send_frame(conn.sock, message)
        except OSError:
            pass

    def _handle(self, conn: Conn, message: dict) -> bool:
        """True when the connection went to a slot's process."""
        op = message.get("op")
        conn.reader.close_fds()  # descriptors ride only on a slot's run frames
        if op == "hello":
            self._reply(conn, {"ok": self.why is None, "why": self.why, "uids": [self.first_uid, self.count]})
        elif op == "open":
            if self.why:
                raise Refused(f"datums cannot be isolated here: {self.why}")
            opened = self.open(message, conn)
            self.sel.unregister(conn.sock)
            conn.sock.close()  # the slot's process holds it
            pidfd = os.pidfd_open(opened.pid)
            self.slots[pidfd] = opened
            self.sel.register(pidfd, selectors.EVENT_READ, self._ended)
            return True
        elif op in ("run", "kill"):
            raise Refused(f"{op}: open a slot first ({{'op': 'open', 'slot': ...}}); its connection runs its datums")
        else:
            raise Refused(f"unknown op {op!r}")
        return False


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
