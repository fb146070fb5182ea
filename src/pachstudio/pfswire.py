"""Pachyderm's hot messages encoded and decoded by hand, straight on the protobuf wire.

betterproto spends from a fifth of a millisecond to over a millisecond per message in pure Python,
so a 100,000-file upload, walk or listing would spend minutes in it. The few messages that come by
the thousand (ModifyFileRequest, FileInfo, BytesValue, the CommitInfos of a long history) are done
here, for the embedded server and the mount server alike; everything else goes through pachyderm-sdk's message classes.
"""

from __future__ import annotations

from typing import Iterator, Optional, Tuple

from pachyderm_sdk.api import pfs

FILE_TYPE_FILE, FILE_TYPE_DIR = 1, 2


# -- the wire format ------------------------------------------------------------------------------
def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(buf, i: int, end: Optional[int] = None) -> Tuple[int, int]:
    end = len(buf) if end is None else end
    shift = value = 0
    while True:
        if i >= end or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def fields(raw, start: int = 0, end: Optional[int] = None) -> Iterator[tuple]:
    """(field number, wire type, value): an int for varints, else a memoryview slice (no copy).
    Raises ValueError on anything malformed: betterproto silently accepts truncated input."""
    view = raw if isinstance(raw, memoryview) else memoryview(raw)
    i, n = start, len(view) if end is None else end
    while i < n:
        key, i = read_varint(view, i, n)
        num, wire = key >> 3, key & 7
        if num == 0:
            raise ValueError("field number 0")
        if wire == 0:
            value, i = read_varint(view, i, n)
            yield num, wire, value
            continue
        if wire == 2:
            size, i = read_varint(view, i, n)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if i + size > n:
            raise ValueError("field runs past the end of the message")
        yield num, wire, view[i : i + size]
        i += size


def check(raw: bytes) -> None:
    for _ in fields(raw):
        pass


def field_bytes(num: int, data) -> bytes:
    return varint(num << 3 | 2) + varint(len(data)) + bytes(data)


def field_varint(num: int, value: int) -> bytes:
    return varint(num << 3) + varint(value) if value else b""


def timestamp(t: Optional[float]) -> bytes:
    """google.protobuf.Timestamp from a Unix time."""
    if not t:
        return b""
    seconds = int(t)
    return field_varint(1, seconds) + field_varint(2, int((t - seconds) * 1e9))


# -- BytesValue (GetFile, GetFileTAR) -------------------------------------------------------------
def bytes_value(data: bytes) -> bytes:
    return b"\x0a" + varint(len(data)) + data


def bytes_value_of(buf: bytes) -> memoryview:
    """The payload of a BytesValue, as a view of `buf`: a GetFile chunk is not copied again."""
    for num, wire, value in fields(buf):
        if num == 1 and wire == 2:
            return value
    return memoryview(b"")


# -- ModifyFileRequest ----------------------------------------------------------------------------
def add_file(path: str, data: bytes) -> bytes:
    """ModifyFileRequest{add_file: AddFile{path, raw: BytesValue(data)}} (data may be empty)."""
    raw = field_bytes(1, data) if data else b""
    return field_bytes(2, field_bytes(1, path.encode()) + field_bytes(3, raw))


def delete_file(path: str) -> bytes:
    """ModifyFileRequest{delete_file: DeleteFile{path}}."""
    return field_bytes(3, field_bytes(1, path.encode()))


def parse_modify_file(raw: bytes):
    """A ModifyFileRequest as (kind, body): add_file -> (path, memoryview, url or ''),
    delete_file -> path, set_commit -> pfs.Commit, copy_file -> pfs.CopyFile."""
    kind, body = "", None
    for num, wire, value in fields(raw):
        if wire != 2:
            continue
        if num == 2:
            path, data, url = "", b"", ""
            for n2, w2, v2 in fields(value):
                if n2 == 1 and w2 == 2:
                    path = bytes(v2).decode()
                elif n2 == 3 and w2 == 2:
                    for n3, w3, v3 in fields(v2):
                        if n3 == 1 and w3 == 2:
                            data = v3  # a view into the request: no copy of a 19 MiB chunk
                elif n2 == 4 and w2 == 2:
                    url = pfs.AddFileUrlSource().parse(bytes(v2)).url
            kind, body = "add_file", (path, data, url)
        elif num == 3:
            path = ""
            for n2, w2, v2 in fields(value):
                if n2 == 1 and w2 == 2:
                    path = bytes(v2).decode()
            kind, body = "delete_file", path
        elif num == 1:
            kind, body = "set_commit", pfs.Commit().parse(bytes(value))
        elif num == 4:
            kind, body = "copy_file", pfs.CopyFile().parse(bytes(value))
    return kind, body


# -- FileInfo (ListFile, WalkFile, GlobFile, DiffFile) --------------------------------------------
_SMALL_VARINTS = [varint(n) for n in range(1 << 14)]  # lengths and sizes are mostly below 16 KiB


