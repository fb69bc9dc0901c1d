"""Length-prefixed frames over a stream socket between the executor and its workers.

Kept to ``socket`` and ``struct`` so a worker's cold start pays for nothing else.
"""

from __future__ import annotations

import select
import socket
import struct

_HEADER = struct.Struct("!I")


def send_frame(sock: socket.socket, data: bytes) -> None:
    sock.sendall(_HEADER.pack(len(data)) + data)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise EOFError("peer closed the socket")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket) -> bytes:
    """One whole frame; raises EOFError when the peer is gone."""
    (size,) = _HEADER.unpack(_recv_exactly(sock, _HEADER.size))
    return _recv_exactly(sock, size)


def readable(sock: socket.socket, timeout: float) -> bool:
    """True when a frame (or EOF) is waiting, False after ``timeout`` seconds."""
    ready, _, _ = select.select([sock], [], [], max(timeout, 0.0))
    return bool(ready)
