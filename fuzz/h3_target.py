"""Fuzz target over the sans-IO HTTP/3 + QPACK + WebTransport core.

``run_one(data)`` interprets arbitrary bytes as a script of operations on an
in-memory client/server :class:`H3Connection` pair (settings exchanged, and
optionally a session open): bytes on the control, QPACK, request, CONNECT and
WebTransport streams, datagrams, capsules, resets, STOP_SENDINGs, stream
closes and local API calls.  It needs nothing but the standard library, so the
corpus replay runs in CI (``tests/unit/test_fuzz_corpus.py``); ``fuzz_h3.py``
hands it to atheris for coverage-guided runs.

A finding is any exception other than an :class:`H3Error` from a ``receive_*``
call or an :class:`H3UsageError` from a local call, or a broken invariant: a
per-peer bound exceeded (``H3Connection.resource_usage()`` against the
config), or a bookkeeping count out of step with what it counts.
"""

from __future__ import annotations

from pywebtransport.h3 import H3Config, H3Connection, H3Error, H3UsageError
from pywebtransport.h3.capsules import encode_capsule
from pywebtransport.h3.frames import FrameType, encode_frame
from pywebtransport.h3.qpack import encode_field_section
from pywebtransport.h3.varint import encode_varint

__all__ = ["CONFIGS", "run_one"]

# Small limits so the fuzzer reaches every bound quickly.
CONFIGS = (
    H3Config(),
    H3Config(
        max_field_section_size=200,
        max_frame_payload_size=300,
        max_capsule_size=64,
        max_sessions=3,
        max_buffered_streams=3,
        max_buffered_stream_bytes=50,
        max_buffered_datagrams=4,
        max_pending_request_bytes=100,
        closed_sessions_remembered=2,
    ),
    H3Config(
        max_sessions=4,
        initial_max_data=200,
        initial_max_streams_bidi=3,
        initial_max_streams_uni=3,
        max_buffered_streams=2,
        max_buffered_stream_bytes=40,
        max_buffered_datagrams=2,
    ),
)

# Stream IDs as each side sees the peer's streams: client-initiated streams for
# the server (control 2, QPACK 6/10, requests 0/4/8/12, WT uni 14/18/22), and
# server-initiated ones for the client (control 3, QPACK 7/11, WT 1/5/15/19).
SERVER_VIEW = (2, 6, 10, 0, 4, 8, 12, 14, 18, 22, 26, 16)
CLIENT_VIEW = (3, 7, 11, 0, 1, 5, 15, 19, 23, 9, 27, 4)

# Handy prefixes the script can put in front of a payload.
PREFIXES = (
    b"",
    b"\x00",  # control stream type
    b"\x02",  # QPACK encoder
    b"\x03",  # QPACK decoder
    b"\x54\x00",  # WT uni stream, session 0
    b"\x54\x04",  # WT uni stream, session 4
    b"\x40\x41\x00",  # WT bidi stream, session 0
    b"\x40\x41\x04",
    b"\x00",  # DATA frame type (length follows from the payload)
    b"\x01",  # HEADERS frame type
    b"\x21",  # a reserved/GREASE type
)

REQUESTS = (
    [(b":method", b"CONNECT"), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"/"),
     (b":protocol", b"webtransport")],
    [(b":method", b"CONNECT"), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"/x"),
     (b":protocol", b"webtransport-h3"), (b"wt-available-protocols", b'"a", "b"')],
    [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"/")],
    [(b":status", b"200"), (b"sec-webtransport-http3-draft", b"draft02")],
    [(b":status", b"404")],
    [(b":status", b"200"), (b"wt-protocol", b'"a"')],
)


class _Script:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        value = self.data[self.pos]
        self.pos += 1
        return value

    def blob(self) -> bytes:
        length = self.byte()
        if length >= 0xF0:  # long form: a second byte scales it
            length = (length - 0xF0) * 256 + self.byte()
        chunk = self.data[self.pos : self.pos + length]
        self.pos += len(chunk)
        return chunk

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)


