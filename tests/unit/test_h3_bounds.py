"""Per-peer bounds of the sans-IO core: each limit set by an H3Config field holds.

A peer exceeding a protocol limit gets the protocol's error code; what it makes
us hold stays within the configured bound (``H3Connection.resource_usage()``).
docs/limits.md lists these bounds.
"""

from __future__ import annotations

import pytest
from h3_pair import make_pair

from pywebtransport.h3 import H3Config, H3Connection
from pywebtransport.h3.capsules import encode_capsule
from pywebtransport.h3.errors import ErrorCode, H3Error
from pywebtransport.h3.events import (
    DatagramReceived,
    SessionAborted,
    StreamResetRequested,
    StreamStopRequested,
    WebTransportSessionRequested,
    WebTransportStreamDataReceived,
    WebTransportStreamOpened,
)
from pywebtransport.h3.frames import FrameType, encode_data_frame_header, encode_frame
from pywebtransport.h3.qpack import encode_field_section
from pywebtransport.h3.settings import Setting, encode_settings
from pywebtransport.h3.varint import encode_varint

WT_REQUEST = [
    (b":method", b"CONNECT"),
    (b":scheme", b"https"),
    (b":authority", b"localhost"),
    (b":path", b"/wt"),
    (b":protocol", b"webtransport"),
]


def server(config: H3Config | None = None, **client_settings: int) -> H3Connection:
    settings = {Setting.H3_DATAGRAM: 1, Setting.ENABLE_WEBTRANSPORT_DRAFT02: 1}
    settings.update({int(Setting[k]): v for k, v in client_settings.items()})
    conn = H3Connection(False, config)
    conn.receive_stream_data(2, b"\x00" + encode_frame(FrameType.SETTINGS, encode_settings(settings)))
    return conn


def request(conn: H3Connection, stream_id: int, headers: list[tuple[bytes, bytes]] = WT_REQUEST) -> list[object]:
    return list(conn.receive_stream_data(stream_id, encode_frame(FrameType.HEADERS, encode_field_section(headers))))


def uni(session_id: int) -> bytes:
    return encode_varint(0x54) + encode_varint(session_id)


# ------------------------------------------------------ QPACK instruction streams


@pytest.mark.parametrize(
    ("stream_type", "first", "code"),
    [
        (b"\x02", b"\x3f", ErrorCode.QPACK_ENCODER_STREAM_ERROR),
        (b"\x03", b"\x7f", ErrorCode.QPACK_DECODER_STREAM_ERROR),
    ],
)
def test_unfinished_qpack_integer_closes_the_connection(stream_type: bytes, first: bytes, code: int) -> None:
    conn = server()
    with pytest.raises(H3Error) as info:
        conn.receive_stream_data(6, stream_type + first)
        for _ in range(64):
            conn.receive_stream_data(6, b"\x80")
    assert info.value.code == code
    assert conn.receive_stream_data(6, b"\x80" * 1000) == []  # dead: input ignored


# ---------------------------------------------- early-buffered streams/datagrams


def test_early_streams_bounded_by_count() -> None:
    conn = server(H3Config(max_buffered_streams=3))
    request(conn, 0)  # session 0 requested, not accepted yet
    refused = []
    for i in range(10):
        stream_id = 2 + 4 * (i + 2)  # client uni streams 10, 14, ...
        events = conn.receive_stream_data(stream_id, uni(0) + b"x" * 10)
        refused += [e for e in events if isinstance(e, StreamStopRequested)]
    assert conn.resource_usage()["early_streams"] == 3
    assert len(refused) == 7
    assert {e.error_code for e in refused} == {ErrorCode.WT_BUFFERED_STREAM_REJECTED}
    conn.accept_session(0)
    opened = [e for e in conn.pop_events() if isinstance(e, WebTransportStreamOpened)]
    assert len(opened) == 3
    assert conn.resource_usage()["early_streams"] == 0


def test_early_stream_bytes_bounded_per_stream() -> None:
    conn = server(H3Config(max_buffered_stream_bytes=100))
    request(conn, 0)
    events = conn.receive_stream_data(4, b"\x40\x41\x00" + b"a" * 60)  # bidi WT stream
    assert events == [] and conn.resource_usage()["early_stream_bytes"] == 60
    events = conn.receive_stream_data(4, b"a" * 60)
    assert events == [
        StreamStopRequested(4, ErrorCode.WT_BUFFERED_STREAM_REJECTED),
        StreamResetRequested(4, ErrorCode.WT_BUFFERED_STREAM_REJECTED),
    ]
    assert conn.resource_usage()["early_stream_bytes"] == 0
    assert conn.receive_stream_data(4, b"a" * 10_000) == []  # discarded, not held


def test_early_streams_for_unknown_sessions_are_bounded() -> None:
    # Streams naming sessions that were never requested count against the same bound.
    conn = server(H3Config(max_buffered_streams=2))
    for i in range(6):
        conn.receive_stream_data(2 + 4 * (i + 2), uni(4 * (i + 10)) + b"y")
    assert conn.resource_usage()["early_streams"] == 2


def test_early_datagrams_bounded() -> None:
    conn = server(H3Config(max_buffered_datagrams=5))
    request(conn, 0)
    for i in range(50):
        assert conn.receive_datagram(b"\x00" + bytes([i])) == []
    assert conn.resource_usage()["early_datagrams"] == 5
    conn.accept_session(0)
    datagrams = [e for e in conn.pop_events() if isinstance(e, DatagramReceived)]
    assert [d.data for d in datagrams] == [b"\x00", b"\x01", b"\x02", b"\x03", b"\x04"]
    assert conn.resource_usage()["early_datagrams"] == 0


