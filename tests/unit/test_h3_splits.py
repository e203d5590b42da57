"""A whole WebTransport exchange survives any split of every byte stream."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from h3_pair import CLIENT_CONTROL, SERVER_CONTROL

from pywebtransport.h3 import H3Connection
from pywebtransport.h3.capsules import encode_capsule
from pywebtransport.h3.events import (
    DatagramReceived,
    H3Event,
    SessionCloseReceived,
    SessionDrainReceived,
    WebTransportSessionEstablished,
    WebTransportSessionRequested,
    WebTransportStreamDataReceived,
    WebTransportStreamOpened,
)

cuts = st.lists(st.integers(min_value=0, max_value=400), max_size=12)


def deliver(conn: H3Connection, stream_id: int, data: bytes, splits: list[int], fin: bool = False) -> list[H3Event]:
    events: list[H3Event] = []
    points = sorted({c for c in splits if 0 < c < len(data)})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    for i, piece in enumerate(pieces):
        events += conn.receive_stream_data(stream_id, piece, fin and i == len(pieces) - 1)
    return events


def stream_payload(events: list[H3Event], stream_id: int) -> tuple[bytes, bool]:
    data = [e for e in events if isinstance(e, WebTransportStreamDataReceived) and e.stream_id == stream_id]
    return b"".join(e.data for e in data), any(e.stream_ended for e in data)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(cuts, cuts, cuts, cuts, cuts, st.binary(max_size=300), st.binary(max_size=300))
def test_exchange_with_random_splits(
    s_ctrl: list[int], c_ctrl: list[int], s_connect: list[int], c_connect: list[int], s_stream: list[int],
    up: bytes, down: bytes,
) -> None:
    client, server = H3Connection(True), H3Connection(False)
    # Server SETTINGS first for the client; the client's CONNECT may overtake its own SETTINGS.
    deliver(client, SERVER_CONTROL, server.local_control_stream_data(SERVER_CONTROL), c_ctrl)
    request = client.connect_session(0, authority="h", path="/p", protocols=["x"])
    grease = encode_capsule(0x29 * 9 + 0x17, b"g" * 40)
    body = client.send_data(0, grease)
    server_events = deliver(server, 0, request + body, s_connect)
    server_events += deliver(server, CLIENT_CONTROL, client.local_control_stream_data(CLIENT_CONTROL), s_ctrl)
    requested = [e for e in server_events if isinstance(e, WebTransportSessionRequested)]
    assert len(requested) == 1 and requested[0].available_protocols == ("x",)

    response = server.accept_session(0, protocol="x")
    down_stream = server.open_webtransport_stream(0, 15, bidi=False) + down
    # The server's stream may arrive before its response.
    client_events = deliver(client, 15, down_stream, c_connect, fin=True)
    client_events += deliver(client, 0, response + server.drain_session_data(0), c_connect)
    assert any(isinstance(e, WebTransportSessionEstablished) and e.protocol == "x" for e in client_events)
    assert WebTransportStreamOpened(0, 15, False) in client_events
    assert stream_payload(client_events, 15) == (down, True)
    assert SessionDrainReceived(0) in client_events

    server_events = deliver(server, 4, client.open_webtransport_stream(0, 4, bidi=True) + up, s_stream, fin=True)
    assert stream_payload(server_events, 4) == (up, True)
    assert server.receive_datagram(client.encode_datagram(0, up)) == [DatagramReceived(0, up)]

    close = client.close_session_data(0, 3, "reason")
    assert deliver(server, 0, close, s_stream, fin=True) == [SessionCloseReceived(0, 3, "reason")]
