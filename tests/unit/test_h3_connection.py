"""H3Connection: two in-memory endpoints, WebTransport sessions, error paths."""

from __future__ import annotations

import pytest
from h3_pair import CLIENT_CONTROL, SERVER_CONTROL, Pair, feed, make_pair

from pywebtransport.h3 import H3Config, H3Connection
from pywebtransport.h3.capsules import encode_capsule, encode_close_session, encode_drain_session
from pywebtransport.h3.errors import (
    ClosedCriticalStreamError,
    DatagramError,
    ErrorCode,
    FrameError,
    FrameUnexpectedError,
    H3UsageError,
    IdError,
    MissingSettingsError,
    QpackDecoderStreamError,
    QpackEncoderStreamError,
    SettingsError,
    StreamCreationError,
    WebTransportFlowControlError,
    webtransport_code_to_http3,
)
from pywebtransport.h3.events import (
    DatagramReceived,
    DataReceived,
    GoawayReceived,
    HeadersReceived,
    SessionAborted,
    SessionCloseReceived,
    SessionDrainReceived,
    SessionFlowControlUpdated,
    SettingsReceived,
    StopSendingReceived,
    StreamResetReceived,
    StreamResetRequested,
    StreamStopRequested,
    WebTransportSessionEstablished,
    WebTransportSessionRejected,
    WebTransportSessionRequested,
    WebTransportStreamDataReceived,
    WebTransportStreamOpened,
)
from pywebtransport.h3.frames import FrameType, encode_data_frame_header, encode_frame
from pywebtransport.h3.qpack import encode_field_section
from pywebtransport.h3.session_state import SessionState
from pywebtransport.h3.settings import Setting, encode_settings
from pywebtransport.h3.varint import encode_varint

CHROMIUM_SETTINGS = {0x06: 16384, 0x07: 100, 0x33: 1, 0xFFD277: 1, 0x2B603742: 1, 0x1F * 99999 + 0x21: 7}


def control_stream(settings: dict[int, int], extra: bytes = b"") -> bytes:
    return b"\x00" + encode_frame(FrameType.SETTINGS, encode_settings(settings)) + extra


def data_frame(payload: bytes) -> bytes:
    return encode_data_frame_header(len(payload)) + payload


def headers_frame(headers: list[tuple[bytes, bytes]]) -> bytes:
    return encode_frame(FrameType.HEADERS, encode_field_section(headers))


WT_REQUEST = [
    (b":method", b"CONNECT"),
    (b":scheme", b"https"),
    (b":authority", b"localhost"),
    (b":path", b"/wt"),
    (b":protocol", b"webtransport"),
]


def server_with_client_settings(config: H3Config | None = None) -> H3Connection:
    server = H3Connection(False, config)
    server.receive_stream_data(2, control_stream(CHROMIUM_SETTINGS))
    return server


# ---------------------------------------------------------------- happy path


def test_local_stream_bytes() -> None:
    conn = H3Connection(False)
    data = conn.local_control_stream_data()
    assert data[0] == 0x00 and data[1] == FrameType.SETTINGS
    assert conn.local_qpack_encoder_stream_data() == b"\x02"
    assert conn.local_qpack_decoder_stream_data() == b"\x03"
    assert conn.local_settings[Setting.ENABLE_WEBTRANSPORT_DRAFT02] == 1


def test_settings_exchange() -> None:
    pair = make_pair()
    assert [type(e) for e in pair.server_events] == [SettingsReceived]
    assert [type(e) for e in pair.client_events] == [SettingsReceived]
    assert pair.client.peer_settings is not None and pair.client.peer_settings.webtransport_h3


