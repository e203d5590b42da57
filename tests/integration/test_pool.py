"""ClientPool, SessionPool/PooledClient and StreamPool against a real loopback server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from certs import CertSet
from pywebtransport import ClientConfig, ServerApp, ServerConfig, WebTransportSession, WebTransportStream
from pywebtransport.exceptions import ClientError, SessionError
from pywebtransport.pool import ClientPool, PooledClient, SessionPool, StreamPool
from pywebtransport.server import create_echo_server_app

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
async def echo_app(certs: CertSet) -> AsyncIterator[ServerApp]:
    app = create_echo_server_app(ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))
    await app.startup()
    await app.server.listen(host="127.0.0.1", port=0)
    yield app
    await app.shutdown(timeout=0.5)


def url_of(app: ServerApp, path: str = "/echo") -> str:
    assert app.server.local_address is not None
    return f"https://127.0.0.1:{app.server.local_address[1]}{path}"


def cfg(certs: CertSet) -> ClientConfig:
    return ClientConfig.create(ca_certs=str(certs.ca_cert), connect_timeout=3.0)


async def echo_once(session: WebTransportSession, payload: bytes) -> bytes:
    stream = await session.create_bidirectional_stream()
    await stream.write_all(payload)
    return await asyncio.wait_for(stream.read_all(), 5)


async def test_client_pool_round_robin_and_connect_all(certs: CertSet, echo_app: ServerApp) -> None:
    async with ClientPool.create(num_clients=3, base_config=cfg(certs)) as pool:
        assert len(pool) == 3
        picked = [pool.get_client() for _ in range(6)]
        assert picked[:3] == picked[3:]
        assert len({id(c) for c in picked[:3]}) == 3
        sessions = await pool.connect_all(url_of(echo_app))
        assert len(sessions) == 3
        assert len({s.connection for s in sessions}) == 3  # one connection per client
        replies = await asyncio.gather(*(echo_once(s, b"n%d" % i) for i, s in enumerate(sessions)))
        assert replies == [b"n0", b"n1", b"n2"]
        assert all(c.stats["connections"]["successful"] == 1 for c in pool.clients)
    assert pool.is_closed
    await asyncio.sleep(0.1)
    assert all(s.is_closed for s in sessions)
    with pytest.raises(ClientError):
        pool.get_client()


async def test_client_pool_connect_all_fails_when_no_server(certs: CertSet) -> None:
    pool = ClientPool([cfg(certs), cfg(certs)])
    try:
        with pytest.raises(ClientError):
            # Nothing listens on this port: every client fails.
            await pool.connect_all("https://127.0.0.1:9/echo", timeout=1.0)
    finally:
        await pool.close_all()


async def test_session_pool_reuses_idle_sessions(certs: CertSet, echo_app: ServerApp) -> None:
    url = url_of(echo_app)
    assert PooledClient is SessionPool
    pool = PooledClient(config=cfg(certs), pool_size=1, cleanup_interval=60)
    try:
        first = await pool.get_session(url)
        assert await echo_once(first, b"a") == b"a"
        await pool.return_session(first)
        assert pool.idle_count(url) == 1
        again = await pool.get_session(url)
        assert again is first  # reused, no new connection
        second = await pool.get_session(url)  # pool is empty now: a fresh session
        assert second is not first
        assert await echo_once(second, b"b") == b"b"
        await pool.return_session(first)
        await pool.return_session(second)  # pool_size=1: this one is closed
        assert pool.idle_count(url) == 1
        assert second.is_closed and not first.is_closed
        stats = pool.get_stats()
        assert stats["created"] == 2 and stats["reused"] == 1 and stats["in_use"] == 0

        # A pooled session closed meanwhile is not handed out again.
        await first.close()
        third = await pool.get_session(url)
        assert third is not first and third.is_ready
        assert await echo_once(third, b"c") == b"c"
        with pytest.raises(SessionError):
            await pool.return_session(first)  # no longer tracked
    finally:
        await pool.close()
    assert third.is_closed and pool.client.is_closed


async def test_session_pool_cleanup_closes_over_idle(certs: CertSet, echo_app: ServerApp) -> None:
    url = url_of(echo_app)
    async with SessionPool(cfg(certs), 4, 0.05, max_idle_time=0.1) as pool:
        sessions = [await pool.get_session(url) for _ in range(2)]
        for s in sessions:
            await pool.return_session(s)
        assert pool.idle_count() == 2
        for _ in range(50):
            if pool.idle_count() == 0:
                break
            await asyncio.sleep(0.05)
        assert pool.idle_count() == 0
        assert all(s.is_closed for s in sessions)


async def test_stream_pool_preopens_and_recycles(certs: CertSet, echo_app: ServerApp) -> None:
    from pywebtransport import WebTransportClient

    async with WebTransportClient(cfg(certs)) as client:
        session = await client.connect(url_of(echo_app))
        pool = StreamPool(session, pool_size=3)
        await pool.initialize()
        assert pool.available == 3
        assert session.get_session_stats()["streams_created"] == 3

        stream = await pool.get_stream()
        assert isinstance(stream, WebTransportStream)
        assert pool.get_stats()["hits"] == 1
        # Taken from the pool: the refill (not this call) opens the 4th stream.
        for _ in range(50):
            if pool.available == 3:
                break
            await asyncio.sleep(0.02)
        assert pool.available == 3
        assert session.get_session_stats()["streams_created"] == 4

        # The pre-opened stream really works end to end.
        await stream.write(b"ping")
        assert await asyncio.wait_for(stream.read(4), 5) == b"ping"
        await pool.return_stream(stream)  # pool is full again: it gets finished
        assert not stream.is_writable

        # A still-open stream goes back into a pool with room (taking from the
        # pool does not suspend, so the refill has not run yet here).
        s1 = await pool.get_stream()
        await pool.return_stream(s1)
        assert pool.get_stats()["returned"] == 1 and s1.is_writable
        again = [await pool.get_stream() for _ in range(3)]
        assert s1 in again

        pooled = list(pool._available)
        await pool.close()
        assert pool.available == 0
        assert all(not s.is_writable for s in pooled)
        with pytest.raises(SessionError):
            await pool.get_stream()
        await session.close()
