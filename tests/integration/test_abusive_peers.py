"""Malformed or abusive HTTP/3 peers get a protocol-correct close, never a hang or crash.

The attacker is a raw QUIC client (our QUIC layer with ALPN h3) writing
hand-made bytes, against the real server over loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from certs import CertSet
from pywebtransport import ServerApp, ServerConfig, WebTransportSession
from pywebtransport.h3.errors import ErrorCode
from pywebtransport.quic import QuicConfiguration, QuicConnection, connect

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