class _Side:
    __slots__ = ("conn", "dead", "view", "local_streams", "next_bidi", "next_uni")

    def __init__(self, conn: H3Connection, view: tuple[int, ...]) -> None:
        self.conn = conn
        self.dead = False
        self.view = view
        self.local_streams: list[int] = []
        # Next local stream IDs for WT streams opened through the API.
        self.next_bidi = 40 if conn.is_client else 41
        self.next_uni = 42 if conn.is_client else 43


def _check(side: _Side) -> None:
    """Bounds and bookkeeping invariants; a failure is a finding."""
    conn = side.conn
    cfg = conn.config
    usage = conn.resource_usage()
    assert 0 <= usage["early_streams"] <= cfg.max_buffered_streams, usage
    assert 0 <= usage["early_datagrams"] <= cfg.max_buffered_datagrams, usage
    assert usage["early_stream_bytes"] <= usage["early_streams"] * cfg.max_buffered_stream_bytes, usage
    assert usage["live_sessions"] <= max(1, cfg.max_sessions), usage
    assert usage["pending_request_bytes"] <= usage["streams"] * cfg.max_pending_request_bytes, usage
    early = getattr(conn, "_early_streams", None)
    if early is not None:
        assert usage["early_streams"] == sum(len(v) for v in early.values()), usage
    early_dgrams = getattr(conn, "_early_datagrams", None)
    if early_dgrams is not None:
        assert usage["early_datagrams"] == sum(len(v) for v in early_dgrams.values()), usage


def _receive(side: _Side, call: str, *args: object) -> list[object]:
    if side.dead:
        return []
    try:
        events: list[object] = getattr(side.conn, call)(*args)
    except H3UsageError:
        # Only feeding bytes on one of our own, never-opened streams is misuse.
        stream_id = args[0] if args and isinstance(args[0], int) else -1
        assert call == "receive_stream_data" and (stream_id & 1) == (0 if side.conn.is_client else 1), call
        return []
    except H3Error:
        side.dead = True
        # After a connection error all input is ignored.
        assert side.conn.receive_stream_data(side.view[0], b"x") == []
        return []
    return events


def _local(side: _Side, other: _Side, op: int, script: _Script) -> None:
    conn = side.conn
    session_id = (script.byte() & 0x3) * 4
    try:
        if op == 0:
            out = conn.accept_session(session_id, extra_headers=[(b"x-a", script.blob())])
        elif op == 1:
            out = conn.reject_session(session_id, 400 + script.byte())
        elif op == 2:
            out = conn.close_session_data(session_id, script.byte(), script.blob().decode("latin-1"))
        elif op == 3:
            out = conn.drain_session_data(session_id)
        elif op == 4:
            bidi = bool(script.byte() & 1)
            stream_id = side.next_bidi if bidi else side.next_uni
            out = conn.open_webtransport_stream(session_id, stream_id, bidi)
            if bidi:
                side.next_bidi += 4
            else:
                side.next_uni += 4
        elif op == 5:
            out = conn.grant_session_credit(session_id, max_data=script.byte() * 100, max_streams_uni=script.byte())
        elif op == 6:
            out = conn.send_goaway()
        elif op == 7:
            out = conn.encode_datagram(session_id, script.blob())
            _receive(other, "receive_datagram", out)
            return
        elif op == 8:
            out = conn.connect_session(session_id + 16, authority="a", path="/" + script.blob().hex())
        else:
            conn.record_sent_data(session_id, script.byte())
            return
    except H3UsageError:
        return
    # Deliver what a local call produced on the session's CONNECT stream.
    if out and op in (0, 1, 2, 3, 5):
        _receive(other, "receive_stream_data", session_id, out, op == 1)
    conn.pop_events()


