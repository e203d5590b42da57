"""Per-stream state of the HTTP/3 core, shared by the request/control side and WebTransport."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Sequence

from .errors import H3UsageError, MessageError
from .frames import FrameParser
from .messages import validate_fields
from .qpack import DecoderStreamParser, EncoderStreamParser

__all__ = ["H3Config", "UniStreamType"]


class UniStreamType:
    CONTROL = 0x00
    PUSH = 0x01
    QPACK_ENCODER = 0x02
    QPACK_DECODER = 0x03
    WEBTRANSPORT = 0x54


@dataclass(frozen=True, slots=True)
class H3Config:
    """Knobs of the HTTP/3 core; defaults suit a browser-facing endpoint."""

    #: Largest decoded field section we accept; advertised as MAX_FIELD_SECTION_SIZE.
    max_field_section_size: int = 16384
    #: Largest payload of a non-DATA frame (HEADERS, SETTINGS, ...).
    max_frame_payload_size: int = 65536
    #: Largest known capsule on a CONNECT stream (unknown ones are skipped).
    max_capsule_size: int = 65536
    #: Send H3_DATAGRAM=1; only if the QUIC max_datagram_frame_size TP is sent too.
    enable_datagrams: bool = True
    #: Concurrent sessions we allow; >1 only takes effect if the peer agrees.
    max_sessions: int = 1
    #: WebTransport flow-control initial limits (0 = not sent, flow control off).
    initial_max_data: int = 0
    initial_max_streams_bidi: int = 0
    initial_max_streams_uni: int = 0
    #: Streams arriving before their session is usable that we hold on to.
    max_buffered_streams: int = 24
    #: Bytes held per buffered stream before it is rejected.
    max_buffered_stream_bytes: int = 65536
    #: Datagrams arriving before their session is usable that we hold on to.
    max_buffered_datagrams: int = 64
    #: Request bytes held per stream while waiting for the peer's SETTINGS.
    max_pending_request_bytes: int = 65536
    #: Closed session IDs remembered so late streams get WT_SESSION_GONE.
    closed_sessions_remembered: int = 16


class _Kind(Enum):
    UNKNOWN = 0
    CONTROL = 1
    QPACK_ENCODER = 2
    QPACK_DECODER = 3
    REQUEST = 4
    WEBTRANSPORT = 5
    IGNORED = 6
    LOCAL_CRITICAL = 7


class _Stream:
    __slots__ = (
        "stream_id",
        "kind",
        "prefix",
        "parser",
        "qpack",
        "session_id",
        "message_state",
        "pending",
        "pending_bytes",
        "buffered",
        "buffered_bytes",
        "buffered_fin",
        "announced",
        "settings_seen",
        "recv_done",
    )

    def __init__(self, stream_id: int, kind: _Kind = _Kind.UNKNOWN) -> None:
        self.stream_id = stream_id
        self.kind = kind
        self.prefix = bytearray()
        self.parser: FrameParser | None = None
        self.qpack: EncoderStreamParser | DecoderStreamParser | None = None
        self.session_id: int | None = None
        # Request streams: 0 = before headers, 1 = body, 2 = after trailers.
        self.message_state = 0
        # Request input held until the peer's SETTINGS arrive (server side); None while
        # nothing is held (most streams never hold anything: no list per stream).
        self.pending: list[tuple[bytes, bool]] | None = None
        self.pending_bytes = 0
        # WebTransport payload held until the session is usable (None: nothing held).
        self.buffered: list[bytes] | None = None
        self.buffered_bytes = 0
        self.buffered_fin = False
        self.announced = False
        self.settings_seen = False
        self.recv_done = False


def _is_uni(stream_id: int) -> bool:
    return bool(stream_id & 0x2)


def _is_client_initiated(stream_id: int) -> bool:
    return not stream_id & 0x1


def _validate_local_fields(headers: Sequence[tuple[bytes, bytes]], allowed_pseudo: frozenset[bytes]) -> None:
    try:
        validate_fields(headers, allowed_pseudo)
    except MessageError as exc:
        raise H3UsageError(exc.message) from None
