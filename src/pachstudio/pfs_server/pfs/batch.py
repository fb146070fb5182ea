"""One ModifyFile stream: its puts, deletes and copies gathered before Store.apply_batch applies
them all in one transaction.

Contents are streamed into the blob store as they arrive (one writer at a time); nothing in the
database changes until the stream ends, so a cut stream leaves no trace but content-addressed blobs
(which the collector frees). Every content the stream will reference stays pinned until the stream
is applied or discarded, so the collector cannot free it in between.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Optional, Protocol

from ..errors import InvalidArgument
from . import paths as P
from .blobs import BlobStore, BlobWriter
from .records import Entry, RepoRow

INLINE_FLUSH = 2000  # small contents saved to the database this many at a time
BASE_LISTING_AFTER = 64  # per-file lookups of the base commit before its whole listing is read


@dataclass
class _Op:
    kind: str  # "put" or "del"
    path: str
    writer: Optional[BlobWriter] = None
    blob: Optional[tuple] = None  # (hash, size) once known


class BatchStore(Protocol):
    """What a batch asks of the engine (the Store): contents to write, read and pin, a commit's
    files. Declared here so a batch depends on these calls, not on the store's module."""

    blobs: BlobStore

    def open_blob(self, digest: str) -> BinaryIO: ...
    def files_under(self, commit_id: str, prefix: str = "/") -> Iterator[Entry]: ...
    def lookup(self, commit_id: str, paths: list[str]) -> dict[str, Entry]: ...
    def file_not_found(self, commit_id: str, path: str) -> Exception: ...
    def missing_contents(self, digests: list[str]) -> list[str]: ...
    def save_inline(self, rows: list, db=None) -> None: ...
    def request_collection(self) -> None: ...