@pytest.mark.parametrize("chop", [False, True])
def test_full_session(chop: bool) -> None:
    pair = make_pair(chop=chop)
    client, server = pair.client, pair.server
    request = client.connect_session(
        0, authority="example.com", path="/wt?a=1", origin="https://o", protocols=["p1", "p2"]
    )
    (requested,) = pair.to_server(0, request)
    assert isinstance(requested, WebTransportSessionRequested)
    assert requested.session_id == 0 and requested.protocol == "webtransport-h3"
    assert requested.available_protocols == ("p1", "p2")
    assert (b":path", b"/wt?a=1") in requested.headers and (b"origin", b"https://o") in requested.headers
    assert server.session_state(0) is SessionState.CONNECTING

    (established,) = pair.to_client(0, server.accept_session(0, protocol="p2"))
    assert established == WebTransportSessionEstablished(0, ((b":status", b"200"), (b"wt-protocol", b'"p2"')), "p2")
    assert client.session_state(0) is server.session_state(0) is SessionState.OPEN

    # Client-initiated bidi stream, both directions.
    events = pair.to_server(4, client.open_webtransport_stream(0, 4, bidi=True) + b"ping")
    assert events[0] == WebTransportStreamOpened(0, 4, True)
    assert b"".join(e.data for e in events[1:] if isinstance(e, WebTransportStreamDataReceived)) == b"ping"
    events = pair.to_client(4, b"pong", fin=True)
    assert b"".join(e.data for e in events if isinstance(e, WebTransportStreamDataReceived)) == b"pong"
    assert isinstance(events[-1], WebTransportStreamDataReceived) and events[-1].stream_ended

    # Server-initiated bidi and uni streams.
    events = pair.to_client(1, server.open_webtransport_stream(0, 1, bidi=True) + b"s-bidi")
    assert events[0] == WebTransportStreamOpened(0, 1, True)
    events = pair.to_server(1, b"reply", fin=True)
    assert events[-1] == WebTransportStreamDataReceived(0, 1, b"y" if chop else b"reply", True)
    events = pair.to_client(15, server.open_webtransport_stream(0, 15, bidi=False) + b"s-uni", fin=True)
    assert events[0] == WebTransportStreamOpened(0, 15, False)
    assert b"".join(e.data for e in events[1:] if isinstance(e, WebTransportStreamDataReceived)) == b"s-uni"

    # Client uni stream.
    events = pair.to_server(14, client.open_webtransport_stream(0, 14, bidi=False) + b"c-uni", fin=True)
    assert events[0] == WebTransportStreamOpened(0, 14, False)

    # Datagrams both ways.
    assert server.receive_datagram(client.encode_datagram(0, b"d1")) == [DatagramReceived(0, b"d1")]
    assert client.receive_datagram(server.encode_datagram(0, b"d2")) == [DatagramReceived(0, b"d2")]

    # Drain from the server, then close from the client.
    assert pair.to_client(0, server.drain_session_data(0)) == [SessionDrainReceived(0)]
    assert client.session_state(0) is SessionState.DRAINING
    events = pair.to_server(0, client.close_session_data(0, 7, "done"), fin=True)
    assert events == [SessionCloseReceived(0, 7, "done")]
    assert server.session_state(0) is client.session_state(0) is SessionState.CLOSED
    assert server.session_stream_ids(0) == [1, 4, 14, 15]
    assert client.session_stream_ids(0) == [1, 4, 14, 15]
    # The server's FIN in reply does not produce a second close event.
    assert pair.to_client(0, b"", fin=True) == []
    with pytest.raises(H3UsageError):
        client.encode_datagram(0, b"late")
    with pytest.raises(H3UsageError):
        client.close_session_data(0)


def test_close_from_server_and_fin_without_capsule() -> None:
    pair = make_pair()
    pair.open_session()
    assert pair.to_client(0, pair.server.close_session_data(0, 0xFFFFFFFF, "x" * 2000), fin=True) == [
        SessionCloseReceived(0, 0xFFFFFFFF, "x" * 1024)
    ]
    pair = make_pair()
    pair.open_session()
    assert pair.to_server(0, b"", fin=True) == [SessionCloseReceived(0, 0, "")]


def test_capsule_split_across_data_frames_and_grease() -> None:
    pair = make_pair()
    pair.open_session()
    capsules = encode_capsule(0x29 * 5 + 0x17, b"grease") + encode_close_session(9, "split")
    body = data_frame(capsules[:5]) + data_frame(capsules[5:11]) + data_frame(capsules[11:])
    assert pair.to_server(0, body) == [SessionCloseReceived(0, 9, "split")]


def test_data_after_close_capsule_is_message_error() -> None:
    pair = make_pair()
    pair.open_session()
    events = pair.to_server(0, data_frame(encode_close_session(1, "") + encode_drain_session()))
    assert events[0] == SessionCloseReceived(0, 1, "")
    assert StreamResetRequested(0, ErrorCode.H3_MESSAGE_ERROR) in events
    assert StreamStopRequested(0, ErrorCode.H3_MESSAGE_ERROR) in events


def test_datagram_capsule() -> None:
    pair = make_pair()
    pair.open_session()
    assert pair.to_server(0, data_frame(encode_capsule(0x00, b"cap"))) == [DatagramReceived(0, b"cap")]


# ---------------------------------------------------------------- drafts / peers


def test_client_uses_draft02_toward_chromium_like_server() -> None:
    client = H3Connection(True)
    client.receive_stream_data(3, control_stream(CHROMIUM_SETTINGS))
    server = server_with_client_settings()
    (requested,) = server.receive_stream_data(0, client.connect_session(0, authority="a", path="/"))
    assert isinstance(requested, WebTransportSessionRequested)
    assert requested.protocol == "webtransport"
    assert (b"sec-webtransport-http3-draft02", b"1") in requested.headers
    response = server.accept_session(0)
    (established,) = client.receive_stream_data(0, response)
    assert isinstance(established, WebTransportSessionEstablished)
    assert (b"sec-webtransport-http3-draft", b"draft02") in established.headers


def test_client_refuses_before_settings_or_without_webtransport() -> None:
    client = H3Connection(True)
    with pytest.raises(H3UsageError):
        client.connect_session(0, authority="a", path="/")
    client.receive_stream_data(3, control_stream({0x06: 100}))
    with pytest.raises(H3UsageError):
        client.connect_session(0, authority="a", path="/")


def test_server_waits_for_client_settings() -> None:
    server = H3Connection(False)
    assert server.receive_stream_data(0, headers_frame(WT_REQUEST)) == []
    events = server.receive_stream_data(2, control_stream(CHROMIUM_SETTINGS))
    assert [type(e) for e in events] == [SettingsReceived, WebTransportSessionRequested]


