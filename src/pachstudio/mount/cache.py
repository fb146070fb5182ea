"""File contents on local disk, keyed by commit and path, in 1 MiB blocks, bounded in size.

A read fetches only the blocks it lacks, through one GetFile stream started at the first missing
block. A sequential reader widens a read-ahead window, and its stream pauses at the window's end
rather than closing, so a large file arrives through one stream.

Received bytes serve readers from memory (the last RECENT bytes of a file stay there) while a
writer thread puts them on disk with O_DIRECT. So a cold read neither waits for the disk nor
fills the page cache with a second copy of the file: new page-cache pages are the dearest memory
a read can ask for (on a VM that backs guest memory lazily they cost more than the network).

Commits are immutable, so a complete file stays valid across restarts; partly fetched files are
dropped at start-up. Least recently used files are evicted past the size limit.
"""

import collections
import hashlib
import mmap
import os
import queue
import threading
import time
from typing import Callable, Iterator, Optional

from .errors import MountError

BLOCK = 1 << 20
MAX_AHEAD = 32  # blocks of read-ahead once reads are sequential
RECENT = 48 << 20  # received bytes of a file kept in memory for its readers
MAX_PENDING = 128 << 20  # received bytes not yet on disk, over all files, before fetching pauses
IDLE = 2.0  # seconds a paused stream waits for its reader before it closes
ALIGN = 4096  # O_DIRECT offsets, lengths and buffers

Opener = Callable[[int], Iterator[bytes]]  # offset -> the file's bytes from there on


class _DiskWriter:
    """Appends one stream's bytes to the cache file: whole aligned runs with O_DIRECT from one
    reused aligned buffer, the unaligned tail with an ordinary write. Where O_DIRECT is refused
    (tmpfs, some overlay set-ups) every write is an ordinary one."""

    def __init__(self, path: str, start: int):
        self.fd = os.open(path, os.O_WRONLY)
        try:
            self.direct = os.open(path, os.O_WRONLY | os.O_DIRECT)
        except OSError:
            self.direct = None
        self.buf = mmap.mmap(-1, 4 * BLOCK)  # page-aligned, as O_DIRECT needs
        self.at = self.done = start  # file offset of buf[0]; bytes before `done` are on disk
        self.fill = 0

    def add(self, data) -> None:
        view = memoryview(data)
        while view:
            n = min(len(view), len(self.buf) - self.fill)
            self.buf[self.fill : self.fill + n] = view[:n]
            self.fill += n
            view = view[n:]
            if self.fill >= BLOCK:
                self._flush(self.fill - self.fill % ALIGN)

    def close(self) -> None:
        try:
            self._flush(self.fill - self.fill % ALIGN)
            self._flush(self.fill, direct=False)
        finally:
            for fd in (self.fd, self.direct):
                if fd is not None:
                    os.close(fd)
            self.buf.close()

    def _flush(self, n: int, direct: bool = True) -> None:
        if not n:
            return
        fd = self.direct if direct and self.direct is not None else self.fd
        try:
            os.pwrite(fd, memoryview(self.buf)[:n], self.at)
        except OSError:
            if fd is self.fd:
                raise
            os.close(self.direct)  # refused after all (EINVAL): ordinary writes from now on
            self.direct = None
            os.pwrite(self.fd, memoryview(self.buf)[:n], self.at)
        self.buf.move(0, n, self.fill - n)
        self.fill -= n
        self.at += n
        self.done = self.at


class _Stream:
    def __init__(self, start_block: int, end_block: int):
        self.pos = start_block * BLOCK  # received up to here
        self.ondisk = self.pos  # written up to here
        self.marked = start_block  # first block not yet marked as present
        self.end = end_block  # exclusive; readers push it forward
        self.writer: Optional[_DiskWriter] = None


class _Entry:
    def __init__(self, key: str, data_path: str, size: int, complete: bool):
        self.key, self.data_path, self.size = key, data_path, size
        self.nblocks = (size + BLOCK - 1) // BLOCK
        self.blocks = bytearray([1 if complete else 0]) * self.nblocks
        self.missing = 0 if complete else self.nblocks
        self.streams: list[_Stream] = []
        self.error: Optional[BaseException] = None
        self.readers = 0
        self.writing = 0  # streams whose bytes the writer has not finished with
        self.next_offset = 0
        self.ahead = 0
        self.fd: Optional[int] = None
        self.recent: collections.deque = collections.deque()  # [offset, bytes, on disk?, stream]
        self.recent_bytes = 0