class FileBatch:
    """The operations of one ModifyFile stream. Made by Store.begin_batch, applied by
    Store.apply_batch, or discarded."""

    def __init__(self, store: BatchStore, repo: RepoRow, commit_id: str = "", branch: str = ""):
        self.store = store
        self.repo = repo
        self.commit_id = commit_id
        self.branch = branch
        self.base: Optional[str] = None  # the commit whose content appends start from
        self.ops: list[_Op] = []
        self.current: Optional[_Op] = None  # the put being streamed into; earlier ones are sealed
        self.sealed: dict = {}  # path -> (hash, size) of puts finished so far
        self.pending_inline: list = []  # small contents not yet in the database
        self.deleted: list[str] = []  # paths deleted so far in this stream
        self.base_lookups = 0
        self.base_files: Optional[dict] = None  # the base commit's files, once a stream adds many
        self.pinned: list[str] = []  # contents this stream will reference (see blobs.BlobPins)

    # -- the stream's operations --------------------------------------------------------------
    def add(self, path: str, data: bytes) -> None:
        """Appends `data` to the file at `path` (its content so far in this stream or the base)."""
        path = self._file_path(path)
        op = self.current
        if op is None or op.path != path:
            self.seal()
            writer = self.store.blobs.writer()
            if path in self.sealed:  # appending again to a file this stream already wrote
                self.flush_inline()
                writer.copy_from(self.store.open_blob(self.sealed[path][0]))
            elif not self._deleted(path) and self.base:
                old = self._base_file(path)
                if old:
                    writer.copy_from(self.store.open_blob(old.hash))
            op = self.current = _Op("put", path, writer=writer)
            self.ops.append(op)
        op.writer.write(data)

    def delete(self, path: str) -> None:
        path = P.clean(path)
        op = self.current
        if op is not None and (op.path == path or op.path.startswith(path.rstrip("/") + "/")):
            op.writer.discard()
            self.ops.remove(op)
            self.current = None
        for p in [p for p in self.sealed if p == path or p.startswith(path.rstrip("/") + "/")]:
            del self.sealed[p]
        self.ops.append(_Op("del", path))
        self.deleted.append(path)

    def copy(self, src_commit: str, src_path: str, dst: str, append: bool = False) -> None:
        src_path, dst = P.clean(src_path), P.clean(dst)
        files = list(self.store.files_under(src_commit, src_path))
        if not files:
            raise self.store.file_not_found(src_commit, src_path)
        self._pin_existing([e.hash for e in files], src_commit, src_path)
        if not append:
            self.delete(dst)
        for e in files:
            rel = e.path[len(src_path) :] if e.path != src_path else ""
            target = P.clean(dst + rel)
            if append:
                with self.store.open_blob(e.hash) as f:
                    while chunk := f.read(4 << 20):
                        self.add(target, chunk)
            else:
                self.seal()
                self.sealed[target] = (e.hash, e.size)
                self.ops.append(_Op("put", target, blob=(e.hash, e.size)))

    def discard(self) -> None:
        if self.current is not None:
            self.current.writer.discard()
            self.current = None
        if self.pinned:  # what it wrote is referenced by nothing now
            self.store.request_collection()
        self.release()

    def release(self) -> None:
        """Unpins the stream's contents: call once its transaction has committed or failed."""
        pinned, self.pinned = self.pinned, []
        for digest in pinned:
            self.store.blobs.pins.unpin(digest)

    def _pin_existing(self, digests: list[str], src_commit: str, src_path: str) -> None:
        """Pins contents another commit references, then checks they are still there: a commit
        dropped since the listing may have had them collected."""
        for digest in digests:
            self.store.blobs.pins.pin(digest)
        self.pinned += digests
        if self.store.missing_contents(digests):
            raise self.store.file_not_found(src_commit, src_path)

    # -- sealing and applying -----------------------------------------------------------------
    def seal(self) -> None:
        """Finishes the put being streamed, so a stream of many files holds one writer at a time;
        small contents go to the database in batches (orphans are harmless: content-addressed)."""
        op, self.current = self.current, None
        if op is None:
            return
        data = op.writer.inline()
        op.blob = op.writer.commit()
        self.pinned.append(op.blob[0])
        op.writer = None
        self.sealed[op.path] = op.blob
        if data is not None:
            self.pending_inline.append((op.blob[0], data))
            if len(self.pending_inline) >= INLINE_FLUSH:
                self.flush_inline()

    def flush_inline(self, db=None) -> None:
        """Saves the small contents gathered so far (in `db`'s transaction when given)."""
        if self.pending_inline:
            self.store.save_inline(self.pending_inline, db)
            self.pending_inline = []

    def final_state(self, commit_id: str) -> dict:
        """path -> (hash, size), or None for deleted, after replaying the stream's ops in order on
        `commit_id`. A delete of a directory removes what is under it in the commit and what the
        stream put there before it; sorted path lists keep that cheap when a stream holds
        thousands of deletes."""
        final: dict = {}
        put_paths: list[str] = []
        deletes = sum(1 for op in self.ops if op.kind == "del")
        base_paths = [e.path for e in self.store.files_under(commit_id, "/")] if deletes > BASE_LISTING_AFTER else None
        for op in self.ops:
            if op.kind == "put":
                if op.path not in final:
                    bisect.insort(put_paths, op.path)
                final[op.path] = op.blob
                continue
            if op.path != "/":
                final[op.path] = None
            prefix = op.path.rstrip("/") + "/"
            under = _under(put_paths, prefix)
            if base_paths is not None:
                under += _under(base_paths, prefix)
            else:
                under += [e.path for e in self.store.files_under(commit_id, op.path)]
            for p in under:
                final[p] = None
        return final

    # -- helpers ------------------------------------------------------------------------------
    def _deleted(self, path: str) -> bool:
        return any(d == path or path.startswith(d.rstrip("/") + "/") for d in self.deleted)

    def _base_file(self, path: str) -> Optional[Entry]:
        """The file an add appends to. A stream adding many files reads the base listing once
        instead of querying per file."""
        if self.base_files is None and self.base_lookups >= BASE_LISTING_AFTER:
            self.base_files = {e.path: e for e in self.store.files_under(self.base, "/")}
        if self.base_files is not None:
            return self.base_files.get(path)
        self.base_lookups += 1
        return self.store.lookup(self.base, [path]).get(path)

    @staticmethod
    def _file_path(path: str) -> str:
        cleaned = P.clean(path)
        if cleaned == "/":
            raise InvalidArgument(f"invalid file path {path!r}: a file needs a name")
        return cleaned


def _under(sorted_paths: list[str], prefix: str) -> list[str]:
    i = bisect.bisect_left(sorted_paths, prefix)
    out = []
    while i < len(sorted_paths) and sorted_paths[i].startswith(prefix):
        out.append(sorted_paths[i])
        i += 1
    return out
