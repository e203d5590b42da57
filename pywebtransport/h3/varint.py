"""QUIC variable-length integers (RFC 9000 §16) and a bounds-checked reader."""

from __future__ import annotations

from typing import Callable, Union

from .errors import FrameError, H3Error

__all__ = [
    "MAX_VARINT",
    "Buffer",
    "decode_varint",
    "encode_varint",
    "varint_size",
]

MAX_VARINT = (1 << 62) - 1

BytesLike = Union[bytes, bytearray, memoryview]


def varint_size(value: int) -> int:
    """Number of bytes :func:`encode_varint` uses for ``value``."""
    if value < 0:
        raise ValueError(f"varint out of range: {value}")
    if value < 0x40:
        return 1
    if value < 0x4000:
        return 2
    if value < 0x40000000:
        return 4
    if value <= MAX_VARINT:
        return 8
    raise ValueError(f"varint out of range: {value}")


def encode_varint(value: int) -> bytes:
    """Encode ``value`` in the shortest QUIC varint form."""
    if value < 0:
        raise ValueError(f"varint out of range: {value}")
    if value < 0x40:
        return bytes((value,))
    if value < 0x4000:
        return (value | 0x4000).to_bytes(2, "big")
    if value < 0x40000000:
        return (value | 0x80000000).to_bytes(4, "big")
    if value <= MAX_VARINT:
        return (value | 0xC000000000000000).to_bytes(8, "big")
    raise ValueError(f"varint out of range: {value}")


def decode_varint(data: BytesLike, offset: int = 0) -> tuple[int, int] | None:
    """Decode a varint at ``offset``; return ``(value, next_offset)``.

    Returns ``None`` when ``data`` ends before the varint does.
    """
    if offset >= len(data):
        return None
    first = data[offset]
    length = 1 << (first >> 6)
    end = offset + length
    if end > len(data):
        return None
    if length == 1:
        return first, end
    value = first & 0x3F
    for i in range(offset + 1, end):
        value = (value << 8) | data[i]
    return value, end


class Buffer:
    """Read-only cursor over a complete payload.

    Reading past the end raises ``error_class`` (an :class:`H3Error` subclass
    taking a message), so a truncated payload becomes the right protocol error.
    """

    __slots__ = ("_data", "_pos", "_error")

    def __init__(self, data: BytesLike, error_class: Callable[[str], H3Error] = FrameError) -> None:
        self._data = data
        self._pos = 0
        self._error = error_class

    @property
    def position(self) -> int:
        return self._pos

    def eof(self) -> bool:
        return self._pos >= len(self._data)

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def _truncated(self) -> H3Error:
        return self._error("truncated payload")

    def pull_varint(self) -> int:
        result = decode_varint(self._data, self._pos)
        if result is None:
            raise self._truncated()
        value, self._pos = result
        return value

    def pull_bytes(self, length: int) -> bytes:
        end = self._pos + length
        if length < 0 or end > len(self._data):
            raise self._truncated()
        value = bytes(self._data[self._pos : end])
        self._pos = end
        return value

    def pull_uint8(self) -> int:
        if self._pos >= len(self._data):
            raise self._truncated()
        value = self._data[self._pos]
        self._pos += 1
        return value

    def pull_uint32(self) -> int:
        return int.from_bytes(self.pull_bytes(4), "big")

    def pull_rest(self) -> bytes:
        value = bytes(self._data[self._pos :])
        self._pos = len(self._data)
        return value