def test_server_buffer_bound_before_settings() -> None:
    server = H3Connection(False, H3Config(max_pending_request_bytes=10))
    events = server.receive_stream_data(0, headers_frame(WT_REQUEST))
    assert StreamResetRequested(0, ErrorCode.H3_REQUEST_REJECTED) in events


def test_reject_session() -> None:
    pair = make_pair()
    pair.to_server(0, pair.client.connect_session(0, authority="a", path="/nope"))
    response = pair.server.reject_session(0, 404)
    (rejected,) = pair.to_client(0, response, fin=True)
    assert rejected == WebTransportSessionRejected(0, 404, ((b":status", b"404"),))
    assert pair.client.session_state(0) is SessionState.CLOSED
    with pytest.raises(H3UsageError):
        pair.server.reject_session(0, 200)


def test_interim_response_ignored() -> None:
    pair = make_pair()
    pair.to_server(0, pair.client.connect_session(0, authority="a", path="/"))
    assert pair.to_client(0, headers_frame([(b":status", b"100")])) == []
    assert isinstance(pair.to_client(0, pair.server.accept_session(0))[0], WebTransportSessionEstablished)


def test_server_picks_unoffered_protocol() -> None:
    pair = make_pair()
    pair.to_server(0, pair.client.connect_session(0, authority="a", path="/", protocols=["a"]))
    with pytest.raises(H3UsageError):
        pair.server.accept_session(0, protocol="b")
    events = pair.to_client(0, headers_frame([(b":status", b"200"), (b"wt-protocol", b'"zzz"')]))
    assert isinstance(events[0], WebTransportSessionRejected)
    assert StreamResetRequested(0, ErrorCode.WT_ALPN_ERROR) in events


# ---------------------------------------------------------------- early arrivals


def test_server_streams_before_response_are_buffered_on_client() -> None:
    pair = make_pair()
    pair.to_server(0, pair.client.connect_session(0, authority="a", path="/"))
    response = pair.server.accept_session(0)
    prefix = pair.server.open_webtransport_stream(0, 3 + 12, bidi=False)
    assert pair.to_client(15, prefix + b"early", fin=True) == []
    assert pair.client.receive_datagram(pair.server.encode_datagram(0, b"dg")) == []
    assert pair.client.session_stream_ids(0) == [15]
    events = pair.to_client(0, response)
    assert [type(e) for e in events] == [
        WebTransportSessionEstablished,
        WebTransportStreamOpened,
        WebTransportStreamDataReceived,
        DatagramReceived,
    ]
    assert events[2] == WebTransportStreamDataReceived(0, 15, b"early", True)


def test_client_streams_before_accept_are_released_by_accept() -> None:
    server = server_with_client_settings()
    server.receive_stream_data(0, headers_frame(WT_REQUEST))
    prefix = H3Connection.webtransport_stream_prefix(0, bidi=True)
    assert server.receive_stream_data(4, prefix + b"a") == []
    assert server.receive_stream_data(4, b"b") == []
    assert server.receive_stream_data(6 + 4, H3Connection.webtransport_stream_prefix(0, False)) == []
    server.accept_session(0)
    events = server.pop_events()
    assert events == [
        WebTransportStreamOpened(0, 4, True),
        WebTransportStreamDataReceived(0, 4, b"ab", False),
        WebTransportStreamOpened(0, 10, False),
    ]
    assert server.pop_events() == []


def test_streams_before_connect_and_buffer_limit() -> None:
    server = server_with_client_settings(H3Config(max_buffered_streams=2, max_buffered_datagrams=1))
    prefix = H3Connection.webtransport_stream_prefix(0, bidi=True)
    assert server.receive_stream_data(4, prefix + b"x") == []
    assert server.receive_stream_data(8, prefix) == []
    assert server.receive_stream_data(12, prefix) == [
        StreamStopRequested(12, ErrorCode.WT_BUFFERED_STREAM_REJECTED),
        StreamResetRequested(12, ErrorCode.WT_BUFFERED_STREAM_REJECTED),
    ]
    assert server.receive_datagram(b"\x00one") == []
    assert server.receive_datagram(b"\x00two") == []  # dropped
    server.receive_stream_data(0, headers_frame(WT_REQUEST))
    server.accept_session(0)
    events = server.pop_events()
    assert [e for e in events if isinstance(e, WebTransportStreamOpened)] == [
        WebTransportStreamOpened(0, 4, True),
        WebTransportStreamOpened(0, 8, True),
    ]
    assert [e for e in events if isinstance(e, DatagramReceived)] == [DatagramReceived(0, b"one")]


def test_buffered_stream_byte_limit() -> None:
    server = server_with_client_settings(H3Config(max_buffered_stream_bytes=3))
    prefix = H3Connection.webtransport_stream_prefix(0, bidi=False)
    events = server.receive_stream_data(2 + 4, prefix + b"abcd")
    assert events == [StreamStopRequested(6, ErrorCode.WT_BUFFERED_STREAM_REJECTED)]


