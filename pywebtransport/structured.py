"""Structured messages: typed objects over a WebTransport stream or over datagrams.

Stream frames are ``[u16 type id][u32 payload length][payload]`` (network byte order); a
datagram is ``[u16 type id][payload]``. Message types are registered by id, so both peers
agree on what a frame carries without sending type names.

The stream reader never loses frame alignment: a frame longer than ``max_message_size`` raises
`SerializationError` at once and its payload is skipped (without buffering it) by the next
read; an unknown type id or an undecodable payload raises after the whole frame was consumed;
and a read or a send cancelled half-way resumes (or completes) in the background rather than
leaving half a frame behind.

Also here: `FrameReader` and `FrameWriter`, the length-prefixed framing the RPC and pub/sub
layers share.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .exceptions import DatagramError, SerializationError, StreamError
from .serializer import Serializer

if TYPE_CHECKING:
    from .datagram import WebTransportDatagramDuplexStream

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "FrameReader",
    "FrameWriter",
    "StructuredDatagramTransport",
    "StructuredStream",
]

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
_READ_CHUNK = 65536


class _Readable(Protocol):
    async def read(self, size: int = ...) -> bytes: ...


class _Writable(Protocol):
    async def write(self, data: bytes, end_stream: bool = ...) -> None: ...


class FrameReader:
    """Reads length-prefixed frames ``[header][payload]`` from a stream's public ``read()``.

    ``header`` is a `struct.Struct` whose *last* field is the payload length. The reader owns the
    stream's read side: it reads in chunks of up to 64 KiB and keeps what belongs to later frames
    for the next call, so a cancelled `read_frame` loses nothing and frames larger than the
    stream's receive buffer work. At most one frame plus one chunk is held in memory; the payload
    of an oversized frame is discarded as it arrives.
    """

    def __init__(self, stream: _Readable, header: struct.Struct, max_size: int) -> None:
        if max_size < 0:
            raise ValueError("max_size must not be negative")
        self._stream = stream
        self._header = header
        self.max_size = max_size
        self._buf = bytearray()
        self._skip = 0
        self._eof = False
        self.frames_read = 0
        self.frames_skipped = 0

    async def _fill(self) -> bool:
        """Read one more chunk; False at the end of the stream."""
        if self._eof:
            return False
        data = await self._stream.read(_READ_CHUNK)
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    async def read_frame(self) -> tuple[tuple[Any, ...], bytes] | None:
        """Next frame as ``(header fields, payload)``; ``None`` when the stream ends between frames.

        Raises `SerializationError` for a frame above ``max_size`` (its payload is skipped on the
        next call) and for a stream that ends inside a frame.
        """
        buf = self._buf
        while self._skip:
            if not buf and not await self._fill():
                raise SerializationError("stream ended inside an oversized frame")
            n = min(self._skip, len(buf))
            del buf[:n]
            self._skip -= n
        size = self._header.size
        while len(buf) < size:
            if not await self._fill():
                if not buf:
                    return None
                raise SerializationError(f"stream ended inside a frame header ({len(buf)} of {size} bytes)")
        fields = self._header.unpack_from(buf)
        length = int(fields[-1])
        if length > self.max_size:
            del buf[:size]
            self._skip = length
            self.frames_skipped += 1
            raise SerializationError(
                f"frame of {length} bytes exceeds the maximum of {self.max_size} bytes "
                "(skipped; the stream stays usable)"
            )
        end = size + length
        while len(buf) < end:
            if not await self._fill():
                raise SerializationError(
                    f"stream ended inside a frame ({len(buf) - size} of {length} payload bytes)"
                )
        payload = bytes(buf[size:end])
        del buf[:end]
        self.frames_read += 1
        return fields, payload


class FrameWriter:
    """Writes whole frames to a stream: one frame at a time, never cut by cancellation.

    A caller cancelled while its frame is being written gets `CancelledError`, but the write
    itself finishes in the background, so the peer never sees half a frame.
    """

    def __init__(self, stream: _Writable) -> None:
        self._stream = stream
        self._lock = asyncio.Lock()
        self.frames_written = 0

    async def _write(self, data: bytes) -> None:
        async with self._lock:
            await self._stream.write(data)
            self.frames_written += 1

    async def write_frame(self, data: bytes) -> None:
        """Write one complete frame (header included)."""
        task = asyncio.ensure_future(self._write(data))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            # The frame still goes out whole; consume its outcome so nothing is logged twice.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            raise


_STREAM_HEADER = struct.Struct("!HI")
_DATAGRAM_HEADER = struct.Struct("!H")


def _reverse_registry(registry: Mapping[int, type[Any]]) -> dict[type[Any], int]:
    reverse: dict[type[Any], int] = {}
    for type_id, cls in registry.items():
        if not isinstance(type_id, int) or not 0 <= type_id <= 0xFFFF:
            raise ValueError(f"message type ids are 0..65535, not {type_id!r}")
        if cls in reverse:
            raise ValueError(f"{cls!r} is registered under two ids ({reverse[cls]} and {type_id})")
        reverse[cls] = type_id
    return reverse


class StructuredStream:
    """Typed messages over a bidirectional WebTransport stream.

    Args:
        stream: A `WebTransportStream` (or a receive-only / send-only stream for one direction).
        serializer: How payloads are encoded (`JSONSerializer`, `MsgPackSerializer`, ...).
        registry: ``{type id: class}``; ids are 0..65535 and must match on both peers.
        max_message_size: Largest payload accepted or sent, in bytes.

    Iterating (``async for obj in structured``) yields objects until the peer finishes the stream.
    """

    def __init__(
        self,
        stream: Any,
        serializer: Serializer,
        registry: Mapping[int, type[Any]],
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self._stream = stream
        self._serializer = serializer
        self._registry = dict(registry)
        self._ids = _reverse_registry(self._registry)
        self.max_message_size = max_message_size
        self._reader = FrameReader(stream, _STREAM_HEADER, max_message_size) if hasattr(stream, "read") else None
        self._writer = FrameWriter(stream) if hasattr(stream, "write") else None
        self.messages_sent = 0
        self.messages_received = 0

    @property
    def stream(self) -> Any:
        """The underlying WebTransport stream."""
        return self._stream

    @property
    def registry(self) -> dict[int, type[Any]]:
        """A copy of the ``{type id: class}`` registry."""
        return dict(self._registry)

    def encode(self, obj: Any) -> bytes:
        """The complete frame for ``obj``; raises SerializationError for unregistered or oversized objects."""
        type_id = self._ids.get(type(obj))
        if type_id is None:
            raise SerializationError(f"{type(obj).__name__} is not registered on this StructuredStream")
        payload = self._serializer.serialize(obj)
        if len(payload) > self.max_message_size:
            raise SerializationError(
                f"{type(obj).__name__} serializes to {len(payload)} bytes, above max_message_size="
                f"{self.max_message_size}"
            )
        return _STREAM_HEADER.pack(type_id, len(payload)) + payload

    async def send_obj(self, obj: Any) -> None:
        """Send one object; nothing is written if it cannot be encoded."""
        if self._writer is None:
            raise StreamError("this stream cannot be written to")
        await self._writer.write_frame(self.encode(obj))
        self.messages_sent += 1

    async def receive_obj(self) -> Any:
        """The next object; raises StreamError once the peer finished the stream.

        Raises SerializationError for an oversized frame, an unknown type id or a payload that
        does not decode; the stream stays aligned and the next call reads the next frame.
        """
        obj = await self._next()
        if obj is _END:
            raise StreamError("the stream ended (no more messages)")
        return obj

    async def _next(self) -> Any:
        if self._reader is None:
            raise StreamError("this stream cannot be read from")
        frame = await self._reader.read_frame()
        if frame is None:
            return _END
        (type_id, _length), payload = frame
        cls = self._registry.get(type_id)
        if cls is None:
            raise SerializationError(f"unknown message type id {type_id} ({len(payload)} bytes skipped)")
        obj = self._serializer.deserialize(payload, cls)
        self.messages_received += 1
        return obj

    async def __aiter__(self) -> AsyncIterator[Any]:
        while True:
            obj = await self._next()
            if obj is _END:
                return
            yield obj

    async def close(self) -> None:
        """Finish the sending side (FIN)."""
        close = getattr(self._stream, "close", None)
        if close is not None:
            await close()

    def __repr__(self) -> str:
        return f"<StructuredStream stream={self._stream!r} types={sorted(self._registry)}>"


class _EndMarker:
    pass


_END: Any = _EndMarker()


class StructuredDatagramTransport:
    """Typed messages over a session's datagrams (unreliable, unordered, one object per datagram).

    Args:
        datagrams: The session's datagram channel (``session.datagrams``).
        serializer: How payloads are encoded.
        registry: ``{type id: class}`` shared by both peers.

    A datagram that is too short, carries an unknown type id or does not decode raises
    `SerializationError` from `receive_obj`; the next datagram is unaffected.
    """

    def __init__(
        self,
        datagrams: "WebTransportDatagramDuplexStream",
        serializer: Serializer,
        registry: Mapping[int, type[Any]],
    ) -> None:
        self._datagrams = datagrams
        self._serializer = serializer
        self._registry = dict(registry)
        self._ids = _reverse_registry(self._registry)
        self.messages_sent = 0
        self.messages_received = 0

    @property
    def datagrams(self) -> "WebTransportDatagramDuplexStream":
        """The underlying datagram channel."""
        return self._datagrams

    def encode(self, obj: Any) -> bytes:
        """The datagram for ``obj``; raises SerializationError / DatagramError if it cannot be sent."""
        type_id = self._ids.get(type(obj))
        if type_id is None:
            raise SerializationError(f"{type(obj).__name__} is not registered on this transport")
        data = _DATAGRAM_HEADER.pack(type_id) + self._serializer.serialize(obj)
        limit = self._datagrams.max_datagram_size
        if len(data) > limit:
            raise DatagramError(
                f"{type(obj).__name__} needs a {len(data)}-byte datagram, above the maximum of {limit}",
                datagram_size=len(data),
                max_size=limit,
            )
        return data

    async def send_obj(self, obj: Any) -> None:
        """Send one object as one datagram."""
        await self._datagrams.send(self.encode(obj))
        self.messages_sent += 1

    def decode(self, data: bytes) -> Any:
        """Turn one received datagram back into an object."""
        if len(data) < _DATAGRAM_HEADER.size:
            raise SerializationError(f"datagram of {len(data)} bytes is too short for a message header")
        (type_id,) = _DATAGRAM_HEADER.unpack_from(data)
        cls = self._registry.get(type_id)
        if cls is None:
            raise SerializationError(f"unknown message type id {type_id} in a datagram")
        return self._serializer.deserialize(bytes(data[_DATAGRAM_HEADER.size :]), cls)

    async def receive_obj(self, timeout: float | None = None) -> Any:
        """The next object received as a datagram."""
        obj = self.decode(await self._datagrams.receive(timeout=timeout))
        self.messages_received += 1
        return obj

    def __repr__(self) -> str:
        return f"<StructuredDatagramTransport types={sorted(self._registry)}>"
