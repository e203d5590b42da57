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
