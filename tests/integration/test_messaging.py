"""Structured messages, RPC and pub/sub over real sessions (msquic, UDP, TLS) on loopback."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from certs import CertSet
from pywebtransport import ClientConfig, ServerApp, ServerConfig, WebTransportClient, WebTransportSession
from pywebtransport.datagram import StructuredDatagramTransport
from pywebtransport.exceptions import SerializationError
from pywebtransport.pubsub import SLOW_CONSUMER_CLOSE_CODE, PubSubHub, PubSubManager
from pywebtransport.rpc import MethodNotFoundError, RpcManager, RpcTimeoutError
from pywebtransport.serializer import JSONSerializer, MsgPackSerializer
from pywebtransport.stream import StructuredStream, WebTransportStream

pytestmark = pytest.mark.timeout(90)


@dataclass
class Move:
    player: str
    x: int
    y: int


@dataclass
class Ack:
    seq: int


REGISTRY = {1: Move, 2: Ack}


class Server:
    def __init__(self, app: ServerApp, port: int, hub: PubSubHub) -> None:
        self.app = app
        self.url = f"https://127.0.0.1:{port}"
        self.hub = hub
        self.cancelled = asyncio.Event()


@pytest.fixture
async def server(certs: CertSet) -> AsyncIterator[Server]:
    app = ServerApp(config=ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))
    hub = PubSubHub(queue_size=200, slow_consumer_policy="disconnect")
    srv: Server

    @app.route("/structured")
    async def structured(session: WebTransportSession) -> None:
        async for stream in session.incoming_streams():
            assert isinstance(stream, WebTransportStream)
            s = StructuredStream(stream, MsgPackSerializer(), REGISTRY, max_message_size=4096)
            while True:
                try:
                    obj = await s.receive_obj()
                except SerializationError as exc:
                    await s.send_obj(Move("error", len(str(exc)), 0))
                    continue
                except Exception:
                    break
                if isinstance(obj, Move):
                    await s.send_obj(Ack(obj.x))
            break
        await session.wait_closed()

    @app.route("/dgram")
    async def dgram(session: WebTransportSession) -> None:
        t = StructuredDatagramTransport(session.datagrams, JSONSerializer(), REGISTRY)
        while True:
            try:
                obj = await t.receive_obj()
            except SerializationError:
                await t.send_obj(Ack(-1))
                continue
            await t.send_obj(Ack(obj.x))

    @app.route("/rpc")
    async def rpc(session: WebTransportSession) -> None:
        manager = RpcManager(session, concurrency_limit=8, max_pending=100)

        async def sleep_then(value: int, delay: float) -> int:
            await asyncio.sleep(delay)
            return value

        async def hang() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                srv.cancelled.set()
                raise

        async def callback(x: int) -> Any:
            # The server calls back into the client while serving the client's call.
            return await manager.call("client_double", x, timeout=5)

        manager.register(sleep_then)
        manager.register(hang)
        manager.register(callback)
        manager.register(lambda m: Move(**m), name="echo_move")
        await manager.serve()

    @app.route("/pubsub")
    async def pubsub(session: WebTransportSession) -> None:
        await hub.serve(session)

    async with app:
        await app.server.listen(host="127.0.0.1", port=0)
        assert app.server.local_address is not None
        srv = Server(app, app.server.local_address[1], hub)
        yield srv
        await hub.close()


def config(certs: CertSet) -> ClientConfig:
    return ClientConfig.create(ca_certs=str(certs.ca_cert))


async def test_structured_stream_round_trip_and_bad_frames(certs: CertSet, server: Server) -> None:
    async with WebTransportClient(config(certs)) as client:
        session = await client.connect(server.url + "/structured")
        stream = await session.create_bidirectional_stream()
        s = StructuredStream(stream, MsgPackSerializer(), REGISTRY)
        for i in range(100):
            await s.send_obj(Move("ann", i, -i))
        assert [await s.receive_obj() for _ in range(100)] == [Ack(i) for i in range(100)]
        # An oversized frame (above the server's 4096) and an unknown type: both reported,
        # and the stream keeps its framing.
        await stream.write(struct.pack("!HI", 1, 10000) + b"\x00" * 10000)
        await stream.write(struct.pack("!HI", 77, 2) + b"\x80\x80")
        await s.send_obj(Move("ann", 5000, 0))
        first, second, third = [await s.receive_obj() for _ in range(3)]
        assert (first.player, second.player) == ("error", "error")
        assert third == Ack(5000)
        await session.close()


async def test_structured_datagrams(certs: CertSet, server: Server) -> None:
    async with WebTransportClient(config(certs)) as client:
        session = await client.connect(server.url + "/dgram")
        t = StructuredDatagramTransport(session.datagrams, JSONSerializer(), REGISTRY)
        got = set()
        for i in range(20):
            await t.send_obj(Move("bob", i, 0))
            try:
                got.add((await t.receive_obj(timeout=2)).seq)
            except Exception:
                pass
        assert len(got) >= 15  # datagrams may be lost, but not on an idle loopback
        await session.datagrams.send(b"\x00")  # too short to be a message
        assert await t.receive_obj(timeout=5) == Ack(-1)
        await session.close()


async def test_rpc_over_a_session(certs: CertSet, server: Server) -> None:
    async with WebTransportClient(config(certs)) as client:
        session = await client.connect(server.url + "/rpc")
        rpc = RpcManager(session)
        rpc.register(lambda x: 2 * x, name="client_double")
        # Many calls in flight on one session, answered out of order.
        values = await asyncio.gather(*(rpc.call("sleep_then", i, (50 - i) / 1000, timeout=10) for i in range(50)))
        assert values == list(range(50))
        assert await rpc.call("callback", 21) == 42
        assert await rpc.call("echo_move", {"player": "p", "x": 1, "y": 2}) == {"player": "p", "x": 1, "y": 2}
        with pytest.raises(MethodNotFoundError):
            await rpc.call("nope")
        with pytest.raises(RpcTimeoutError):
            await rpc.call("hang", timeout=0.3)
        await asyncio.wait_for(server.cancelled.wait(), 10)
        await rpc.close()
        await session.close()


async def test_pubsub_between_sessions_and_slow_consumer(certs: CertSet, server: Server) -> None:
    async with WebTransportClient(config(certs)) as client:
        sessions = [await client.connect(server.url + "/pubsub") for _ in range(4)]
        managers = [PubSubManager(s) for s in sessions]
        subs = [await m.subscribe("lobby") for m in managers[1:3]]
        for i in range(300):
            await managers[0].publish("lobby", f"m{i}")
        expected = [f"m{i}".encode() for i in range(300)]
        for sub in subs:
            assert [await sub.get(timeout=10) for _ in range(300)] == expected
        assert server.hub.stats["messages_delivered"] >= 600
        # A subscriber that never reads: the hub's queue (200) overflows and the session is closed.
        slow = sessions[3]
        slow_sub = await managers[3].subscribe("flood", queue_size=10)
        del slow_sub
        # Stop the client from reading its stream, so flow control stalls the hub's writes.
        assert managers[3]._reader is not None
        managers[3]._reader.cancel()
        payload = b"x" * 60000
        for _ in range(2000):
            server.hub.publish("flood", payload)
            await asyncio.sleep(0)
            if server.hub.stats["slow_consumers_disconnected"]:
                break
        await asyncio.wait_for(slow.wait_closed(), 10)
        assert server.hub.stats["slow_consumers_disconnected"] == 1
        assert slow.close_code == SLOW_CONSUMER_CLOSE_CODE
        for s in sessions[:3]:
            await s.close()