def run_one(data: bytes) -> None:
    """Run one fuzz input; raises (AssertionError or other) on a finding."""
    script = _Script(data)
    head = script.byte()
    config = CONFIGS[head % len(CONFIGS)]
    client = _Side(H3Connection(True, config), CLIENT_VIEW)
    server = _Side(H3Connection(False, config), SERVER_VIEW)
    if head & 0x10 == 0:
        # Settings exchange (the adapter's three streams each way).
        for a, b, ids in ((client, server, (2, 6, 10)), (server, client, (3, 7, 11))):
            _receive(b, "receive_stream_data", ids[0], a.conn.local_control_stream_data(ids[0]))
            _receive(b, "receive_stream_data", ids[1], a.conn.local_qpack_encoder_stream_data(ids[1]))
            _receive(b, "receive_stream_data", ids[2], a.conn.local_qpack_decoder_stream_data(ids[2]))
        if head & 0x20 == 0:
            try:
                request = client.conn.connect_session(0, authority="a", path="/", protocols=("a", "b"))
            except H3UsageError:
                request = b""
            _receive(server, "receive_stream_data", 0, request)
            if head & 0x40 == 0:
                try:
                    response = server.conn.accept_session(0, protocol="a" if head & 0x80 else None)
                except H3UsageError:
                    response = b""
                _receive(client, "receive_stream_data", 0, response)
                server.conn.pop_events()
    steps = 0
    while not script.done and steps < 200:
        steps += 1
        op = script.byte()
        side, other = (client, server) if op & 0x80 else (server, client)
        kind = (op >> 4) & 0x7
        arg = op & 0xF
        if kind in (0, 1):
            # Raw bytes on a peer stream, with an optional canned prefix.
            stream_id = side.view[arg % len(side.view)]
            prefix = PREFIXES[script.byte() % len(PREFIXES)]
            payload = script.blob()
            if prefix in (b"\x00", b"\x01") and kind == 1:
                payload = prefix + encode_varint(len(payload)) + payload  # a well-formed frame
            else:
                payload = prefix + payload
            _receive(side, "receive_stream_data", stream_id, payload, kind == 1 and arg >= 8)
        elif kind == 2:
            _receive(side, "receive_datagram", script.blob())
        elif kind == 3:
            stream_id = side.view[arg % len(side.view)]
            call = "receive_stream_reset" if script.byte() & 1 else "receive_stop_sending"
            _receive(side, call, stream_id, script.byte() << 8 | script.byte())
        elif kind == 4:
            stream_id = side.view[arg % len(side.view)]
            side.conn.stream_closed(stream_id)
            side.conn.holds_early(stream_id)
        elif kind == 5:
            # A capsule (type from the script) in a DATA frame on a CONNECT stream.
            capsule_type = (0x00, 0x2843, 0x78AE, 0x190B4D3D, 0x190B4D3F, 0x190B4D40, 0x190B4D43, 0x17)[arg & 7]
            capsule = encode_capsule(capsule_type, script.blob())
            frame = encode_frame(FrameType.DATA, capsule)
            _receive(side, "receive_stream_data", (arg >> 3) * 4, frame)
        elif kind == 6:
            # A HEADERS frame from a canned field list, possibly with an extra field.
            fields = list(REQUESTS[arg % len(REQUESTS)])
            extra = script.blob()
            which = script.byte()
            if which < len(fields):
                fields[which] = (fields[which][0], extra)  # replace one value
            elif which < 0x80:
                fields.append((extra[: len(extra) // 2], extra[len(extra) // 2 :]))
            elif extra:
                fields.insert(which % (len(fields) + 1), (extra, b"v"))  # a field name of our choice
            section = encode_field_section(fields)
            stream_id = side.view[3 + (script.byte() % 4)]
            _receive(side, "receive_stream_data", stream_id, encode_frame(FrameType.HEADERS, section))
        else:
            _local(side, other, arg, script)
        side.conn.pop_events()
        _check(side)
        _check(other)
    client.conn.connection_lost()
    server.conn.connection_lost()
