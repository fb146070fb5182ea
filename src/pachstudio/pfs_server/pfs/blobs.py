"""Content-addressed file contents: each distinct content is stored once, by its SHA-256.

Contents up to INLINE bytes live in the metadata database (a row is far cheaper than a file when a
commit brings 100,000 small labels); larger ones are files under blobs/.

A content a write is about to reference is pinned (`BlobPins`) from the moment its digest is known
until the write's transaction has committed or failed: the collector (`gc.py`) never deletes a
pinned content, which is what makes collecting safe while writes run.
"""

import hashlib
import os
import tempfile
import threading
from typing import Optional

CHUNK = 4 << 20
SPILL = 256 << 10  # contents larger than this are written to disk while they stream in
INLINE = 16 << 10


class BlobPins:
    """Contents that writes in flight will reference. While a collection runs, released pins are
    retained until it ends: a write that committed after the collector's mark must keep its content
    even though it released its pin before the sweep reached it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.retained: Optional[set] = None

    def pin(self, digest: str) -> None:
        with self.lock:
            self.counts[digest] = self.counts.get(digest, 0) + 1

    def unpin(self, digest: str) -> None:
        with self.lock:
            n = self.counts.get(digest, 0) - 1
            if n > 0:
                self.counts[digest] = n
            else:
                self.counts.pop(digest, None)
            if self.retained is not None:
                self.retained.add(digest)

    def held(self, digest: str) -> bool:
        """Call with `lock` held."""
        return digest in self.counts or (self.retained is not None and digest in self.retained)

    def snapshot(self) -> list[str]:
        with self.lock:
            return list(self.counts) + list(self.retained or ())

    def begin_collection(self) -> None:
        with self.lock:
            self.retained = set()

    def end_collection(self) -> None:
        with self.lock:
            self.retained = None


class BlobStore:
    def __init__(self, root: str):
        self.root = root
        self.pins = BlobPins()
        self.tmp = os.path.join(root, "tmp")
        os.makedirs(self.tmp, exist_ok=True)
        for name in os.listdir(self.tmp):  # leftovers of an upload cut by a crash
            os.unlink(os.path.join(self.tmp, name))

    def path(self, digest: str) -> str:
        return os.path.join(self.root, digest[:2], digest[2:])

    def open(self, digest: str):
        return open(self.path(digest), "rb")

    def writer(self) -> "BlobWriter":
        return BlobWriter(self)

    def exists(self, digest: str) -> bool:
        return os.path.exists(self.path(digest))

    def _place(self, src_path: str, digest: str) -> None:
        """Call with `digest` pinned: then the collector cannot remove the file we find here."""
        dst = self.path(digest)
        if os.path.exists(dst):
            os.unlink(src_path)
            return
        for attempt in range(3):  # the collector may remove an emptied prefix folder meanwhile
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            try:
                os.replace(src_path, dst)
                return
            except FileNotFoundError:
                if attempt == 2:
                    raise

    def remove_unless_pinned(self, digest: str) -> bool:
        """Deletes a content file unless a write has pinned it; the check and the delete happen
        under the pins' lock, so a write pinning it afterwards finds it gone and writes it again."""
        with self.pins.lock:
            if self.pins.held(digest):
                return False
            try:
                os.unlink(self.path(digest))
            except FileNotFoundError:
                return False
            return True


class BlobWriter:
    """Accumulates one file's content in memory, spilling to a temp file past SPILL bytes."""

    def __init__(self, store: BlobStore):
        self.store = store
        self.hash = hashlib.sha256()
        self.size = 0
        self.buf = bytearray()
        self.file = None

    def write(self, data) -> None:
        """`data` may be bytes or a memoryview."""
        if not len(data):
            return
        self.hash.update(data)
        self.size += len(data)
        if self.file is None:
            self.buf += data
            if len(self.buf) > SPILL:
                fd, self.tmp_path = tempfile.mkstemp(dir=self.store.tmp)
                self.file = os.fdopen(fd, "wb")
                self.file.write(self.buf)
                self.buf = bytearray()
        else:
            self.file.write(data)

    def copy_from(self, source) -> None:
        with source as f:
            while chunk := f.read(CHUNK):
                self.write(chunk)

    def inline(self) -> Optional[bytes]:
        """The content, when it is small enough to live in the database."""
        return bytes(self.buf) if self.file is None and self.size <= INLINE else None

    def commit(self) -> tuple[str, int]:
        """Makes a large content durable in the store and pins it (the caller unpins it once its
        reference is committed or given up); returns (digest, size)."""
        digest = self.hash.hexdigest()
        self.store.pins.pin(digest)
        if self.size <= INLINE and self.file is None:
            return digest, self.size
        if self.file is None:
            dst = self.store.path(digest)
            if not os.path.exists(dst):
                fd, tmp_path = tempfile.mkstemp(dir=self.store.tmp)
                with os.fdopen(fd, "wb") as f:
                    f.write(self.buf)
                self.store._place(tmp_path, digest)
        else:
            self.file.close()
            self.store._place(self.tmp_path, digest)
        self.buf = bytearray()
        return digest, self.size

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()
            if os.path.exists(self.tmp_path):
                os.unlink(self.tmp_path)
        self.buf = bytearray()