def test_rejected_session_refuses_its_buffered_streams() -> None:
    server = server_with_client_settings()
    server.receive_stream_data(0, headers_frame(WT_REQUEST))
    server.receive_stream_data(4, H3Connection.webtransport_stream_prefix(0, bidi=True))
    server.reject_session(0, 403)
    assert server.pop_events() == [
        StreamStopRequested(4, ErrorCode.WT_SESSION_GONE),
        StreamResetRequested(4, ErrorCode.WT_SESSION_GONE),
    ]
    # Late streams for the gone session are refused at once.
    assert server.receive_stream_data(8, H3Connection.webtransport_stream_prefix(0, bidi=True)) == [
        StreamStopRequested(8, ErrorCode.WT_SESSION_GONE),
        StreamResetRequested(8, ErrorCode.WT_SESSION_GONE),
    ]


def test_stream_for_closed_session() -> None:
    pair = make_pair()
    pair.open_session()
    pair.to_server(0, pair.client.close_session_data(0), fin=True)
    assert pair.to_server(4, H3Connection.webtransport_stream_prefix(0, True)) == [
        StreamStopRequested(4, ErrorCode.WT_SESSION_GONE),
        StreamResetRequested(4, ErrorCode.WT_SESSION_GONE),
    ]
    assert pair.server.receive_datagram(b"\x00late") == []


# ---------------------------------------------------------------- resets


def test_wt_stream_reset_and_stop_sending_map_codes() -> None:
    pair = make_pair()
    pair.open_session()
    pair.to_server(4, pair.client.open_webtransport_stream(0, 4, True) + b"x")
    code = webtransport_code_to_http3(77)
    assert pair.server.receive_stop_sending(4, code) == [StopSendingReceived(4, code, 0, 77)]
    assert pair.server.receive_stream_reset(4, code) == [StreamResetReceived(4, code, 0, 77)]
    assert pair.server.receive_stream_data(4, b"ignored") == []
    pair.to_server(8, pair.client.open_webtransport_stream(0, 8, True))
    assert pair.server.receive_stream_reset(8, ErrorCode.H3_CONNECT_ERROR) == [
        StreamResetReceived(8, ErrorCode.H3_CONNECT_ERROR, 0, None)
    ]
    pair.server.stream_closed(8)
    assert pair.server.session_stream_ids(0) == [4]


def test_connect_stream_reset_aborts_session() -> None:
    pair = make_pair()
    pair.open_session()
    assert pair.client.receive_stream_reset(0, ErrorCode.WT_SESSION_GONE) == [
        SessionAborted(0, ErrorCode.WT_SESSION_GONE)
    ]
    assert pair.client.session_state(0) is SessionState.CLOSED


def test_stop_sending_on_connect_stream_does_not_hide_the_close_capsule() -> None:
    # webtransport-go v0.11 sends STOP_SENDING(WT_SESSION_GONE) on the CONNECT stream
    # right before its CLOSE capsule and FIN; the capsule must still be delivered.
    pair = make_pair()
    pair.open_session()
    assert pair.server.receive_stop_sending(0, ErrorCode.WT_SESSION_GONE) == [
        StopSendingReceived(0, ErrorCode.WT_SESSION_GONE, 0, None)
    ]
    assert pair.server.session_state(0) is SessionState.OPEN
    events = pair.to_server(0, pair.client.close_session_data(0, 4711, "go client done"), fin=True)
    assert SessionCloseReceived(0, 4711, "go client done") in events


def test_reset_of_buffered_stream_forgets_it() -> None:
    server = server_with_client_settings()
    server.receive_stream_data(0, headers_frame(WT_REQUEST))
    server.receive_stream_data(4, H3Connection.webtransport_stream_prefix(0, True) + b"x")
    assert server.receive_stream_reset(4, 5) == []
    server.accept_session(0)
    assert server.pop_events() == []


def test_critical_streams() -> None:
    pair = make_pair()
    with pytest.raises(ClosedCriticalStreamError):
        pair.server.receive_stream_reset(CLIENT_CONTROL, 0)
    pair = make_pair()
    with pytest.raises(ClosedCriticalStreamError):
        pair.client.receive_stop_sending(CLIENT_CONTROL, 0)  # our own control stream
    pair = make_pair()
    with pytest.raises(ClosedCriticalStreamError):
        pair.client.receive_stream_data(SERVER_CONTROL, b"", fin=True)
    pair = make_pair()
    with pytest.raises(ClosedCriticalStreamError):
        pair.client.receive_stream_data(7, b"", fin=True)  # server QPACK encoder stream


# ---------------------------------------------------------------- control stream


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x00" + encode_frame(FrameType.GOAWAY, b"\x00"), MissingSettingsError),
        (control_stream({}, encode_frame(FrameType.SETTINGS, b"")), FrameUnexpectedError),
        (control_stream({}, encode_frame(FrameType.DATA, b"")), FrameUnexpectedError),
        (control_stream({}, encode_frame(FrameType.HEADERS, b"")), FrameUnexpectedError),
        (control_stream({}, encode_frame(0x2, b"")), FrameUnexpectedError),
        (control_stream({}, encode_frame(FrameType.MAX_PUSH_ID, b"\x00")), FrameUnexpectedError),
        (control_stream({}, encode_frame(FrameType.CANCEL_PUSH, b"\x00")), IdError),
        (control_stream({}, encode_frame(FrameType.GOAWAY, b"\x01")), IdError),
        (control_stream({}, encode_frame(FrameType.GOAWAY, b"")), FrameError),
        (b"\x00\x04\x02\x02\x00", SettingsError),
    ],
)
def test_control_stream_errors_on_client(data: bytes, error: type[Exception]) -> None:
    client = H3Connection(True)
    with pytest.raises(error):
        feed(client, 3, data, chop=True)
    # After a connection error all input is ignored.
    assert client.receive_stream_data(3, b"\x00") == []
    assert client.receive_datagram(b"") == []


