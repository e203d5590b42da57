"""Capsules (RFC 9297 §3.2) used by WebTransport over HTTP/3.

The capsule stream is the body of the CONNECT stream, so it is read as a byte
stream that may be split across, or packed into, DATA frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Union

from .errors import H3UsageError, MessageError
from .varint import BytesLike, Buffer, decode_varint, encode_varint

__all__ = [
    "MAX_CLOSE_REASON_BYTES",
    "Capsule",
    "CapsuleParser",
    "CapsuleType",
    "CloseSessionCapsule",
    "DataBlockedCapsule",
    "DatagramCapsule",
    "DrainSessionCapsule",
    "MaxDataCapsule",
    "MaxStreamsCapsule",
    "StreamsBlockedCapsule",
    "encode_capsule",
    "encode_close_session",
    "encode_drain_session",
    "encode_max_data",
    "encode_max_streams",
    "truncate_utf8",
]

MAX_CLOSE_REASON_BYTES = 1024
_MAX_STREAMS_VALUE = 1 << 60


class CapsuleType(IntEnum):
    DATAGRAM = 0x00
    CLOSE_WEBTRANSPORT_SESSION = 0x2843
    DRAIN_WEBTRANSPORT_SESSION = 0x78AE
    WT_MAX_DATA = 0x190B4D3D
    WT_MAX_STREAM_DATA = 0x190B4D3E
    WT_MAX_STREAMS_BIDI = 0x190B4D3F
    WT_MAX_STREAMS_UNI = 0x190B4D40
    WT_DATA_BLOCKED = 0x190B4D41
    WT_STREAM_DATA_BLOCKED = 0x190B4D42
    WT_STREAMS_BLOCKED_BIDI = 0x190B4D43
    WT_STREAMS_BLOCKED_UNI = 0x190B4D44


@dataclass(frozen=True, slots=True)
class CloseSessionCapsule:
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class DrainSessionCapsule:
    pass


@dataclass(frozen=True, slots=True)
class DatagramCapsule:
    payload: bytes


@dataclass(frozen=True, slots=True)
class MaxDataCapsule:
    maximum: int


@dataclass(frozen=True, slots=True)
class MaxStreamsCapsule:
    bidi: bool
    maximum: int


@dataclass(frozen=True, slots=True)
class DataBlockedCapsule:
    limit: int


@dataclass(frozen=True, slots=True)
class StreamsBlockedCapsule:
    bidi: bool
    limit: int


Capsule = Union[
    CloseSessionCapsule,
    DrainSessionCapsule,
    DatagramCapsule,
    MaxDataCapsule,
    MaxStreamsCapsule,
    DataBlockedCapsule,
    StreamsBlockedCapsule,
]

_KNOWN_TYPES = frozenset(int(t) for t in CapsuleType)


def encode_capsule(capsule_type: int, value: BytesLike = b"") -> bytes:
    return encode_varint(capsule_type) + encode_varint(len(value)) + bytes(value)


def truncate_utf8(text: str, limit: int = MAX_CLOSE_REASON_BYTES) -> bytes:
    """UTF-8 encode ``text``, cut to ``limit`` bytes on a character boundary."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return raw
    return raw[:limit].decode("utf-8", errors="ignore").encode("utf-8")


def encode_close_session(code: int, reason: str = "") -> bytes:
    if not 0 <= code <= 0xFFFFFFFF:
        raise H3UsageError(f"session close code out of range: {code}")
    return encode_capsule(CapsuleType.CLOSE_WEBTRANSPORT_SESSION, code.to_bytes(4, "big") + truncate_utf8(reason))


def encode_drain_session() -> bytes:
    return encode_capsule(CapsuleType.DRAIN_WEBTRANSPORT_SESSION)


def encode_max_data(maximum: int) -> bytes:
    return encode_capsule(CapsuleType.WT_MAX_DATA, encode_varint(maximum))


def encode_max_streams(bidi: bool, maximum: int) -> bytes:
    if maximum > _MAX_STREAMS_VALUE:
        raise H3UsageError("stream limit above 2**60")
    kind = CapsuleType.WT_MAX_STREAMS_BIDI if bidi else CapsuleType.WT_MAX_STREAMS_UNI
    return encode_capsule(kind, encode_varint(maximum))


def encode_data_blocked(limit: int) -> bytes:
    return encode_capsule(CapsuleType.WT_DATA_BLOCKED, encode_varint(limit))


