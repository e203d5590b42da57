"""HTTP/3 frame types (RFC 9114 §7.2), frame encoding and an incremental parser."""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

from .errors import ExcessiveLoadError, FrameError, FrameUnexpectedError
from .varint import BytesLike, decode_varint, encode_varint

__all__ = [
    "Frame",
    "FrameParser",
    "FrameType",
    "RESERVED_HTTP2_FRAME_TYPES",
    "encode_frame",
    "encode_data_frame_header",
    "decode_id_payload",
]


class FrameType(IntEnum):
    DATA = 0x0
    HEADERS = 0x1
    CANCEL_PUSH = 0x3
    SETTINGS = 0x4
    PUSH_PROMISE = 0x5
    GOAWAY = 0x7
    MAX_PUSH_ID = 0xD
    # draft-ietf-webtrans-http3: signal value opening a WebTransport bidi stream.
    WEBTRANSPORT_STREAM = 0x41


# HTTP/2 frame types with no HTTP/3 equivalent (RFC 9114 §7.2.8).
RESERVED_HTTP2_FRAME_TYPES = frozenset((0x2, 0x6, 0x8, 0x9))

_KNOWN_NON_DATA = frozenset(
    (
        FrameType.HEADERS,
        FrameType.CANCEL_PUSH,
        FrameType.SETTINGS,
        FrameType.PUSH_PROMISE,
        FrameType.GOAWAY,
        FrameType.MAX_PUSH_ID,
    )
)


class Frame(NamedTuple):
    """A parsed frame or, for DATA, one chunk of a DATA frame's payload.

    ``complete`` is False for DATA chunks that are not the end of their frame;
    it is always True for other frame types, whose payload is buffered whole.
    """

    type: int
    payload: bytes
    complete: bool = True


def encode_frame(frame_type: int, payload: BytesLike) -> bytes:
    """Serialize one frame."""
    return encode_varint(frame_type) + encode_varint(len(payload)) + bytes(payload)


def encode_data_frame_header(length: int) -> bytes:
    """The type and length prefix of a DATA frame carrying ``length`` bytes."""
    return b"\x00" + encode_varint(length)


def decode_id_payload(frame_type: int, payload: BytesLike) -> int:
    """The single varint making up a GOAWAY, MAX_PUSH_ID or CANCEL_PUSH payload.

    A truncated varint or any byte after it is H3_FRAME_ERROR (RFC 9114 §7.1:
    a frame's payload must contain exactly the fields its type defines).
    """
    parsed = decode_varint(payload, 0)
    if parsed is None:
        raise FrameError(f"frame type {frame_type:#x}: truncated identifier")
    value, end = parsed
    if end != len(payload):
        raise FrameError(f"frame type {frame_type:#x}: {len(payload) - end} bytes after the identifier")
    return value


def _decode_header(data: BytesLike, pos: int) -> tuple[int, int, int] | None:
    first = decode_varint(data, pos)
    if first is None:
        return None
    second = decode_varint(data, first[1])
    if second is None:
        return None
    return first[0], second[0], second[1]


class FrameParser:
    """Turn a byte stream into frames, accepting any split of the input.

    DATA payloads are handed out as they arrive (one :class:`Frame` per input
    chunk, ``complete`` marking the last); other known frames are buffered up to
    ``max_payload_size`` bytes (larger ones raise ``H3_EXCESSIVE_LOAD``).
    Unknown and GREASE frame types are skipped without buffering; the reserved
    HTTP/2 types and the WebTransport stream signal raise protocol errors.
    """

    __slots__ = ("_max_payload", "_header", "_type", "_remaining", "_payload", "_mode")

    # _mode values
    _HEADER = 0
    _DATA = 1
    _BUFFER = 2
    _SKIP = 3

    def __init__(self, max_payload_size: int = 65536) -> None:
        self._max_payload = max_payload_size
        self._header = bytearray()
        self._type = 0
        self._remaining = 0
        self._payload = bytearray()
        self._mode = self._HEADER

    @property
    def at_frame_boundary(self) -> bool:
        """True when no partial frame is pending (a FIN here is clean)."""
        return self._mode == self._HEADER and not self._header

    def feed(self, data: BytesLike) -> list[Frame]:
        """Consume ``data`` and return the frames (or DATA chunks) it completes."""
        frames: list[Frame] = []
        pos = 0
        end = len(data)
        while pos < end:
            mode = self._mode
            if mode == self._HEADER:
                pos = self._read_header(data, pos, frames)
            elif mode == self._DATA:
                take = min(self._remaining, end - pos)
                self._remaining -= take
                done = self._remaining == 0
                frames.append(Frame(FrameType.DATA, bytes(data[pos : pos + take]), done))
                pos += take
                if done:
                    self._mode = self._HEADER
            elif mode == self._BUFFER:
                take = min(self._remaining, end - pos)
                self._payload += data[pos : pos + take]
                self._remaining -= take
                pos += take
                if self._remaining == 0:
                    frames.append(Frame(self._type, bytes(self._payload)))
                    self._payload.clear()
                    self._mode = self._HEADER
            else:
                take = min(self._remaining, end - pos)
                self._remaining -= take
                pos += take
                if self._remaining == 0:
                    self._mode = self._HEADER
        return frames

    def _read_header(self, data: BytesLike, pos: int, frames: list[Frame]) -> int:
        if self._header:
            # Slow path: a header split across feeds; 16 bytes bound two varints.
            held = len(self._header)
            joined = bytes(self._header) + bytes(data[pos : pos + 16])
            parsed = _decode_header(joined, 0)
            if parsed is None:
                self._header += data[pos : pos + 16]
                return pos + min(16, len(data) - pos)
            frame_type, length, used = parsed
            self._header.clear()
            pos += used - held
        else:
            parsed = _decode_header(data, pos)
            if parsed is None:
                self._header += data[pos:]
                return len(data)
            frame_type, length, pos = parsed
        self._start_frame(frame_type, length, frames)
        return pos

    def _start_frame(self, frame_type: int, length: int, frames: list[Frame]) -> None:
        self._type = frame_type
        self._remaining = length
        if frame_type == FrameType.DATA:
            if length == 0:
                frames.append(Frame(FrameType.DATA, b"", True))
            else:
                self._mode = self._DATA
        elif frame_type in _KNOWN_NON_DATA:
            if length > self._max_payload:
                raise ExcessiveLoadError(f"frame type {frame_type:#x} payload of {length} bytes is too large")
            if length == 0:
                frames.append(Frame(frame_type, b""))
            else:
                self._mode = self._BUFFER
        elif frame_type in RESERVED_HTTP2_FRAME_TYPES:
            raise FrameUnexpectedError(f"reserved HTTP/2 frame type {frame_type:#x}")
        elif frame_type == FrameType.WEBTRANSPORT_STREAM:
            raise FrameError("WebTransport stream signal is only valid at the start of a stream")
        elif length:
            self._mode = self._SKIP
