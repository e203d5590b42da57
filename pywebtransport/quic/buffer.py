"""A FIFO of received byte chunks that hands out exactly as many bytes as asked."""

from __future__ import annotations

from collections import deque


class ChunkBuffer:
    """Received chunks kept as they arrived; :meth:`take` joins only what it returns.

    The deque (760 bytes even when empty) is made on the first append: most
    buffers (streams read through a push receiver, e.g. HTTP/3 control and
    QPACK streams) never hold a byte.
    """

    __slots__ = ("_chunks", "size")

    def __init__(self) -> None:
        self._chunks: deque[bytes] | None = None
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
        if chunks is None:
            return b""
        if n < 0 or n >= self.size:
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
        else:
            parts: list[bytes] = []
            need = n
            while need:
                chunk = chunks[0]
                if len(chunk) <= need:
                    parts.append(chunks.popleft())
                    need -= len(chunk)
                else:
                    parts.append(chunk[:need])
                    chunks[0] = chunk[need:]
                    need = 0
            data = b"".join(parts)
        self.size -= len(data)
        return data

    def find(self, separator: bytes) -> int:
        """Index just past the first ``separator``, or -1."""
        if self._chunks is None:
            return -1 if separator else 0
        joined = b"".join(self._chunks)
        if len(self._chunks) > 1:
            self._chunks.clear()
            self._chunks.append(joined)
        idx = joined.find(separator)
        return -1 if idx < 0 else idx + len(separator)