def encode_streams_blocked(bidi: bool, limit: int) -> bytes:
    kind = CapsuleType.WT_STREAMS_BLOCKED_BIDI if bidi else CapsuleType.WT_STREAMS_BLOCKED_UNI
    return encode_capsule(kind, encode_varint(limit))


def _decode_single_varint(value: bytes) -> int:
    buf = Buffer(value, MessageError)
    result = buf.pull_varint()
    if not buf.eof():
        raise MessageError("trailing bytes in capsule")
    return result


def _decode_stream_limit(value: bytes) -> int:
    limit = _decode_single_varint(value)
    if limit > _MAX_STREAMS_VALUE:
        raise MessageError("stream limit above 2**60")
    return limit


def decode_capsule(capsule_type: int, value: bytes) -> Capsule:
    """Decode the value of a known capsule type; malformed → H3_MESSAGE_ERROR."""
    if capsule_type == CapsuleType.CLOSE_WEBTRANSPORT_SESSION:
        if len(value) < 4:
            raise MessageError("CLOSE_WEBTRANSPORT_SESSION too short")
        if len(value) - 4 > MAX_CLOSE_REASON_BYTES:
            raise MessageError("close reason longer than 1024 bytes")
        try:
            reason = value[4:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MessageError("close reason is not UTF-8") from exc
        return CloseSessionCapsule(int.from_bytes(value[:4], "big"), reason)
    if capsule_type == CapsuleType.DRAIN_WEBTRANSPORT_SESSION:
        return DrainSessionCapsule()
    if capsule_type == CapsuleType.DATAGRAM:
        return DatagramCapsule(value)
    if capsule_type == CapsuleType.WT_MAX_DATA:
        return MaxDataCapsule(_decode_single_varint(value))
    if capsule_type == CapsuleType.WT_DATA_BLOCKED:
        return DataBlockedCapsule(_decode_single_varint(value))
    if capsule_type in (CapsuleType.WT_MAX_STREAMS_BIDI, CapsuleType.WT_MAX_STREAMS_UNI):
        return MaxStreamsCapsule(capsule_type == CapsuleType.WT_MAX_STREAMS_BIDI, _decode_stream_limit(value))
    if capsule_type in (CapsuleType.WT_STREAMS_BLOCKED_BIDI, CapsuleType.WT_STREAMS_BLOCKED_UNI):
        return StreamsBlockedCapsule(
            capsule_type == CapsuleType.WT_STREAMS_BLOCKED_BIDI, _decode_stream_limit(value)
        )
    # WT_MAX_STREAM_DATA / WT_STREAM_DATA_BLOCKED exist only for HTTP/2.
    raise MessageError(f"capsule type {capsule_type:#x} is not valid over HTTP/3")


class CapsuleParser:
    """Incremental capsule reader over the CONNECT stream's body bytes.

    Known capsules longer than ``max_capsule_size`` raise H3_MESSAGE_ERROR;
    unknown (including GREASE) capsules are skipped without being buffered.
    """

    __slots__ = ("_max_size", "_buffer", "_skip")

    def __init__(self, max_capsule_size: int = 65536) -> None:
        self._max_size = max_capsule_size
        self._buffer = bytearray()
        self._skip = 0

    @property
    def at_capsule_boundary(self) -> bool:
        return not self._buffer and not self._skip

    def feed(self, data: BytesLike) -> list[Capsule]:
        capsules: list[Capsule] = []
        if self._skip:
            take = min(self._skip, len(data))
            self._skip -= take
            data = memoryview(data)[take:]
        if not data:
            return capsules
        self._buffer += data
        buf = self._buffer
        pos = 0
        while pos < len(buf):
            head = decode_varint(buf, pos)
            if head is None:
                break
            length = decode_varint(buf, head[1])
            if length is None:
                break
            capsule_type, (size, start) = head[0], length
            if capsule_type not in _KNOWN_TYPES:
                available = len(buf) - start
                if size > available:
                    self._skip = size - available
                    pos = len(buf)
                    break
                pos = start + size
                continue
            if size > self._max_size:
                raise MessageError(f"capsule of {size} bytes exceeds limit")
            if start + size > len(buf):
                break
            capsules.append(decode_capsule(capsule_type, bytes(buf[start : start + size])))
            pos = start + size
        del buf[:pos]
        return capsules