def test_goaway_handling() -> None:
    client = H3Connection(True)
    events = client.receive_stream_data(
        3,
        control_stream(CHROMIUM_SETTINGS, encode_frame(0x21, b"grease") + encode_frame(FrameType.GOAWAY, b"\x08")),
    )
    assert events[-1] == GoawayReceived(8)
    assert client.goaway_received == 8
    with pytest.raises(H3UsageError):
        client.connect_session(8, authority="a", path="/")
    client.connect_session(4, authority="a", path="/")
    with pytest.raises(IdError):
        client.receive_stream_data(3, encode_frame(FrameType.GOAWAY, b"\x0c"))


def test_server_goaway_rejects_later_requests() -> None:
    pair = make_pair()
    pair.to_server(0, pair.client.connect_session(0, authority="a", path="/"))
    goaway = pair.server.send_goaway()
    assert goaway == encode_frame(FrameType.GOAWAY, b"\x04")
    assert pair.to_client(SERVER_CONTROL, goaway) == [GoawayReceived(4)]
    with pytest.raises(H3UsageError):
        pair.server.send_goaway(8)
    events = pair.server.receive_stream_data(4, headers_frame(WT_REQUEST))
    assert StreamResetRequested(4, ErrorCode.H3_REQUEST_REJECTED) in events
    assert pair.client.send_goaway() == encode_frame(FrameType.GOAWAY, b"\x00")


def test_server_accepts_client_max_push_id_and_cancel_push() -> None:
    server = H3Connection(False)
    server.receive_stream_data(
        2,
        control_stream({}, encode_frame(FrameType.MAX_PUSH_ID, b"\x05") + encode_frame(FrameType.CANCEL_PUSH, b"\x02")),
    )
    with pytest.raises(IdError):
        server.receive_stream_data(2, encode_frame(FrameType.MAX_PUSH_ID, b"\x01"))


def test_uni_stream_types() -> None:
    pair = make_pair()
    with pytest.raises(StreamCreationError):
        pair.server.receive_stream_data(14, control_stream({}))
    pair = make_pair()
    with pytest.raises(StreamCreationError):
        pair.server.receive_stream_data(14, b"\x02")
    pair = make_pair()
    with pytest.raises(StreamCreationError):
        pair.server.receive_stream_data(14, b"\x03")
    pair = make_pair()
    with pytest.raises(StreamCreationError):
        pair.server.receive_stream_data(14, b"\x01\x00")  # push from a client
    pair = make_pair()
    with pytest.raises(IdError):
        pair.client.receive_stream_data(15, b"\x01\x00")  # push without MAX_PUSH_ID
    pair = make_pair()
    unknown = encode_varint(0x1F * 3 + 0x21)
    assert pair.server.receive_stream_data(14, unknown + b"junk") == [
        StreamStopRequested(14, ErrorCode.H3_STREAM_CREATION_ERROR)
    ]
    assert pair.server.receive_stream_data(14, b"more", fin=True) == []


def test_qpack_stream_errors() -> None:
    pair = make_pair()
    with pytest.raises(QpackEncoderStreamError):
        pair.server.receive_stream_data(6, b"\xc0\x01")
    pair = make_pair()
    with pytest.raises(QpackDecoderStreamError):
        pair.server.receive_stream_data(10, b"\x80")
    pair = make_pair()
    assert pair.server.receive_stream_data(6, b"\x20") == []  # capacity 0 is fine


# ---------------------------------------------------------------- request streams


def test_plain_request_and_response() -> None:
    pair = make_pair()
    get = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"/")]
    events = pair.to_server(0, pair.client.send_headers(0, get) + pair.client.send_data(0, b"body"), fin=True)
    assert events == [
        HeadersReceived(0, tuple(get), False),
        DataReceived(0, b"body", False),
        DataReceived(0, b"", True),
    ]
    response = pair.server.send_headers(0, [(b":status", b"200")]) + pair.server.send_data(0, b"ok")
    trailers = pair.server.send_headers(0, [(b"x-trailer", b"1")], end_stream=True)
    events = pair.to_client(0, response + trailers, fin=True)
    assert events == [
        HeadersReceived(0, ((b":status", b"200"),), False),
        DataReceived(0, b"ok", False),
        HeadersReceived(0, ((b"x-trailer", b"1"),), False),
        DataReceived(0, b"", True),
    ]


