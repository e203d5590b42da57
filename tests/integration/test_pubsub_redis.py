"""Pub/sub across two server processes sharing a real Redis (started by the test on a free port)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from certs import CertSet
from pywebtransport import ClientConfig, WebTransportClient
from pywebtransport.pubsub import PubSubManager
from pywebtransport.rpc import RpcManager
from redis_server import RedisServer

pytestmark = pytest.mark.timeout(120)

NODE = Path(__file__).with_name("pubsub_node.py")


class Node:
    def __init__(self, proc: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log
        self.url = f"https://127.0.0.1:{port}"


async def start_node(certs: CertSet, redis: RedisServer, log: Path) -> Node:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(NODE), str(certs.cert), str(certs.key), redis.url,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=open(log, "wb"),
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.startswith(b"PORT "), (line, log.read_text())
    return Node(proc, int(line.split()[1]), log)


async def stop_node(node: Node) -> None:
    if node.proc.returncode is None:
        assert node.proc.stdin is not None
        node.proc.stdin.close()
        try:
            await asyncio.wait_for(node.proc.wait(), 15)
        except asyncio.TimeoutError:
            node.proc.kill()
            await node.proc.wait()


@pytest.fixture
def redis(tmp_path: Path) -> Any:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def nodes(certs: CertSet, redis: RedisServer, tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    a = await start_node(certs, redis, tmp_path / "a.log")
    b = await start_node(certs, redis, tmp_path / "b.log")
    yield a, b
    await stop_node(a)
    await stop_node(b)


async def node_stats(client: WebTransportClient, node: Node) -> dict[str, Any]:
    session = await client.connect(node.url + "/stats")
    rpc = RpcManager(session)
    try:
        result: dict[str, Any] = await rpc.call("stats", timeout=10)
        return result
    finally:
        await rpc.close()
        await session.close()


async def test_subscriber_on_a_receives_publishers_on_b_in_order(
    certs: CertSet, nodes: tuple[Node, Node]
) -> None:
    a, b = nodes
    async with WebTransportClient(ClientConfig.create(ca_certs=str(certs.ca_cert))) as client:
        sub_session = await client.connect(a.url + "/pubsub")
        subscriber = PubSubManager(sub_session)
        sub = await subscriber.subscribe("room")
        local_sub = await PubSubManager(await client.connect(b.url + "/pubsub")).subscribe("room")
        publishers = [PubSubManager(await client.connect(b.url + "/pubsub")) for _ in range(2)]

        async def run(index: int, pub: PubSubManager) -> None:
            for i in range(300):
                await pub.publish("room", f"{index}:{i}")

        await asyncio.gather(*(run(i, p) for i, p in enumerate(publishers)))
        for target in (sub, local_sub):
            seen: dict[str, list[int]] = {"0": [], "1": []}
            for _ in range(600):
                who, seq = (await target.get(timeout=20)).decode().split(":")
                seen[who].append(int(seq))
            assert seen == {"0": list(range(300)), "1": list(range(300))}
        # A second topic subscribed while node A's backplane is already listening, then dropped.
        second = await subscriber.subscribe("room2")
        await publishers[0].publish("room2", "on room2")
        assert await second.get(timeout=20) == b"on room2"
        await second.unsubscribe()
        await publishers[0].publish("room", "still on room")
        assert await sub.get(timeout=20) == b"still on room"
        stats_a = await node_stats(client, a)
        assert stats_a["backplane"]["messages_lost"] == 0
        assert stats_a["backplane"]["received"] == 602


async def test_redis_restart_mid_run(certs: CertSet, nodes: tuple[Node, Node], redis: RedisServer) -> None:
    a, b = nodes
    async with WebTransportClient(ClientConfig.create(ca_certs=str(certs.ca_cert))) as client:
        sub = await PubSubManager(await client.connect(a.url + "/pubsub")).subscribe("feed", queue_size=100000)
        pub = PubSubManager(await client.connect(b.url + "/pubsub"))
        published = 0
        stop = asyncio.Event()

        async def publisher() -> None:
            nonlocal published
            while not stop.is_set():
                await pub.publish("feed", str(published))
                published += 1
                await asyncio.sleep(0.005)

        task = asyncio.ensure_future(publisher())
        received: list[int] = []

        async def take_until(predicate: Any, timeout: float) -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not predicate():
                received.append(int(await sub.get(timeout=max(0.1, deadline - loop.time()))))

        await take_until(lambda: len(received) >= 50, 20)
        redis.stop()
        await asyncio.sleep(1.5)  # publishing continues into the outage
        during = published
        redis.start()
        # The hubs reconnect and resubscribe: messages published after the restart arrive.
        await take_until(lambda: received[-1] > during + 50, 30)
        stop.set()
        await task
        last = published - 1
        await take_until(lambda: received[-1] == last, 20)

        assert a.proc.returncode is None and b.proc.returncode is None
        assert received == sorted(received) and len(set(received)) == len(received)  # in order, no duplicates
        missing = published - len(received)
        assert missing > 0  # an outage of 1.5 s at 200 msg/s loses messages ...
        stats_a, stats_b = await node_stats(client, a), await node_stats(client, b)
        # ... and every lost one is counted: the receiving hub sees the gap in B's sequence.
        assert stats_a["backplane"]["messages_lost"] == missing
        assert stats_a["backplane"]["reconnects"] >= 1
        assert stats_a["connected"] and stats_b["connected"]
        assert stats_b["backplane"]["publish_failed"] + stats_b["backplane"]["published"] >= published
    await stop_node(a)
    await stop_node(b)
    log_a = a.log.read_text()
    assert "Redis connection lost" in log_a and "were lost" in log_a, log_a
    assert "Traceback" not in log_a + b.log.read_text()
