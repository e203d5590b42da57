"""HTTP/3 SETTINGS (RFC 9114 §7.2.4): identifiers, codec, validation, local set."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import IntEnum
from typing import Mapping

from .errors import FrameError, SettingsError
from .varint import BytesLike, Buffer, encode_varint

__all__ = [
    "PeerSettings",
    "Setting",
    "decode_settings",
    "encode_settings",
    "local_settings",
]


class Setting(IntEnum):
    QPACK_MAX_TABLE_CAPACITY = 0x01
    MAX_FIELD_SECTION_SIZE = 0x06
    QPACK_BLOCKED_STREAMS = 0x07
    # RFC 9220
    ENABLE_CONNECT_PROTOCOL = 0x08
    # RFC 9297, and the draft-04 codepoint Chromium also sends
    H3_DATAGRAM = 0x33
    H3_DATAGRAM_DRAFT04 = 0xFFD277
    # draft-ietf-webtrans-http3-02 / -03
    ENABLE_WEBTRANSPORT_DRAFT02 = 0x2B603742
    # draft-07 .. -12
    WEBTRANSPORT_MAX_SESSIONS_DRAFT07 = 0xC671706A
    # draft-13 / -14 (webtransport-go still sends it for Safari)
    WT_MAX_SESSIONS = 0x14E9CD29
    # draft-15 / -16
    WT_ENABLED = 0x2C7CF000
    # WebTransport flow control, draft-12 onwards
    WT_INITIAL_MAX_DATA = 0x2B61
    WT_INITIAL_MAX_STREAMS_UNI = 0x2B64
    WT_INITIAL_MAX_STREAMS_BIDI = 0x2B65


# Identifiers reserved because they were HTTP/2 settings (RFC 9114 §7.2.4.1, §11.2.2).
_RESERVED_HTTP2_IDS = frozenset((0x0, 0x2, 0x3, 0x4, 0x5))

# Settings whose value is a boolean on the wire.
_BOOLEAN_IDS = frozenset(
    (
        Setting.ENABLE_CONNECT_PROTOCOL,
        Setting.H3_DATAGRAM,
        Setting.H3_DATAGRAM_DRAFT04,
        Setting.ENABLE_WEBTRANSPORT_DRAFT02,
        Setting.WT_ENABLED,
    )
)

_FLOW_CONTROL_IDS = (
    Setting.WT_INITIAL_MAX_DATA,
    Setting.WT_INITIAL_MAX_STREAMS_UNI,
    Setting.WT_INITIAL_MAX_STREAMS_BIDI,
)


def encode_settings(settings: Mapping[int, int]) -> bytes:
    """Serialize a SETTINGS frame payload."""
    return b"".join(encode_varint(k) + encode_varint(v) for k, v in settings.items())


def decode_settings(payload: BytesLike) -> dict[int, int]:
    """Parse and validate a SETTINGS frame payload."""
    if len(payload) <= 256:  # peers send the same SETTINGS on every connection
        return dict(_decode_settings_cached(bytes(payload)))
    return _decode_settings(payload)


def _decode_settings_items(payload: bytes) -> tuple[tuple[int, int], ...]:
    return tuple(_decode_settings(payload).items())


# Bounded in entries and bytes; only payloads that parsed are kept.
_decode_settings_cached = functools.lru_cache(maxsize=32)(_decode_settings_items)


def _decode_settings(payload: BytesLike) -> dict[int, int]:
    buf = Buffer(payload, FrameError)
    settings: dict[int, int] = {}
    while not buf.eof():
        identifier = buf.pull_varint()
        value = buf.pull_varint()
        if identifier in _RESERVED_HTTP2_IDS:
            raise SettingsError(f"HTTP/2 setting {identifier:#x} is not allowed")
        if identifier in settings:
            raise SettingsError(f"duplicate setting {identifier:#x}")
        if identifier in _BOOLEAN_IDS and value > 1:
            raise SettingsError(f"setting {identifier:#x} must be 0 or 1, got {value}")
        settings[identifier] = value
    return settings


def local_settings(
    *,
    max_field_section_size: int,
    enable_datagrams: bool = True,
    max_sessions: int = 1,
    initial_max_data: int = 0,
    initial_max_streams_bidi: int = 0,
    initial_max_streams_uni: int = 0,
) -> dict[int, int]:
    """The one SETTINGS set we send, as a client or as a server.

    It speaks draft-02 (Chromium, aioquic, wtransport) and draft-13..16
    (webtransport-go, Safari) at once.  The draft-07 setting 0xc671706a is left
    out on purpose: a peer offering draft-07 would pick it over draft-02.
    Flow-control settings are sent only when configured non-zero, because a
    non-zero value is what turns WebTransport flow control on.
    """
    settings: dict[int, int] = {
        Setting.QPACK_MAX_TABLE_CAPACITY: 0,
        Setting.QPACK_BLOCKED_STREAMS: 0,
        Setting.MAX_FIELD_SECTION_SIZE: max_field_section_size,
        Setting.ENABLE_CONNECT_PROTOCOL: 1,
    }
    if enable_datagrams:
        settings[Setting.H3_DATAGRAM] = 1
    settings[Setting.ENABLE_WEBTRANSPORT_DRAFT02] = 1
    settings[Setting.WT_ENABLED] = 1
    settings[Setting.WT_MAX_SESSIONS] = max(1, max_sessions)
    for identifier, value in zip(
        _FLOW_CONTROL_IDS, (initial_max_data, initial_max_streams_uni, initial_max_streams_bidi)
    ):
        if value:
            settings[identifier] = value
    return settings


@dataclass(frozen=True, slots=True)
class PeerSettings:
    """What a peer's SETTINGS tell us, in WebTransport terms."""

    raw: Mapping[int, int]

    @property
    def max_field_section_size(self) -> int | None:
        return self.raw.get(Setting.MAX_FIELD_SECTION_SIZE)

    @property
    def h3_datagram(self) -> bool:
        return self.raw.get(Setting.H3_DATAGRAM) == 1 or self.raw.get(Setting.H3_DATAGRAM_DRAFT04) == 1

    @property
    def extended_connect(self) -> bool:
        return self.raw.get(Setting.ENABLE_CONNECT_PROTOCOL) == 1

    @property
    def webtransport_draft02(self) -> bool:
        return self.raw.get(Setting.ENABLE_WEBTRANSPORT_DRAFT02) == 1

    @property
    def webtransport_h3(self) -> bool:
        """The peer speaks draft-15+ (``:protocol webtransport-h3``)."""
        return self.raw.get(Setting.WT_ENABLED) == 1

    @property
    def supports_webtransport(self) -> bool:
        return (
            self.webtransport_draft02
            or self.webtransport_h3
            or self.raw.get(Setting.WT_MAX_SESSIONS, 0) > 0
            or self.raw.get(Setting.WEBTRANSPORT_MAX_SESSIONS_DRAFT07, 0) > 0
        )

    @property
    def max_sessions(self) -> int:
        """Concurrent sessions the peer announced (1 when it did not say)."""
        announced = max(
            self.raw.get(Setting.WT_MAX_SESSIONS, 0),
            self.raw.get(Setting.WEBTRANSPORT_MAX_SESSIONS_DRAFT07, 0),
        )
        return announced or 1

    @property
    def flow_control(self) -> bool:
        """The peer sent a non-zero WebTransport flow-control setting."""
        return any(self.raw.get(i, 0) for i in _FLOW_CONTROL_IDS)

    @property
    def initial_max_data(self) -> int:
        return self.raw.get(Setting.WT_INITIAL_MAX_DATA, 0)

    @property
    def initial_max_streams_bidi(self) -> int:
        return self.raw.get(Setting.WT_INITIAL_MAX_STREAMS_BIDI, 0)

    @property
    def initial_max_streams_uni(self) -> int:
        return self.raw.get(Setting.WT_INITIAL_MAX_STREAMS_UNI, 0)
