"""File contents on local disk, keyed by commit and path, in 1 MiB blocks, bounded in size.

A read fetches only the blocks it lacks, through one GetFile stream started at the first missing
block. Sequential reads widen a read-ahead window, and the same stream keeps running ahead of the
reader, so a large file arrives in a handful of streams while the reader is served from disk.
Commits are immutable, so a complete file stays valid across restarts; partly fetched files are
dropped at start-up. Least recently used files are evicted past the size limit.
"""
import collections
import hashlib
import os
import queue
import threading
from typing import Callable, Iterator, Optional

from .errors import MountError

BLOCK = 1 << 20
MAX_AHEAD = 32  # blocks of read-ahead once reads are sequential
MAX_PENDING = 128 << 20  # received bytes waiting for the disk before fetching pauses

Opener = Callable[[int], Iterator[bytes]]  # offset -> the file's bytes from there on


class _Stream:
    def __init__(self, start_block: int, end_block: int):
        self.pos = start_block * BLOCK
        self.marked = start_block  # first block not yet marked as present
        self.end = end_block  # exclusive; readers push it forward
        self.error: Optional[BaseException] = None


class _Entry:
    def __init__(self, key: str, data_path: str, size: int, complete: bool):
        self.key, self.data_path, self.size = key, data_path, size
        self.nblocks = (size + BLOCK - 1) // BLOCK
        self.blocks = bytearray([1 if complete else 0]) * self.nblocks
        self.missing = 0 if complete else self.nblocks
        self.streams: list[_Stream] = []
        self.error: Optional[BaseException] = None
        self.readers = 0
        self.next_offset = 0
        self.ahead = 0
        self.fd: Optional[int] = None
        self.pending: list = []  # (offset, bytes) received but not yet on disk

    @property
    def stored(self) -> int:
        return sum(min(BLOCK, self.size - b * BLOCK) for b in range(self.nblocks) if self.blocks[b])


