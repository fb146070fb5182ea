"""A read-write mount's local changes, layered over the branch head like overlayfs.

`current/` takes new writes; on `_commit` it is renamed to `frozen/` (one rename, under the lock)
and a fresh `current/` opens, so writes that arrive during the upload land in the next commit and
none is half in. Each layer is a folder of whole files plus `whiteouts.json` (deleted paths).
A failed upload merges `frozen/` back under `current/`; everything lives under `--state`, so a
restart finds the same view. `meta.json` remembers the commit being uploaded, for crash recovery.
"""

import errno
import json
import os
import posixpath
import shutil
import stat as stat_mod
import threading
from dataclasses import dataclass, field
from typing import Iterator, Optional

from ..rules import clean_path
from .errors import NotFound
from .readonly import CommitTree

COPY_CHUNK = 4 << 20


class FsError(OSError):
    def __init__(self, code: int, path: str):
        super().__init__(code, os.strerror(code), path)


def _write_json(path: str, value) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _ancestors(path: str) -> Iterator[str]:
    """`/a/b/c` -> `/a/b/c`, `/a/b`, `/a`."""
    while path not in ("/", ""):
        yield path
        path = posixpath.dirname(path)


class Layer:
    def __init__(self, folder: str):
        self.folder = folder
        self.files = os.path.join(folder, "files")
        os.makedirs(self.files, exist_ok=True)
        self._wo_path = os.path.join(folder, "whiteouts.json")
        try:
            with open(self._wo_path) as f:
                self.whiteouts = set(json.load(f))
        except FileNotFoundError:
            self.whiteouts = set()

    def local(self, path: str) -> str:
        return self.files + clean_path(path) if clean_path(path) != "/" else self.files

    def entry(self, path: str) -> Optional[os.stat_result]:
        try:
            return os.lstat(self.local(path))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def hides(self, path: str) -> bool:
        return any(p in self.whiteouts for p in _ancestors(clean_path(path)))

    def hidden_children(self, path: str) -> set:
        prefix = clean_path(path).rstrip("/") + "/"
        return {w[len(prefix) :] for w in self.whiteouts if w.startswith(prefix) and "/" not in w[len(prefix) :]}

    def save(self) -> None:
        _write_json(self._wo_path, sorted(self.whiteouts))

    def file_paths(self) -> Iterator[str]:
        for dirpath, dirnames, names in os.walk(self.files):
            dirnames.sort()
            rel = dirpath[len(self.files) :] or "/"
            for name in sorted(names):
                yield posixpath.join(rel, name)

    def dir_paths(self) -> Iterator[str]:
        for dirpath, dirnames, _ in os.walk(self.files):
            rel = dirpath[len(self.files) :] or "/"
            for name in sorted(dirnames):
                yield posixpath.join(rel, name)

    def is_empty(self) -> bool:
        return not self.whiteouts and next(self.file_paths(), None) is None and next(self.dir_paths(), None) is None


@dataclass
class StagedEntry:
    """What a path shows: a staged file/folder (with its local path) or one of the base commit."""

    is_dir: bool
    size: int
    mtime: float
    local: Optional[str] = None  # set when the content is staged on disk


@dataclass
class Handle:
    path: str
    writable: bool
    fd: Optional[int] = None
    gen: int = -1
    layer: Optional[Layer] = None
    dirty: bool = False


@dataclass
class Plan:
    puts: list = field(default_factory=list)  # (repo path, local file)
    deletes: list = field(default_factory=list)  # repo paths (files or folders)
    added: list = field(default_factory=list)
    changed: list = field(default_factory=list)
    deleted: list = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.puts and not self.deletes


