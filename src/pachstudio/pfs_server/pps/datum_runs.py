"""One datum of a job, as a pachd worker runs it (src/server/worker/datum, worker/driver):

- its folder: the inputs under `pfs/<input name>/` and an empty `pfs/out/`, filled again for
  each try (copies, or hard links where the datum cannot write through them);
- its environment: a short allow-list of this server's (PATH, locale), then the spec's `env`, then
  pachd's own variables (PACH_JOB_ID, PACH_DATUM_ID, PACH_OUTPUT_COMMIT_ID, PPS_PIPELINE_NAME,
  PPS_PROJECT_NAME, PPS_SPEC_COMMIT, PACH_IN_WORKER, and per input `<name>`, `<name>_COMMIT`,
  `PACH_DATUM_<name>_JOIN_ON`), never a token of this server;
- its tries (`datum_tries`): the command with the spec's stdin; an exit code of
  `accept_return_code` counts as success; `datum_timeout` bounds each try's wall-clock time (the
  launcher or the sandbox kills what it started); after a failed try `err_cmd` runs with
  `err_stdin` in what is left of that time, and if it succeeds the datum is RECOVERED rather than
  FAILED (no output, and the job does not fail for it), as pachd's recovery callback;
- a RestartDatum ends the running try (it counts as a failed try); a stopped job ends it for good;
- its `/pfs/out` files, collected into the blob store without ever following a path out of the
  datum's own /pfs: a symlink the datum made is uploaded as its target when the target lies in
  its /pfs (as pachd uploads them), and fails the datum otherwise.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from ... import datums as D
from .sandbox import PFS, Request, Result, Stop
from .spec_fields import RunSettings

# a datum's environment starts from these of this server's, when set
ALLOWED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class OutputError(Exception):
    """/pfs/out holds something that cannot be uploaded; the text says what and why."""


@dataclass
class JobContext:
    """What every datum of one job shares."""

    project: str
    pipeline: str
    job_id: str
    spec_commit: str
    cmd: list
    stdin: list
    tries: int
    settings: RunSettings
    limits: dict  # for the sandbox (slot.LIMITS names)
    commits: dict  # input (project, repo) -> the job's commit id of it
    empty_files: frozenset  # input names whose files are given empty (pfs.empty_files)
    sandbox: object
    store: object
    log: Callable  # (datum, message, user) -> None
    halted: Callable[[], bool]  # the job was stopped: no new try


def go_duration(seconds: float) -> str:
    """A duration as Go prints one (pachd's log lines): 1.5s, 250ms."""
    if seconds < 1:
        return f"{seconds * 1000:.3f}".rstrip("0").rstrip(".") + "ms"
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


def go_signal(sig: int) -> str:
    """A signal's name as Go's os/exec says it ("killed", "CPU time limit exceeded")."""
    import signal as _signal

    name = _signal.strsignal(sig) or f"signal {sig}"
    return name if name[:2].isupper() else name[0].lower() + name[1:]


def environment(ctx: JobContext, d: D.Datum, home: str) -> dict:
    env = {k: os.environ[k] for k in ALLOWED_ENV if os.environ.get(k)}
    env.setdefault("PATH", DEFAULT_PATH)
    env["HOME"] = home
    env.update(dict(ctx.settings.env))
    env.update(
        PACH_JOB_ID=ctx.job_id,
        PACH_DATUM_ID=d.id,
        PACH_OUTPUT_COMMIT_ID=ctx.job_id,
        PPS_PIPELINE_NAME=ctx.pipeline,
        PPS_PROJECT_NAME=ctx.project,
        PPS_SPEC_COMMIT=ctx.spec_commit,
        PACH_IN_WORKER="true",
        PACHSTUDIO_PFS_DIR=PFS,
    )
    for i in d.inputs:
        env[i.name] = os.path.normpath(f"{PFS}/{i.name}/{i.path}")
        env[f"{i.name}_COMMIT"] = ctx.commits.get((i.project, i.repo), "")
        if i.join_on:
            env[f"PACH_DATUM_{i.name}_JOIN_ON"] = i.join_on
    return env


def matches(d: D.Datum, filters: list) -> bool:
    """pachd's MatchDatum: every filter is one of the datum's input paths or content hashes (or,
    here, one of its files' paths)."""
    names = {i.path for i in d.inputs} | {i.hash for i in d.inputs} | {p for i in d.inputs for p, _ in i.files}
    return all(f in names for f in filters)


class DatumRun:
    """One datum in its slot (`sandbox.open_slot`) and the slot's folder; `run()` -> (state, outputs)."""

    def __init__(self, ctx: JobContext, d: D.Datum, slot, folder: str, on_try: Callable[[Stop], None]):
        self.ctx, self.d, self.slot, self.folder = ctx, d, slot, folder
        self.pfs_dir = os.path.join(folder, "pfs")
        self.out_dir = os.path.join(self.pfs_dir, "out")
        self.on_try = on_try  # the running try's Stop, for RestartDatum and StopJob

    def log(self, message: str, user: bool = False) -> None:
        self.ctx.log(self.d, message, user)

    def run(self) -> tuple[str, dict]:
        ctx, s = self.ctx, self.ctx.settings
        recovered = False
        for attempt in range(1, ctx.tries + 1):
            if ctx.halted():
                return "FAILED", {}
            self.prepare()
            started = time.monotonic()
            stop = Stop()
            self.on_try(stop)
            result = self.execute(ctx.cmd, ctx.stdin, s.datum_timeout, stop, "user code")
            if self.succeeded(result):
                try:
                    return "SUCCESS", self.collect()
                except OutputError as e:
                    self.log(f"errored uploading output: {e}")
                    result = Result(exit=None, stage="upload", error=str(e))
            if ctx.halted():
                return "FAILED", {}
            if s.err_cmd:
                left = None if s.datum_timeout is None else s.datum_timeout - (time.monotonic() - started)
                if left is not None and left <= 0:
                    self.log("errored running user error handling code after 0s: context deadline exceeded")
                else:
                    err = self.execute(list(s.err_cmd), list(s.err_stdin), left, stop, "user error handling code")
                    recovered = recovered or self.succeeded(err)
            self.log(f"datum {self.d.id} {self.what_happened(result)} (try {attempt} of {ctx.tries})")
        return ("RECOVERED" if recovered else "FAILED"), {}

    def succeeded(self, r: Result) -> bool:
        return (
            r.error is None
            and not r.timed_out
            and not r.killed
            and (r.exit == 0 or (r.exit is not None and r.exit in self.ctx.settings.accept_return_code))
        )

    @staticmethod
    def what_happened(r: Result) -> str:
        if r.timed_out:
            return "ran past its datum_timeout and was killed"
        if r.killed:
            return "was stopped"
        if r.stage == "upload":
            return "ran, but its output could not be uploaded"
        if r.error is not None and r.exit is None:
            return f"could not run: {r.error}"
        return f"exited with code {r.exit}" if r.exit is not None else f"was killed by signal {r.signal}"

    def execute(self, cmd: list, stdin: list, timeout: Optional[float], stop: Stop, what: str) -> Result:
        """Runs one command of the datum (cmd or err_cmd) and logs it as pachd does."""
        ctx = self.ctx
        self.log(f"beginning to run {what}")
        started = time.monotonic()
        request = Request(
            cmd=list(cmd),
            stdin=("\n".join(stdin) + "\n").encode() if stdin else b"",
            env=environment(ctx, self.d, "/tmp" if ctx.sandbox.kind == "launcher" else self.home()),
            cwd=ctx.settings.working_dir or PFS,
            timeout=timeout,
            limits=ctx.limits,
        )
        lock = threading.Lock()

        def user_line(line: str) -> None:
            with lock:
                self.log(line, user=True)

        result = self.slot.run(request, user_line, stop)
        took = go_duration(time.monotonic() - started)
        if self.succeeded(result):
            self.log(f"finished running {what} after {took}")
            return result
        if result.stage == "exec" and result.exit in (126, 127):
            why = f"cannot run {cmd[0]!r}: {result.error}"
            self.log(why, user=True)
        elif result.stage == "working_dir":
            why = f"chdir {request.cwd}: {result.error}"
        elif result.error is not None:
            why = result.error
        elif result.signal is not None:
            why = f"signal: {go_signal(result.signal)}"
        else:
            why = f"exit status {result.exit}"
        because = ""
        if result.timed_out:
            because = " because context deadline exceeded"
        elif result.killed:
            because = " because context canceled"
        self.log(f"errored running {what} after {took}: {why}{because}")
        return result

    def home(self) -> str:
        home = os.path.join(self.folder, "home")
        os.makedirs(home, exist_ok=True)
        return home

    # -- the folder ---------------------------------------------------------------------------
    def clear(self) -> None:
        """Empties the slot folder of what an earlier try or datum of the slot left. The folders
        pfs/ and pfs/out/ stay (a launcher's slot shows those very folders as /pfs and /pfs/out),
        and so does tmp/, the launcher's (it empties it after each datum)."""
        if os.path.isdir(self.out_dir) and not os.path.islink(self.out_dir):
            _open_to_owner(self.out_dir)  # the datum owned it while it ran, and may have closed it
        for top, keep in ((self.folder, {"pfs", "tmp"}), (self.pfs_dir, {"out"}), (self.out_dir, set())):
            for name in os.listdir(top) if os.path.isdir(top) else ():
                if name in keep:
                    continue
                path = os.path.join(top, name)
                make_removable(path)
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)

    def prepare(self) -> None:
        """The datum's input files under pfs/<input name>/ and an empty pfs/out/, readable by a
        datum of another uid (files 0644, folders 0755, whatever this server's umask)."""
        self.clear()
        os.makedirs(self.out_dir, exist_ok=True)
        for path in (self.folder, self.pfs_dir, self.out_dir):
            os.chmod(path, 0o755)
        link = not self.ctx.sandbox.copies_inputs
        store = self.ctx.store
        for inp in self.d.inputs:
            base = os.path.join(self.pfs_dir, inp.name)
            os.makedirs(base, mode=0o755, exist_ok=True)
            empty = inp.name in self.ctx.empty_files
            for path, h in inp.files:
                target = os.path.join(base, path.lstrip("/"))
                parent = os.path.dirname(target)
                if not os.path.isdir(parent):
                    os.makedirs(parent)
                    for p in _parents(parent, base):
                        os.chmod(p, 0o755)
                if empty:
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                    os.fchmod(fd, 0o644)
                    os.close(fd)
                    continue
                blob = store.blobs.path(h)
                if link and os.path.exists(blob):
                    try:
                        os.link(blob, target)
                        continue
                    except OSError:
                        pass
                with store.open_blob(h) as src, open(target, "wb") as dst:
                    os.fchmod(dst.fileno(), 0o644)
                    shutil.copyfileobj(src, dst, 1 << 20)

    # -- /pfs/out -----------------------------------------------------------------------------
    def collect(self) -> dict:
        """/pfs/out's files into the blob store: {path: (hash, size)}."""
        outputs: dict = {}
        inline: list = []
        make_readable(self.out_dir)
        for rel, real in self._out_files():
            w = self.ctx.store.blobs.writer()
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW)
            w.copy_from(os.fdopen(fd, "rb"))
            data = w.inline()
            h, size = w.commit()
            if data is not None:
                inline.append((h, data))
            if rel in outputs:  # a symlinked folder and a file of the same path: pachd appends
                w.store.pins.unpin(h)
            outputs.setdefault(rel, (h, size))
        if inline:
            self.ctx.store.save_inline(inline)
        return outputs

    def _out_files(self, top: Optional[str] = None, prefix: str = "", depth: int = 0):
        """(path in the output, real path of its content) of every file under /pfs/out (or under
        `top`, a folder a symlink of it points to): folders walked without following symlinks,
        each symlink resolved as the datum saw it."""
        top = top or self.out_dir
        for root, dirs, files in os.walk(top, onerror=_raise):
            for name in sorted(dirs + files):
                full = os.path.join(root, name)
                rel = prefix + "/" + os.path.relpath(full, top)
                st = os.lstat(full)
                if stat.S_ISDIR(st.st_mode):
                    continue
                if stat.S_ISREG(st.st_mode):
                    yield rel, full
                elif stat.S_ISLNK(st.st_mode):
                    yield from self._symlinked(rel, full, depth)
                else:
                    raise OutputError(f"{self.shown(full)} is neither a file, a folder nor a symlink")

    def _symlinked(self, rel: str, full: str, depth: int):
        """pachd uploads what a symlink in /pfs/out points to; here only targets inside the
        datum's own /pfs are read (anything else of this machine is not the datum's to give)."""
        if depth > 40:
            raise OutputError(f"{self.shown(full)}: symlinked folders nested too deep (a loop?)")
        target = self.resolve(full)
        if os.path.isdir(target):
            yield from self._out_files(target, rel, depth + 1)
        else:
            yield rel, target

    def resolve(self, full: str, hops: int = 0) -> str:
        """The real path of symlink `full` (under the datum's folder), read as the datum saw it
        (its /pfs is this folder's pfs/); OutputError when it leads out of /pfs or nowhere."""
        if hops > 40:
            raise OutputError(f"{self.shown(full)}: too many levels of symlinks")
        link = os.readlink(full)
        seen_as = self.shown(full)
        wanted = os.path.normpath(os.path.join(os.path.dirname(seen_as), link))
        if wanted != PFS and not wanted.startswith(PFS + "/"):
            raise OutputError(f"{seen_as} is a symlink to {link}, outside {PFS}: only files of {PFS} can be output")
        real = self.pfs_dir
        for part in wanted[len(PFS) :].strip("/").split("/"):
            if not part:
                continue
            real = os.path.join(real, part)
            if not os.path.lexists(real):
                raise OutputError(f"{seen_as} is a symlink to {link}, which does not exist")
            if os.path.islink(real):
                real = self.resolve(real, hops + 1)
        return real

    def shown(self, real: str) -> str:
        """A path of the datum's folder as the datum saw it."""
        return PFS + "/" + os.path.relpath(real, self.pfs_dir) if real != self.pfs_dir else PFS


def _parents(path: str, base: str):
    while path != base and path.startswith(base):
        yield path
        path = os.path.dirname(path)


def _open_to_owner(path: str) -> None:
    """A folder or file this server owns but may not read, search or write (a datum may leave
    them 0000) is opened to it (the owner's bits only)."""
    st = os.lstat(path)
    if st.st_uid != os.geteuid():
        return
    if stat.S_ISDIR(st.st_mode) and (st.st_mode & 0o700) != 0o700:
        os.chmod(path, stat.S_IMODE(st.st_mode) | 0o700)
    elif stat.S_ISREG(st.st_mode) and (st.st_mode & 0o600) != 0o600:
        os.chmod(path, stat.S_IMODE(st.st_mode) | 0o600)


def _raise(e: OSError):
    raise e


def make_readable(top: str) -> None:
    """Everything under `top` (a folder, never through a symlink) readable by this server."""
    if os.path.islink(top) or not os.path.isdir(top):
        return
    _open_to_owner(top)
    for root, dirs, files in os.walk(top, onerror=_raise):
        for name in dirs + files:
            _open_to_owner(os.path.join(root, name))


def make_removable(top: str) -> None:
    """Lets rmtree remove what a datum left, however it set the modes of its folders."""
    make_readable(top)
