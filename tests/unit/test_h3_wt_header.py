"""A WebTransport stream header parsed from one chunk or from pieces gives the same result."""

from __future__ import annotations

import pytest
from h3_pair import make_pair

from pywebtransport.h3.errors import IdError
from pywebtransport.h3.events import WebTransportStreamDataReceived, WebTransportStreamOpened
from pywebtransport.h3.frames import FrameType
from pywebtransport.h3.varint import encode_varint


@pytest.mark.parametrize("chop", [False, True], ids=["one-chunk", "byte-by-byte"])
@pytest.mark.parametrize("stream_id, bidi", [(4, True), (14, False)])
def test_header_then_payload(chop: bool, stream_id: int, bidi: bool) -> None:
    pair = make_pair(chop=chop)
    pair.open_session(0)
    header = pair.client.open_webtransport_stream(0, stream_id, bidi=bidi)
    events = pair.to_server(stream_id, header + b"payload", fin=True)
    assert events[0] == WebTransportStreamOpened(0, stream_id, bidi)
    data = [e for e in events if isinstance(e, WebTransportStreamDataReceived)]
    assert b"".join(e.data for e in data) == b"payload" and data[-1].stream_ended


def test_header_split_over_chunks_after_a_partial_first_chunk() -> None:
    pair = make_pair()
    pair.open_session(0)
    header = pair.client.open_webtransport_stream(0, 4, bidi=True)
    assert pair.to_server(4, header[:1]) == []
    events = pair.to_server(4, header[1:] + b"rest")
    assert events[0] == WebTransportStreamOpened(0, 4, True)
    assert events[1] == WebTransportStreamDataReceived(0, 4, b"rest", False)


@pytest.mark.parametrize("chop", [False, True], ids=["one-chunk", "byte-by-byte"])
def test_invalid_session_id_is_a_connection_error_either_way(chop: bool) -> None:
    pair = make_pair(chop=chop)
    pair.open_session(0)
    with pytest.raises(IdError):
        pair.to_server(4, encode_varint(FrameType.WEBTRANSPORT_STREAM) + encode_varint(2) + b"x")


@pytest.mark.parametrize("stream_id, bidi", [(4, True), (14, False)])
def test_started_fast_path_registers_the_stream_like_the_general_path(stream_id: int, bidi: bool) -> None:
    """webtransport_stream_started: (session, header length) and the same stream state, no events."""
    pair = make_pair()
    pair.open_session(0)
    header = pair.client.open_webtransport_stream(0, stream_id, bidi=bidi)
    assert pair.server.webtransport_stream_started(stream_id, header + b"payload") == (0, len(header))
    assert pair.server.session_stream_ids(0) == [stream_id]
    assert pair.server.webtransport_stream_started(stream_id, b"more") is None  # known now
    # Later bytes and the end go through the core as for any announced stream.
    assert pair.to_server(stream_id, b"more", fin=True) == [WebTransportStreamDataReceived(0, stream_id, b"more", True)]


@pytest.mark.parametrize(
    "data",
    [
        b"",  # nothing yet
        encode_varint(FrameType.WEBTRANSPORT_STREAM),  # header cut short
        encode_varint(FrameType.WEBTRANSPORT_STREAM) + encode_varint(2),  # invalid session id
        encode_varint(FrameType.WEBTRANSPORT_STREAM) + encode_varint(8),  # unknown session
        b"\x01\x00",  # HEADERS frame: a request, not WebTransport
    ],
)
def test_started_fast_path_leaves_everything_else_to_the_general_parser(data: bytes) -> None:
    pair = make_pair()
    pair.open_session(0)
    assert pair.server.webtransport_stream_started(4, data) is None
    assert 4 not in pair.server._streams  # nothing changed


def test_started_fast_path_declines_flow_controlled_sessions() -> None:
    from pywebtransport.h3 import H3Config

    config = H3Config(max_sessions=4, initial_max_data=1 << 16, initial_max_streams_bidi=8, initial_max_streams_uni=8)
    pair = make_pair(client_config=config, server_config=config)
    pair.open_session(0)
    header = pair.client.open_webtransport_stream(0, 4, bidi=True)
    assert pair.server.webtransport_stream_started(4, header + b"x") is None
    events = pair.to_server(4, header + b"x")
    assert events[0] == WebTransportStreamOpened(0, 4, True)