@pytest.mark.parametrize(
    "headers",
    [
        [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b"X-Upper", b"1")],
        [(b":method", b"GET"), (b":path", b"/")],
        [(b":scheme", b"https"), (b":path", b"/")],
        [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b":method", b"GET")],
        [(b":method", b"GET"), (b"a", b"b"), (b":scheme", b"https"), (b":path", b"/")],
        [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b":status", b"200")],
        [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b"connection", b"close")],
        [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b"te", b"gzip")],
        [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b":protocol", b"webtransport")],
        [(b":method", b"CONNECT"), (b":protocol", b"webtransport"), (b":authority", b"a")],
        [(b":method", b"CONNECT"), (b":authority", b"a"), (b":path", b"/")],
    ],
)
def test_malformed_requests_are_stream_errors(headers: list[tuple[bytes, bytes]]) -> None:
    server = server_with_client_settings()
    events = server.receive_stream_data(0, headers_frame(headers))
    assert events == [
        StreamStopRequested(0, ErrorCode.H3_MESSAGE_ERROR),
        StreamResetRequested(0, ErrorCode.H3_MESSAGE_ERROR),
    ]
    assert server.receive_stream_data(0, b"anything", fin=True) == []


def test_field_section_too_large() -> None:
    server = server_with_client_settings(H3Config(max_field_section_size=200))
    events = server.receive_stream_data(0, headers_frame(WT_REQUEST + [(b"x-big", b"v" * 200)]))
    assert StreamResetRequested(0, ErrorCode.H3_EXCESSIVE_LOAD) in events


def test_request_stream_frame_errors() -> None:
    server = server_with_client_settings()
    with pytest.raises(FrameUnexpectedError):
        server.receive_stream_data(0, data_frame(b"x"))
    server = server_with_client_settings()
    with pytest.raises(FrameUnexpectedError):
        server.receive_stream_data(0, encode_frame(FrameType.SETTINGS, b""))
    server = server_with_client_settings()
    with pytest.raises(FrameError):
        server.receive_stream_data(0, headers_frame(WT_REQUEST)[:-1], fin=True)
    server = server_with_client_settings()
    with pytest.raises(FrameError):
        server.receive_stream_data(0, headers_frame(WT_REQUEST) + b"\x40\x41\x00")
    client = H3Connection(True)
    client.receive_stream_data(3, control_stream(CHROMIUM_SETTINGS))
    with pytest.raises(StreamCreationError):
        client.receive_stream_data(1, headers_frame([(b":status", b"200")]))
    with pytest.raises(H3UsageError):
        H3Connection(True).receive_stream_data(0, b"x")  # never registered


def test_empty_request_stream() -> None:
    server = server_with_client_settings()
    assert server.receive_stream_data(0, b"", fin=True) == [StreamResetRequested(0, ErrorCode.H3_REQUEST_INCOMPLETE)]


def test_invalid_session_id() -> None:
    pair = make_pair()
    with pytest.raises(IdError):
        pair.server.receive_stream_data(14, b"\x40\x54\x01")
    pair = make_pair()
    with pytest.raises(IdError):
        pair.client.receive_stream_data(1, b"\x40\x41\x02")


def test_malformed_datagram() -> None:
    pair = make_pair()
    with pytest.raises(DatagramError):
        pair.server.receive_datagram(b"\x40")


def test_push_promise_on_client_request_stream() -> None:
    pair = make_pair()
    pair.to_server(0, pair.client.connect_session(0, authority="a", path="/"))
    with pytest.raises(IdError):
        pair.client.receive_stream_data(0, encode_frame(FrameType.PUSH_PROMISE, b"\x00\x00\x00"))


# ---------------------------------------------------------------- sessions & flow control


def test_second_session_rejected_without_flow_control() -> None:
    pair = make_pair(server_config=H3Config(max_sessions=4), client_config=H3Config(max_sessions=4))
    # max_sessions > 1 on both sides allows several sessions...
    pair.open_session(0)
    pair.open_session(4)
    # ...but the default is one session per connection.
    pair = make_pair()
    pair.open_session(0)
    with pytest.raises(H3UsageError):
        pair.client.connect_session(4, authority="a", path="/")
    events = pair.server.receive_stream_data(4, headers_frame(WT_REQUEST))
    assert events == [
        StreamStopRequested(4, ErrorCode.H3_REQUEST_REJECTED),
        StreamResetRequested(4, ErrorCode.H3_REQUEST_REJECTED),
    ]


def test_flow_control() -> None:
    config = H3Config(initial_max_data=10, initial_max_streams_bidi=1, initial_max_streams_uni=0, max_sessions=2)
    pair = make_pair(client_config=config, server_config=config)
    assert pair.client.flow_control_enabled and pair.server.flow_control_enabled
    pair.open_session(0)
    pair.open_session(4)  # several sessions: flow control negotiated
    client, server = pair.client, pair.server
    assert client.can_open_stream(0, bidi=True) and not client.can_open_stream(0, bidi=False)
    assert client.session_send_credit(0) == 10
    pair.to_server(8, client.open_webtransport_stream(0, 8, True) + b"0123456789")
    assert not client.can_open_stream(0, bidi=True)
    with pytest.raises(H3UsageError):
        client.open_webtransport_stream(0, 12, True)
    client.record_sent_data(0, 10)
    with pytest.raises(H3UsageError):
        client.record_sent_data(0, 1)
    with pytest.raises(WebTransportFlowControlError):
        server.receive_stream_data(8, b"!")


