"""WebTransport session flow control and several sessions per connection, over real loopback."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from certs import CertSet
from pywebtransport import (
    ClientConfig,
    ServerApp,
    ServerConfig,
    WebTransportClient,
    WebTransportReceiveStream,
    WebTransportSession,
    WebTransportStream,
)
from pywebtransport.exceptions import TimeoutError
from pywebtransport.h3.settings import Setting

pytestmark = pytest.mark.timeout(60)

KIB = 1024
SMALL_LIMITS: dict[str, Any] = {
    "webtransport_flow_control": True,
    "initial_max_data": 64 * KIB,
    "initial_max_streams_bidi": 2,
    "initial_max_streams_uni": 2,
    "flow_control_window_size": 64 * KIB,
}


async def _serve(certs: CertSet, **options: Any) -> AsyncIterator[tuple[ServerApp, str]]:
    app = ServerApp(config=ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key), **options))

    @app.route("/echo")
    async def echo(session: WebTransportSession) -> None:
        async def datagrams() -> None:
            while True:
                data = await session.datagrams.receive()
                await session.datagrams.send(b"ECHO: " + data)

        async def one(stream: WebTransportStream) -> None:
            data = await stream.read_all()
            await stream.write_all(data)

        async def uni(stream: WebTransportReceiveStream) -> None:
            data = await stream.read_all()
            out = await session.create_unidirectional_stream()
            await out.write_all(b"UNI: " + data)

        async def streams() -> None:
            tasks = set()
            async for stream in session.incoming_streams():
                task = asyncio.ensure_future(one(stream) if isinstance(stream, WebTransportStream) else uni(stream))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        tasks = [asyncio.ensure_future(datagrams()), asyncio.ensure_future(streams())]
        try:
            await session.wait_closed()
        finally:
            for t in tasks:
                t.cancel()

    async with app:
        await app.server.listen(host="127.0.0.1", port=0)
        assert app.server.local_address is not None
        yield app, f"https://127.0.0.1:{app.server.local_address[1]}"


@pytest.fixture
async def fc_server(certs: CertSet) -> AsyncIterator[tuple[ServerApp, str]]:
    async for item in _serve(certs, **SMALL_LIMITS):
        yield item


@pytest.fixture
async def plain_server(certs: CertSet) -> AsyncIterator[tuple[ServerApp, str]]:
    async for item in _serve(certs):
        yield item


def client_config(certs: CertSet, **kw: Any) -> ClientConfig:
    return ClientConfig.create(ca_certs=str(certs.ca_cert), **kw)


async def _echo(session: WebTransportSession, payload: bytes) -> bytes:
    stream = await session.create_bidirectional_stream()
    writer = asyncio.ensure_future(stream.write_all(payload))
    data = await stream.read_all()
    await writer
    return data


async def test_megabyte_transfer_completes_with_credit_updates(
    certs: CertSet, fc_server: tuple[ServerApp, str]
) -> None:
    app, url = fc_server
    payload = hashlib.sha256(b"seed").digest() * (1024 * KIB // 32)
    async with WebTransportClient(client_config(certs, **SMALL_LIMITS)) as client:
        session = await client.connect(url + "/echo")
        conn = session.connection
        assert conn.h3.flow_control_enabled
        data = await asyncio.wait_for(_echo(session, payload), 30)
        assert data == payload
        # 1 MiB through a 64 KiB window in both directions needs many WT_MAX_DATA updates.
        assert conn.credit_updates_received >= 4
        assert conn.credit_updates_sent >= 4
        (server_conn,) = app.server.connections
        assert server_conn.h3.flow_control_enabled
        assert server_conn.credit_updates_sent >= 4
        info = conn.info()
        assert info["credit_updates_received"] == conn.credit_updates_received
        await session.close()


async def test_third_stream_waits_for_stream_credit(certs: CertSet, fc_server: tuple[ServerApp, str]) -> None:
    _app, url = fc_server
    async with WebTransportClient(client_config(certs, **SMALL_LIMITS)) as client:
        session = await client.connect(url + "/echo")
        first = await session.create_bidirectional_stream()
        second = await session.create_bidirectional_stream()
        with pytest.raises(TimeoutError):
            await session.create_bidirectional_stream(timeout=0.3)
        third_task = asyncio.ensure_future(session.create_bidirectional_stream())
        await asyncio.sleep(0.3)
        assert not third_task.done()
        # Blocked at the server's limit of 2: one WT_STREAMS_BLOCKED(2), however often we wait at it.
        assert session.connection.blocked_sent == 1
        # Finishing one stream lets the server grant WT_MAX_STREAMS and unblocks the third.
        await first.write_all(b"one")
        assert await first.read_all() == b"one"
        third = await asyncio.wait_for(third_task, 10)
        await third.write_all(b"three")
        await second.write_all(b"two")
        assert await third.read_all() == b"three"
        assert await second.read_all() == b"two"
        # Many short streams in sequence keep going (credit keeps being granted).
        for i in range(6):
            assert await asyncio.wait_for(_echo(session, b"n%d" % i), 10) == b"n%d" % i
        await session.close()


async def test_unidirectional_stream_limits_both_ways(certs: CertSet, fc_server: tuple[ServerApp, str]) -> None:
    _app, url = fc_server
    async with WebTransportClient(client_config(certs, **SMALL_LIMITS)) as client:
        session = await client.connect(url + "/echo")

        async def send(i: int) -> None:
            stream = await session.create_unidirectional_stream()
            await stream.write_all(b"u%d" % i)

        # Six uni streams each way with a limit of two: both sides keep granting credit.
        senders = asyncio.ensure_future(asyncio.gather(*(send(i) for i in range(6))))
        replies = set()
        async for stream in session.incoming_streams():
            assert isinstance(stream, WebTransportReceiveStream)
            replies.add(await asyncio.wait_for(stream.read_all(), 10))
            if len(replies) == 6:
                break
        await asyncio.wait_for(senders, 10)
        assert replies == {b"UNI: u%d" % i for i in range(6)}
        await session.close()


async def test_concurrent_streams_and_writers_do_not_deadlock(
    certs: CertSet, fc_server: tuple[ServerApp, str]
) -> None:
    _app, url = fc_server
    async with WebTransportClient(client_config(certs, **SMALL_LIMITS)) as client:
        session = await client.connect(url + "/echo")
        payloads = [bytes([i]) * (200 * KIB) for i in range(6)]
        results = await asyncio.wait_for(asyncio.gather(*(_echo(session, p) for p in payloads)), 40)
        assert results == payloads
        await session.close()


async def test_flow_control_is_off_by_default(certs: CertSet, plain_server: tuple[ServerApp, str]) -> None:
    app, url = plain_server
    async with WebTransportClient(client_config(certs)) as client:
        session = await client.connect(url + "/echo")
        conn = session.connection
        assert not conn.h3.flow_control_enabled
        settings = conn.h3.local_settings
        assert Setting.WT_INITIAL_MAX_DATA not in settings and settings[Setting.WT_MAX_SESSIONS] == 1
        peer = conn.h3.peer_settings
        assert peer is not None and not peer.flow_control and peer.max_sessions == 1
        # No stream or data limits apply: more streams than the FC tests allow, at once.
        payloads = [bytes([i]) * (100 * KIB) for i in range(5)]
        assert await asyncio.gather(*(_echo(session, p) for p in payloads)) == payloads
        assert conn.credit_updates_sent == conn.credit_updates_received == 0
        assert "credit_updates_sent" not in conn.info()
        await session.close()


async def test_flow_control_needs_both_sides(certs: CertSet, plain_server: tuple[ServerApp, str]) -> None:
    _app, url = plain_server
    async with WebTransportClient(client_config(certs, **SMALL_LIMITS)) as client:
        session = await client.connect(url + "/echo")
        assert Setting.WT_INITIAL_MAX_DATA in session.connection.h3.local_settings
        assert not session.connection.h3.flow_control_enabled
        payload = b"x" * (256 * KIB)
        assert await _echo(session, payload) == payload
        await session.close()


async def test_two_sessions_share_one_connection(certs: CertSet, fc_server: tuple[ServerApp, str]) -> None:
    app, url = fc_server
    config = client_config(certs, reuse_connections=True, max_sessions=4, **SMALL_LIMITS)
    async with WebTransportClient(config) as client:
        first = await client.connect(url + "/echo")
        second = await client.connect(url + "/echo")
        assert first.connection is second.connection and first.id != second.id
        assert len(app.server.connections) == 1
        for session, tag in ((first, b"A"), (second, b"B")):
            assert await _echo(session, tag * 100 * KIB) == tag * 100 * KIB
            await session.datagrams.send(tag)
        assert await first.datagrams.receive(timeout=5) == b"ECHO: A"
        assert await second.datagrams.receive(timeout=5) == b"ECHO: B"

        await first.close(7, "first done")
        await asyncio.sleep(0.2)
        assert first.is_closed and not second.is_closed
        assert not second.connection.is_closed
        assert await _echo(second, b"still here") == b"still here"
        await second.datagrams.send(b"again")
        assert await second.datagrams.receive(timeout=5) == b"ECHO: again"

        # A third session reuses the same connection too.
        third = await client.connect(url + "/echo")
        assert third.connection is second.connection
        assert await _echo(third, b"3") == b"3"
        await third.close()
        await second.close()
        await asyncio.wait_for(second.connection.wait_closed(), 10)


async def test_no_reuse_without_negotiated_flow_control(
    certs: CertSet, plain_server: tuple[ServerApp, str]
) -> None:
    app, url = plain_server
    config = client_config(certs, reuse_connections=True, max_sessions=4, **SMALL_LIMITS)
    async with WebTransportClient(config) as client:
        first = await client.connect(url + "/echo")
        second = await client.connect(url + "/echo")
        assert first.connection is not second.connection
        assert len(app.server.connections) == 2
        await first.close()
        assert await _echo(second, b"ok") == b"ok"
        await second.close()


async def test_reused_connection_survives_its_last_session_closing_mid_open(certs: CertSet) -> None:
    options = {**SMALL_LIMITS, "max_sessions": 4}
    async for app, base in _serve(certs, **options):
        config = client_config(certs, reuse_connections=True, **options)
        async with WebTransportClient(config) as client:
            for spins in range(5):
                first = await client.connect(base + "/echo")
                opening = asyncio.ensure_future(client.connect(base + "/echo"))
                for _ in range(spins):
                    await asyncio.sleep(0)
                await first.close()
                second = await asyncio.wait_for(opening, 10)
                assert second.is_ready
                assert await asyncio.wait_for(_echo(second, b"still here"), 5) == b"still here"
                await second.close()
