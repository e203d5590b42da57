"""ReconnectingClient against a real server that is stopped and restarted on the same port."""

from __future__ import annotations

import asyncio

import pytest

from certs import CertSet
from pywebtransport import ClientConfig, ServerApp, ServerConfig, WebTransportSession
from pywebtransport.events import Event
from pywebtransport.exceptions import ClientError, TimeoutError
from pywebtransport.reconnect import ReconnectingClient
from pywebtransport.server import create_echo_server_app

pytestmark = pytest.mark.timeout(20)


async def start_server(certs: CertSet, port: int = 0) -> ServerApp:
    app = create_echo_server_app(ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))
    await app.startup()
    await app.server.listen(host="127.0.0.1", port=port)
    return app


def cfg(certs: CertSet) -> ClientConfig:
    return ClientConfig.create(ca_certs=str(certs.ca_cert), connect_timeout=1.0)


async def echo_once(session: WebTransportSession, payload: bytes) -> bytes:
    stream = await session.create_bidirectional_stream()
    await stream.write_all(payload)
    return await asyncio.wait_for(stream.read_all(), 5)


async def test_reconnects_after_server_restart_on_same_port(certs: CertSet) -> None:
    app = await start_server(certs)
    assert app.server.local_address is not None
    port = app.server.local_address[1]
    events: list[str] = []
    reconnected = asyncio.Event()

    def record(event: Event) -> None:
        events.append(str(event.type))
        if event.type == "reconnected":
            reconnected.set()

    client = ReconnectingClient(
        f"https://127.0.0.1:{port}/echo", cfg(certs), max_retries=-1, retry_delay=0.05, backoff_factor=2.0,
        max_retry_delay=0.2,
    )
    for name in ("connected", "reconnected", "disconnected", "failed"):
        client.on(name, record)
    try:
        first = await client.get_session(timeout=5)
        assert client.is_connected
        assert await echo_once(first, b"before") == b"before"
        assert await client.get_session() is first  # same session while it lives

        await app.shutdown(timeout=0.2)  # server goes away: the session is lost
        await asyncio.wait_for(first.wait_closed(), 5)
        await asyncio.sleep(0.3)  # a few failed attempts while nothing listens
        assert not client.is_connected
        with pytest.raises(TimeoutError):
            await client.get_session(timeout=0.1)

        app = await start_server(certs, port)
        await asyncio.wait_for(reconnected.wait(), 8)
        second = await client.get_session(timeout=5)
        assert second is not first and client.is_connected
        assert await echo_once(second, b"after") == b"after"
        assert events[:2] == ["connected", "disconnected"] and events[-1] == "reconnected"
        assert "failed" not in events
        stats = client.get_stats()
        assert stats["reconnects"] == 1 and stats["attempts"] >= 3  # failures happened in between
    finally:
        await client.close()
        await app.shutdown(timeout=0.2)
    assert second.is_closed and client.is_closed
    with pytest.raises(ClientError):
        await client.get_session()


async def test_gives_up_after_max_retries_and_emits_failed(certs: CertSet) -> None:
    app = await start_server(certs)
    assert app.server.local_address is not None
    port = app.server.local_address[1]
    await app.shutdown(timeout=0.2)  # the port is free again: nothing answers

    client = ReconnectingClient(
        f"https://127.0.0.1:{port}/echo", config=cfg(certs), max_retries=2, retry_delay=0.05, backoff_factor=3.0
    )
    assert [client.retry_delay_for(n) for n in (1, 2, 3)] == pytest.approx([0.05, 0.15, 0.45])
    failed = asyncio.ensure_future(client.wait_for("failed", timeout=10))
    try:
        with pytest.raises(ClientError):
            await client.get_session(timeout=10)
        event = await failed
        assert event.data["attempts"] == 3  # the first try plus max_retries retries
        assert not client.is_connected
        assert client.get_stats()["failed"] is True
    finally:
        await client.close()


def test_backoff_is_capped() -> None:
    client = ReconnectingClient("https://127.0.0.1:4433/", retry_delay=1.0, backoff_factor=2.0, max_retry_delay=5.0)
    assert [client.retry_delay_for(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    with pytest.raises(ValueError):
        ReconnectingClient("https://127.0.0.1:4433/", backoff_factor=0.5)
