"""Malformed or abusive HTTP/3 peers get a protocol-correct close, never a hang or crash.

The attacker is a raw QUIC client (our QUIC layer with ALPN h3) writing
hand-made bytes, against the real server over loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from certs import CertSet
from pywebtransport import ServerApp, ServerConfig, WebTransportSession
from pywebtransport.h3.errors import ErrorCode
from pywebtransport.quic import QuicConfiguration, QuicConnection, connect

if TYPE_CHECKING:
    from pywebtransport.h3.connection import H3Connection

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def server(certs: CertSet) -> AsyncIterator[int]:
    app = ServerApp(config=ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))

    @app.route("/")
    async def handler(session: WebTransportSession) -> None:
        await session.wait_closed()

    async with app:
        await app.server.listen(host="127.0.0.1", port=0)
        assert app.server.local_address is not None
        yield app.server.local_address[1]


async def raw_h3(port: int, certs: CertSet) -> QuicConnection:
    cfg = QuicConfiguration(is_client=True, alpn_protocols=["h3"], cafile=str(certs.ca_cert))
    return await connect("127.0.0.1", port, cfg, server_name="localhost")


SETTINGS = b"\x00\x04\x00"  # control stream type, empty SETTINGS frame


async def expect_close(conn: QuicConnection, code: int) -> None:
    reason = await asyncio.wait_for(conn.wait_closed(), 10)
    assert reason.initiator == "peer", reason
    assert reason.error_code == code, hex(reason.error_code)


async def test_data_frame_on_control_stream(server: int, certs: CertSet) -> None:
    conn = await raw_h3(server, certs)
    control = await conn.open_uni_stream()
    await control.write(SETTINGS + b"\x00\x03abc")  # DATA is not allowed on the control stream
    await expect_close(conn, ErrorCode.H3_FRAME_UNEXPECTED)


async def test_control_stream_must_start_with_settings(server: int, certs: CertSet) -> None:
    conn = await raw_h3(server, certs)
    control = await conn.open_uni_stream()
    await control.write(b"\x00\x07\x01\x00")  # GOAWAY before SETTINGS
    await expect_close(conn, ErrorCode.H3_MISSING_SETTINGS)


async def test_second_control_stream(server: int, certs: CertSet) -> None:
    conn = await raw_h3(server, certs)
    for _ in range(2):
        s = await conn.open_uni_stream()
        await s.write(SETTINGS)
    await expect_close(conn, ErrorCode.H3_STREAM_CREATION_ERROR)


async def test_truncated_varint_then_fin_on_control_stream(server: int, certs: CertSet) -> None:
    conn = await raw_h3(server, certs)
    control = await conn.open_uni_stream()
    await control.write(SETTINGS + b"\xc0\x00", fin=True)  # 8-byte varint cut short, then FIN
    await expect_close(conn, ErrorCode.H3_CLOSED_CRITICAL_STREAM)


async def test_reserved_http2_frame_type(server: int, certs: CertSet) -> None:
    conn = await raw_h3(server, certs)
    control = await conn.open_uni_stream()
    await control.write(SETTINGS + b"\x02\x00")  # HTTP/2 PRIORITY
    await expect_close(conn, ErrorCode.H3_FRAME_UNEXPECTED)


async def test_dynamic_table_reference_in_headers(server: int, certs: CertSet) -> None:
    conn = await raw_h3(server, certs)
    control = await conn.open_uni_stream()
    await control.write(SETTINGS)
    request = await conn.open_bidi_stream()
    # HEADERS whose field section claims Required Insert Count 1: we advertised capacity 0
    await request.write(b"\x01\x03\x01\x00\x80")
    await expect_close(conn, ErrorCode.QPACK_DECOMPRESSION_FAILED)


async def test_unknown_uni_stream_type_is_stopped_not_fatal(server: int, certs: CertSet) -> None:
    conn = await raw_h3(server, certs)
    control = await conn.open_uni_stream()
    await control.write(SETTINGS)
    odd = await conn.open_uni_stream()
    await odd.write(b"\x21" + b"junk" * 10)  # reserved/GREASE-like stream type 0x21
    from pywebtransport.quic import StreamStopped

    with pytest.raises(StreamStopped) as info:
        for _ in range(200):
            await odd.write(b"more")
            await asyncio.sleep(0.01)
    assert info.value.error_code == ErrorCode.H3_STREAM_CREATION_ERROR
    assert conn.is_connected
    await conn.aclose()


async def test_oversized_headers_are_refused(server: int, certs: CertSet) -> None:
    conn = await raw_h3(server, certs)
    control = await conn.open_uni_stream()
    await control.write(SETTINGS)
    request = await conn.open_bidi_stream()
    huge = 200_000  # HEADERS frame larger than any limit we accept
    await request.write(b"\x01" + b"\x80\x03\x0d\x40" + b"\x00" * 16, fin=False)
    try:
        await request.write(b"\x00" * huge)
    except Exception:
        pass
    reason = await asyncio.wait_for(conn.wait_closed(), 10)
    assert reason.initiator == "peer"
    assert reason.error_code in (ErrorCode.H3_EXCESSIVE_LOAD, ErrorCode.H3_FRAME_ERROR)


async def test_server_survives_abuse_and_still_serves(server: int, certs: CertSet) -> None:
    for _ in range(5):
        conn = await raw_h3(server, certs)
        control = await conn.open_uni_stream()
        await control.write(SETTINGS + b"\x00\x40\x10" + b"\xff" * 16)  # DATA on control
        await expect_close(conn, ErrorCode.H3_FRAME_UNEXPECTED)
    from pywebtransport import ClientConfig, WebTransportClient

    async with WebTransportClient(ClientConfig.create(ca_certs=str(certs.ca_cert))) as client:
        session = await client.connect(f"https://localhost:{server}/")
        assert session.is_ready
        await session.close()


async def _h3_client(port: int, certs: CertSet) -> tuple[QuicConnection, "H3Connection", list[Any]]:
    """A raw QUIC connection driving our own sans-IO client core by hand."""
    from pywebtransport.h3.connection import H3Connection

    conn = await raw_h3(port, certs)
    h3 = H3Connection(is_client=True)
    events: list[Any] = []

    def on_stream(stream: Any) -> None:
        sid = stream.stream_id

        def on_data(data: bytes, fin: bool) -> None:
            stream.consumed(len(data))
            events.extend(h3.receive_stream_data(sid, data, fin))

        stream.set_receiver(on_data)

    conn.on_stream = on_stream
    while conn._incoming:
        on_stream(conn._incoming.popleft())
    control = await conn.open_uni_stream()
    control.write_nowait(h3.local_control_stream_data(control.stream_id))
    for _ in range(200):
        if h3.peer_settings is not None:
            break
        await asyncio.sleep(0.01)
    assert h3.peer_settings is not None
    return conn, h3, events


async def test_early_stream_bytes_are_accounted_once(certs: CertSet) -> None:
    from pywebtransport.h3.connection import H3Connection

    app = ServerApp(config=ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))
    got: asyncio.Future[tuple[bytes, int]] = asyncio.get_running_loop().create_future()

    @app.middleware
    async def slow(session: WebTransportSession) -> bool:
        await asyncio.sleep(0.3)  # the stream below arrives before the session is accepted
        return True

    @app.route("/")
    async def handler(session: WebTransportSession) -> None:
        async for stream in session.incoming_streams():
            data = await stream.read_all()
            got.set_result((data, stream._quic.native_buffered()))
            break
        await session.wait_closed()

    async with app:
        await app.server.listen(host="127.0.0.1", port=0)
        assert app.server.local_address is not None
        conn, h3, _ = await _h3_client(app.server.local_address[1], certs)
        request = await conn.open_bidi_stream()
        request.write_nowait(
            h3.connect_session(request.stream_id, authority="localhost", path="/")
        )
        uni = await conn.open_uni_stream()
        payload = b"e" * 10_000
        await uni.write(H3Connection.webtransport_stream_prefix(request.stream_id, False) + payload, fin=True)
        data, native_buffered = await asyncio.wait_for(got, 10)
        assert data == payload
        assert native_buffered == 0  # neither leaked nor consumed twice
        await conn.aclose()


async def test_peer_reset_of_connect_stream_releases_it(certs: CertSet) -> None:
    app = ServerApp(config=ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))
    ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @app.route("/")
    async def handler(session: WebTransportSession) -> None:
        await session.wait_closed()
        ended.set_result(None)

    async with app:
        await app.server.listen(host="127.0.0.1", port=0)
        assert app.server.local_address is not None
        conn, h3, events = await _h3_client(app.server.local_address[1], certs)
        request = await conn.open_bidi_stream()
        request.set_receiver(lambda data, fin: events.extend(h3.receive_stream_data(request.stream_id, data, fin)))
        request.write_nowait(h3.connect_session(request.stream_id, authority="localhost", path="/"))
        for _ in range(200):
            if any(type(e).__name__ == "WebTransportSessionEstablished" for e in events):
                break
            await asyncio.sleep(0.01)
        request.reset(ErrorCode.H3_REQUEST_CANCELLED)
        await asyncio.wait_for(ended, 5)
        (server_conn,) = app.server.connections
        await asyncio.wait_for(request.wait_closed(), 5)  # the server answered with its own reset
        for _ in range(100):
            if request.stream_id not in server_conn._streams:
                break
            await asyncio.sleep(0.02)
        assert request.stream_id not in server_conn._streams
        await conn.aclose()