class ContentCache:
    def __init__(self, root: str, limit: int = 2 << 30):
        self.root, self.limit = root, limit
        self.lock = threading.Condition()
        self.entries: "collections.OrderedDict[str, _Entry]" = collections.OrderedDict()
        self.total = 0
        self.pending_bytes = 0
        self.writes: "queue.Queue" = queue.Queue()
        os.makedirs(root, exist_ok=True)
        self._load()
        threading.Thread(target=self._writer, name="cache-writer", daemon=True).start()

    # -- bookkeeping --------------------------------------------------------------------------
    def _load(self):
        found = []
        for dirpath, _, names in os.walk(self.root):
            for name in names:
                full = os.path.join(dirpath, name)
                if name.endswith(".part"):
                    os.unlink(full)
                elif name.endswith(".data"):
                    st = os.stat(full)
                    found.append((st.st_mtime, name[:-5], full, st.st_size))
        for _, key, full, size in sorted(found):
            self.entries[key] = _Entry(key, full, size, complete=True)
            self.total += size

    @staticmethod
    def key(commit_id: str, path: str) -> str:
        return hashlib.sha256(f"{commit_id}\0{path}".encode()).hexdigest()[:40]

    def _entry(self, commit_id: str, path: str, size: int) -> _Entry:
        key = self.key(commit_id, path)
        e = self.entries.get(key)
        if e is None or e.size != size:
            if e is not None:
                self._drop(e)
            folder = os.path.join(self.root, key[:2])
            os.makedirs(folder, exist_ok=True)
            e = _Entry(key, os.path.join(folder, key + ".part"), size, complete=False)
            self.entries[key] = e
        self.entries.move_to_end(key)
        return e

    def _drop(self, e: _Entry):
        self.entries.pop(e.key, None)
        self.total -= e.stored
        if e.fd is not None:
            os.close(e.fd)
            e.fd = None
        try:
            os.unlink(e.data_path)
        except FileNotFoundError:
            pass

    def _evict(self):
        for e in list(self.entries.values()):
            if self.total <= self.limit:
                return
            if e.readers == 0 and not e.streams and not e.pending:
                self._drop(e)

    def _fd(self, e: _Entry) -> int:
        if e.fd is None:
            e.fd = os.open(e.data_path, os.O_RDWR | os.O_CREAT, 0o600)
        return e.fd

    def contains(self, commit_id: str, path: str) -> bool:
        e = self.entries.get(self.key(commit_id, path))
        return e is not None and e.missing == 0

    # -- reading ------------------------------------------------------------------------------
    def read(self, commit_id: str, path: str, size: int, offset: int, length: int,
             opener: Opener) -> bytes:
        if offset >= size or length <= 0:
            return b""
        length = min(length, size - offset)
        first, last = offset // BLOCK, (offset + length - 1) // BLOCK
        with self.lock:
            e = self._entry(commit_id, path, size)
            e.readers += 1
            try:
                # the kernel's read-ahead sends a sequential reader's requests slightly out of order
                sequential = abs(offset - e.next_offset) <= 2 * BLOCK
                e.ahead = min(max(e.ahead * 2, 1), MAX_AHEAD) if sequential else 0
                e.next_offset = max(e.next_offset, offset + length) if sequential \
                    else offset + length
                self._wait_for(e, first, last, opener)
                fd = self._fd(e)
                end = offset + length
                mem = [(at, data) for at, data in e.pending
                       if at < end and at + len(data) > offset]
            except BaseException:
                e.readers -= 1
                raise
        try:
            if len(mem) == 1 and mem[0][0] <= offset and mem[0][0] + len(mem[0][1]) >= end:
                at, data = mem[0]
                return data[offset - at:end - at]
            out = bytearray(os.pread(fd, length, offset).ljust(length, b"\0"))
            for at, data in mem:  # received bytes not on disk yet
                lo, hi = max(at, offset), min(at + len(data), end)
                out[lo - offset:hi - offset] = data[lo - at:hi - at]
            return bytes(out)
        finally:
            with self.lock:
                e.readers -= 1

    def _wait_for(self, e: _Entry, first: int, last: int, opener: Opener):
        want_end = min(e.nblocks, last + 1 + e.ahead)
        while True:
            missing = next((b for b in range(first, last + 1) if not e.blocks[b]), None)
            if missing is None:
                # keep the read-ahead stream running ahead of a sequential reader
                if e.ahead:
                    for s in e.streams:
                        if s.pos // BLOCK <= want_end and s.end >= first:
                            s.end = max(s.end, want_end)
                return
            if e.error is not None:
                error, e.error = e.error, None
                raise error if isinstance(error, MountError) else MountError(str(error))
            stream = next((s for s in e.streams
                           if s.pos // BLOCK <= missing < max(s.end, s.pos // BLOCK + 1)), None)
            if stream is None:
                stream = _Stream(missing, want_end)
                e.streams.append(stream)
                threading.Thread(target=self._fetch, args=(e, stream, opener), daemon=True,
                                 name="cache-fetch").start()
            else:
                stream.end = max(stream.end, want_end)
            self.lock.wait(5)

    def _fetch(self, e: _Entry, s: _Stream, opener: Opener):
        it = None
        try:
            with self.lock:
                fd = self._fd(e)
            it = opener(s.pos)
            for chunk in it:
                with self.lock:
                    while self.pending_bytes > MAX_PENDING:
                        self.lock.wait(1)
                    e.pending.append((s.pos, chunk))
                    self.pending_bytes += len(chunk)
                    self.writes.put((e, fd, s.pos, chunk))
                    s.pos += len(chunk)
                    self._mark(e, s)
                    if s.pos >= min(s.end * BLOCK, e.size):
                        e.streams.remove(s)
                        self.lock.notify_all()
                        return
                    self.lock.notify_all()
            raise MountError(f"{e.key}: the cluster sent {s.pos} of {e.size} bytes")
        except BaseException as error:  # noqa: BLE001 - handed to the waiting readers
            with self.lock:
                if s in e.streams:
                    e.streams.remove(s)
                e.error = error
                self.lock.notify_all()
        finally:
            if it is not None and hasattr(it, "close"):
                it.close()

    def _mark(self, e: _Entry, s: _Stream):
        """Marks the blocks stream `s` has completely written."""
        added = 0
        while s.marked < e.nblocks and ((s.marked + 1) * BLOCK <= s.pos or s.pos >= e.size):
            if not e.blocks[s.marked]:
                e.blocks[s.marked] = 1
                e.missing -= 1
                added += min(BLOCK, e.size - s.marked * BLOCK)
            s.marked += 1
        if added:
            self.total += added
            self._complete(e)
            self._evict()

    def _complete(self, e: _Entry):
        """A fully fetched and written file keeps its place across restarts."""
        if e.missing == 0 and not e.pending and e.data_path.endswith(".part"):
            done = e.data_path[:-5] + ".data"
            os.replace(e.data_path, done)
            e.data_path = done

    def _writer(self):
        """Writes received chunks to disk, so the network stream never waits for the disk."""
        while True:
            e, fd, at, chunk = self.writes.get()
            try:
                os.pwrite(fd, chunk, at)
            except OSError:  # the entry was dropped meanwhile; readers refetch
                pass
            with self.lock:
                e.pending = [p for p in e.pending if p[0] != at or p[1] is not chunk]
                self.pending_bytes -= len(chunk)
                self._complete(e)
                self.lock.notify_all()
