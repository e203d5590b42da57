"""Smoke interop: our H3Connection against aioquic's, both in memory.

aioquic's H3Connection runs over a fake QUIC object that just records stream
writes; bytes are shuttled by hand between the two HTTP/3 layers.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest

from pywebtransport.h3 import H3Connection
from pywebtransport.h3.events import (
    DatagramReceived,
    SessionCloseReceived,
    WebTransportSessionEstablished,
    WebTransportSessionRequested,
    WebTransportStreamDataReceived,
    WebTransportStreamOpened,
)

aioquic_h3 = pytest.importorskip("aioquic.h3.connection")
aioquic_events = pytest.importorskip("aioquic.h3.events")
quic_events = pytest.importorskip("aioquic.quic.events")


class FakeQuic:
    """The part of aioquic's QuicConnection that its H3Connection touches."""

    def __init__(self, is_client: bool) -> None:
        self.configuration = SimpleNamespace(is_client=is_client)
        self._quic_logger = None
        self._remote_max_datagram_frame_size = 65536
        self.writes: dict[int, bytearray] = defaultdict(bytearray)
        self.fins: set[int] = set()
        self.datagrams: list[bytes] = []
        self.close_args: tuple[Any, ...] | None = None
        self._next = {False: 0 if is_client else 1, True: 2 if is_client else 3}

    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        stream_id = self._next[is_unidirectional]
        self._next[is_unidirectional] += 4
        return stream_id

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        self.writes[stream_id] += data
        if end_stream:
            self.fins.add(stream_id)

    def send_datagram_frame(self, data: bytes) -> None:
        self.datagrams.append(data)

    def close(self, error_code: int = 0, frame_type: Any = None, reason_phrase: str = "") -> None:
        self.close_args = (error_code, reason_phrase)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        pass

    def stop_stream(self, stream_id: int, error_code: int) -> None:
        pass

    def take(self, stream_id: int) -> bytes:
        data = bytes(self.writes[stream_id])
        self.writes[stream_id].clear()
        return data


def to_aioquic(h3: Any, stream_id: int, data: bytes, fin: bool = False) -> list[Any]:
    events: list[Any] = []
    # One byte at a time, to also exercise aioquic's reassembly of our output.
    for i, byte in enumerate(data):
        last = fin and i == len(data) - 1
        event = quic_events.StreamDataReceived(data=bytes([byte]), end_stream=last, stream_id=stream_id)
        events += h3.handle_event(event)
    if not data and fin:
        events += h3.handle_event(quic_events.StreamDataReceived(data=b"", end_stream=True, stream_id=stream_id))
    return events


def test_our_client_against_aioquic_server() -> None:
    quic = FakeQuic(is_client=False)
    server = aioquic_h3.H3Connection(quic, enable_webtransport=True)
    client = H3Connection(True)

    for stream_id in (2, 6, 10):
        data = {2: client.local_control_stream_data, 6: client.local_qpack_encoder_stream_data,
                10: client.local_qpack_decoder_stream_data}[stream_id](stream_id)
        to_aioquic(server, stream_id, data)
    for stream_id in (3, 7, 11):
        client.receive_stream_data(stream_id, quic.take(stream_id))
    assert quic.close_args is None
    assert client.peer_settings is not None and client.peer_settings.webtransport_draft02

    events = to_aioquic(server, 0, client.connect_session(0, authority="localhost", path="/wt", origin="https://x"))
    assert quic.close_args is None
    (request,) = [e for e in events if isinstance(e, aioquic_events.HeadersReceived)]
    assert (b":protocol", b"webtransport") in request.headers
    assert (b"sec-webtransport-http3-draft02", b"1") in request.headers

    server.send_headers(0, [(b":status", b"200"), (b"sec-webtransport-http3-draft", b"draft02")])
    (established,) = client.receive_stream_data(0, quic.take(0))
    assert isinstance(established, WebTransportSessionEstablished)

    events = to_aioquic(server, 4, client.open_webtransport_stream(0, 4, bidi=True) + b"hi")
    data = b"".join(e.data for e in events if isinstance(e, aioquic_events.WebTransportStreamDataReceived))
    assert data == b"hi" and all(e.session_id == 0 for e in events)

    events = server.handle_event(quic_events.DatagramFrameReceived(data=client.encode_datagram(0, b"dg")))
    assert [(e.stream_id, e.data) for e in events] == [(0, b"dg")]

    uni = server.create_webtransport_stream(0, is_unidirectional=True)
    quic.send_stream_data(uni, b"from-aioquic", end_stream=True)
    events = client.receive_stream_data(uni, quic.take(uni), fin=True)
    assert events[0] == WebTransportStreamOpened(0, uni, False)
    assert events[1] == WebTransportStreamDataReceived(0, uni, b"from-aioquic", True)

    server.send_datagram(0, b"back")
    assert client.receive_datagram(quic.datagrams.pop()) == [DatagramReceived(0, b"back")]

    events = to_aioquic(server, 0, client.close_session_data(0, 5, "bye"), fin=True)
    body = b"".join(e.data for e in events if isinstance(e, aioquic_events.DataReceived))
    assert body == b"\x68\x43\x07\x00\x00\x00\x05bye"
    assert quic.close_args is None


def test_aioquic_client_against_our_server() -> None:
    quic = FakeQuic(is_client=True)
    client = aioquic_h3.H3Connection(quic, enable_webtransport=True)
    server = H3Connection(False)

    for stream_id in (2, 6, 10):
        server.receive_stream_data(stream_id, quic.take(stream_id))
    for stream_id, data in (
        (3, server.local_control_stream_data(3)),
        (7, server.local_qpack_encoder_stream_data(7)),
        (11, server.local_qpack_decoder_stream_data(11)),
    ):
        to_aioquic(client, stream_id, data)
    assert quic.close_args is None
    assert client.received_settings is not None

    session_id = quic.get_next_available_stream_id()
    client.send_headers(
        session_id,
        [
            (b":method", b"CONNECT"),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", b"/wt"),
            (b":protocol", b"webtransport"),
        ],
    )
    (requested,) = server.receive_stream_data(session_id, quic.take(session_id))
    assert isinstance(requested, WebTransportSessionRequested) and requested.protocol == "webtransport"

    events = to_aioquic(client, session_id, server.accept_session(session_id))
    (response,) = [e for e in events if isinstance(e, aioquic_events.HeadersReceived)]
    assert response.headers[0] == (b":status", b"200")

    bidi = client.create_webtransport_stream(session_id, is_unidirectional=False)
    quic.send_stream_data(bidi, b"ping")
    events = server.receive_stream_data(bidi, quic.take(bidi))
    assert events == [WebTransportStreamOpened(session_id, bidi, True),
                      WebTransportStreamDataReceived(session_id, bidi, b"ping", False)]

    uni = 15
    events = to_aioquic(client, uni, server.open_webtransport_stream(session_id, uni, bidi=False) + b"pong", fin=True)
    data = b"".join(e.data for e in events if isinstance(e, aioquic_events.WebTransportStreamDataReceived))
    assert data == b"pong"

    client.send_datagram(session_id, b"d")
    assert server.receive_datagram(quic.datagrams.pop()) == [DatagramReceived(session_id, b"d")]
    events = client.handle_event(quic_events.DatagramFrameReceived(data=server.encode_datagram(session_id, b"e")))
    assert [(e.stream_id, e.data) for e in events] == [(session_id, b"e")]

    quic.send_stream_data(session_id, b"", end_stream=True)
    assert server.receive_stream_data(session_id, b"", fin=True) == [SessionCloseReceived(session_id, 0, "")]
    assert quic.close_args is None
