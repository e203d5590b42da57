"""Documented 0.1.x configuration fields take effect (real stack on loopback)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest

from certs import CertSet
from pywebtransport import (
    ClientConfig,
    ClientError,
    DatagramError,
    ServerApp,
    ServerConfig,
    TimeoutError,
    WebTransportClient,
    WebTransportSession,
)
from pywebtransport.client import ReconnectingClient
from pywebtransport.server.server import quic_config_for_server

pytestmark = pytest.mark.timeout(60)


def client_config(**kw: Any) -> ClientConfig:
    return ClientConfig.create(verify_mode=ssl.CERT_NONE, connect_timeout=10.0, **kw)


@pytest.fixture
async def server(certs: CertSet, request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, list[int]]]:
    server_kw: dict[str, Any] = getattr(request, "param", {})
    app = ServerApp(config=ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key), **server_kw))
    seen: list[int] = []

    @app.route("/silent")  # accepts, never reads nor writes
    async def silent(session: WebTransportSession) -> None:
        await session.wait_closed()

    @app.route("/count")  # counts the streams it is given, after they all arrived
    async def count(session: WebTransportSession) -> None:
        await asyncio.sleep(1.0)
        async for stream in session.incoming_streams():
            seen.append(stream.stream_id)

    async with app:
        await app.server.listen(host="127.0.0.1", port=0)
        assert app.server.local_address is not None
        yield f"https://127.0.0.1:{app.server.local_address[1]}", seen


@pytest.fixture
def url(server: tuple[str, list[int]]) -> str:
    return server[0]


async def test_read_timeout_bounds_a_waiting_read(url: str) -> None:
    async with WebTransportClient(client_config(read_timeout=0.3)) as client:
        session = await client.connect(url + "/silent")
        stream = await session.create_bidirectional_stream()
        await stream.write(b"hello")
        with pytest.raises(TimeoutError):
            await stream.read()


async def test_write_timeout_bounds_a_blocked_write(url: str) -> None:
    async with WebTransportClient(client_config(write_timeout=0.5)) as client:
        session = await client.connect(url + "/silent")
        stream = await session.create_unidirectional_stream()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(stream.write(b"x" * (64 << 20)), 20)


async def test_max_datagram_size(url: str) -> None:
    async with WebTransportClient(client_config(max_datagram_size=100)) as client:
        session = await client.connect(url + "/silent")
        assert session.datagrams.max_datagram_size == 100
        await session.datagrams.send(b"x" * 100)
        with pytest.raises(DatagramError):
            await session.datagrams.send(b"x" * 101)


@pytest.mark.parametrize("server", [{"max_incoming_streams": 2}], indirect=True)
async def test_max_incoming_streams(server: tuple[str, list[int]]) -> None:
    url, seen = server
    async with WebTransportClient(client_config()) as client:
        session = await client.connect(url + "/count")
        for _ in range(5):
            stream = await session.create_unidirectional_stream()
            await stream.write(b"data")
        for _ in range(100):  # the handler takes the queued streams after 1 s
            if seen:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        await session.close()
    assert len(seen) == 2  # the three beyond the limit were refused


async def test_alpn_protocols_are_offered(url: str) -> None:
    async with WebTransportClient(client_config(alpn_protocols=["not-h3"])) as client:
        with pytest.raises(ClientError):
            await client.connect(url + "/silent")


def test_keep_alive_and_alpn_reach_the_quic_layer(certs: CertSet) -> None:
    base = {"certfile": str(certs.cert), "keyfile": str(certs.key)}
    on = quic_config_for_server(ServerConfig.create(**base, connection_keepalive_timeout=7.0))
    off = quic_config_for_server(ServerConfig.create(**base, keep_alive=False))
    assert on.keep_alive_interval == 7.0 and off.keep_alive_interval is None
    assert quic_config_for_server(ServerConfig.create(**base, alpn_protocols=["h3"])).alpn_protocols == ["h3"]


async def test_log_level_and_access_log(url: str, caplog: pytest.LogCaptureFixture) -> None:
    WebTransportClient(client_config(log_level="DEBUG"))
    assert logging.getLogger("pywebtransport").level == logging.DEBUG
    WebTransportClient(client_config(log_level="WARNING"))
    assert logging.getLogger("pywebtransport").level == logging.WARNING
    with caplog.at_level(logging.INFO, logger="pywebtransport.server.access"):
        async with WebTransportClient(client_config()) as client:
            session = await client.connect(url + "/silent")
            await session.close()
    assert "/silent -> 200" in caplog.text


async def test_retry_fields_drive_the_reconnecting_client() -> None:
    config = client_config(max_retries=7, retry_delay=0.25, retry_backoff=3.0, max_retry_delay=4.0)
    client = ReconnectingClient("https://127.0.0.1:9/", config=config)
    try:
        assert client.retry_delay_for(1) == 0.25 and client.retry_delay_for(2) == 0.75
        assert client.retry_delay_for(10) == 4.0
        assert client.get_stats()["max_retries"] == 7
    finally:
        await client.close()


def test_backlog_is_rejected_as_unsupported() -> None:
    from pywebtransport.exceptions import ConfigurationError

    assert ServerConfig.create(backlog=128).backlog == 128
    with pytest.raises(ConfigurationError, match="backlog.*not supported") as info:
        ServerConfig.create(backlog=512)
    assert info.value.config_key == "backlog"