def test_early_datagrams_for_unknown_sessions_bounded() -> None:
    conn = server(H3Config(max_buffered_datagrams=5))
    for i in range(1000):
        conn.receive_datagram(encode_varint(i) + b"unknown session")
    assert conn.resource_usage()["early_datagrams"] == 5


# ----------------------------------------------------------- sessions


def test_sessions_per_connection_default_is_one() -> None:
    conn = server()
    assert [type(e) for e in request(conn, 0)] == [WebTransportSessionRequested]
    assert request(conn, 4) == [
        StreamStopRequested(4, ErrorCode.H3_REQUEST_REJECTED),
        StreamResetRequested(4, ErrorCode.H3_REQUEST_REJECTED),
    ]
    assert conn.resource_usage()["live_sessions"] == 1


def test_sessions_per_connection_bounded_by_max_sessions() -> None:
    conn = server(H3Config(max_sessions=3), WT_MAX_SESSIONS=100)
    results = [request(conn, 4 * i) for i in range(8)]
    accepted = [r for r in results if r and isinstance(r[0], WebTransportSessionRequested)]
    assert len(accepted) == 3
    assert all(r[-1] == StreamResetRequested(r[-1].stream_id, ErrorCode.H3_REQUEST_REJECTED)
               for r in results[3:])  # type: ignore[attr-defined]
    assert conn.resource_usage()["live_sessions"] == 3


# ------------------------------------------------------- header sizes


def test_field_section_size_bounded() -> None:
    conn = server(H3Config(max_field_section_size=500))
    events = request(conn, 0, WT_REQUEST + [(b"x-big", b"v" * 600)])
    assert events == [
        StreamStopRequested(0, ErrorCode.H3_EXCESSIVE_LOAD),
        StreamResetRequested(0, ErrorCode.H3_EXCESSIVE_LOAD),
    ]
    assert conn.resource_usage()["live_sessions"] == 0
    assert [type(e) for e in request(conn, 4, WT_REQUEST + [(b"x-ok", b"v" * 200)])] == [WebTransportSessionRequested]
    assert conn.local_settings[Setting.MAX_FIELD_SECTION_SIZE] == 500


def test_headers_frame_payload_bounded() -> None:
    conn = server(H3Config(max_frame_payload_size=1000))
    with pytest.raises(H3Error) as info:
        # Only the frame header arrives: refused before any payload is buffered.
        conn.receive_stream_data(0, encode_varint(FrameType.HEADERS) + encode_varint(1001))
    assert info.value.code == ErrorCode.H3_EXCESSIVE_LOAD


def test_pending_request_bytes_before_settings_bounded() -> None:
    conn = H3Connection(False, H3Config(max_pending_request_bytes=200))
    frame = encode_frame(FrameType.HEADERS, encode_field_section(WT_REQUEST))
    assert conn.receive_stream_data(0, frame) == []
    assert conn.resource_usage()["pending_request_bytes"] == len(frame)
    events = conn.receive_stream_data(0, encode_data_frame_header(300) + b"z" * 300)
    assert StreamResetRequested(0, ErrorCode.H3_REQUEST_REJECTED) in events
    assert conn.resource_usage()["pending_request_bytes"] == 0


# ---------------------------------------------------------- capsules


def open_pair(config: H3Config) -> tuple[H3Connection, H3Connection]:
    pair = make_pair(client_config=config, server_config=config)
    pair.open_session()
    return pair.client, pair.server


def test_capsule_size_bounded() -> None:
    _, srv = open_pair(H3Config(max_capsule_size=100))
    # Only the capsule header and part of its value: refused as soon as the
    # announced length is seen, nothing buffered up to it.
    head = encode_varint(0x00) + encode_varint(101)
    events = srv.receive_stream_data(0, encode_data_frame_header(len(head) + 10) + head + b"d" * 10)
    assert SessionAborted(0, ErrorCode.H3_MESSAGE_ERROR) in events
    assert StreamResetRequested(0, ErrorCode.H3_MESSAGE_ERROR) in events


def test_capsule_at_the_limit_is_fine_and_unknown_ones_are_skipped_unbuffered() -> None:
    _, srv = open_pair(H3Config(max_capsule_size=100))
    ok = encode_capsule(0x00, b"d" * 100)
    events = srv.receive_stream_data(0, encode_data_frame_header(len(ok)) + ok)
    assert events == [DatagramReceived(0, b"d" * 100)]
    # A 1 MiB unknown capsule, streamed: skipped, never held.
    head = encode_varint(0x3F) + encode_varint(1 << 20)
    srv.receive_stream_data(0, encode_data_frame_header(len(head) + (1 << 20)) + head)
    for _ in range(16):
        assert srv.receive_stream_data(0, b"u" * (1 << 16)) == []
    events = srv.receive_stream_data(0, encode_data_frame_header(len(ok)) + ok)
    assert events == [DatagramReceived(0, b"d" * 100)]


def test_wt_stream_data_after_accept_is_not_held_by_the_core() -> None:
    # Once the session is usable, stream bytes go straight out as events.
    _, srv = open_pair(H3Config(max_buffered_stream_bytes=10))
    events = srv.receive_stream_data(14, uni(0) + b"q" * 1000)
    assert WebTransportStreamDataReceived(0, 14, b"q" * 1000, False) in events
    assert srv.resource_usage()["early_stream_bytes"] == 0
