"""Reading HTTP/1.1 requests off a raw socket, for the tests' byte-level fake servers (what a client sent, exactly)."""

from __future__ import annotations

from typing import BinaryIO


def request_read(reader: BinaryIO) -> bytes | None:
    """The next request on a keep-alive connection, its head and its Content-Length body; None once the client closed
    it (nothing more to read)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = reader.readline()
        if not line:
            return None
        head += line
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (reader.read(length) if length else b"")