class ContentCache:
    def __init__(self, root: str, limit: int = 2 << 30):
        self.root, self.limit = root, limit
        self.lock = threading.Condition()
        self.entries: "collections.OrderedDict[str, _Entry]" = collections.OrderedDict()
        self.total = 0
        self.pending_bytes = 0
        self.receiving: list[_Entry] = []  # entries holding received bytes in memory
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
            self._forget_recent()
        self.entries.move_to_end(key)
        return e

    def _forget_recent(self):
        """A file nobody reads or fetches gives its received bytes back (the next file's chunks
        reuse that memory instead of asking for fresh pages)."""
        for e in self.receiving:
            if e.readers == 0 and not e.streams:
                self._trim(e, 0)
        self.receiving = [e for e in self.receiving if e.recent]

    def _drop(self, e: _Entry):
        self.entries.pop(e.key, None)
        e.recent.clear()
        self.total -= sum(min(BLOCK, e.size - b * BLOCK) for b in range(e.nblocks) if e.blocks[b])
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
            if e.readers == 0 and not e.streams and not e.writing:
                self._drop(e)

    def _fd(self, e: _Entry) -> int:
        if e.fd is None:
            e.fd = os.open(e.data_path, os.O_RDWR | os.O_CREAT, 0o600)
        return e.fd

    def contains(self, commit_id: str, path: str) -> bool:
        e = self.entries.get(self.key(commit_id, path))
        return e is not None and e.missing == 0

    # -- reading ------------------------------------------------------------------------------
    def read_into(self, commit_id: str, path: str, size: int, offset: int, out: memoryview, opener: Opener) -> int:
        """Fills `out` (the FUSE request's own buffer: no bytes object per read) from `offset`."""
        length = min(len(out), size - offset)
        if length <= 0:
            return 0
        with self.lock:
            e = self._entry(commit_id, path, size)
            e.readers += 1
            try:
                # the kernel's read-ahead sends a sequential reader's requests slightly out of order
                sequential = abs(offset - e.next_offset) <= 2 * BLOCK
                e.ahead = min(max(e.ahead * 2, 1), MAX_AHEAD) if sequential else 0
                e.next_offset = max(e.next_offset, offset + length) if sequential else offset + length
                pieces = self._wait_for(e, offset, offset + length, opener)
                fd = self._fd(e) if pieces is None else None
            except BaseException:
                e.readers -= 1
                raise
        try:
            if pieces is None:
                got = os.preadv(fd, [out[:length]], offset)
                out[got:length] = bytes(length - got)  # a short file on disk reads as zeros
                return length
            at = 0
            for piece in pieces:
                out[at : at + len(piece)] = piece
                at += len(piece)
            return at
        finally:
            with self.lock:
                e.readers -= 1

    def _wait_for(self, e: _Entry, offset: int, end: int, opener: Opener) -> Optional[list]:
        """Views of the bytes in memory, or None once every block of the range is on disk."""
        first, last = offset // BLOCK, (end - 1) // BLOCK
        want_end = min(e.nblocks, last + 1 + e.ahead)
        while True:
            data = self._pieces(e, offset, end)
            if data is not None or all(e.blocks[first : last + 1]):
                # keep the read-ahead stream running ahead of a sequential reader
                if e.ahead:
                    for s in e.streams:
                        if s.pos // BLOCK <= want_end and s.end >= first and s.end < want_end:
                            s.end = want_end
                            self.lock.notify_all()
                return data
            if e.error is not None:
                error, e.error = e.error, None
                raise error if isinstance(error, MountError) else MountError(str(error))
            missing = next((b for b in range(first, last + 1) if not e.blocks[b] and not self._received(e, b)), None)
            stream = (
                None
                if missing is None
                else next((s for s in e.streams if s.pos // BLOCK <= missing < max(s.end, s.pos // BLOCK + 1)), None)
            )
            if missing is None:
                pass  # received, on its way to the disk: the writer's notify wakes us
            elif stream is None:
                stream = _Stream(missing, want_end)
                e.streams.append(stream)
                e.writing += 1
                threading.Thread(target=self._fetch, args=(e, stream, opener), daemon=True, name="cache-fetch").start()
            elif stream.end < want_end:
                stream.end = want_end
                self.lock.notify_all()
            self.lock.wait(5)

    @staticmethod
    def _pieces(e: _Entry, offset: int, end: int) -> Optional[list]:
        """Views of received bytes covering [offset, end), or None where some are not in memory."""
        pieces, at = [], offset
        for start, data, *_ in e.recent:  # in the order received; streams may overlap
            stop = start + len(data)
            if start <= at < stop:
                take = min(stop, end)
                pieces.append(memoryview(data)[at - start : take - start])
                at = take
                if at >= end:
                    return pieces
        return None

    @classmethod
    def _received(cls, e: _Entry, block: int) -> bool:
        return cls._pieces(e, block * BLOCK, min((block + 1) * BLOCK, e.size)) is not None

    # -- fetching -----------------------------------------------------------------------------
    def _fetch(self, e: _Entry, s: _Stream, opener: Opener):
        it = None
        try:
            with self.lock:
                self._fd(e)  # creates the file
            s.writer = _DiskWriter(e.data_path, s.pos)
            it = opener(s.pos)
            for chunk in it:
                with self.lock:
                    while self.pending_bytes > MAX_PENDING:
                        self.lock.wait(1)
                    piece = [s.pos, chunk, False, s]
                    if not e.recent:
                        self.receiving.append(e)
                    e.recent.append(piece)
                    e.recent_bytes += len(chunk)
                    self.pending_bytes += len(chunk)
                    self.writes.put((e, s, piece))
                    s.pos += len(chunk)
                    self.lock.notify_all()
                    if s.pos >= e.size or not self._resumed(e, s):
                        return
            raise MountError(f"{e.key}: the cluster sent {s.pos} of {e.size} bytes")
        except BaseException as error:  # noqa: BLE001 - handed to the waiting readers
            with self.lock:
                e.error = error
                self.lock.notify_all()
        finally:
            if it is not None and hasattr(it, "close"):
                it.close()
            with self.lock:
                if s in e.streams:
                    e.streams.remove(s)
                self.lock.notify_all()
            self.writes.put((e, s, None))  # the writer closes the stream's file

    def _resumed(self, e: _Entry, s: _Stream) -> bool:
        """At its window's end a stream waits for a reader to move the window (keeping the
        GetFile stream open is cheaper than starting another); False once nobody has for IDLE."""
        deadline = time.monotonic() + IDLE
        while s.pos >= s.end * BLOCK:
            left = deadline - time.monotonic()
            if left <= 0 or self.entries.get(e.key) is not e:
                return False
            self.lock.wait(left)
        return True

    # -- writing to disk ----------------------------------------------------------------------
    def _writer(self):
        """Puts received bytes on disk, so the network stream never waits for the disk."""
        while True:
            e, s, piece = self.writes.get()
            try:
                if s.writer is not None:
                    if piece is None:
                        s.writer.close()
                    else:
                        s.writer.add(piece[1])
            except OSError:  # the entry was dropped meanwhile: its readers fetch again
                pass
            with self.lock:
                if s.writer is not None:
                    s.ondisk = s.writer.done
                if piece is not None:
                    self.pending_bytes -= len(piece[1])
                else:
                    e.writing -= 1
                for p in e.recent:
                    if p[3] is s and p[0] + len(p[1]) <= s.ondisk:
                        p[2] = True
                self._mark(e, s)
                self._trim(e, RECENT)
                self.lock.notify_all()

    def _trim(self, e: _Entry, keep: int):
        while e.recent and e.recent_bytes > keep and e.recent[0][2]:
            e.recent_bytes -= len(e.recent.popleft()[1])

    def _mark(self, e: _Entry, s: _Stream):
        """Marks the blocks stream `s` has completely written."""
        added = 0
        while s.marked < e.nblocks and ((s.marked + 1) * BLOCK <= s.ondisk or s.ondisk >= e.size):
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
        if e.missing == 0 and e.data_path.endswith(".part"):
            done = e.data_path[:-5] + ".data"
            os.replace(e.data_path, done)
            e.data_path = done
