"""Pub/sub client and hub over in-memory streams, hubs linked by MemoryBackplane."""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any

import pytest

from fake_streams import FakeStream, stream_pair
from pywebtransport.backplane import MemoryBackplane, MemoryBus
from pywebtransport.exceptions import PubSubError
from pywebtransport.pubsub import SLOW_CONSUMER_CLOSE_CODE, PubSubHub, PubSubManager

pytestmark = pytest.mark.timeout(20)


class FakeSession:
    def __init__(self) -> None:
        self.is_closed = False
        self.closed_with: tuple[int, str] | None = None

    async def close(self, code: int = 0, reason: str = "") -> None:
        self.is_closed = True
        self.closed_with = (code, reason)


class Client:
    def __init__(self, hub: PubSubHub) -> None:
        a, b = stream_pair()
        self.stream: FakeStream = a
        self.server_stream: FakeStream = b
        self.session = FakeSession()
        self.pubsub = PubSubManager(stream=a)
        self.task = asyncio.ensure_future(hub.serve(self.session, stream=b))  # type: ignore[arg-type]


async def drain(sub: Any, n: int, timeout: float = 5.0) -> list[bytes]:
    return [await sub.get(timeout=timeout) for _ in range(n)]


async def test_publish_subscribe_unsubscribe_in_order() -> None:
    hub = PubSubHub()
    pub, s1, s2 = Client(hub), Client(hub), Client(hub)
    sub1 = await s1.pubsub.subscribe("news")
    sub2 = await s2.pubsub.subscribe(topic="news", queue_size=500)
    other = await s2.pubsub.subscribe("other")
    for i in range(200):
        await pub.pubsub.publish("news", f"n{i}")
    await pub.pubsub.publish(topic="other", data=b"\x00bin")
    assert await drain(sub1, 200) == [f"n{i}".encode() for i in range(200)]
    assert await drain(sub2, 200) == [f"n{i}".encode() for i in range(200)]
    assert await other.get(timeout=5) == b"\x00bin"
    await sub1.unsubscribe()
    assert hub.topics == ["news", "other"]
    await pub.pubsub.publish("news", "after")
    assert await sub2.get(timeout=5) == b"after"
    assert sub1.get_nowait() is None and not sub1.is_active
    await s2.pubsub.unsubscribe("news")
    assert hub.topics == ["other"]
    # Iteration ends after unsubscribe.
    assert [m async for m in sub2] == []
    assert hub.stats["messages_published"] == 202


async def test_two_hubs_share_topics_through_the_backplane() -> None:
    bus = MemoryBus()
    hub_a, hub_b = PubSubHub(backplane=MemoryBackplane(bus)), PubSubHub(backplane=MemoryBackplane(bus))
    await hub_a.start()
    await hub_b.start()
    on_a, on_b, pub_b = Client(hub_a), Client(hub_b), Client(hub_b)
    sub_a = await on_a.pubsub.subscribe("room")
    sub_b = await on_b.pubsub.subscribe("room")
    for i in range(100):
        await pub_b.pubsub.publish("room", str(i))
    expected = [str(i).encode() for i in range(100)]
    assert await drain(sub_a, 100) == expected
    assert await drain(sub_b, 100) == expected  # local delivery, not doubled by the echo
    await asyncio.sleep(0.05)
    assert sub_b.get_nowait() is None
    hub_a.publish("room", "from server A")
    assert await sub_b.get(timeout=5) == b"from server A"
    # The last local subscriber leaving unsubscribes the backplane.
    await sub_a.unsubscribe()
    await asyncio.sleep(0.05)
    assert hub_a.backplane not in bus.members["room"]


async def test_backplane_outage_losses_are_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    bus = MemoryBus()
    bp_a, bp_b = MemoryBackplane(bus), MemoryBackplane(bus)
    hub_a, hub_b = PubSubHub(backplane=bp_a), PubSubHub(backplane=bp_b)
    await hub_a.start()
    await hub_b.start()
    sub = await Client(hub_a).pubsub.subscribe("t")
    hub_b.publish("t", "1")
    bp_b.online = False
    hub_b.publish("t", "2")
    hub_b.publish("t", "3")
    bp_b.online = True
    with caplog.at_level(logging.WARNING, logger="pywebtransport.backplane"):
        hub_b.publish("t", "4")
    assert await drain(sub, 2) == [b"1", b"4"]
    assert bp_b.stats["publish_failed"] == 2
    assert bp_a.stats["messages_lost"] == 2
    assert "2 message(s) on topic 't'" in caplog.text


