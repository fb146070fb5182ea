"""The FUSE side: a thin fusepy `Operations` over the mount table (fusepy's loopback.py style).

`/` lists the mounts; `/<name>/...` is that mount's read-only commit tree or read-write staged
view. Errors become errno values; anything unexpected is logged and reported as EIO.

It runs on libfuse 3 through mfusepy, the maintained fork of fusepy with the same API: libfuse 2
caps every kernel request at 128 KiB, libfuse 3 negotiates 1 MiB. A large file not yet in the disk
cache is opened with direct_io, so a cold sequential read arrives in 1 MiB requests that are filled
in the kernel's own buffer, without a copy in the page cache; other files go through the page cache.
"""

import ctypes
import ctypes.util
import errno
import logging
import os
import stat
import threading
import time

# mfusepy picks its libfuse when imported
os.environ.setdefault("FUSE_LIBRARY_PATH", ctypes.util.find_library("fuse3") or "")
from mfusepy import FUSE, FuseOSError, Operations, fuse_version_major  # noqa: E402

from .errors import MountError, NotFound
from .staging import FsError
from .table import MountTable

LOOP_ENDED = 8  # fuse_main's code once mounted: the loop stopped (SIGTERM included)
# Cold files from this size on are opened with direct_io. (On libfuse 3.14 a MAP_SHARED mmap of
# such a file fails with ENODEV until it is in the cache; MAP_PRIVATE works.)
DIRECT_IO_MIN = 8 << 20

log = logging.getLogger("pachstudio.mount.fs")

DIR_MODE, FILE_MODE = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o644


def _errno(e: BaseException) -> int:
    if isinstance(e, NotFound):
        return errno.ENOENT
    if isinstance(e, (FsError, OSError)) and getattr(e, "errno", None):
        return e.errno
    if isinstance(e, MountError):
        log.warning("%s", e.message)
        return errno.EIO
    log.exception("unexpected error in a FUSE operation")
    return errno.EIO


def _fh(fi) -> int:
    """fusepy runs with raw_fi (to set keep_cache): handles arrive as fuse_file_info."""
    return fi.fh if hasattr(fi, "fh") else fi


def translated(fn):
    def wrapper(self, *args):
        try:
            return fn(self, *args)
        except FuseOSError:
            raise
        except Exception as e:  # noqa: BLE001 - every failure must become an errno
            raise FuseOSError(_errno(e)) from None

    wrapper.__name__ = fn.__name__
    return wrapper