class StagingArea:
    """A View (view.py): the base commit with the staged changes on top; handles are `Handle`s."""

    writable = True

    def __init__(self, folder: str, base: CommitTree):
        self.folder, self.base = folder, base
        os.makedirs(folder, exist_ok=True)
        self.lock = threading.RLock()
        self.gen = 0
        self.current = Layer(os.path.join(folder, "current"))
        frozen = os.path.join(folder, "frozen")
        self.frozen = Layer(frozen) if os.path.isdir(frozen) else None
        self._meta_path = os.path.join(folder, "meta.json")
        try:
            with open(self._meta_path) as f:
                self.meta = json.load(f)
        except FileNotFoundError:
            self.meta = {}

    # -- bookkeeping --------------------------------------------------------------------------
    def set_meta(self, **values) -> None:
        with self.lock:
            self.meta.update(values)
            _write_json(self._meta_path, self.meta)

    @property
    def open_commit(self) -> Optional[str]:
        return self.meta.get("open_commit")

    @property
    def commit_id(self) -> str:
        return self.base.commit_id

    @property
    def mtime(self) -> float:
        return self.base.mtime

    def moved(self, tree: CommitTree) -> "StagingArea":
        """Shows `tree` under the staged changes, unless an upload is under way."""
        with self.lock:
            if tree.commit_id != self.base.commit_id and self.frozen is None:
                self.base = tree
                self.gen += 1
        return self

    def layers(self) -> list:
        return [self.current] + ([self.frozen] if self.frozen else [])

    def has_changes(self) -> bool:
        with self.lock:
            return any(not layer.is_empty() for layer in self.layers())

    # -- the merged view ----------------------------------------------------------------------
    def lookup(self, path: str, layers=None) -> Optional[StagedEntry]:
        path = clean_path(path)
        if path == "/":
            return StagedEntry(True, 0, self.base.mtime)
        for layer in self.layers() if layers is None else layers:
            st = layer.entry(path)
            if st is not None:
                is_dir = stat_mod.S_ISDIR(st.st_mode)
                return StagedEntry(is_dir, 0 if is_dir else st.st_size, st.st_mtime, layer.local(path))
            if layer.hides(path):
                return None
        node = self.base.stat(path)
        return None if node is None else StagedEntry(node.is_dir, node.size, self.base.mtime)

    def listdir(self, path: str, layers=None) -> dict:
        path = clean_path(path)
        out, blocked = {}, set()
        for layer in self.layers() if layers is None else layers:
            st = layer.entry(path)
            if st is None and layer.hides(path):
                return out
            if st is not None and stat_mod.S_ISDIR(st.st_mode):
                for name in os.listdir(layer.local(path)):
                    if name not in out and name not in blocked:
                        sub = layer.entry(posixpath.join(path, name))
                        if sub is not None:
                            d = stat_mod.S_ISDIR(sub.st_mode)
                            out[name] = StagedEntry(
                                d, 0 if d else sub.st_size, sub.st_mtime, layer.local(posixpath.join(path, name))
                            )
            blocked |= layer.hidden_children(path)
        try:
            for name, node in self.base.listdir(path).items():
                if name not in out and name not in blocked:
                    out[name] = StagedEntry(node.is_dir, node.size, self.base.mtime)
        except NotFound:  # a folder that exists only in the staging
            pass
        return out

    def walk(self, path: str = "/") -> Iterator[tuple]:
        """(path, StagedEntry) of every file under folder `path`, names sorted folder by folder."""
        entries = self.listdir(path)
        for name in sorted(entries):
            e = entries[name]
            sub = path.rstrip("/") + "/" + name
            if e.is_dir:
                yield from self.walk(sub)
            else:
                yield sub, e

    def _below(self, path: str) -> Optional[StagedEntry]:
        """What the path shows without the current layer."""
        return self.lookup(path, layers=[self.frozen] if self.frozen else [])

    # -- writing (always into the current layer) ------------------------------------------------
    def _parent_dir(self, path: str) -> None:
        parent = posixpath.dirname(path)
        e = self.lookup(parent)
        if e is None:
            raise FsError(errno.ENOENT, parent)
        if not e.is_dir:
            raise FsError(errno.ENOTDIR, parent)
        os.makedirs(self.current.local(parent), exist_ok=True)

    def _unhide(self, path: str) -> None:
        """Drops the whiteout of `path` while keeping what was deleted below it deleted."""
        if path in self.current.whiteouts:
            below = self._below_listing(path)
            self.current.whiteouts.discard(path)
            self.current.whiteouts.update(posixpath.join(path, n) for n in below)
            self.current.save()

    def _below_listing(self, path: str) -> list:
        saved = self.current.whiteouts
        try:
            self.current.whiteouts = set()
            lower = [self.frozen] if self.frozen else []
            e = self.lookup(path, layers=lower)
            return list(self.listdir(path, layers=lower)) if e and e.is_dir else []
        finally:
            self.current.whiteouts = saved

    def _whiteout(self, path: str) -> None:
        if self._below(path) is not None:
            prefix = path + "/"
            self.current.whiteouts = {w for w in self.current.whiteouts if not w.startswith(prefix)}
            self.current.whiteouts.add(path)
            self.current.save()

    def copy_up(self, path: str, truncate: bool = False) -> str:
        """The path's content as a file of the current layer (downloaded from the base if need be)."""
        path = clean_path(path)
        local = self.current.local(path)
        e = self.lookup(path)
        if e is None:
            raise FsError(errno.ENOENT, path)
        if e.is_dir:
            raise FsError(errno.EISDIR, path)
        if e.local == local:
            return local
        self._parent_dir(path)
        tmp = local + ".~copy"
        with open(tmp, "wb") as out:
            if not truncate:
                if e.local is not None:
                    with open(e.local, "rb") as src:
                        shutil.copyfileobj(src, out, COPY_CHUNK)
                else:
                    offset = 0
                    while offset < e.size:
                        data = self.base.read(path, offset, COPY_CHUNK)
                        if not data:
                            break
                        out.write(data)
                        offset += len(data)
        os.replace(tmp, local)
        return local

    def create(self, path: str) -> Handle:
        with self.lock:
            path = clean_path(path)
            e = self.lookup(path)
            if e is not None and e.is_dir:
                raise FsError(errno.EISDIR, path)
            self._parent_dir(path)
            self._unhide(path)
            local = self.current.local(path)
            fd = os.open(local, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            return Handle(path, True, fd, self.gen, self.current, dirty=True)

    def open(self, path: str, writable: bool, truncate: bool = False) -> Handle:
        truncate = truncate and writable  # O_TRUNC on a read-only open changes nothing
        with self.lock:
            path = clean_path(path)
            e = self.lookup(path)
            if e is None:
                raise FsError(errno.ENOENT, path)
            if e.is_dir and writable:
                raise FsError(errno.EISDIR, path)
            h = Handle(path, writable)
            self._attach(h, truncate)
            if truncate:
                os.ftruncate(h.fd, 0)
                h.dirty = True
            return h

    def _attach(self, h: Handle, truncate: bool = False) -> None:
        if h.fd is not None:
            os.close(h.fd)
            h.fd = None
        if h.writable:
            local = self.copy_up(h.path, truncate)
            h.fd, h.layer = os.open(local, os.O_RDWR), self.current
        else:
            e = self.lookup(h.path)
            if e is None:
                raise FsError(errno.ENOENT, h.path)
            if e.local is not None:
                h.fd = os.open(e.local, os.O_RDONLY)
        h.gen = self.gen

    def read_into(self, h: Handle, offset: int, out: memoryview) -> int:
        with self.lock:
            if h.gen != self.gen:
                self._attach(h)
            fd, base = h.fd, self.base
        if fd is not None:
            return os.preadv(fd, [out], offset)
        return base.read_into(h.path, offset, out)

    def write(self, h: Handle, data: bytes, offset: int) -> int:
        with self.lock:
            if h.gen != self.gen or h.layer is not self.current:
                self._attach(h)
            h.dirty = True
            return os.pwrite(h.fd, data, offset)

    def truncate(self, path: str, length: int, h: Optional[Handle] = None) -> None:
        with self.lock:
            if h is not None and h.writable:
                if h.gen != self.gen or h.layer is not self.current:
                    self._attach(h)
                os.ftruncate(h.fd, length)
                h.dirty = True
                return
            local = self.copy_up(path, truncate=length == 0)
            os.truncate(local, length)

    def fsync(self, h: Handle) -> None:
        if h.fd is not None:
            os.fsync(h.fd)

    def release(self, h: Handle) -> None:
        """The handle's file reaches the disk before the close returns (a saved label survives a
        crash), but the fsync runs outside the lock: it can take tens of milliseconds on a busy
        disk, and under the lock every other write of the mount (8 annotators saving) waited."""
        with self.lock:
            fd, h.fd = h.fd, None
        if fd is not None:
            try:
                if h.dirty:
                    os.fsync(fd)
            finally:
                os.close(fd)

    def unlink(self, path: str) -> None:
        with self.lock:
            path = clean_path(path)
            e = self.lookup(path)
            if e is None:
                raise FsError(errno.ENOENT, path)
            if e.is_dir:
                raise FsError(errno.EISDIR, path)
            if self.current.entry(path) is not None:
                os.unlink(self.current.local(path))
            self._whiteout(path)

    def mkdir(self, path: str) -> None:
        with self.lock:
            path = clean_path(path)
            if self.lookup(path) is not None:
                raise FsError(errno.EEXIST, path)
            self._parent_dir(path)
            self._unhide(path)
            os.mkdir(self.current.local(path))

    def rmdir(self, path: str) -> None:
        with self.lock:
            path = clean_path(path)
            e = self.lookup(path)
            if e is None:
                raise FsError(errno.ENOENT, path)
            if not e.is_dir:
                raise FsError(errno.ENOTDIR, path)
            if path == "/":
                raise FsError(errno.EBUSY, path)
            if self.listdir(path):
                raise FsError(errno.ENOTEMPTY, path)
            if self.current.entry(path) is not None:
                shutil.rmtree(self.current.local(path))
            self._whiteout(path)

    def rename(self, old: str, new: str) -> None:
        with self.lock:
            old, new = clean_path(old), clean_path(new)
            src = self.lookup(old)
            if src is None:
                raise FsError(errno.ENOENT, old)
            if old == new:
                return
            if new.startswith(old + "/"):
                raise FsError(errno.EINVAL, new)
            dst = self.lookup(new)
            if dst is not None:
                if dst.is_dir and not src.is_dir:
                    raise FsError(errno.EISDIR, new)
                if src.is_dir and not dst.is_dir:
                    raise FsError(errno.ENOTDIR, new)
                if dst.is_dir and self.listdir(new):
                    raise FsError(errno.ENOTEMPTY, new)
                if dst.is_dir:
                    self.rmdir(new)
            self._parent_dir(new)
            if src.is_dir:
                self._materialize(old)
            else:
                self.copy_up(old)
            self._unhide(new)
            os.replace(self.current.local(old), self.current.local(new))
            self._whiteout(old)
            self.gen += 1  # open handles of the old path find their file again

    def _materialize(self, path: str) -> None:
        """Copies a folder's whole visible subtree into the current layer (before a rename)."""
        os.makedirs(self.current.local(path), exist_ok=True)
        for name, e in self.listdir(path).items():
            sub = posixpath.join(path, name)
            if e.is_dir:
                self._materialize(sub)
            else:
                self.copy_up(sub)

    # -- committing ---------------------------------------------------------------------------
    def freeze(self) -> bool:
        """Moves the current changes aside for an upload; False when there is nothing staged."""
        with self.lock:
            if self.frozen is not None:
                raise RuntimeError("a frozen layer exists; recover it first")
            if self.current.is_empty():
                return False
            frozen = os.path.join(self.folder, "frozen")
            os.replace(self.current.folder, frozen)
            self.frozen = Layer(frozen)
            self.current = Layer(os.path.join(self.folder, "current"))
            self.gen += 1
            return True

    def plan(self, layer: Layer) -> Plan:
        """What one layer changes relative to the base commit."""
        p = Plan()
        for path in sorted(layer.whiteouts):
            node = self.base.stat(path)
            if node is None:
                continue
            p.deletes.append(path)
            if node.is_dir:
                p.deleted.extend(f for f, _ in self.base.walk(path))
            else:
                p.deleted.append(path)
        for path in layer.file_paths():
            node = self.base.stat(path)
            (p.changed if node is not None and not node.is_dir else p.added).append(path)
            p.puts.append((path, layer.local(path)))
        return p

    def staged(self) -> dict:
        """Added/changed/deleted files of the whole view against the base (both layers)."""
        with self.lock:
            added, changed, deleted = set(), set(), set()
            for layer in reversed(self.layers()):
                for path in layer.file_paths():
                    if self.lookup(path) is not None:
                        node = self.base.stat(path)
                        (changed if node is not None and not node.is_dir else added).add(path)
                for w in layer.whiteouts:
                    node = self.base.stat(w)
                    files = [] if node is None else ([f for f, _ in self.base.walk(w)] if node.is_dir else [w])
                    deleted.update(f for f in files if self.lookup(f) is None)
            strip = lambda s: sorted(x.lstrip("/") for x in s)  # noqa: E731
            return {"added": strip(added), "changed": strip(changed), "deleted": strip(deleted)}

    def complete(self, new_base: CommitTree) -> None:
        """The frozen layer is in the new base commit now: drop it and read from there."""
        with self.lock:
            self.base = new_base
            if self.frozen is not None:
                shutil.rmtree(self.frozen.folder)
                self.frozen = None
            self.gen += 1
            self.set_meta(open_commit=None, starting=None, base=new_base.commit_id)

    def merge_back(self) -> None:
        """An upload failed: the frozen changes rejoin the current ones (newer writes win)."""
        with self.lock:
            frozen = self.frozen
            if frozen is None:
                return
            cur = self.current
            for d in frozen.dir_paths():
                if cur.entry(d) is None and not cur.hides(d):
                    os.makedirs(cur.local(d), exist_ok=True)
            for path in frozen.file_paths():
                if cur.entry(path) is None and not cur.hides(path):
                    os.makedirs(os.path.dirname(cur.local(path)), exist_ok=True)
                    os.replace(frozen.local(path), cur.local(path))
            for w in frozen.whiteouts:
                st = cur.entry(w)
                if st is None:
                    if not cur.hides(w):
                        cur.whiteouts.add(w)
                elif stat_mod.S_ISDIR(st.st_mode):
                    node = self.base.stat(w)
                    if node is not None and node.is_dir:
                        for name in self.base.listdir(w):
                            if cur.entry(posixpath.join(w, name)) is None:
                                cur.whiteouts.add(posixpath.join(w, name))
            cur.save()
            shutil.rmtree(frozen.folder)
            self.frozen = None
            self.gen += 1
            self.set_meta(open_commit=None, starting=None)

    def discard(self) -> None:
        with self.lock:
            shutil.rmtree(self.folder, ignore_errors=True)
