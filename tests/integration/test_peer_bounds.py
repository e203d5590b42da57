"""Per-peer bounds of the HTTP/3 + WebTransport core, proven over loopback.

Each test drives a raw peer (our QUIC layer with hand-made HTTP/3 bytes, or our
sans-IO client core driven by hand) against the real server, and checks that a
peer exceeding a limit gets the protocol's error code while the server's state
stays within the configured bound (docs/limits.md lists them).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from certs import CertSet
from pywebtransport.quic import QuicConfiguration, QuicConnection, QuicStream, connect, serve

pytestmark = pytest.mark.timeout(60)


# ------------------------------------------------- QUIC: max_stream_buffer


@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_tiny_max_stream_buffer_still_flows(certs: CertSet, limit: int) -> None:
    """Issue 8 finding 8: max_stream_buffer=1 used to pause receiving forever."""
    payload = bytes(range(256)) * 64  # 16 KiB
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def handler(conn: QuicConnection) -> None:
        stream = await conn.accept_stream()
        got.set_result(await stream.read_all())
        await conn.wait_closed()

    server_cfg = QuicConfiguration(
        is_client=False, certfile=str(certs.cert), keyfile=str(certs.key), alpn_protocols=["pwt-test"],
        max_stream_buffer=limit,
    )
    listener = await serve("127.0.0.1", 0, server_cfg, handler)
    try:
        client_cfg = QuicConfiguration(is_client=True, alpn_protocols=["pwt-test"], cafile=str(certs.ca_cert))
        async with await connect("127.0.0.1", listener.port, client_cfg, server_name="localhost") as conn:
            stream = await conn.open_bidi_stream()
            await asyncio.wait_for(stream.write(payload, fin=True), 20)
            data = await asyncio.wait_for(got, 20)
            assert hashlib.sha256(data).digest() == hashlib.sha256(payload).digest()
    finally:
        await listener.aclose()


# ------------------------------------------- HTTP/3 peers against the real server

from pywebtransport import ServerApp, ServerConfig, WebTransportSession  # noqa: E402
from pywebtransport.h3 import H3Connection  # noqa: E402
from pywebtransport.h3.errors import ErrorCode  # noqa: E402
from pywebtransport.h3.frames import FrameParser, FrameType, encode_data_frame_header, encode_frame  # noqa: E402
from pywebtransport.h3.qpack import decode_field_section, encode_field_section  # noqa: E402
from pywebtransport.h3.varint import encode_varint  # noqa: E402

SETTINGS = b"\x00\x04\x00"  # control stream type, empty SETTINGS frame
WT_REQUEST = [
    (b":method", b"CONNECT"),
    (b":scheme", b"https"),
    (b":authority", b"localhost"),
    (b":path", b"/"),
    (b":protocol", b"webtransport"),
    (b"sec-webtransport-http3-draft02", b"1"),
]


async def raw_h3(port: int, certs: CertSet) -> QuicConnection:
    cfg = QuicConfiguration(is_client=True, alpn_protocols=["h3"], cafile=str(certs.ca_cert))
    return await connect("127.0.0.1", port, cfg, server_name="localhost")


class Watched:
    """A raw stream whose peer resets / STOP_SENDINGs are recorded."""

    def __init__(self, stream: QuicStream) -> None:
        self.stream = stream
        self.reset: int | None = None
        self.stopped: int | None = None
        self.received = bytearray()
        stream.set_receiver(self._on_data, self._on_reset, self._on_stop)

    def _on_data(self, data: bytes, fin: bool) -> None:
        self.received += data
        self.stream.consumed(len(data))

    def _on_reset(self, code: int) -> None:
        self.reset = code

    def _on_stop(self, code: int) -> None:
        self.stopped = code


async def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def expect_close(conn: QuicConnection, code: int) -> None:
    reason = await asyncio.wait_for(conn.wait_closed(), 15)
    assert reason.initiator == "peer", reason
    assert reason.error_code == code, hex(reason.error_code)


def headers_frame(fields: list[tuple[bytes, bytes]]) -> bytes:
    return encode_frame(FrameType.HEADERS, encode_field_section(fields))


class Server:
    """A ServerApp whose middleware holds sessions until ``release`` is set."""

    def __init__(self, certs: CertSet, hold: bool = False) -> None:
        self.app = ServerApp(config=ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))
        self.release = asyncio.Event()
        self.requested = asyncio.Event()
        self.sessions: list[WebTransportSession] = []
        self.streams = 0
        self.datagrams = 0
        if not hold:
            self.release.set()

        @self.app.middleware
        async def gate(session: WebTransportSession) -> bool:
            self.requested.set()
            await self.release.wait()
            return True

        @self.app.route("/")
        async def handler(session: WebTransportSession) -> None:
            self.sessions.append(session)

            async def count_datagrams() -> None:
                try:
                    while True:
                        await session.datagrams.receive()
                        self.datagrams += 1
                except Exception:
                    return  # the session ended

            task = asyncio.ensure_future(count_datagrams())
            try:
                async for _ in session.incoming_streams():
                    self.streams += 1
            finally:
                task.cancel()

    async def __aenter__(self) -> "Server":
        await self.app.__aenter__()
        await self.app.server.listen(host="127.0.0.1", port=0)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.release.set()
        await self.app.__aexit__(*exc)

    @property
    def port(self) -> int:
        assert self.app.server.local_address is not None
        return int(self.app.server.local_address[1])

    def h3(self) -> H3Connection:
        (conn,) = self.app.server.connections
        return conn.h3


@pytest.mark.parametrize(
    ("stream_type", "code"),
    [(b"\x02\x3f", ErrorCode.QPACK_ENCODER_STREAM_ERROR), (b"\x03\x7f", ErrorCode.QPACK_DECODER_STREAM_ERROR)],
)
async def test_qpack_integer_padding_closes_even_with_the_loop_blocked(
    certs: CertSet, stream_type: bytes, code: int
) -> None:
    """Issue 8 finding 2 over the wire: 0x3F/0x7F then endless 0x80 bytes."""
    import time

    async with Server(certs) as server:
        conn = await raw_h3(server.port, certs)
        control = await conn.open_uni_stream()
        control.write_nowait(SETTINGS)
        qpack = await conn.open_uni_stream()
        qpack.write_nowait(stream_type + b"\x80" * (1 << 20))
        time.sleep(1.0)  # the server's loop (this loop) is blocked while the bytes arrive
        await expect_close(conn, code)


async def test_early_streams_and_datagrams_bounded_with_the_loop_blocked(certs: CertSet) -> None:
    """Streams/datagrams for a session not accepted yet: held up to the H3Config bounds."""
    import time

    async with Server(certs, hold=True) as server:
        conn = await raw_h3(server.port, certs)
        control = await conn.open_uni_stream()
        control.write_nowait(SETTINGS)
        await wait_for(lambda: len(server.app.server.connections) == 1)
        config = server.h3().config
        request = Watched(await conn.open_bidi_stream())
        streams = [Watched(await conn.open_uni_stream()) for _ in range(config.max_buffered_streams + 16)]
        # One synchronous burst, then the loop is blocked while msquic delivers it.
        request.stream.write_nowait(headers_frame(WT_REQUEST))
        prefix = encode_varint(0x54) + encode_varint(request.stream.stream_id)
        for watched in streams:
            watched.stream.write_nowait(prefix + b"s" * 2000)
        quarter = encode_varint(request.stream.stream_id >> 2)
        for i in range(config.max_buffered_datagrams * 3):
            try:
                conn.send_datagram(quarter + b"d%d" % i)
            except Exception:
                break  # the datagram send queue is bounded too
        time.sleep(1.0)
        await asyncio.wait_for(server.requested.wait(), 10)
        await wait_for(lambda: sum(w.stopped is not None for w in streams) >= 16)
        held = config.max_buffered_streams * 2000
        await wait_for(lambda: server.h3().resource_usage()["early_stream_bytes"] >= held)
        usage = server.h3().resource_usage()
        assert usage["early_streams"] == config.max_buffered_streams, usage
        assert usage["early_stream_bytes"] == held, usage
        assert 0 < usage["early_datagrams"] <= config.max_buffered_datagrams, usage
        refused = [w.stopped for w in streams if w.stopped is not None]
        assert len(refused) == 16 and set(refused) == {ErrorCode.WT_BUFFERED_STREAM_REJECTED}
        held_datagrams = usage["early_datagrams"]
        server.release.set()  # accept: the held streams and datagrams are delivered
        await wait_for(lambda: server.streams == config.max_buffered_streams and server.datagrams >= held_datagrams)
        assert server.h3().resource_usage()["early_streams"] == 0
        await conn.aclose()


async def test_second_session_on_a_connection_is_rejected(certs: CertSet) -> None:
    async with Server(certs) as server:
        conn = await raw_h3(server.port, certs)
        control = await conn.open_uni_stream()
        control.write_nowait(SETTINGS)
        first = Watched(await conn.open_bidi_stream())
        first.stream.write_nowait(headers_frame(WT_REQUEST))
        await wait_for(lambda: len(server.sessions) == 1)
        second = Watched(await conn.open_bidi_stream())
        second.stream.write_nowait(headers_frame(WT_REQUEST))
        await wait_for(lambda: second.reset is not None)
        assert second.reset == ErrorCode.H3_REQUEST_REJECTED
        assert server.h3().resource_usage()["live_sessions"] == 1 and len(server.sessions) == 1
        assert conn.is_connected and first.reset is None
        await conn.aclose()


async def test_oversized_field_section_is_a_stream_error(certs: CertSet) -> None:
    async with Server(certs) as server:
        conn = await raw_h3(server.port, certs)
        control = await conn.open_uni_stream()
        control.write_nowait(SETTINGS)
        limit = H3Connection(False).config.max_field_section_size
        big = Watched(await conn.open_bidi_stream())
        big.stream.write_nowait(headers_frame(WT_REQUEST + [(b"x-big", b"v" * limit)]))
        await wait_for(lambda: big.reset is not None)
        assert big.reset == ErrorCode.H3_EXCESSIVE_LOAD
        ok = Watched(await conn.open_bidi_stream())
        ok.stream.write_nowait(headers_frame(WT_REQUEST))
        await wait_for(lambda: len(server.sessions) == 1)
        await conn.aclose()


async def test_oversized_capsule_fails_the_session(certs: CertSet) -> None:
    async with Server(certs) as server:
        conn = await raw_h3(server.port, certs)
        control = await conn.open_uni_stream()
        control.write_nowait(SETTINGS)
        request = Watched(await conn.open_bidi_stream())
        request.stream.write_nowait(headers_frame(WT_REQUEST))
        await wait_for(lambda: len(server.sessions) == 1)
        limit = server.h3().config.max_capsule_size
        head = encode_varint(0x00) + encode_varint(limit + 1)  # a DATAGRAM capsule one byte too big
        request.stream.write_nowait(encode_data_frame_header(len(head) + 100) + head + b"c" * 100)
        await wait_for(lambda: request.reset is not None)
        assert request.reset == ErrorCode.H3_MESSAGE_ERROR
        await asyncio.wait_for(server.sessions[0].wait_closed(), 10)
        assert conn.is_connected
        await conn.aclose()


@pytest.mark.parametrize(
    "fields",
    [
        WT_REQUEST[:3] + [(b":path", b"/\r\nx-injected: 1")] + WT_REQUEST[4:],
        [(b":method", b"CONNECT"), (b":scheme", b"http")] + WT_REQUEST[2:],
        WT_REQUEST[:3] + [(b":path", b"")] + WT_REQUEST[4:],
        WT_REQUEST + [(b"x a", b"1")],
    ],
    ids=["CRLF in :path", "scheme http", "empty :path", "space in name"],
)
async def test_malformed_request_is_refused(certs: CertSet, fields: list[tuple[bytes, bytes]]) -> None:
    """Issue 8 finding 7 over the wire: H3_MESSAGE_ERROR, no session, connection kept."""
    async with Server(certs) as server:
        conn = await raw_h3(server.port, certs)
        control = await conn.open_uni_stream()
        control.write_nowait(SETTINGS)
        bad = Watched(await conn.open_bidi_stream())
        bad.stream.write_nowait(headers_frame(fields))
        await wait_for(lambda: bad.reset is not None)
        assert bad.reset == ErrorCode.H3_MESSAGE_ERROR
        assert not server.sessions and not server.requested.is_set()
        assert conn.is_connected
        await conn.aclose()


async def test_goaway_with_trailing_bytes_is_a_frame_error(certs: CertSet) -> None:
    async with Server(certs) as server:
        conn = await raw_h3(server.port, certs)
        control = await conn.open_uni_stream()
        control.write_nowait(SETTINGS + encode_frame(FrameType.GOAWAY, b"\x00\x00"))
        await expect_close(conn, ErrorCode.H3_FRAME_ERROR)


async def test_client_treats_101_as_a_failed_session(certs: CertSet) -> None:
    """Issue 8 finding 7: a 101 answer to the CONNECT is malformed, not an interim response."""
    from pywebtransport import ClientConfig, ClientError, WebTransportClient

    async def answer(stream: QuicStream) -> None:
        await stream.read()  # the extended CONNECT
        stream.write_nowait(headers_frame([(b":status", b"101")]))
        await stream.wait_closed()

    async def handler(conn: QuicConnection) -> None:
        core = H3Connection(False)
        control = await conn.open_uni_stream()
        control.write_nowait(core.local_control_stream_data(control.stream_id))
        tasks = []
        while True:
            try:
                stream = await conn.accept_stream()
            except Exception:
                return
            if stream.is_unidirectional:
                stream.set_receiver(lambda data, fin, s=stream: s.consumed(len(data)))
            else:
                tasks.append(asyncio.ensure_future(answer(stream)))

    server_cfg = QuicConfiguration(
        is_client=False, certfile=str(certs.cert), keyfile=str(certs.key), alpn_protocols=["h3"]
    )
    listener = await serve("127.0.0.1", 0, server_cfg, handler)
    try:
        config = ClientConfig.create(ca_certs=str(certs.ca_cert), connect_timeout=8.0)
        async with WebTransportClient(config) as client:
            with pytest.raises(ClientError) as info:
                await client.connect(f"https://localhost:{listener.port}/")
        assert "0x10e" in str(info.value), info.value  # H3_MESSAGE_ERROR, not a timeout
    finally:
        await listener.aclose()


async def test_request_buffered_before_the_connection_is_set_up_is_served(certs: CertSet) -> None:
    """A CONNECT that arrives with the first streams (before the server had installed its
    session handler) used to be answered 404; it happened about once in eight tries."""
    async with Server(certs) as server:
        for attempt in range(20):
            conn = await raw_h3(server.port, certs)
            control = await conn.open_uni_stream()
            control.write_nowait(SETTINGS)
            request = Watched(await conn.open_bidi_stream())
            request.stream.write_nowait(headers_frame(WT_REQUEST))
            await wait_for(lambda: len(server.sessions) == attempt + 1 or len(request.received) > 0)
            await wait_for(lambda: len(request.received) > 0)
            frame = FrameParser().feed(bytes(request.received))[0]
            assert frame.type == FrameType.HEADERS
            assert decode_field_section(frame.payload)[0] == (b":status", b"200")  # never 404
            await conn.aclose()