def test_flow_control_credit_capsules() -> None:
    config = H3Config(initial_max_data=10, initial_max_streams_bidi=1, initial_max_streams_uni=1)
    pair = make_pair(client_config=config, server_config=config)
    pair.open_session(0)
    credit = pair.server.grant_session_credit(0, max_data=100, max_streams_bidi=5, max_streams_uni=1)
    events = pair.to_client(0, credit)
    assert events[-1] == SessionFlowControlUpdated(0, 100, 5, 1)
    assert pair.client.session_send_credit(0) == 100
    assert pair.server.grant_session_credit(0, max_data=50) == b""
    with pytest.raises(WebTransportFlowControlError):
        pair.to_client(0, data_frame(bytes.fromhex("c0000000190b4d3d") + b"\x01\x05"))
    # Over the stream limit granted by the server.
    pair = make_pair(client_config=config, server_config=config)
    pair.open_session(0)
    pair.to_server(14, pair.client.open_webtransport_stream(0, 14, False))
    with pytest.raises(WebTransportFlowControlError):
        pair.server.receive_stream_data(18, H3Connection.webtransport_stream_prefix(0, False))


def test_flow_control_blocked_capsules() -> None:
    config = H3Config(initial_max_data=10, initial_max_streams_bidi=1, initial_max_streams_uni=2)
    pair = make_pair(client_config=config, server_config=config)
    pair.open_session(0)
    frame = pair.client.session_blocked_data(0, data=True, bidi=False)
    # one DATA frame: WT_DATA_BLOCKED(10) then WT_STREAMS_BLOCKED_UNI(2), each at the peer's limit
    assert frame == data_frame(encode_capsule(0x190B4D41, b"\x0a") + encode_capsule(0x190B4D44, b"\x02"))
    assert pair.client.session_blocked_data(0, bidi=True) == data_frame(encode_capsule(0x190B4D43, b"\x01"))
    assert pair.client.session_blocked_data(0) == b""
    assert pair.to_server(0, frame) == []  # informational for the receiver: no event, no error
    assert pair.server.blocked_capsules_received == 2
    unmanaged = make_pair()
    unmanaged.open_session()
    assert unmanaged.client.session_blocked_data(0, data=True, bidi=True) == b""  # flow control off
    assert unmanaged.client.session_blocked_data(4, data=True) == b""  # no such session


def test_flow_control_capsules_ignored_when_not_negotiated() -> None:
    pair = make_pair()
    pair.open_session()
    assert pair.to_client(0, data_frame(bytes.fromhex("c0000000190b4d3d") + b"\x01\x05")) == []
    assert pair.client.session_send_credit(0) is None
    with pytest.raises(H3UsageError):
        pair.client.grant_session_credit(0, max_data=1)


def test_usage_errors() -> None:
    pair = make_pair()
    with pytest.raises(H3UsageError):
        pair.server.connect_session(0, authority="a", path="/")
    with pytest.raises(H3UsageError):
        pair.client.accept_session(0)
    with pytest.raises(H3UsageError):
        pair.client.open_webtransport_stream(0, 4, True)  # no session
    pair.open_session()
    with pytest.raises(H3UsageError):
        pair.client.open_webtransport_stream(0, 1, True)  # not a client stream
    with pytest.raises(H3UsageError):
        pair.client.open_webtransport_stream(0, 4, False)  # bidi id for uni
    with pytest.raises(H3UsageError):
        pair.client.send_headers(0, [(b"Bad", b"x")])
    with pytest.raises(H3UsageError):
        pair.server.accept_session(0)  # already open
    with pytest.raises(H3UsageError):
        pair.server.receive_stream_data(SERVER_CONTROL, b"x")  # our own uni stream


def test_connection_lost_closes_sessions() -> None:
    pair = make_pair()
    pair.open_session()
    pair.client.connection_lost()
    assert pair.client.session_state(0) is SessionState.CLOSED


def test_pair_helper_records_events() -> None:
    pair: Pair = make_pair(chop=True)
    pair.open_session()
    assert any(isinstance(e, WebTransportSessionEstablished) for e in pair.client_events)


def test_outgoing_headers_respect_peer_limit_and_sf_strings() -> None:
    client = H3Connection(True)
    client.receive_stream_data(3, control_stream({0x06: 300, 0x2B603742: 1, 0x33: 1}))
    with pytest.raises(H3UsageError):
        client.connect_session(0, authority="a", path="/" + "x" * 300)
    with pytest.raises(H3UsageError):
        client.connect_session(0, authority="a", path="/", protocols=["é"])
    client.connect_session(0, authority="a", path="/")


def test_malformed_capsule_aborts_session() -> None:
    pair = make_pair()
    pair.open_session()
    pair.to_server(4, pair.client.open_webtransport_stream(0, 4, True))
    events = pair.to_server(0, data_frame(encode_capsule(0x2843, b"\x00")))
    assert events == [
        StreamStopRequested(0, ErrorCode.H3_MESSAGE_ERROR),
        StreamResetRequested(0, ErrorCode.H3_MESSAGE_ERROR),
        SessionAborted(0, ErrorCode.H3_MESSAGE_ERROR),
    ]
    assert pair.server.session_state(0) is SessionState.CLOSED
    assert pair.server.session_stream_ids(0) == [4]


def test_data_frame_after_close_capsule() -> None:
    pair = make_pair()
    pair.open_session()
    pair.to_server(0, data_frame(encode_close_session(0, "")))
    events = pair.to_server(0, data_frame(b"\x00"))
    assert events == [
        StreamStopRequested(0, ErrorCode.H3_MESSAGE_ERROR),
        StreamResetRequested(0, ErrorCode.H3_MESSAGE_ERROR),
    ]


