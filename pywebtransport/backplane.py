"""Backplanes: how the pub/sub hubs of several server processes (or machines) share topics.

A `Backplane` carries ``(topic, payload)`` messages between hubs. Each hub publishes what its
own clients publish and subscribes to the topics its own clients want; the backplane only has
to deliver a node's messages *in the order it published them*.

Every message travels in an envelope ``[b"PW"][version u8][node id 16 bytes][seq u64][payload]``;
``seq`` counts per (node, topic), so a receiving hub notices messages it missed (a broker
restart, a dropped subscriber connection, a publish that failed) and counts and logs them as
``messages_lost`` rather than silently skipping them.

Implementations: `MemoryBackplane` (hubs in one process, for tests and single-process apps)
and `RedisBackplane` (Redis PUBLISH/SUBSCRIBE via the ``redis`` package's asyncio API, extra
``pywebtransport[redis]``). A NATS backplane would implement the same five methods with a
subject per topic.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
import uuid
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from .exceptions import PubSubError

__all__ = [
    "Backplane",
    "DeliverFn",
    "MemoryBackplane",
    "MemoryBus",
    "RedisBackplane",
]

log = logging.getLogger("pywebtransport.backplane")

DeliverFn = Callable[[str, bytes], None]
_ENVELOPE = struct.Struct("!2sB16sQ")
_MAGIC = b"PW"
_VERSION = 1


class Backplane(ABC):
    """Carries topic messages between hubs; subclasses implement the transport.

    The base class stamps outgoing messages (`_wrap`) and checks incoming ones (`_unwrap`):
    it drops a node's own echoes and counts gaps in each (node, topic) sequence.
    """

    MAX_TRACKED = 65536  # (node, topic) sequence states kept

    def __init__(self) -> None:
        self.node_id = uuid.uuid4().bytes
        self._deliver: DeliverFn | None = None
        # Bounded (least recently used first out): a node publishing to or hearing from very many
        # topics keeps sequence state for the most recent MAX_TRACKED only.
        self._next_seq: OrderedDict[str, int] = OrderedDict()
        self._last_seen: OrderedDict[tuple[bytes, str], int] = OrderedDict()
        self.stats: dict[str, int] = {
            "published": 0,
            "publish_failed": 0,
            "received": 0,
            "messages_lost": 0,
            "malformed": 0,
            "reconnects": 0,
        }

    # -- what a transport implements ---------------------------------------------------------
    @abstractmethod
    async def start(self, deliver: DeliverFn) -> None:
        """Connect; ``deliver(topic, payload)`` is then called for other nodes' messages."""

    @abstractmethod
    async def subscribe(self, topic: str) -> None:
        """Receive ``topic``; returns once the subscription is active (or will be on reconnect)."""

    @abstractmethod
    async def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic``."""

    @abstractmethod
    def publish(self, topic: str, payload: bytes) -> None:
        """Queue ``payload`` for every node subscribed to ``topic``, in call order; never blocks.

        What cannot be delivered (broker down and the bounded queue full) is counted in
        ``stats["publish_failed"]`` and logged.
        """

    @abstractmethod
    async def close(self) -> None:
        """Disconnect and stop delivering."""

    @property
    def connected(self) -> bool:
        """Whether the transport is currently connected to its broker."""
        return True

    # -- shared envelope handling ----------------------------------------------------------------
    def _wrap(self, topic: str, payload: bytes) -> bytes:
        seq = self._next_seq.get(topic, 0) + 1
        self._next_seq[topic] = seq
        self._next_seq.move_to_end(topic)
        if len(self._next_seq) > self.MAX_TRACKED:
            self._next_seq.popitem(last=False)  # restarts at 1; receivers take that as a reset
        return _ENVELOPE.pack(_MAGIC, _VERSION, self.node_id, seq) + payload

    def _unwrap(self, topic: str, data: bytes) -> None:
        if len(data) < _ENVELOPE.size:
            self.stats["malformed"] += 1
            return
        magic, version, node, seq = _ENVELOPE.unpack_from(data)
        if magic != _MAGIC or version != _VERSION:
            self.stats["malformed"] += 1
            return
        if node == self.node_id:
            return  # our own message, already delivered locally
        key = (node, topic)
        last = self._last_seen.get(key)
        if last is not None and seq > last + 1:
            missed = seq - last - 1
            self.stats["messages_lost"] += missed
            log.warning(
                "backplane: %d message(s) on topic %r from node %s were lost", missed, topic, node.hex()[:8]
            )
        # A lower number means the sender's counter restarted (evicted topic): resynchronise.
        self._last_seen[key] = seq
        self._last_seen.move_to_end(key)
        if len(self._last_seen) > self.MAX_TRACKED:
            self._last_seen.popitem(last=False)
        self.stats["received"] += 1
        if self._deliver is not None:
            self._deliver(topic, data[_ENVELOPE.size :])

    def _forget_topic(self, topic: str) -> None:
        for key in [k for k in self._last_seen if k[1] == topic]:
            del self._last_seen[key]


class MemoryBus:
    """The shared medium of `MemoryBackplane`s in one process (a stand-in for a broker)."""

    def __init__(self) -> None:
        self.members: dict[str, set["MemoryBackplane"]] = {}


class MemoryBackplane(Backplane):
    """Connects hubs in one process through a `MemoryBus`; ``bus.members`` is inspectable."""

    def __init__(self, bus: MemoryBus) -> None:
        super().__init__()
        self._bus = bus
        self._topics: set[str] = set()
        self.online = True

    async def start(self, deliver: DeliverFn) -> None:
        """Remember ``deliver``; the bus needs no connection."""
        self._deliver = deliver

    async def subscribe(self, topic: str) -> None:
        """Join ``topic`` on the bus."""
        self._topics.add(topic)
        self._bus.members.setdefault(topic, set()).add(self)

    async def unsubscribe(self, topic: str) -> None:
        """Leave ``topic`` on the bus."""
        self._topics.discard(topic)
        self._bus.members.get(topic, set()).discard(self)
        self._forget_topic(topic)

    def publish(self, topic: str, payload: bytes) -> None:
        """Deliver to every other member of the bus subscribed to ``topic`` (counted as failed while offline)."""
        data = self._wrap(topic, payload)
        if not self.online:
            self.stats["publish_failed"] += 1
            return
        self.stats["published"] += 1
        for member in list(self._bus.members.get(topic, ())):
            if member.online:
                member._unwrap(topic, data)

    async def close(self) -> None:
        """Leave every topic."""
        for topic in list(self._topics):
            await self.unsubscribe(topic)
        self._deliver = None


class RedisBackplane(Backplane):
    """Redis PUBLISH/SUBSCRIBE, one channel per topic (``channel_prefix + topic``).

    Args:
        url: ``redis://host:port/db`` (any URL the ``redis`` package accepts).
        channel_prefix: Prepended to topics to form channel names.
        max_outgoing: Messages buffered while Redis is unreachable; beyond that the oldest
            are dropped (counted in ``stats["publish_failed"]``).
        reconnect_delay: First delay between reconnection attempts (doubles up to
            ``max_reconnect_delay``).
        max_reconnect_delay: Cap of the reconnection delay.

    A lost connection is logged, re-established with backoff and every topic re-subscribed;
    messages published elsewhere meanwhile show up as ``stats["messages_lost"]``. Needs
    ``pip install "pywebtransport[redis]"``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        channel_prefix: str = "pwt:",
        max_outgoing: int = 10000,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 5.0,
    ) -> None:
        super().__init__()
        try:
            import redis.asyncio as redis_asyncio
            import redis.exceptions as redis_exceptions
        except ImportError as exc:
            raise ImportError(
                'RedisBackplane needs the optional dependency "redis": '
                'install it with pip install "pywebtransport[redis]"',
                name="redis",
            ) from exc
        self._redis_asyncio: Any = redis_asyncio
        self._errors: tuple[type[BaseException], ...] = (redis_exceptions.RedisError, OSError)
        self.url = url
        self.channel_prefix = channel_prefix
        self.max_outgoing = max_outgoing
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self._topics: set[str] = set()
        self._outgoing: deque[tuple[str, bytes]] = deque()
        self._outgoing_ready = asyncio.Event()
        self._topics_changed = asyncio.Event()
        self._pending_subs: dict[str, list[asyncio.Future[None]]] = {}
        self._pubsub: Any = None
        self._client: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._sub_connected = False
        self._pub_connected = False
        self._closing = False
        self.last_error: str | None = None
        self.disconnected_at: float | None = None

    @property
    def connected(self) -> bool:
        """Whether publishing works and (with topics) the subscriber connection is up."""
        return self._pub_connected and (self._sub_connected or not self._topics)

    def _channel(self, topic: str) -> str:
        return self.channel_prefix + topic

    async def start(self, deliver: DeliverFn) -> None:
        """Connect to Redis (fails with PubSubError if it is unreachable at start)."""
        self._deliver = deliver
        self._client = self._redis_asyncio.Redis.from_url(self.url)
        try:
            await self._client.ping()
        except self._errors as exc:
            await self._client.aclose()
            raise PubSubError(f"cannot reach Redis at {self.url}: {exc}") from exc
        self._pub_connected = True
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._publisher()), loop.create_task(self._subscriber())]

    async def subscribe(self, topic: str) -> None:
        """SUBSCRIBE to the topic's channel; returns once Redis confirmed (or, while Redis is down, at once)."""
        if topic in self._topics:
            return
        self._topics.add(topic)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending_subs.setdefault(self._channel(topic), []).append(future)
        if self._sub_connected and self._pubsub is not None:
            try:
                await self._pubsub.subscribe(self._channel(topic))
            except self._errors as exc:
                self._connection_lost("subscribe", exc)
        else:
            self._topics_changed.set()
            if self.disconnected_at is not None:
                return  # Redis is down: subscribed on the next connection
        try:
            # Confirmed by Redis, or (while it is down) registered for the next connection.
            await asyncio.wait_for(asyncio.shield(future), 5.0)
        except asyncio.TimeoutError:
            log.warning("backplane: subscription to %r not confirmed yet; it is kept", topic)

    async def unsubscribe(self, topic: str) -> None:
        """UNSUBSCRIBE from the topic's channel."""
        if topic not in self._topics:
            return
        self._topics.discard(topic)
        self._forget_topic(topic)
        if self._sub_connected and self._pubsub is not None:
            try:
                await self._pubsub.unsubscribe(self._channel(topic))
            except self._errors as exc:
                self._connection_lost("unsubscribe", exc)

    def publish(self, topic: str, payload: bytes) -> None:
        """Queue for PUBLISH (pipelined, in order); while Redis is unreachable up to ``max_outgoing`` wait."""
        if self._closing:
            raise PubSubError("the backplane is closed")
        if len(self._outgoing) >= self.max_outgoing:
            self._outgoing.popleft()
            self.stats["publish_failed"] += 1
            if self.stats["publish_failed"] % 1000 == 1:
                log.warning(
                    "backplane: outgoing queue full (%d, Redis %s); dropping oldest, %d dropped so far",
                    self.max_outgoing,
                    "connected" if self.connected else "unreachable",
                    self.stats["publish_failed"],
                )
        self._outgoing.append((topic, self._wrap(topic, payload)))
        self._outgoing_ready.set()

    def _connection_lost(self, where: str, exc: BaseException) -> None:
        if self._closing:
            return
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.disconnected_at is None:
            self.disconnected_at = time.monotonic()
            log.warning("backplane: Redis connection lost (%s): %s; reconnecting", where, self.last_error)
        else:
            log.debug("backplane: Redis still unreachable (%s): %s", where, self.last_error)

    async def _publisher(self) -> None:
        delay = self.reconnect_delay
        while not self._closing:
            if not self._outgoing:
                self._outgoing_ready.clear()
                await self._outgoing_ready.wait()
                continue
            batch = [self._outgoing.popleft() for _ in range(min(len(self._outgoing), 512))]
            try:
                pipe = self._client.pipeline(transaction=False)
                for topic, data in batch:
                    pipe.publish(self._channel(topic), data)
                await pipe.execute()
            except self._errors as exc:
                self._pub_connected = False
                self.stats["publish_failed"] += len(batch)
                self._connection_lost("publish", exc)
                log.warning("backplane: %d message(s) not published", len(batch))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_reconnect_delay)
                await self._reconnect_publisher()
                continue
            delay = self.reconnect_delay
            if not self._pub_connected:
                self._pub_connected = True
                self._log_recovered()
            self.stats["published"] += len(batch)

    async def _reconnect_publisher(self) -> None:
        try:
            await self._client.ping()
        except self._errors:
            return
        if not self._pub_connected:
            self._pub_connected = True
            self._log_recovered()

    def _log_recovered(self) -> None:
        if self.connected and self.disconnected_at is not None:
            log.warning(
                "backplane: Redis connection restored after %.2fs", time.monotonic() - self.disconnected_at
            )
            self.disconnected_at = None

    async def _subscriber(self) -> None:
        delay = self.reconnect_delay
        failed = False
        while not self._closing:
            if not self._topics:
                self._release_pending()
                self._topics_changed.clear()
                await self._topics_changed.wait()
                continue
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(*[self._channel(t) for t in sorted(self._topics)])
                self._pubsub = pubsub
                self._sub_connected = True
                if failed:
                    self.stats["reconnects"] += 1
                failed = False
                self._log_recovered()
                delay = self.reconnect_delay
                await self._read(pubsub)
            except asyncio.CancelledError:
                raise
            except self._errors as exc:
                self._connection_lost("subscriber", exc)
                self._release_pending()
                failed = True
            finally:
                self._sub_connected = False
                self._pubsub = None
                try:
                    await pubsub.aclose()
                except BaseException:  # noqa: BLE001 - a broken connection may fail to close
                    pass
            if not self._closing:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_reconnect_delay)

    async def _read(self, pubsub: Any) -> None:
        prefix = len(self.channel_prefix)
        while not self._closing:
            if not self._topics:
                return  # nothing to listen to: park until a topic is added
            message = await pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
            if message is None:
                continue
            kind = message.get("type")
            channel = message.get("channel")
            if isinstance(channel, bytes):
                channel = channel.decode("utf-8", "replace")
            if kind == "subscribe":
                for future in self._pending_subs.pop(channel, []):
                    if not future.done():
                        future.set_result(None)
                continue
            if kind != "message" or not isinstance(channel, str):
                continue
            topic = channel[prefix:]
            if topic in self._topics:
                self._unwrap(topic, message["data"])

    def _release_pending(self) -> None:
        # While Redis is down a subscription is registered and re-issued on reconnect;
        # do not keep the subscriber waiting for a confirmation that cannot come yet.
        for futures in self._pending_subs.values():
            for future in futures:
                if not future.done():
                    future.set_result(None)
        self._pending_subs.clear()

    async def close(self) -> None:
        """Stop the publisher and subscriber tasks and disconnect."""
        self._closing = True
        self._outgoing_ready.set()
        self._topics_changed.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except BaseException:  # noqa: BLE001 - cancelled or already failed
                pass
        if self._client is not None:
            try:
                await self._client.aclose()
            except self._errors:
                pass
        self._deliver = None
