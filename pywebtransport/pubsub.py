"""Publish/subscribe over WebTransport: a client (`PubSubManager`) and a server-side hub (`PubSubHub`).

A client talks to the hub over one bidirectional stream of its session. The hub routes each
published message to every session subscribed to its topic, on this server process and - with
a `Backplane` such as `RedisBackplane` - on every other process sharing the backplane.

Every subscriber session has a bounded queue in the hub (``queue_size`` messages). When a
subscriber reads more slowly than messages arrive, the hub applies its explicit
``slow_consumer_policy``:

* ``"drop_oldest"`` - the oldest queued message is discarded (``stats["messages_dropped"]``);
* ``"disconnect"`` - the session is closed with code `SLOW_CONSUMER_CLOSE_CODE`
  (``stats["slow_consumers_disconnected"]``).

Messages from one publisher reach each subscriber in the order they were published, also across
processes (the backplane preserves each node's order).

Wire format (both directions): frames ``[u32 length][u8 op][u16 topic length][topic UTF-8][rest]``
with ops SUB/UNSUB (rest: u32 request id), PUB and MSG (rest: payload), OK (rest: request id) and
FAIL (rest: request id + UTF-8 reason).

Client::

    pubsub = PubSubManager(session)
    async with await pubsub.subscribe("chat") as sub:
        await pubsub.publish("chat", b"hello")
        async for message in sub:          # bytes
            ...

Server::

    hub = PubSubHub(backplane=RedisBackplane("redis://127.0.0.1:6379"))
    app.on_startup(hub.start)
    app.on_shutdown(hub.close)

    @app.route("/pubsub")
    async def pubsub(session):
        await hub.serve(session)
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

from .backplane import Backplane
from .exceptions import PubSubError, SerializationError, TimeoutError, WebTransportError
from .structured import FrameReader

if TYPE_CHECKING:
    from .session import WebTransportSession

__all__ = [
    "PubSubError",
    "PubSubHub",
    "PubSubManager",
    "SLOW_CONSUMER_CLOSE_CODE",
    "Subscription",
]

log = logging.getLogger("pywebtransport.pubsub")

SLOW_CONSUMER_CLOSE_CODE = 0x50C  # session close code used by the "disconnect" policy
MAX_TOPIC_BYTES = 1024

OP_SUB, OP_UNSUB, OP_PUB, OP_MSG, OP_OK, OP_FAIL = 1, 2, 3, 4, 5, 6
_LEN = struct.Struct("!I")
_HEAD = struct.Struct("!IBH")  # length, op, topic length
_REQ = struct.Struct("!I")

SlowConsumerPolicy = Literal["drop_oldest", "disconnect"]
Authorizer = Callable[["WebTransportSession", str, str], "bool | Awaitable[bool]"]


def _topic_bytes(topic: str) -> bytes:
    if not isinstance(topic, str) or not topic:
        raise PubSubError("a topic is a non-empty string")
    raw = topic.encode("utf-8")
    if len(raw) > MAX_TOPIC_BYTES:
        raise PubSubError(f"topic of {len(raw)} bytes exceeds {MAX_TOPIC_BYTES} bytes")
    return raw


def encode_frame(op: int, topic: str | bytes, rest: bytes = b"") -> bytes:
    """One pub/sub frame (exposed for tests and other implementations)."""
    raw = topic if isinstance(topic, bytes) else _topic_bytes(topic)
    return _HEAD.pack(1 + 2 + len(raw) + len(rest), op, len(raw)) + raw + rest


def decode_frame(body: bytes) -> tuple[int, str, bytes]:
    """Split a frame body into ``(op, topic, rest)``; raises PubSubError if malformed."""
    if len(body) < 3:
        raise PubSubError(f"pub/sub frame of {len(body)} bytes is too short")
    op = body[0]
    (topic_len,) = struct.unpack_from("!H", body, 1)
    if 3 + topic_len > len(body) or topic_len == 0 or topic_len > MAX_TOPIC_BYTES:
        raise PubSubError("pub/sub frame has an invalid topic length")
    try:
        topic = body[3 : 3 + topic_len].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PubSubError("pub/sub topic is not UTF-8") from exc
    return op, topic, body[3 + topic_len :]


async def _first_bidi_stream(session: "WebTransportSession", timeout: float | None) -> Any:
    from .stream import WebTransportStream

    async def first() -> Any:
        async for stream in session.incoming_streams():
            if isinstance(stream, WebTransportStream):
                return stream
            stream.abort_reading(0)
        return None

    try:
        stream = await asyncio.wait_for(first(), timeout)
    except asyncio.TimeoutError:
        raise TimeoutError(
            f"no pub/sub stream from the peer within {timeout}s", timeout_duration=timeout, operation="accept"
        ) from None
    if stream is None:
        raise PubSubError("the session closed before the peer opened a pub/sub stream")
    return stream


# -- client ---------------------------------------------------------------------------------------


class Subscription:
    """Messages of one topic: ``async for message in subscription`` yields payloads (bytes).

    Holds at most ``queue_size`` unread messages; beyond that the oldest is dropped and counted
    in `dropped`. Iteration ends after `unsubscribe` (or the manager's `close`); if the pub/sub
    stream or the session fails it raises PubSubError once the queued messages are read.
    """

    def __init__(self, manager: "PubSubManager", topic: str, queue_size: int) -> None:
        self._manager = manager
        self.topic = topic
        self.queue_size = queue_size
        self._queue: deque[bytes] = deque()
        self._event = asyncio.Event()
        self._closed = False
        self._error: Exception | None = None
        self.received = 0
        self.dropped = 0

    @property
    def is_active(self) -> bool:
        """False after `unsubscribe` or once the channel closed."""
        return not self._closed

    def _put(self, payload: bytes) -> None:
        if len(self._queue) >= self.queue_size:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(payload)
        self.received += 1
        self._event.set()

    def _close(self, error: Exception | None = None) -> None:
        self._closed = True
        self._error = error
        self._event.set()

    async def get(self, timeout: float | None = None) -> bytes:
        """The next message; raises PubSubError once the subscription ended and is drained."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self._queue:
            if self._closed:
                raise self._error or PubSubError(f"subscription to {self.topic!r} ended")
            self._event.clear()
            try:
                if deadline is None:
                    await self._event.wait()
                else:
                    await asyncio.wait_for(self._event.wait(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise TimeoutError(
                    f"no message on {self.topic!r} within {timeout}s",
                    timeout_duration=timeout,
                    operation="subscription_get",
                ) from None
        return self._queue.popleft()

    def get_nowait(self) -> bytes | None:
        """A queued message, or None."""
        return self._queue.popleft() if self._queue else None

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> bytes:
        """Next message; iteration ends after `unsubscribe`, and raises PubSubError if the channel failed."""
        try:
            return await self.get()
        except PubSubError:
            if self._error is not None:
                raise
            raise StopAsyncIteration from None

    async def unsubscribe(self) -> None:
        """Stop this subscription (the topic is unsubscribed at the hub when none is left)."""
        if not self._closed:
            self._close()
            await self._manager._release(self)

    async def __aenter__(self) -> "Subscription":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.unsubscribe()

    def __repr__(self) -> str:
        return f"<Subscription topic={self.topic!r} queued={len(self._queue)} dropped={self.dropped}>"


class PubSubManager:
    """The client side of pub/sub on one session.

    Args:
        session: The session to the server running a `PubSubHub`.
        stream: Use this bidirectional stream instead of opening one.
        queue_size: Default bound of each `Subscription`'s unread messages.
        max_message_size: Largest frame accepted or sent, in bytes.
        request_timeout: How long `subscribe` / `unsubscribe` wait for the hub's answer.
    """

    def __init__(
        self,
        session: "WebTransportSession | None" = None,
        stream: Any = None,
        queue_size: int = 1000,
        max_message_size: int = 1 << 20,
        request_timeout: float = 10.0,
    ) -> None:
        if session is None and stream is None:
            raise ValueError("PubSubManager needs a session or a stream")
        self._session = session
        self._stream: Any = None
        self.queue_size = queue_size
        self.max_message_size = max_message_size
        self.request_timeout = request_timeout
        self._subs: dict[str, list[Subscription]] = {}
        self._requests: dict[int, asyncio.Future[None]] = {}
        self._next_req = 1
        self._lock = asyncio.Lock()
        self._start_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._error: Exception | None = None
        self.stats = {"published": 0, "received": 0, "malformed": 0}
        if stream is not None:
            self._attach(stream)

    def _attach(self, stream: Any) -> None:
        self._stream = stream
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    async def start(self) -> None:
        """Open the pub/sub stream (done by the first operation otherwise)."""
        async with self._start_lock:
            if self._stream is None:
                self._check()
                assert self._session is not None
                self._attach(await self._session.create_bidirectional_stream())

    def _check(self) -> None:
        if self._error is not None:
            raise PubSubError(f"the pub/sub channel is closed: {self._error}")

    @property
    def topics(self) -> list[str]:
        """Topics with at least one active subscription."""
        return sorted(self._subs)

    async def _write(self, frame: bytes) -> None:
        if len(frame) - _LEN.size > self.max_message_size:
            raise PubSubError(f"message of {len(frame)} bytes exceeds max_message_size={self.max_message_size}")
        if self._stream is None:
            await self.start()
        self._check()
        task = asyncio.ensure_future(self._write_locked(frame))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            raise

    async def _write_locked(self, frame: bytes) -> None:
        async with self._write_lock:
            await self._stream.write(frame)

    async def publish(self, topic: str, data: bytes | str) -> None:
        """Publish ``data`` (str is UTF-8 encoded) to every subscriber of ``topic``."""
        payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        await self._write(encode_frame(OP_PUB, topic, payload))
        self.stats["published"] += 1

    async def subscribe(self, topic: str, queue_size: int | None = None) -> Subscription:
        """Subscribe to ``topic``; returns once the hub confirmed (so later publishes arrive).

        Raises PubSubError when the hub refuses the topic.
        """
        _topic_bytes(topic)
        async with self._lock:
            sub = Subscription(self, topic, queue_size or self.queue_size)
            first = topic not in self._subs
            # Registered before asking, so messages the hub sends ahead of its OK are kept.
            self._subs.setdefault(topic, []).append(sub)
            if first:
                try:
                    await self._request(OP_SUB, topic)
                except BaseException:
                    subs = self._subs.get(topic, [])
                    if sub in subs:
                        subs.remove(sub)
                    if not subs:
                        self._subs.pop(topic, None)
                    sub._close()
                    raise
            return sub

    async def unsubscribe(self, topic: str) -> None:
        """End every subscription to ``topic``."""
        async with self._lock:
            subs = self._subs.pop(topic, [])
            for sub in subs:
                sub._close()
            if subs and self._error is None:
                await self._request(OP_UNSUB, topic)

    async def _release(self, sub: Subscription) -> None:
        async with self._lock:
            subs = self._subs.get(sub.topic, [])
            if sub in subs:
                subs.remove(sub)
            if not subs and sub.topic in self._subs:
                del self._subs[sub.topic]
                if self._error is None:
                    await self._request(OP_UNSUB, sub.topic)

    async def _request(self, op: int, topic: str) -> None:
        req = self._next_req
        self._next_req += 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._requests[req] = future
        try:
            await self._write(encode_frame(op, topic, _REQ.pack(req)))
            await asyncio.wait_for(asyncio.shield(future), self.request_timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"the hub did not answer within {self.request_timeout}s",
                timeout_duration=self.request_timeout,
                operation="subscribe" if op == OP_SUB else "unsubscribe",
            ) from None
        finally:
            self._requests.pop(req, None)

    async def _read_loop(self) -> None:
        reader = FrameReader(self._stream, _LEN, self.max_message_size)
        error: Exception = PubSubError("the hub closed the pub/sub stream")
        try:
            while True:
                try:
                    frame = await reader.read_frame()
                    if frame is None:
                        break
                    op, topic, rest = decode_frame(frame[1])
                except (SerializationError, PubSubError) as exc:
                    self.stats["malformed"] += 1
                    log.warning("pub/sub: %s", exc)
                    continue
                if op == OP_MSG:
                    self.stats["received"] += 1
                    for sub in self._subs.get(topic, ()):
                        sub._put(rest)
                elif op in (OP_OK, OP_FAIL) and len(rest) >= 4:
                    (req,) = _REQ.unpack_from(rest)
                    future = self._requests.get(req)
                    if future is not None and not future.done():
                        if op == OP_OK:
                            future.set_result(None)
                        else:
                            reason = rest[4:].decode("utf-8", "replace")
                            future.set_exception(PubSubError(f"hub refused {topic!r}: {reason}"))
                else:
                    self.stats["malformed"] += 1
        except asyncio.CancelledError:
            error = PubSubError("the pub/sub manager was closed")
            raise
        except WebTransportError as exc:
            error = PubSubError(f"the pub/sub stream failed: {exc}")
        finally:
            self._error = error
            for future in self._requests.values():
                if not future.done():
                    future.set_exception(error)
            for subs in self._subs.values():
                for sub in subs:
                    sub._close(error)

    async def close(self) -> None:
        """End every subscription and finish the stream."""
        for subs in list(self._subs.values()):
            for sub in subs:
                sub._close()
        self._subs.clear()
        if self._reader is not None:
            self._reader.cancel()
        if self._stream is not None:
            try:
                await self._stream.close()
            except WebTransportError:
                pass

    async def __aenter__(self) -> "PubSubManager":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# -- server hub -----------------------------------------------------------------------------------


class _Peer:
    """One subscriber session in the hub: its topics, its bounded queue and its writer."""

    def __init__(self, hub: "PubSubHub", session: Any, stream: Any) -> None:
        self.hub = hub
        self.session = session
        self.stream = stream
        self.topics: set[str] = set()
        self.queue: deque[bytes] = deque()
        self.ready = asyncio.Event()
        self.dead = False
        self.dropped = 0

    def enqueue(self, frame: bytes) -> None:
        if self.dead:
            return
        if len(self.queue) >= self.hub.queue_size:
            if self.hub.slow_consumer_policy == "disconnect":
                self.hub.stats["slow_consumers_disconnected"] += 1
                log.warning("pub/sub: disconnecting a slow consumer (%d messages queued)", len(self.queue))
                self.kill(slow=True)
                return
            self.queue.popleft()
            self.dropped += 1
            self.hub.stats["messages_dropped"] += 1
        self.queue.append(frame)
        self.ready.set()

    def reply(self, frame: bytes) -> None:
        # Control answers are never dropped; they are bounded by the requests read.
        if not self.dead:
            self.queue.append(frame)
            self.ready.set()

    def kill(self, slow: bool = False) -> None:
        if self.dead:
            return
        self.dead = True
        self.queue.clear()
        self.ready.set()
        self.hub._drop_peer(self)
        if slow and self.session is not None:
            task = asyncio.get_running_loop().create_task(
                self.session.close(SLOW_CONSUMER_CLOSE_CODE, "slow consumer")
            )
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def writer(self) -> None:
        try:
            while not self.dead:
                if not self.queue:
                    self.ready.clear()
                    await self.ready.wait()
                    continue
                # Coalesce what is queued into one write (bounded to ~256 KiB).
                parts = []
                size = 0
                while self.queue and size < 262144:
                    frame = self.queue.popleft()
                    parts.append(frame)
                    size += len(frame)
                await self.stream.write(b"".join(parts) if len(parts) > 1 else parts[0])
                self.hub.stats["messages_delivered"] += len(parts)
        except WebTransportError as exc:
            log.debug("pub/sub: subscriber stream failed: %s", exc)
            self.kill()


class PubSubHub:
    """Routes topics between sessions; with a `Backplane`, between server processes too.

    Args:
        backplane: Shares topics with other hubs (`RedisBackplane`, `MemoryBackplane`); None for
            a single process.
        queue_size: Bound of each subscriber's outgoing queue, in messages.
        slow_consumer_policy: ``"drop_oldest"`` or ``"disconnect"`` (see the module docs).
        max_message_size: Largest frame accepted from a client, in bytes.
        max_topics_per_session: Subscriptions one session may hold.
        authorize: Optional ``authorize(session, topic, action) -> bool`` (sync or async), asked for
            ``"subscribe"`` and ``"publish"``; a refusal answers FAIL (subscribe) or drops the
            message (publish, counted in ``stats["publishes_refused"]``).
    """

    def __init__(
        self,
        backplane: Backplane | None = None,
        queue_size: int = 1000,
        slow_consumer_policy: SlowConsumerPolicy = "drop_oldest",
        max_message_size: int = 1 << 20,
        max_topics_per_session: int = 1000,
        authorize: Authorizer | None = None,
    ) -> None:
        if slow_consumer_policy not in ("drop_oldest", "disconnect"):
            raise ValueError("slow_consumer_policy is 'drop_oldest' or 'disconnect'")
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.backplane = backplane
        self.queue_size = queue_size
        self.slow_consumer_policy: SlowConsumerPolicy = slow_consumer_policy
        self.max_message_size = max_message_size
        self.max_topics_per_session = max_topics_per_session
        self.authorize = authorize
        self._topics: dict[str, set[_Peer]] = {}
        self._peers: set[_Peer] = set()
        self._started = False
        self._topic_locks: dict[str, asyncio.Lock] = {}
        self.stats = {
            "sessions": 0,
            "messages_published": 0,
            "messages_delivered": 0,
            "messages_dropped": 0,
            "slow_consumers_disconnected": 0,
            "publishes_refused": 0,
            "malformed_frames": 0,
        }

    async def start(self) -> None:
        """Connect the backplane (call once, e.g. from ``app.on_startup``)."""
        if not self._started:
            self._started = True
            if self.backplane is not None:
                await self.backplane.start(self._from_backplane)

    async def close(self) -> None:
        """Disconnect every subscriber and the backplane."""
        for peer in list(self._peers):
            peer.kill()
        if self.backplane is not None and self._started:
            await self.backplane.close()
        self._started = False

    @property
    def topics(self) -> list[str]:
        """Topics with local subscribers."""
        return sorted(self._topics)

    @property
    def subscriber_count(self) -> int:
        """Sessions connected to this hub."""
        return len(self._peers)

    def publish(self, topic: str, data: bytes | str) -> int:
        """Publish from the server; returns the number of local subscribers it was queued for."""
        payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        _topic_bytes(topic)
        return self._publish(topic, payload)

    def _publish(self, topic: str, payload: bytes) -> int:
        self.stats["messages_published"] += 1
        count = self._deliver(topic, payload)
        if self.backplane is not None and self._started:
            self.backplane.publish(topic, payload)
        return count

    def _from_backplane(self, topic: str, payload: bytes) -> None:
        self._deliver(topic, payload)

    def _deliver(self, topic: str, payload: bytes) -> int:
        peers = self._topics.get(topic)
        if not peers:
            return 0
        frame = encode_frame(OP_MSG, topic, payload)
        for peer in list(peers):
            peer.enqueue(frame)
        return len(peers)

    def _drop_peer(self, peer: _Peer) -> None:
        self._peers.discard(peer)
        for topic in list(peer.topics):
            self._leave(peer, topic)

    def _leave(self, peer: _Peer, topic: str) -> None:
        peer.topics.discard(topic)
        peers = self._topics.get(topic)
        if peers is None:
            return
        peers.discard(peer)
        if not peers:
            del self._topics[topic]
            lock = self._topic_locks.get(topic)
            if lock is not None and (self.backplane is None or not self._started):
                self._forget_lock(topic, lock)
            if self.backplane is not None and self._started:
                task = asyncio.get_running_loop().create_task(self._backplane_leave(topic))
                task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _backplane_leave(self, topic: str) -> None:
        lock = self._topic_locks.setdefault(topic, asyncio.Lock())
        async with lock:
            if topic not in self._topics and self.backplane is not None:
                await self.backplane.unsubscribe(topic)
        self._forget_lock(topic, lock)

    def _forget_lock(self, topic: str, lock: asyncio.Lock) -> None:
        # Per-topic locks live only while a topic is in use (no growth with topic churn).
        if topic not in self._topics and not lock.locked() and self._topic_locks.get(topic) is lock:
            del self._topic_locks[topic]

    async def _allowed(self, session: Any, topic: str, action: str) -> bool:
        if self.authorize is None:
            return True
        result = self.authorize(session, topic, action)
        if not isinstance(result, bool):
            result = await result
        return bool(result)

    async def serve(self, session: "WebTransportSession", stream: Any = None, timeout: float | None = 30.0) -> None:
        """Serve one client session until it closes its pub/sub stream or the session ends.

        Without ``stream`` the session's first incoming bidirectional stream is used (unidirectional
        streams arriving before it are refused); a client that opens none within ``timeout``
        seconds gets TimeoutError.
        """
        if not self._started:
            await self.start()
        if stream is None:
            try:
                stream = await _first_bidi_stream(session, timeout)
            except PubSubError:
                if _session_closed(session):
                    return  # the client left before opening its pub/sub stream
                raise
        peer = _Peer(self, session, stream)
        self._peers.add(peer)
        self.stats["sessions"] += 1
        writer = asyncio.get_running_loop().create_task(peer.writer())
        reader = FrameReader(stream, _LEN, self.max_message_size)
        burst = 0
        try:
            while not peer.dead:
                try:
                    frame = await reader.read_frame()
                    if frame is None:
                        break
                    op, topic, rest = decode_frame(frame[1])
                except (SerializationError, PubSubError) as exc:
                    self.stats["malformed_frames"] += 1
                    log.warning("pub/sub: malformed frame from a client: %s", exc)
                    continue
                await self._handle(peer, op, topic, rest)
                burst += 1
                if burst >= 16:
                    # Buffered frames are read without suspending: give the writers a turn so
                    # a burst from one publisher is not mistaken for slow consumers.
                    burst = 0
                    await asyncio.sleep(0)
        except WebTransportError as exc:
            log.debug("pub/sub: client stream ended: %s", exc)
        finally:
            # Let queued answers and messages go out before finishing the stream.
            if not peer.dead and not _session_closed(session):
                for _ in range(100):
                    if not peer.queue:
                        break
                    await asyncio.sleep(0.01)
            peer.kill()
            writer.cancel()
            try:
                await writer
            except BaseException:  # noqa: BLE001 - cancelled
                pass
            try:
                await stream.close()
            except WebTransportError:
                pass

    async def _handle(self, peer: _Peer, op: int, topic: str, rest: bytes) -> None:
        if op == OP_PUB:
            if await self._allowed(peer.session, topic, "publish"):
                self._publish(topic, rest)
            else:
                self.stats["publishes_refused"] += 1
            return
        if op not in (OP_SUB, OP_UNSUB) or len(rest) != 4:
            self.stats["malformed_frames"] += 1
            return
        if op == OP_UNSUB:
            if topic in peer.topics:
                self._leave(peer, topic)
            peer.reply(encode_frame(OP_OK, topic, rest))
            return
        if topic not in peer.topics:
            if len(peer.topics) >= self.max_topics_per_session:
                peer.reply(encode_frame(OP_FAIL, topic, rest + b"too many subscriptions"))
                return
            if not await self._allowed(peer.session, topic, "subscribe"):
                peer.reply(encode_frame(OP_FAIL, topic, rest + b"not authorized"))
                return
            lock = self._topic_locks.setdefault(topic, asyncio.Lock())
            async with lock:
                first = topic not in self._topics
                self._topics.setdefault(topic, set()).add(peer)
                peer.topics.add(topic)
                if first and self.backplane is not None:
                    await self.backplane.subscribe(topic)
            self._forget_lock(topic, lock)
        peer.reply(encode_frame(OP_OK, topic, rest))

    def __repr__(self) -> str:
        return f"<PubSubHub sessions={len(self._peers)} topics={len(self._topics)} policy={self.slow_consumer_policy}>"


def _session_closed(session: Any) -> bool:
    """Whether ``session`` (or a stand-in without ``is_closed``) is closed."""
    return bool(getattr(session, "is_closed", False))
