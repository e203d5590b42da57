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