class FileInfoEncoder:
    """Encodes pfs.FileInfo for many entries of one commit; the commit part is encoded once, and the
    per-entry work is a few concatenations (a 100,000-entry walk spends its time sending, not here)."""

    def __init__(self, commit: pfs.Commit, committed: Optional[float]):
        self.commit = field_bytes(1, bytes(commit))
        self.committed = field_bytes(3, timestamp(committed)) if committed else b""
        self._file_tail = (b"\x10\x01" + self.committed, b"\x10\x02" + self.committed)  # file_type FILE, DIR

    def encode(self, path: str, is_dir: bool, size: int, digest: str = "") -> bytes:
        small = _SMALL_VARINTS
        raw = path.encode()
        n = len(raw)
        inner = self.commit + b"\x12" + (small[n] if n < 16384 else varint(n)) + raw
        n = len(inner)
        out = b"\x0a" + (small[n] if n < 16384 else varint(n)) + inner + self._file_tail[1 if is_dir else 0]
        if size:
            out += b"\x20" + (small[size] if size < 16384 else varint(size))
        if digest:
            h = bytes.fromhex(digest)
            out += b"\x2a" + small[len(h)] + h
        return out


def file_info(buf: bytes) -> Tuple[str, bool, int]:
    """pfs.FileInfo bytes -> (path, is_dir, size_bytes); the rest is skipped."""
    path, ftype, size = "", 0, 0
    for num, wire, value in fields(buf):
        if num == 1 and wire == 2:
            for n2, w2, v2 in fields(value):
                if n2 == 2 and w2 == 2:
                    path = bytes(v2).decode()
        elif num == 2 and wire == 0:
            ftype = value
        elif num == 4 and wire == 0:
            size = value
    return path, ftype == FILE_TYPE_DIR, size


def diff_entry(buf: bytes) -> Tuple[Optional[Tuple[str, bool, int]], Optional[Tuple[str, bool, int]]]:
    """pfs.DiffFileResponse bytes -> (new_file, old_file), each file_info() or None when absent."""
    new = old = None
    for num, wire, value in fields(buf):
        if num == 1 and wire == 2:
            new = file_info(value)
        elif num == 2 and wire == 2:
            old = file_info(value)
    return (new if new and new[0] else None), (old if old and old[0] else None)


# -- CommitInfo (ListCommit of a long history: the Versions page lists 1,000 of them) ------------
class CommitInfoEncoder:
    """Encodes pfs.CommitInfo for the commits of one repo; the repo part is encoded once."""

    def __init__(self, repo: pfs.Repo):
        self.repo = field_bytes(3, bytes(repo))  # Commit.repo

    def commit(self, commit_id: str) -> bytes:
        """pfs.Commit{repo, id} (pachd answers commits with `branch` cleared)."""
        return self.repo + field_bytes(2, commit_id.encode())

    def encode(
        self,
        commit_id: str,
        origin: int,
        description: str,
        started: Optional[float],
        finishing: Optional[float],
        finished: Optional[float],
        error: str,
        size: int,
        parent: Optional[str],
        children: list,
        provenance: list,
    ) -> bytes:
        """`provenance`: [(pfs.Repo, commit id)]; the fields and numbers of the SDK's CommitInfo."""
        out = [field_bytes(1, self.commit(commit_id)), field_bytes(2, field_varint(1, origin))]
        if description:
            out.append(field_bytes(3, description.encode()))
        if parent:
            out.append(field_bytes(4, self.commit(parent)))
        out.extend(field_bytes(5, self.commit(k)) for k in children)
        for num, when in ((6, started), (7, finishing), (8, finished)):
            if when:
                out.append(field_bytes(num, timestamp(when)))
        if error:
            out.append(field_bytes(10, error.encode()))
        out.append(field_varint(11, size))
        out.append(field_bytes(12, field_varint(1, size)))  # details.size_bytes
        out.extend(field_bytes(13, field_bytes(3, bytes(r)) + field_bytes(2, k.encode())) for r, k in provenance)
        if started:
            out.append(field_bytes(17, timestamp(started)))  # created_at
        return b"".join(out)


def _seconds(raw) -> Optional[float]:
    seconds = nanos = 0
    for num, wire, value in fields(raw):
        if num == 1 and wire == 0:
            seconds = value
        elif num == 2 and wire == 0:
            nanos = value
    return seconds + nanos / 1e9 if seconds or nanos else None


def commit_summary(buf: bytes) -> Tuple[str, str, Optional[float], Optional[float]]:
    """pfs.CommitInfo bytes -> (commit id, description, started, finished as Unix times or None)."""
    commit_id, description, started, finished = "", "", None, None
    for num, wire, value in fields(buf):
        if wire != 2:
            continue
        if num == 1:
            for n2, w2, v2 in fields(value):
                if n2 == 2 and w2 == 2:
                    commit_id = bytes(v2).decode()
        elif num == 3:
            description = bytes(value).decode()
        elif num == 6:
            started = _seconds(value)
        elif num == 8:
            finished = _seconds(value)
    return commit_id, description, started, finished
