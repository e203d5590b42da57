"""WebTransport streams: the public objects users read from and write to.

A WebTransport stream is a QUIC stream whose first bytes (the stream signal
and session id) belong to HTTP/3; the connection layer strips them and feeds
the payload here.  Reads consume from a local buffer and report consumption
to the QUIC layer, so a slow reader keeps the transport's buffer bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ._raising import fresh
from .compat.stream import StreamBuffer, StreamManager, StreamPool
from .events import EventEmitter
from .exceptions import StreamError, StreamResetError, TimeoutError
from .h3.errors import webtransport_code_to_http3
from .quic import QuicError, StreamStopped, WriteTimeout
from .quic.buffer import ChunkBuffer
from .quic.interface import QuicStreamTransport
from .quic.waiters import Waiters, wait_with_timeout
from .types import EventType, StreamDirection, StreamState

if TYPE_CHECKING:
    from .session import WebTransportSession

__all__ = [
    "StreamBuffer",
    "StreamManager",
    "StreamPool",
    "StreamStats",
    "WebTransportReceiveStream",
    "WebTransportSendStream",
    "WebTransportStream",
]

DEFAULT_READ_SIZE = 8192

# Enum members looked up once (a class attribute lookup costs ~0.2 µs on 3.11).
_OPEN, _CLOSED = StreamState.OPEN, StreamState.CLOSED
_HALF_CLOSED_LOCAL, _HALF_CLOSED_REMOTE = StreamState.HALF_CLOSED_LOCAL, StreamState.HALF_CLOSED_REMOTE
_ENDED = (StreamState.CLOSED, StreamState.RESET_RECEIVED, StreamState.RESET_SENT)
_BIDI = StreamDirection.BIDIRECTIONAL


class StreamStats(dict[str, Any]):
    """Counters of one stream (a dict for compatibility with 0.1.x)."""


class _StreamBase(EventEmitter):
    """Common part of the stream classes; events: STREAM_DATA_RECEIVED, STREAM_ERROR, STREAM_CLOSED."""

    def __init__(
        self, session: "WebTransportSession", quic: QuicStreamTransport, direction: StreamDirection
    ) -> None:
        self._session = session
        self._quic = quic
        quic.write_timeout = session._connection.write_timeout  # config: write_timeout
        self._direction = direction
        self._created = time.monotonic()
        self._state = StreamState.OPEN
        # Session flow control: payload goes through the session's credit accounting.
        self._flow_control = session.connection.flow_control_enabled

    @property
    def stream_id(self) -> int:
        return self._quic.stream_id

    @property
    def direction(self) -> StreamDirection:
        return self._direction

    @property
    def session(self) -> "WebTransportSession":
        return self._session

    @property
    def state(self) -> StreamState:
        return self._state

    @property
    def is_closed(self) -> bool:
        return self._quic.is_closed or self._state in _ENDED

    async def wait_closed(self) -> None:
        await self._quic.wait_closed()
        self._state = StreamState.CLOSED if self._state == StreamState.OPEN else self._state

    def _half_close(self, local: bool) -> None:
        state = self._state
        if state is _OPEN:
            if self._direction is _BIDI:
                self._state = _HALF_CLOSED_LOCAL if local else _HALF_CLOSED_REMOTE
            else:
                self._state = _CLOSED
        elif state is _HALF_CLOSED_LOCAL or state is _HALF_CLOSED_REMOTE:
            self._state = _CLOSED

    def get_summary(self) -> dict[str, Any]:
        return {
            "stream_id": self.stream_id,
            "direction": str(self._direction),
            "state": str(self._state),
            "bytes_sent": self._quic.bytes_sent,
            "bytes_received": self._quic.bytes_received,
            "uptime": time.monotonic() - self._created,
        }

    def debug_state(self) -> dict[str, Any]:
        """The summary plus transport detail: unread bytes and why the stream is held back."""
        return {**self.get_summary(), "buffered": self._quic.buffered_bytes, "transport": self._quic.diagnostics()}

    @property
    def stats(self) -> StreamStats:
        return StreamStats(self.get_summary())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.stream_id} state={self._state}>"


class WebTransportReceiveStream(_StreamBase):
    """The readable side of a WebTransport stream."""

    def __init__(
        self,
        session: "WebTransportSession",
        quic: QuicStreamTransport,
        direction: StreamDirection = StreamDirection.RECEIVE_ONLY,
    ) -> None:
        super().__init__(session, quic, direction)
        self._buffer = ChunkBuffer()
        self._eof = False
        self._error: Exception | None = None
        self._waiters = Waiters()
        # Bytes the transport already counted as consumed (released early arrivals).
        self._preconsumed = 0
        self._discarding = False

    # -- fed by the connection layer ---------------------------------------
    def _on_data(self, data: bytes, fin: bool) -> None:
        """Payload straight from the QUIC stream (installed when the stream is bound)."""
        if self._ee_listened and EventType.STREAM_DATA_RECEIVED in self._ee_listening:  # event hook
            self._ee_fire(EventType.STREAM_DATA_RECEIVED, {"stream_id": self.stream_id, "data": data, "end_stream": fin})
        if data:
            if self._discarding:
                # Bytes still in flight after abort_reading(): nobody will read them.
                self._consumed(len(data), len(data))
            else:
                self._buffer.append(data)
        if fin:
            self._eof = True
            self._half_close(local=False)
        self._waiters.wake_all()

    def _feed_data(self, data: bytes, fin: bool, preconsumed: bool = False) -> None:
        """Payload delivered through the HTTP/3 core (first bytes, early arrivals).

        ``preconsumed`` bytes were already reported to the transport.
        """
        if self._ee_listened and EventType.STREAM_DATA_RECEIVED in self._ee_listening:  # event hook
            self._ee_fire(EventType.STREAM_DATA_RECEIVED, {"stream_id": self.stream_id, "data": data, "end_stream": fin})
        if data and self._discarding:
            self._consumed(0 if preconsumed else len(data), len(data))
            data = b""
        if data:
            self._buffer.append(data)
            if preconsumed:
                self._preconsumed += len(data)
        if fin:
            self._eof = True
            self._half_close(local=False)
        self._waiters.wake_all()

    def _consumed(self, transport: int, payload: int) -> None:
        """The one route for consumed bytes: transport credit, then session credit."""
        if transport:
            self._quic.consumed(transport)
        if self._flow_control:
            self._session._on_consumed(payload)

    def _feed_error(self, exc: Exception) -> None:
        if self._ee_listened and EventType.STREAM_ERROR in self._ee_listening:  # event hook
            self._ee_fire(EventType.STREAM_ERROR, {"stream_id": self.stream_id, "error": exc})
        if self._error is None and not (self._eof and isinstance(exc, QuicError)):
            self._error = exc
            if isinstance(exc, StreamResetError):
                self._state = StreamState.RESET_RECEIVED
        self._wake()

    def _wake(self) -> None:
        self._waiters.wake_all()

    async def _wait(self) -> None:
        if not await wait_with_timeout(self._waiters.wait(), self._session._connection.read_timeout):
            timeout = self._session._connection.read_timeout  # config: read_timeout
            raise TimeoutError(
                f"stream {self.stream_id}: no data within {timeout}s", timeout_duration=timeout, operation="read"
            )

    def _take(self, n: int) -> bytes:
        data = self._buffer.take(n)
        k = len(data)
        if self._preconsumed:
            credit = min(self._preconsumed, k)
            self._preconsumed -= credit
            self._consumed(k - credit, k)
        else:
            self._consumed(k, k)
        return data

    def _raise_error(self) -> None:
        assert self._error is not None
        raise fresh(self._error)

    # -- public API --------------------------------------------------------
    @property
    def is_readable(self) -> bool:
        """True while more data may still arrive."""
        return not self._eof and self._error is None

    async def read(self, size: int = DEFAULT_READ_SIZE) -> bytes:
        """Read up to ``size`` bytes; ``b""`` once the peer finished the stream."""
        while not self._buffer:
            if self._error is not None:
                self._raise_error()
            if self._eof:
                return b""
            await self._wait()
        return self._take(size)

    async def read_all(self, max_size: int | None = None) -> bytes:
        """Read until the peer finishes the stream.

        ``max_size`` bounds the total; exceeding it raises StreamError.
        """
        parts: list[bytes] = []
        total = 0
        while True:
            if self._buffer:
                data = self._take(-1)
                total += len(data)
                if max_size is not None and total > max_size:
                    raise StreamError(
                        f"stream data exceeds max_size={max_size} bytes", stream_id=self.stream_id
                    )
                parts.append(data)
                continue
            if self._error is not None:
                self._raise_error()
            if self._eof:
                return b"".join(parts)
            await self._wait()

    async def readexactly(self, n: int) -> bytes:
        """Read exactly `n` bytes; raises if the stream ends first."""
        while self._buffer.size < n:
            if self._error is not None:
                self._raise_error()
            if self._eof:
                raise asyncio.IncompleteReadError(self._take(-1), n)
            await self._wait()
        return self._take(n)

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        """Read up to and including `separator`."""
        while True:
            end = self._buffer.find(separator)
            if end >= 0:
                return self._take(end)
            if self._error is not None:
                self._raise_error()
            if self._eof:
                raise asyncio.IncompleteReadError(self._take(-1), None)
            await self._wait()

    async def readline(self) -> bytes:
        """Read one line (up to and including ``\n``)."""
        try:
            return await self.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial

    async def read_iter(self, chunk_size: int = DEFAULT_READ_SIZE) -> AsyncIterator[bytes]:
        """Iterate over received chunks of at most `chunk_size` bytes until the stream ends."""
        while True:
            chunk = await self.read(chunk_size)
            if not chunk:
                return
            yield chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.read_iter()

    def abort_reading(self, code: int = 0) -> None:
        """Tell the peer to stop sending (STOP_SENDING with an application code)."""
        self._quic.stop_sending(webtransport_code_to_http3(code))
        self._discarding = True
        if self._buffer:
            # Unread bytes are dropped; they still count as consumed for session credit.
            unread = self._buffer.take()
            self._consumed(len(unread) - self._preconsumed, len(unread))
            self._preconsumed = 0
        if self._error is None and not self._eof:
            self._error = StreamError("stream reading was aborted locally", stream_id=self.stream_id)
        self._wake()

    def abort(self, code: int = 0) -> None:
        """Abort the stream in every direction it has."""
        self.abort_reading(code)
        self._state = StreamState.RESET_SENT


class WebTransportSendStream(_StreamBase):
    """The writable side of a WebTransport stream."""

    def __init__(
        self,
        session: "WebTransportSession",
        quic: QuicStreamTransport,
        direction: StreamDirection = StreamDirection.SEND_ONLY,
    ) -> None:
        super().__init__(session, quic, direction)
        self._fin = False
        self._reset = False

    @property
    def is_writable(self) -> bool:
        """True while data may still be written."""
        return not self._fin and not self._reset and not self._quic.is_closed

    def _translate(self, exc: QuicError) -> Exception:
        if isinstance(exc, WriteTimeout):
            timeout = self._quic.write_timeout
            return TimeoutError(str(exc), timeout_duration=timeout, operation="write")
        if isinstance(exc, StreamStopped):
            from .h3.errors import http3_code_to_webtransport

            code = http3_code_to_webtransport(exc.error_code)
            self._state = StreamState.RESET_RECEIVED
            return StreamResetError(
                reset_code=code if code is not None else 0,
                remote=True,
                stream_id=self.stream_id,
                stream_state=self._state,
            )
        return StreamError(str(exc), stream_id=self.stream_id, stream_state=self._state)

    def _check_writable(self) -> None:
        if self._fin or self._reset:
            raise StreamError(
                f"stream {self.stream_id} is closed for writing",
                stream_id=self.stream_id,
                stream_state=self._state,
            )
        if self._session.is_closed:
            raise StreamError(
                f"stream {self.stream_id} belongs to a closed session", stream_id=self.stream_id
            )

    async def write(self, data: bytes | bytearray | memoryview | str, end_stream: bool = False) -> None:
        """Write data (str is UTF-8 encoded), waiting when the peer is slow."""
        if isinstance(data, str):
            data = data.encode()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes or str, not {type(data).__name__}")
        if isinstance(data, memoryview):
            data = data.cast("B")
        self._check_writable()
        try:
            if self._flow_control:
                await self._session._send(self._quic, data, end_stream)
            else:
                await self._quic.write(data, end_stream)
        except QuicError as exc:
            raise self._translate(exc) from None
        self._session._stats["bytes_sent"] += len(data)
        if end_stream:
            self._fin = True
            self._half_close(local=True)

    async def write_all(
        self, data: bytes | bytearray | memoryview | str, chunk_size: int = 65536
    ) -> None:
        """Write everything, then finish the stream (FIN)."""
        if isinstance(data, str):
            data = data.encode()
        try:
            await self.write(data, end_stream=True)
        except StreamError:
            self.abort(code=1)
            raise

    async def flush(self) -> None:
        """Wait until written data has been handed to the transport."""
        try:
            await self._quic.drain()
        except QuicError as exc:
            raise self._translate(exc) from None

    async def close(self) -> None:
        """Finish the stream (FIN); idempotent."""
        if self._fin or self._reset:
            return
        self._fin = True
        try:
            self._quic.finish()
        except QuicError:
            pass
        self._half_close(local=True)

    def abort_writing(self, code: int = 0) -> None:
        """Reset the sending side with an application error code."""
        if self._reset:
            return
        self._reset = True
        self._quic.reset(webtransport_code_to_http3(code))
        self._state = StreamState.RESET_SENT

    def abort(self, code: int = 0) -> None:
        """Reset the sending side with application `code`."""
        self.abort_writing(code)


class WebTransportStream(WebTransportReceiveStream, WebTransportSendStream):
    """A bidirectional WebTransport stream."""

    def __init__(self, session: "WebTransportSession", quic: QuicStreamTransport) -> None:
        WebTransportReceiveStream.__init__(self, session, quic, StreamDirection.BIDIRECTIONAL)
        self._fin = False
        self._reset = False

    def abort(self, code: int = 0) -> None:
        """Reset both directions of the stream with application `code`."""
        self.abort_writing(code)
        self.abort_reading(code)
        self._state = StreamState.RESET_SENT

    def monitor_health(self) -> dict[str, Any]:
        """Health snapshot of the stream: ``healthy`` plus its summary (0.1.x compatibility helper)."""
        return {"healthy": not self.is_closed, **self.get_summary()}

    def diagnose_issues(self) -> list[str]:
        """Human-readable problems found with this stream (0.1.x compatibility helper)."""
        issues = []
        if self._error is not None:
            issues.append(f"read error: {self._error}")
        if self._reset:
            issues.append("send side was reset")
        return issues

from .structured import StructuredStream as StructuredStream  # noqa: E402 (after the stream classes)
