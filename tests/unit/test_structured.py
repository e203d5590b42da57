"""StructuredStream framing over an in-memory stream: typed frames, bad frames, cancellation."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

import pytest

from fake_streams import stream_pair
from pywebtransport.exceptions import SerializationError, StreamError
from pywebtransport.serializer import JSONSerializer, MsgPackSerializer
from pywebtransport.stream import StructuredStream

pytestmark = pytest.mark.timeout(20)


@dataclass
class Ping:
    seq: int


@dataclass
class Chat:
    user: str
    text: str


REGISTRY = {1: Ping, 2: Chat}


async def test_typed_messages_in_order() -> None:
    a, b = stream_pair()
    left = StructuredStream(a, MsgPackSerializer(), REGISTRY)
    right = StructuredStream(b, MsgPackSerializer(), REGISTRY)
    for i in range(50):
        await left.send_obj(Ping(i) if i % 2 else Chat("u", f"t{i}"))
    await left.close()
    got = [obj async for obj in right]
    assert got == [Ping(i) if i % 2 else Chat("u", f"t{i}") for i in range(50)]
    with pytest.raises(StreamError, match="ended"):
        await right.receive_obj()


async def test_bad_frames_raise_and_stream_stays_aligned() -> None:
    a, b = stream_pair()
    right = StructuredStream(b, JSONSerializer(), REGISTRY, max_message_size=64)
    good = StructuredStream(a, JSONSerializer(), REGISTRY).encode(Ping(1))
    oversized = struct.pack("!HI", 1, 1000) + b"x" * 1000
    unknown = struct.pack("!HI", 99, 2) + b"{}"
    undecodable = struct.pack("!HI", 1, 5) + b"nope!"
    wrong_shape = struct.pack("!HI", 1, 10) + b'{"seq":"x"}'[:10]
    # Fed in odd-sized pieces to exercise partial headers.
    wire = oversized + good + unknown + good + undecodable + good + wrong_shape + good
    for i in range(0, len(wire), 7):
        a.feed(wire[i : i + 7])
    with pytest.raises(SerializationError, match="exceeds the maximum of 64"):
        await right.receive_obj()
    assert await right.receive_obj() == Ping(1)
    with pytest.raises(SerializationError, match="unknown message type id 99"):
        await right.receive_obj()
    assert await right.receive_obj() == Ping(1)
    with pytest.raises(SerializationError, match="invalid JSON"):
        await right.receive_obj()
    assert await right.receive_obj() == Ping(1)
    with pytest.raises(SerializationError):
        await right.receive_obj()
    assert await right.receive_obj() == Ping(1)


async def test_truncated_frame_at_eof() -> None:
    a, b = stream_pair()
    right = StructuredStream(b, JSONSerializer(), REGISTRY)
    a.feed(struct.pack("!HI", 1, 10) + b"{}", eof=True)
    with pytest.raises(SerializationError, match="ended inside a frame"):
        await right.receive_obj()


async def test_send_refuses_unregistered_and_oversized_without_writing() -> None:
    a, _b = stream_pair()
    left = StructuredStream(a, JSONSerializer(), REGISTRY, max_message_size=20)
    with pytest.raises(SerializationError, match="not registered"):
        await left.send_obj("a string")
    with pytest.raises(SerializationError, match="above max_message_size"):
        await left.send_obj(Chat("x" * 50, "y"))
    assert a.writes == []
    with pytest.raises(ValueError):
        StructuredStream(a, JSONSerializer(), {70000: Ping})


async def test_cancelled_receive_loses_nothing() -> None:
    a, b = stream_pair()
    right = StructuredStream(b, JSONSerializer(), REGISTRY)
    frame = StructuredStream(a, JSONSerializer(), REGISTRY).encode(Chat("ann", "hello"))
    a.feed(frame[:9])  # header plus part of the payload
    task = asyncio.ensure_future(right.receive_obj())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    a.feed(frame[9:])
    assert await right.receive_obj() == Chat("ann", "hello")


async def test_cancelled_send_still_writes_whole_frame() -> None:
    a, b = stream_pair()
    left = StructuredStream(a, JSONSerializer(), REGISTRY)
    right = StructuredStream(b, JSONSerializer(), REGISTRY)
    task = asyncio.ensure_future(left.send_obj(Chat("ann", "x" * 1000)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await left.send_obj(Ping(2))
    assert await right.receive_obj() == Chat("ann", "x" * 1000)
    assert await right.receive_obj() == Ping(2)
