"""DatagramBroadcaster and DatagramReliabilityLayer over real sessions."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from certs import CertSet
from pywebtransport import (
    ClientConfig,
    ServerApp,
    ServerConfig,
    WebTransportClient,
    WebTransportDatagramDuplexStream,
    WebTransportSession,
)
from pywebtransport.datagram_extras import DatagramBroadcaster, DatagramReliabilityLayer
from pywebtransport.exceptions import DatagramError, TimeoutError

pytestmark = pytest.mark.timeout(20)


class Server:
    def __init__(self, app: ServerApp) -> None:
        self.app = app
        self.broadcaster = DatagramBroadcaster()
        self.layers: list[DatagramReliabilityLayer] = []
        self.received: list[bytes] = []
        assert app.server.local_address is not None
        self.base = f"https://127.0.0.1:{app.server.local_address[1]}"


@pytest.fixture
async def server(certs: CertSet) -> AsyncIterator[Server]:
    app = ServerApp(config=ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))
    holder: list[Server] = []

    @app.route("/broadcast")
    async def join(session: WebTransportSession) -> None:
        holder[0].broadcaster.add_stream(session.datagrams)
        await session.wait_closed()

    @app.route("/reliable")
    async def reliable(session: WebTransportSession) -> None:
        async with DatagramReliabilityLayer(session.datagrams, ack_timeout=0.1, max_retries=30) as layer:
            holder[0].layers.append(layer)
            while True:
                try:
                    message = await layer.receive()
                except Exception:
                    return
                holder[0].received.append(message)
                await layer.send(b"echo:" + message)

    await app.startup()
    await app.server.listen(host="127.0.0.1", port=0)
    holder.append(Server(app))
    yield holder[0]
    await app.shutdown(timeout=0.5)


def cfg(certs: CertSet) -> ClientConfig:
    return ClientConfig.create(ca_certs=str(certs.ca_cert), connect_timeout=3.0)


class Lossy:
    """Wraps a datagram stream and drops the sends `drop(data, n)` selects (n counts from 1)."""

    def __init__(self, inner: WebTransportDatagramDuplexStream, drop: Callable[[bytes, int], bool]) -> None:
        self.inner = inner
        self.drop = drop
        self.count = 0
        self.dropped = 0

    async def send(self, data: bytes | str, priority: int = 0, ttl: float | None = None) -> None:
        self.count += 1
        payload = data.encode() if isinstance(data, str) else data
        if self.drop(payload, self.count):
            self.dropped += 1
            return
        await self.inner.send(payload)

    async def receive(self, timeout: float | None = None) -> bytes:
        return await self.inner.receive(timeout)


async def test_broadcast_to_every_live_session(certs: CertSet, server: Server) -> None:
    async with WebTransportClient(cfg(certs)) as client:
        sessions = [await client.connect(server.base + "/broadcast") for _ in range(3)]
        for _ in range(100):
            if len(server.broadcaster) == 3:
                break
            await asyncio.sleep(0.02)
        assert len(server.broadcaster) == 3
        assert await server.broadcaster.broadcast(b"hello all") == 3
        got = await asyncio.gather(*(s.datagrams.receive(timeout=5) for s in sessions))
        assert got == [b"hello all"] * 3

        await sessions[0].close()
        for _ in range(100):
            if any(d.is_closed for d in server.broadcaster.streams):
                break
            await asyncio.sleep(0.02)
        assert await server.broadcaster.broadcast("text too") == 2
        assert len(server.broadcaster) == 2  # the closed session's stream was dropped
        got = await asyncio.gather(*(s.datagrams.receive(timeout=5) for s in sessions[1:]))
        assert got == [b"text too"] * 2

        removed = server.broadcaster.streams[0]
        server.broadcaster.remove_stream(removed)
        assert await server.broadcaster.broadcast(b"last") == 1
        for s in sessions[1:]:
            await s.close()


async def test_reliable_round_trip_over_real_session(certs: CertSet, server: Server) -> None:
    async with WebTransportClient(cfg(certs)) as client:
        session = await client.connect(server.base + "/reliable")
        async with DatagramReliabilityLayer(session.datagrams, ack_timeout=0.2, max_retries=5) as layer:
            seqs = [await layer.send(b"m%d" % i, wait_for_ack=True) for i in range(5)]
            assert seqs == [0, 1, 2, 3, 4]
            replies = {await layer.receive(timeout=5) for _ in range(5)}
            assert replies == {b"echo:m%d" % i for i in range(5)}
            assert layer.stats["acked"] == 5 and layer.pending_count == 0
        assert server.received == [b"m%d" % i for i in range(5)]
        await session.close()


async def test_retransmission_through_lossy_link(certs: CertSet, server: Server) -> None:
    async with WebTransportClient(cfg(certs)) as client:
        session = await client.connect(server.base + "/reliable")
        lossy = Lossy(session.datagrams, lambda _data, n: n % 2 == 0)  # every other send is lost
        layer = DatagramReliabilityLayer(lossy, ack_timeout=0.1, max_retries=30)
        try:
            for i in range(10):
                await layer.send(b"x%d" % i)
            await layer.wait_all_acked(timeout=8)
            replies = [await layer.receive(timeout=5) for _ in range(10)]
            await asyncio.sleep(0.3)  # let late duplicates arrive, if any
            assert sorted(replies) == sorted(b"echo:x%d" % i for i in range(10))
            assert layer.stats["received"] == 10  # duplicates were not delivered again
            assert lossy.dropped >= 5
            assert layer.stats["retransmissions"] >= 5
            assert layer.stats["acked"] == 10 and layer.stats["failed"] == 0
            # Each message reached the server's application exactly once.
            assert sorted(server.received) == sorted(b"x%d" % i for i in range(10))
        finally:
            await layer.close()
            await session.close()


async def test_duplicates_suppressed_when_acks_are_lost(certs: CertSet, server: Server) -> None:
    dropped_acks: set[int] = set()

    def drop_first_ack(data: bytes, _n: int) -> bool:
        kind, seq = struct.unpack_from("!BI", data)
        if kind == 0x02 and seq not in dropped_acks:
            dropped_acks.add(seq)
            return True
        return False

    async with WebTransportClient(cfg(certs)) as client:
        session = await client.connect(server.base + "/reliable")
        lossy = Lossy(session.datagrams, drop_first_ack)
        async with DatagramReliabilityLayer(lossy, ack_timeout=0.1, max_retries=30) as layer:
            for i in range(4):
                await layer.send(b"d%d" % i, wait_for_ack=True)
            replies = [await layer.receive(timeout=5) for _ in range(4)]
            server_layer = server.layers[0]
            for _ in range(100):
                if server_layer.pending_count == 0:
                    break
                await asyncio.sleep(0.02)
            assert server_layer.pending_count == 0
            assert sorted(replies) == sorted(b"echo:d%d" % i for i in range(4))
            # Every echo's first ACK was lost, so the server resent each echo and
            # this side saw (and suppressed) at least one duplicate per message.
            assert len(dropped_acks) == 4
            assert server_layer.stats["retransmissions"] >= 4
            assert layer.stats["duplicates"] >= 4
            assert layer.stats["received"] == 4
            with pytest.raises(TimeoutError):
                await layer.receive(timeout=0.2)  # nothing else is delivered
        await session.close()


async def test_send_fails_after_max_retries(certs: CertSet, server: Server) -> None:
    async with WebTransportClient(cfg(certs)) as client:
        session = await client.connect(server.base + "/reliable")
        black_hole = Lossy(session.datagrams, lambda _data, _n: True)
        async with DatagramReliabilityLayer(black_hole, ack_timeout=0.05, max_retries=2) as layer:
            with pytest.raises(DatagramError):
                await asyncio.wait_for(layer.send(b"lost", wait_for_ack=True), 5)
            stats: dict[str, Any] = layer.stats
            assert stats["failed"] == 1 and stats["retransmissions"] == 2 and black_hole.count == 3
        assert server.received == []
        with pytest.raises(DatagramError):
            await layer.send(b"after close")
        await session.close()