class PachydermFS(Operations):
    def __init__(self, table: MountTable):
        self.table = table
        self.handles: dict = {}
        self.next_fh = 1
        self._lock = threading.Lock()
        self.started = time.time()
        self.uid, self.gid = os.getuid(), os.getgid()
        self.opened_at: dict = {}  # (mount, path) -> commit id of the last open, for keep_cache

    def init_with_config(self, conn, config):
        if conn is not None and fuse_version_major >= 3:
            conn.max_readahead = 1 << 20

    # -- routing ------------------------------------------------------------------------------
    def _split(self, path: str):
        """`/name/a/b` -> (the mount's View, `/a/b`); ENOENT for unknown mounts."""
        parts = path.lstrip("/").split("/", 1)
        mount = self.table.find(parts[0])
        if mount is None:
            raise FuseOSError(errno.ENOENT)
        return mount.view, "/" + (parts[1] if len(parts) > 1 else "")

    def _rw(self, path: str):
        view, rel = self._split(path)
        if not view.writable:
            raise FuseOSError(errno.EROFS)
        if rel == "/":
            raise FuseOSError(errno.EPERM)
        return view, rel

    def _attrs(self, is_dir: bool, size: int, mtime: float) -> dict:
        return {
            "st_mode": DIR_MODE if is_dir else FILE_MODE,
            "st_nlink": 2 if is_dir else 1,
            "st_size": size,
            "st_mtime": mtime,
            "st_ctime": mtime,
            "st_atime": mtime,
            "st_uid": self.uid,
            "st_gid": self.gid,
            "st_blocks": (size + 511) // 512,
            "st_blksize": 1 << 17,
        }

    def _add_handle(self, value) -> int:
        with self._lock:
            fh = self.next_fh
            self.next_fh += 1
            self.handles[fh] = value
            return fh

    # -- reading ------------------------------------------------------------------------------
    @translated
    def getattr(self, path, fi=None):
        if path == "/":
            return self._attrs(True, 0, self.started)
        view, rel = self._split(path)
        e = view.lookup(rel)
        if e is None:
            raise FuseOSError(errno.ENOENT)
        return self._attrs(e.is_dir, e.size, e.mtime or view.mtime)

    @translated
    def readdir(self, path, fh):
        if path == "/":
            names = self.table.names()
        else:
            view, rel = self._split(path)
            names = list(view.listdir(rel))
        return [".", ".."] + names

    @translated
    def open(self, path, fi):
        view, rel = self._split(path)
        flags = fi.flags
        writable = flags & os.O_ACCMODE != os.O_RDONLY
        h = view.open(rel, writable, truncate=bool(flags & os.O_TRUNC))
        fi.keep_cache = fi.direct_io = 0
        if not view.writable:
            # the kernel may keep its pages only while the path still shows the same commit
            key = (path.lstrip("/").split("/", 1)[0], rel)
            fi.keep_cache = 1 if self.opened_at.get(key) == view.commit_id else 0
            fi.direct_io = int(view.lookup(rel).size >= DIRECT_IO_MIN and not view.cached(rel))
            self.opened_at[key] = view.commit_id
        # the view it was opened in, even if a refresh moved the mount since
        fi.fh = self._add_handle((view, h))
        return 0

    @translated
    def read(self, path, size, offset, fi):
        """What mfusepy looks for to register the read callback (_FUSE calls read_into)."""
        out = bytearray(size)
        return bytes(out[: self.read_into(path, memoryview(out), offset, fi)])

    @translated
    def read_into(self, path, out: memoryview, offset, fi) -> int:
        view, h = self.handles[_fh(fi)]
        return view.read_into(h, offset, out)

    @translated
    def release(self, path, fi):
        with self._lock:
            entry = self.handles.pop(_fh(fi), None)
        if entry is not None:
            entry[0].release(entry[1])
        return 0

    def statfs(self, path):
        return {
            "f_bsize": 1 << 17,
            "f_frsize": 1 << 17,
            "f_blocks": 1 << 30,
            "f_bfree": 1 << 29,
            "f_bavail": 1 << 29,
            "f_files": 1 << 30,
            "f_ffree": 1 << 29,
            "f_namemax": 255,
        }

    def access(self, path, amode):
        return 0

    # -- writing (read-write mounts only) -------------------------------------------------------
    @translated
    def create(self, path, mode, fi):
        view, rel = self._rw(path)
        fi.fh = self._add_handle((view, view.create(rel)))
        return 0

    @translated
    def write(self, path, data, offset, fi):
        view, h = self.handles[_fh(fi)]
        return view.write(h, data, offset)

    @translated
    def truncate(self, path, length, fi=None):
        view, rel = self._rw(path)
        fh = _fh(fi) if fi is not None else None
        opened, h = self.handles.get(fh, (None, None)) if fh else (None, None)
        view.truncate(rel, length, h if opened is view else None)
        return 0

    @translated
    def unlink(self, path):
        view, rel = self._rw(path)
        view.unlink(rel)

    @translated
    def mkdir(self, path, mode):
        if path.count("/") == 1:
            raise FuseOSError(errno.EPERM)  # new mounts come from PUT /_mount
        view, rel = self._rw(path)
        view.mkdir(rel)

    @translated
    def rmdir(self, path):
        view, rel = self._rw(path)
        view.rmdir(rel)

    @translated
    def rename(self, old, new):
        view, rel_old = self._rw(old)
        view_new, rel_new = self._rw(new)
        if view_new is not view:
            raise FuseOSError(errno.EXDEV)
        view.rename(rel_old, rel_new)

    @translated
    def flush(self, path, fi):
        return 0

    @translated
    def fsync(self, path, datasync, fi):
        entry = self.handles.get(_fh(fi))
        if entry:
            entry[0].fsync(entry[1])
        return 0

    def utimens(self, path, times=None):
        return 0

    def chmod(self, path, mode):
        return 0

    def chown(self, path, uid, gid):
        return 0

    def symlink(self, target, source):
        raise FuseOSError(errno.EPERM)

    def link(self, target, source):
        raise FuseOSError(errno.EPERM)


class _FUSE(FUSE):
    """Reads land in the kernel request's own buffer: no bytes object per 1 MiB request."""

    def read(self, path, buf, size, offset, fip):
        out = memoryview((ctypes.c_char * size).from_address(ctypes.addressof(buf.contents)))
        return self.operations.read_into(
            None if path is None else path.decode(self.encoding), out.cast("B"), offset, fip.contents
        )


def serve(fs: PachydermFS, mount_dir: str) -> None:
    """Mounts `fs` at `mount_dir` and serves it until unmounted (RuntimeError if it cannot)."""
    options = dict(
        raw_fi=True, foreground=True, nothreads=False, allow_other=True, fsname="pachstudio", subtype="pachyderm"
    )
    if fuse_version_major < 3:
        options.update(big_writes=True, max_read=1 << 20, max_write=1 << 20, max_readahead=1 << 20)
    try:
        _FUSE(fs, mount_dir, **options)
    except RuntimeError as e:
        # libfuse 3 ends its loop on SIGTERM by storing the signal, and fuse_main reports 8
        if fuse_version_major < 3 or e.args != (LOOP_ENDED,):
            raise
