"""The datum launcher's frames: a 4-byte big-endian length, then a JSON object; descriptors ride
on a frame's first bytes (SCM_RIGHTS). Shared by the launcher, its slots and the server's client."""

from __future__ import annotations

import json
import os
import socket
import struct
from typing import Optional

MAX_FRAME = 1 << 20


def send_frame(sock: socket.socket, message: dict, fds=()) -> None:
    data = json.dumps(message).encode()
    frame = struct.pack(">I", len(data)) + data
    if fds:
        sent = socket.send_fds(sock, [frame], list(fds))
        frame = frame[sent:]
    if frame:
        sock.sendall(frame)


class FrameReader:
    """Frames from a stream of bytes and descriptors, as they come."""

    def __init__(self):
        self.buf = b""
        self.fds: list[int] = []

    def feed(self, data: bytes, fds=()) -> None:
        self.buf += data
        self.fds += list(fds)

    def next(self) -> Optional[dict]:
        if len(self.buf) < 4:
            return None
        (size,) = struct.unpack(">I", self.buf[:4])
        if size > MAX_FRAME:
            raise ValueError(f"a frame of {size} bytes (at most {MAX_FRAME})")
        if len(self.buf) < 4 + size:
            return None
        data, self.buf = self.buf[4 : 4 + size], self.buf[4 + size :]
        message = json.loads(data)
        if not isinstance(message, dict):
            raise ValueError("a frame must hold a JSON object")
        return message

    def receive(self, sock: socket.socket) -> bool:
        """Feeds what one read of `sock` brings, bytes and descriptors; False once the peer is gone
        (descriptors that came with nothing are closed)."""
        try:
            data, fds, _, _ = socket.recv_fds(sock, 65536, 8)
        except OSError:
            data, fds = b"", []
        if not data:
            for fd in fds:
                os.close(fd)
            return False
        self.feed(data, fds)
        return True

    def take_fds(self) -> list[int]:
        fds, self.fds = self.fds, []
        return fds

    def close_fds(self) -> None:
        for fd in self.take_fds():
            os.close(fd)


def recv_frame(sock: socket.socket, reader: Optional[FrameReader] = None) -> Optional[dict]:
    """Blocks for the next frame; None at EOF."""
    reader = reader or FrameReader()
    while True:
        message = reader.next()
        if message is not None:
            return message
        data = sock.recv(65536)
        if not data:
            return None
        reader.feed(data)