def test_trailer_ordering_errors() -> None:
    get = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"/")]
    for tail in (data_frame(b"x"), headers_frame([(b"x", b"y")])):
        server = server_with_client_settings()
        with pytest.raises(FrameUnexpectedError):
            server.receive_stream_data(0, headers_frame(get) + headers_frame([(b"t", b"1")]) + tail)
    server = server_with_client_settings()
    events = server.receive_stream_data(0, headers_frame(get) + headers_frame([(b":path", b"/")]))
    assert StreamResetRequested(0, ErrorCode.H3_MESSAGE_ERROR) in events  # pseudo-header in trailers


def test_request_without_headers_then_fin() -> None:
    server = server_with_client_settings()
    events = server.receive_stream_data(0, encode_frame(0x21, b"grease"), fin=True)
    assert events == [
        StreamStopRequested(0, ErrorCode.H3_REQUEST_INCOMPLETE),
        StreamResetRequested(0, ErrorCode.H3_REQUEST_INCOMPLETE),
    ]


@pytest.mark.parametrize("status", [b"", b"20", b"abc", b"2000"])
def test_bad_response_status(status: bytes) -> None:
    pair = make_pair()
    pair.to_server(0, pair.client.connect_session(0, authority="a", path="/"))
    events = pair.to_client(0, headers_frame([(b":status", status)]))
    assert events == [
        StreamStopRequested(0, ErrorCode.H3_MESSAGE_ERROR),
        StreamResetRequested(0, ErrorCode.H3_MESSAGE_ERROR),
        SessionAborted(0, ErrorCode.H3_MESSAGE_ERROR),
    ]


def test_truncated_wt_prefix_with_fin_is_ignored() -> None:
    pair = make_pair()
    pair.open_session()
    assert pair.to_server(4, b"\x40\x41\x40", fin=True) == []
    assert pair.to_server(14, b"\x40", fin=True) == []
    assert pair.server.session_stream_ids(0) == []


def test_reset_session_streams() -> None:
    pair = make_pair()
    pair.open_session()
    pair.to_server(4, pair.client.open_webtransport_stream(0, 4, True))
    pair.to_server(14, pair.client.open_webtransport_stream(0, 14, False))
    pair.server.open_webtransport_stream(0, 15, False)
    pair.to_server(0, pair.client.close_session_data(0), fin=True)
    gone = ErrorCode.WT_SESSION_GONE
    assert pair.server.reset_session_streams(0) == [
        StreamStopRequested(4, gone),
        StreamResetRequested(4, gone),
        StreamStopRequested(14, gone),
        StreamResetRequested(15, gone),
    ]
    assert pair.server.receive_stream_data(4, b"late") == []


def test_chromium_like_client() -> None:
    """What Chromium 156 puts on the wire, byte for byte in spirit."""
    pylsqpack = pytest.importorskip("pylsqpack")
    server = H3Connection(False)
    settings = dict(CHROMIUM_SETTINGS)
    control = (
        control_stream(settings)
        + encode_frame(0x1F * 1234567 + 0x21, b"\x00" * 9)  # GREASE frame
        + encode_frame(0xF0700, b"\x00u=1")  # PRIORITY_UPDATE
    )
    events = feed(server, 2, control, chop=True)
    assert [type(e) for e in events] == [SettingsReceived]
    assert feed(server, 6, b"\x02", chop=True) == []
    assert feed(server, 10, b"\x03", chop=True) == []
    encoder = pylsqpack.Encoder()
    encoder.apply_settings(max_table_capacity=0, blocked_streams=0)
    _, block = encoder.encode(
        0,
        [
            (b":scheme", b"https"),
            (b":method", b"CONNECT"),
            (b":authority", b"127.0.0.1:4433"),
            (b":path", b"/echo"),
            (b":protocol", b"webtransport"),
            (b"sec-webtransport-http3-draft02", b"1"),
            (b"origin", b"http://127.0.0.1:8000"),
            (b"wt-available-protocols", b'"chat", "echo"'),
        ],
    )
    request = encode_frame(FrameType.HEADERS, block) + data_frame(encode_capsule(0x29 * 77 + 0x17, b"\x01" * 33))
    (requested,) = feed(server, 0, request, chop=True)
    assert isinstance(requested, WebTransportSessionRequested)
    assert requested.protocol == "webtransport" and requested.available_protocols == ("chat", "echo")
    response = server.accept_session(0, protocol="echo")
    decoder = pylsqpack.Decoder(0, 0)
    _, headers = decoder.feed_header(0, response[2:])
    assert list(headers) == [
        (b":status", b"200"),
        (b"sec-webtransport-http3-draft", b"draft02"),
        (b"wt-protocol", b'"echo"'),
    ]
    # Chromium resets session streams with H3_CONNECT_ERROR when it goes away.
    feed(server, 4, H3Connection.webtransport_stream_prefix(0, True) + b"hi")
    assert server.receive_stream_reset(4, ErrorCode.H3_CONNECT_ERROR) == [
        StreamResetReceived(4, ErrorCode.H3_CONNECT_ERROR, 0, None)
    ]
