"""Lean decoders for the two hot answers, FileInfo and BytesValue, read straight off the wire.

betterproto builds every nested message (File, Commit, Repo, Project, Branch, Timestamp) of each
FileInfo in pure Python, about a millisecond apiece on a busy machine: a 100,000-file listing
would spend minutes there. Listings need only path, type and size, so those three are read
directly from the protobuf bytes; everything else is skipped.
"""
from typing import Tuple

FILE_TYPE_DIR = 2


def _varint(buf: bytes, i: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def _skip(buf: bytes, i: int, wire_type: int) -> int:
    if wire_type == 0:
        return _varint(buf, i)[1]
    if wire_type == 1:
        return i + 8
    if wire_type == 2:
        n, i = _varint(buf, i)
        return i + n
    if wire_type == 5:
        return i + 4
    raise ValueError(f"unsupported protobuf wire type {wire_type}")


def _file_path(buf: bytes, i: int, end: int) -> str:
    """pfs.File: field 2 is the path."""
    while i < end:
        key, i = _varint(buf, i)
        if key == (2 << 3 | 2):
            n, i = _varint(buf, i)
            return buf[i:i + n].decode()
        i = _skip(buf, i, key & 7)
    return ""


def file_info(buf: bytes) -> Tuple[str, bool, int]:
    """pfs.FileInfo bytes -> (path, is_dir, size_bytes)."""
    path, ftype, size, i, end = "", 0, 0, 0, len(buf)
    while i < end:
        key, i = _varint(buf, i)
        field, wt = key >> 3, key & 7
        if field == 1 and wt == 2:
            n, i = _varint(buf, i)
            path = _file_path(buf, i, i + n)
            i += n
        elif field == 2 and wt == 0:
            ftype, i = _varint(buf, i)
        elif field == 4 and wt == 0:
            size, i = _varint(buf, i)
        else:
            i = _skip(buf, i, wt)
    return path, ftype == FILE_TYPE_DIR, size


def bytes_value(buf: bytes) -> bytes:
    """google.protobuf.BytesValue bytes -> its value (field 1), without copying twice."""
    i, end = 0, len(buf)
    while i < end:
        key, i = _varint(buf, i)
        if key == (1 << 3 | 2):
            n, i = _varint(buf, i)
            return buf[i:i + n]
        i = _skip(buf, i, key & 7)
    return b""


# -- encoding the upload: one ModifyFile of many small messages ---------------------------------
def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _uvarint(number << 3 | 2) + _uvarint(len(payload)) + payload


def add_file(path: str, data: bytes) -> bytes:
    """ModifyFileRequest{add_file: AddFile{path, raw: BytesValue(data)}} (data may be empty)."""
    raw = _field(1, data) if data else b""
    return _field(2, _field(1, path.encode()) + _field(3, raw))


def delete_file(path: str) -> bytes:
    """ModifyFileRequest{delete_file: DeleteFile{path}}."""
    return _field(3, _field(1, path.encode()))
