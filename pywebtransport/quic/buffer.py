"""A FIFO of received byte chunks that hands out exactly as many bytes as asked."""

from __future__ import annotations

from collections import deque


class ChunkBuffer:
    """Received chunks kept as they arrived; :meth:`take` copies only what it returns.

    A partly read chunk stays whole with an offset into it (``_head``): reading a
    large chunk in small pieces copies each byte once, not the remainder again
    on every read.  The deque (760 bytes even when empty) is made on the first
    append and dropped whenever the buffer empties: most buffers (streams read
    through a push receiver, e.g. HTTP/3 control and QPACK streams) hold bytes
    only for a moment, and idle streams then cost no deque.
    """

    __slots__ = ("_chunks", "_head", "size")

    def __init__(self) -> None:
        self._chunks: deque[bytes] | None = None
        self._head = 0  # bytes of _chunks[0] already taken
        self.size = 0

    def __bool__(self) -> bool:
        return self.size > 0

    def append(self, data: bytes) -> None:
        if data:
            chunks = self._chunks
            if chunks is None:
                chunks = self._chunks = deque()
            chunks.append(data)
            self.size += len(data)

    def take(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes from the front (everything when ``n < 0``)."""
        chunks = self._chunks
        if not chunks or n == 0:  # None (nothing ever appended) or empty
            return b""
        head = self._head
        first = chunks[0]
        if n < 0 or n >= self.size:
            if len(chunks) == 1:
                data = first[head:] if head else first
            elif head:
                rest: list[bytes | memoryview] = [memoryview(first)[head:]]
                rest.extend(list(chunks)[1:])
                data = b"".join(rest)
            else:
                data = b"".join(chunks)
            self._chunks = None  # emptied: a finished stream keeps no deque
            self._head = 0
            self.size = 0
            return data
        avail = len(first) - head
        if n < avail:
            data = first[head : head + n]
            self._head = head + n
        elif n == avail:
            data = first[head:] if head else first
            chunks.popleft()
            self._head = 0
        else:
            parts: list[bytes | memoryview] = [memoryview(first)[head:] if head else first]
            chunks.popleft()
            self._head = 0
            need = n - avail
            while need:
                chunk = chunks[0]
                if len(chunk) <= need:
                    parts.append(chunks.popleft())
                    need -= len(chunk)
                else:
                    parts.append(memoryview(chunk)[:need])
                    self._head = need
                    need = 0
            data = b"".join(parts)
        self.size -= len(data)
        if not self.size:
            self._chunks = None
        return data

    def find(self, separator: bytes) -> int:
        """Index just past the first ``separator``, or -1."""
        chunks = self._chunks
        if chunks is not None and (self._head or len(chunks) > 1):
            joined = self.take()
            self.append(joined)
        else:
            joined = chunks[0] if chunks else b""
        idx = joined.find(separator)
        return -1 if idx < 0 else idx + len(separator)
