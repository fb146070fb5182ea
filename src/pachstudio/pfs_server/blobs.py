"""Content-addressed file contents: each distinct content is stored once, by its SHA-256.

Contents up to INLINE bytes live in the metadata database (a row is far cheaper than a file when a
commit brings 100,000 small labels); larger ones are files under blobs/.
"""

import hashlib
import os
import tempfile
from typing import Optional

CHUNK = 4 << 20
SPILL = 256 << 10  # contents larger than this are written to disk while they stream in
INLINE = 16 << 10


class BlobStore:
    def __init__(self, root: str):
        self.root = root
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

    def _place(self, src_path: str, digest: str) -> None:
        dst = self.path(digest)
        if os.path.exists(dst):
            os.unlink(src_path)
            return
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.replace(src_path, dst)


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
        """Makes a large content durable in the store; returns (digest, size)."""
        digest = self.hash.hexdigest()
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