async def test_slow_consumer_drop_oldest_is_counted() -> None:
    hub = PubSubHub(queue_size=10, slow_consumer_policy="drop_oldest")
    slow = Client(hub)
    sub = await slow.pubsub.subscribe("t")
    slow.server_stream.gate = asyncio.Event()  # the hub cannot write to this subscriber
    for i in range(50):
        hub.publish("t", str(i))
        await asyncio.sleep(0)
    assert hub.stats["messages_dropped"] >= 30
    slow.server_stream.gate.set()
    got = []
    while True:
        try:
            got.append(await sub.get(timeout=0.5))
        except Exception:
            break
    assert got[-1] == b"49"
    assert len(got) + hub.stats["messages_dropped"] == 50
    assert got == sorted(got, key=int)  # what arrives keeps its order


async def test_slow_consumer_disconnect_policy() -> None:
    hub = PubSubHub(queue_size=5, slow_consumer_policy="disconnect")
    slow, fast = Client(hub), Client(hub)
    await slow.pubsub.subscribe("t")
    fast_sub = await fast.pubsub.subscribe("t")
    slow.server_stream.gate = asyncio.Event()
    for i in range(20):
        hub.publish("t", str(i))
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    assert hub.stats["slow_consumers_disconnected"] == 1
    assert slow.session.closed_with == (SLOW_CONSUMER_CLOSE_CODE, "slow consumer")
    assert hub.subscriber_count == 1
    assert await drain(fast_sub, 20) == [str(i).encode() for i in range(20)]


async def test_authorization_and_malformed_frames() -> None:
    def authorize(session: Any, topic: str, action: str) -> bool:
        return not topic.startswith("secret")

    hub = PubSubHub(authorize=authorize)
    c = Client(hub)
    with pytest.raises(PubSubError, match="not authorized"):
        await c.pubsub.subscribe("secret/x")
    sub = await c.pubsub.subscribe("open")
    await c.pubsub.publish("secret/x", "leak")
    assert hub.stats["publishes_refused"] == 1
    # Garbage frames are counted; the stream keeps working.
    c.stream.feed(struct.pack("!I", 2) + b"\x03\x00")
    c.stream.feed(struct.pack("!I", 5) + b"\x09\x00\x01xy")
    await c.pubsub.publish("open", "still fine")
    assert await sub.get(timeout=5) == b"still fine"
    assert hub.stats["malformed_frames"] == 2
    with pytest.raises(PubSubError):
        await c.pubsub.publish("", "x")


async def test_hub_closing_ends_subscriptions() -> None:
    hub = PubSubHub()
    c = Client(hub)
    sub = await c.pubsub.subscribe("t")
    await c.server_stream.close()
    c.server_stream.abort()
    with pytest.raises(PubSubError):
        await sub.get(timeout=5)
    with pytest.raises(PubSubError):
        await c.pubsub.publish("t", "x")


async def test_topic_churn_leaves_no_state_behind() -> None:
    bus = MemoryBus()
    hub = PubSubHub(backplane=MemoryBackplane(bus))
    local = PubSubHub()
    await hub.start()
    for h in (hub, local):
        c = Client(h)
        for i in range(100):
            sub = await c.pubsub.subscribe(f"t{i}")
            await sub.unsubscribe()
        await asyncio.sleep(0.05)
        assert h.topics == [] and h._topic_locks == {}
    assert all(not members for members in bus.members.values())


async def test_sequence_state_is_bounded_and_resynchronises() -> None:
    bus = MemoryBus()
    sender, receiver = MemoryBackplane(bus), MemoryBackplane(bus)
    sender.MAX_TRACKED = 2  # type: ignore[misc]
    got: list[tuple[str, bytes]] = []
    await receiver.start(lambda topic, data: got.append((topic, data)))
    for topic in ("a", "b", "c"):
        await receiver.subscribe(topic)
    for topic in ("a", "a", "b", "c", "a", "a"):  # "a" is evicted by "c" and restarts at 1
        sender.publish(topic, topic.encode())
    assert len(got) == 6
    assert receiver.stats["messages_lost"] == 0
    assert len(sender._next_seq) == 2
