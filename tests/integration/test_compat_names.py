"""The 0.1.x helper classes do real work: managers track and clean up, pools reuse, the
proxy tunnels a CONNECT, the cluster runs several servers (real stack on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest

from certs import CertSet
from pywebtransport import ClientConfig, Event, EventType, ServerApp, ServerConfig, WebTransportClient
from pywebtransport import SessionError, StreamError, TimeoutError, WebTransportSession, WebTransportStream
from pywebtransport.client import (
    WebTransportBrowser,
    WebTransportProxy,
    benchmark_client_performance,
    test_client_connectivity,
)
from pywebtransport.connection import ConnectionManager, ConnectionPool
from pywebtransport.datagram import DatagramMessage, DatagramQueue, DatagramStats
from pywebtransport.protocol import StreamInfo, WebTransportSessionInfo
from pywebtransport.server import ServerCluster
from pywebtransport.session import SessionManager
from pywebtransport.stream import StreamBuffer

pytestmark = pytest.mark.timeout(90)


def config(**kw: Any) -> ClientConfig:
    return ClientConfig.create(verify_mode=ssl.CERT_NONE, connect_timeout=10.0, **kw)


async def _pipe(reader: Any, writer: Any) -> None:
    with contextlib.suppress(Exception):
        while True:
            data = await reader.read(65536)
            if not data:
                break
            await writer.write(data) if asyncio.iscoroutinefunction(writer.write) else writer.write(data)
    with contextlib.suppress(Exception):
        if hasattr(writer, "write_eof"):
            writer.write_eof()
        else:
            await writer.close()


@pytest.fixture
async def url(certs: CertSet) -> AsyncIterator[str]:
    app = ServerApp(config=ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))

    @app.route("/")
    async def index(session: WebTransportSession) -> None:
        await session.wait_closed()

    @app.route("/chunks")  # echoes each chunk as it arrives
    async def chunks(session: WebTransportSession) -> None:
        async def one(stream: WebTransportStream) -> None:
            async for chunk in stream.read_iter():
                await stream.write(chunk)
            await stream.close()

        async for stream in session.incoming_streams():
            if isinstance(stream, WebTransportStream):
                asyncio.ensure_future(one(stream))

    @app.route("/proxy")  # a small HTTP CONNECT proxy: one tunnel per stream
    async def proxy(session: WebTransportSession) -> None:
        async def tunnel(stream: WebTransportStream) -> None:
            head = await stream.readuntil(b"\r\n\r\n")
            target = head.split(b" ")[1].decode().split("://", 1)[-1].split("/", 1)[0]
            host, port = target.rsplit(":", 1)
            try:
                reader, writer = await asyncio.open_connection(host, int(port))
            except OSError:
                await stream.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                return
            await stream.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(_pipe(stream, writer), _pipe(reader, stream))
            writer.close()

        async for stream in session.incoming_streams():
            if isinstance(stream, WebTransportStream):
                asyncio.ensure_future(tunnel(stream))

    async with app:
        await app.server.listen(host="127.0.0.1", port=0)
        assert app.server.local_address is not None
        yield f"https://127.0.0.1:{app.server.local_address[1]}"


async def test_session_manager_tracks_limits_and_forgets_closed(url: str) -> None:
    async with WebTransportClient(config()) as client, SessionManager(max_sessions=2) as manager:
        first = await client.connect(url + "/")
        second = await client.connect(url + "/")
        assert await manager.add_session(first) == first.session_id
        await manager.add_session(second)
        third = await client.connect(url + "/")
        with pytest.raises(SessionError):
            await manager.add_session(third)
        assert manager.get_session_count() == 2 and await manager.get_session(first.session_id) is first
        await first.close()
        assert manager.get_session_count() == 1  # forgotten as it closed
        stats = manager.get_stats()
        assert stats["active_sessions"] == 1 and stats["total_created"] == 2 and stats["total_closed"] == 1
        assert await manager.close_all_sessions() == 1 and second.is_closed
        await third.close()


async def test_stream_manager_and_protocol_handler(url: str) -> None:
    async with WebTransportClient(config()) as client:
        session = await client.connect(url + "/chunks")
        manager = session.stream_manager
        assert session.stream_manager is manager
        streams = [await manager.create_bidirectional_stream() for _ in range(3)]
        assert len(manager) == 3 and streams[0].stream_id in manager
        for stream in streams:
            await stream.write(b"ping")
            assert await stream.read() == b"ping"
            await stream.close()
            assert await stream.read_all() == b""
        await asyncio.sleep(0.2)
        assert await manager.cleanup_closed_streams() == 3 and len(manager) == 0
        small = type(manager)(session, max_streams=1)
        await small.create_unidirectional_stream()
        with pytest.raises(StreamError):
            await small.create_unidirectional_stream()
        handler = session.protocol_handler
        infos = handler.get_all_sessions()
        assert [i.session_id for i in infos] == [session.session_id]
        assert isinstance(infos[0], WebTransportSessionInfo) and infos[0].path == "/chunks"
        assert handler.get_stats()["streams_created"] >= 4
        info = StreamInfo.from_stream(streams[0]).to_dict()
        assert info["stream_id"] == streams[0].stream_id and info["bytes_sent"] >= 4  # payload + stream header
        await session.close()


async def test_connection_manager_and_pool(url: str) -> None:
    host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
    async with ConnectionPool(max_size=2) as pool, ConnectionManager(max_connections=5) as manager:
        conn = await pool.get_connection(config(), host, port, "/")
        assert conn.is_connected
        cid = await manager.add_connection(conn)
        assert await manager.get_connection(cid) is conn and manager.get_connection_count() == 1
        await pool.return_connection(conn)
        again = await pool.get_connection(config(), host, port, "/")
        assert again is conn and pool.get_stats()["reused"] == 1 and pool.get_stats()["created"] == 1
        other = await pool.get_connection(config(), host, port, "/other")
        assert other is not conn
        other.close()
        await other.wait_closed()
        conn.close()
        await conn.wait_closed()
        assert manager.get_connection_count() == 0  # forgotten once closed
        assert manager.get_stats()["total_closed"] == 1


async def test_proxy_tunnels_a_connect(url: str) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(b"tcp:" + data)
        writer.close()

    tcp = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    try:
        async with WebTransportProxy(proxy_url=url + "/proxy", config=config()) as proxy:
            stream = await proxy.connect_through_proxy(f"tcp://127.0.0.1:{port}", proxy_headers={"x-who": "test"})
            await stream.write(b"hello")
            assert await asyncio.wait_for(stream.readexactly(9), 10) == b"tcp:hello"
            await stream.close()
            with pytest.raises(Exception, match="502"):
                await proxy.connect_through_proxy("tcp://127.0.0.1:9")
    finally:
        tcp.close()
        await tcp.wait_closed()


async def test_browser_history(url: str) -> None:
    async with WebTransportBrowser(config=config()) as browser:
        a = await browser.navigate(url + "/")
        b = await browser.navigate(url + "/chunks")
        assert a.is_closed and browser.current_session is b
        back = await browser.back()
        assert back is not None and back.path == "/" and browser.current_url == url + "/"
        forward = await browser.forward()
        assert forward is not None and forward.path == "/chunks"
        assert await browser.forward() is None
        refreshed = await browser.refresh()
        assert refreshed is not None and refreshed is not forward and forward.is_closed
        assert browser.get_history() == [url + "/", url + "/chunks"]


async def test_client_utilities(url: str) -> None:
    result = await benchmark_client_performance(url + "/chunks", config=config(), num_requests=4, concurrent_requests=2)
    assert result["total_requests"] == 4 and result["successful_requests"] == 4 and result["failed_requests"] == 0
    assert len(result["latencies"]) == 4 and 0 < result["min_latency"] <= result["avg_latency"] <= result["max_latency"]
    ok = await test_client_connectivity(url + "/", config=config())
    assert ok["success"] and ok["connect_time"] > 0 and ok["client_stats"]["connections"]["successful"] == 1
    bad = await test_client_connectivity(url + "/missing", config=config(), timeout=5)
    assert not bad["success"] and bad["connect_time"] is None and bad["error"]


async def test_server_cluster_runs_and_stops_servers(certs: CertSet) -> None:
    configs = [
        ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key), bind_host="127.0.0.1", bind_port=0)
        for _ in range(2)
    ]
    cluster = ServerCluster(configs)
    async with cluster:
        servers = await cluster.get_servers()
        assert len(servers) == 2 and all(s.is_serving for s in servers)

        def accept(event: Event) -> None:
            event.data["session"].accept()

        for server in servers:
            server.on(EventType.SESSION_REQUEST, accept)
        async with WebTransportClient(config()) as client:
            for server in servers:
                assert server.local_address is not None
                session = await client.connect(f"https://127.0.0.1:{server.local_address[1]}/")
                assert session.is_ready
                await session.close()
        stats = await cluster.get_cluster_stats()
        assert stats["server_count"] == 2 and stats["total_sessions_requested"] == 2
        extra = await cluster.add_server(configs[0])
        assert extra is not None and cluster.get_server_count() == 3
        assert extra.local_address is not None
        assert await cluster.remove_server(*extra.local_address) and not extra.is_serving
    assert not cluster.is_running and not any(s.is_serving for s in servers)


async def test_stream_buffer() -> None:
    buffer = StreamBuffer(max_size=10)
    await buffer.feed_data(b"hello")
    assert buffer.size == 5 and await buffer.read(2) == b"he"
    with pytest.raises(StreamError):
        await buffer.feed_data(b"x" * 8)
    with pytest.raises(TimeoutError):
        await StreamBuffer().read(timeout=0.05)
    assert await buffer.read() == b"llo"
    reader = asyncio.ensure_future(buffer.read())  # waits for data
    await asyncio.sleep(0)
    assert not reader.done()
    await buffer.feed_data(b"!", eof=True)
    assert await reader == b"!" and await buffer.read() == b"" and buffer.at_eof


async def test_datagram_queue_message_and_stats() -> None:
    queue = DatagramQueue(max_size=3, max_age=10)
    assert await queue.put(DatagramMessage(data=b"low", priority=0))
    assert await queue.put(DatagramMessage(data=b"high", priority=5))
    assert await queue.put(DatagramMessage(data=b"old", ttl=0.0, timestamp=0.0))
    assert await queue.put(DatagramMessage(data=b"full"))  # room made by dropping the expired one
    assert queue.qsize() == 3 and queue.dropped == 1
    assert not await queue.put(DatagramMessage(data=b"overflow")) and queue.dropped == 2
    assert [(await queue.get(timeout=1)).data for _ in range(3)] == [b"high", b"low", b"full"]
    with pytest.raises(TimeoutError):
        await DatagramQueue().get(timeout=0.05)
    message = DatagramMessage(data="text")
    assert message.size == 4 and message.to_dict()["size"] == 4 and not message.is_expired
    stats = DatagramStats(session_id="1")
    stats.record_send(10, 0.002)
    stats.record_send(30, 0.001)
    stats.record_receive(5)
    data = stats.to_dict()
    assert data["datagrams_sent"] == 2 and data["bytes_sent"] == 40 and data["avg_send_time"] == pytest.approx(0.0015)
    assert data["min_send_time"] == 0.001 and data["datagrams_received"] == 1
