"""Two in-memory H3Connection endpoints wired together for tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from pywebtransport.h3 import H3Config, H3Connection
from pywebtransport.h3.events import H3Event

# Stream IDs the "adapter" would get from QUIC (RFC 9000 §2.1).
CLIENT_CONTROL, CLIENT_ENCODER, CLIENT_DECODER = 2, 6, 10
SERVER_CONTROL, SERVER_ENCODER, SERVER_DECODER = 3, 7, 11


def feed(conn: H3Connection, stream_id: int, data: bytes, fin: bool = False, chop: bool = False) -> list[H3Event]:
    """Deliver ``data`` in one piece or byte by byte (FIN with the last piece)."""
    if not chop or len(data) <= 1:
        return conn.receive_stream_data(stream_id, data, fin)
    events: list[H3Event] = []
    for i in range(len(data)):
        events += conn.receive_stream_data(stream_id, data[i : i + 1], fin and i == len(data) - 1)
    return events


@dataclass
class Pair:
    client: H3Connection
    server: H3Connection
    chop: bool = False
    client_events: list[H3Event] = field(default_factory=list)
    server_events: list[H3Event] = field(default_factory=list)

    def to_server(self, stream_id: int, data: bytes, fin: bool = False) -> list[H3Event]:
        events = feed(self.server, stream_id, data, fin, self.chop)
        self.server_events += events
        return events

    def to_client(self, stream_id: int, data: bytes, fin: bool = False) -> list[H3Event]:
        events = feed(self.client, stream_id, data, fin, self.chop)
        self.client_events += events
        return events

    def exchange_settings(self) -> None:
        self.to_server(CLIENT_CONTROL, self.client.local_control_stream_data(CLIENT_CONTROL))
        self.to_server(CLIENT_ENCODER, self.client.local_qpack_encoder_stream_data(CLIENT_ENCODER))
        self.to_server(CLIENT_DECODER, self.client.local_qpack_decoder_stream_data(CLIENT_DECODER))
        self.to_client(SERVER_CONTROL, self.server.local_control_stream_data(SERVER_CONTROL))
        self.to_client(SERVER_ENCODER, self.server.local_qpack_encoder_stream_data(SERVER_ENCODER))
        self.to_client(SERVER_DECODER, self.server.local_qpack_decoder_stream_data(SERVER_DECODER))

    def open_session(self, session_id: int = 0, protocols: tuple[str, ...] = (), selected: str | None = None) -> None:
        request = self.client.connect_session(
            session_id, authority="example.com:4433", path="/wt", origin="https://example.com", protocols=protocols
        )
        self.to_server(session_id, request)
        self.to_client(session_id, self.server.accept_session(session_id, protocol=selected))
        self.server_events += self.server.pop_events()


def make_pair(
    chop: bool = False,
    client_config: H3Config | None = None,
    server_config: H3Config | None = None,
    settings: bool = True,
) -> Pair:
    pair = Pair(H3Connection(True, client_config), H3Connection(False, server_config), chop)
    if settings:
        pair.exchange_settings()
    return pair
