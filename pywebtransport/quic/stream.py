"""QUIC streams on top of the shim: reads with backpressure, writes with flow control."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable

from .._raising import fresh
from .._native import ffi, lib
from .buffer import ChunkBuffer
from .waiters import Waiters, wait_with_timeout
from .errors import (
    CloseReason,
    ConnectionClosed,
    QuicError,
    StreamClosedError,
    WriteTimeout,
    StreamReset,
    StreamStopped,
)

if TYPE_CHECKING:
    from .connection import QuicConnection

_EV_START_COMPLETE = lib.PWT_EV_STREAM_START_COMPLETE
_EV_RECEIVE = lib.PWT_EV_STREAM_RECEIVE
_EV_WRITABLE = lib.PWT_EV_STREAM_WRITABLE
_EV_PEER_FIN = lib.PWT_EV_STREAM_PEER_SEND_SHUTDOWN
_EV_PEER_RESET = lib.PWT_EV_STREAM_PEER_SEND_ABORTED
_EV_PEER_STOP = lib.PWT_EV_STREAM_PEER_RECEIVE_ABORTED
_EV_SHUTDOWN_COMPLETE = lib.PWT_EV_STREAM_SHUTDOWN_COMPLETE
_EV_RESUME = lib.PWT_EV_STREAM_RESUME
_EV_RECEIVE_ZC = lib.PWT_EV_STREAM_RECEIVE_ZC

# Largest single native send; bigger writes are split so that the shim's copy
# and msquic's buffering stay bounded by the high-water mark.
WRITE_CHUNK = 256 * 1024

DataReceiver = Callable[[bytes, bool], None]
ErrorReceiver = Callable[[int], None]


# Writes up to this size (not ending the stream) wait for the rest of the loop iteration,
# joined with whatever else the stream gets meanwhile: what a task writes in one go (a
# stream header, a message, the FIN of a close() that follows) then leaves in one native
# send.  Each native send is a separate operation for msquic's worker, which usually sends
# the first as a packet of its own before the second arrives (a reply's data and its FIN
# were two packets, and the peer acknowledged both at once).  Larger writes go at once;
# pending bytes are joined to one of those up to this size too, sent before it otherwise.
_COALESCE_MAX = 4096

# Large receives are copied out of msquic in pieces of this size: a read of 64 KiB (what
# bulk readers ask for) then returns a piece as it is instead of slicing, i.e. copying
# again, the up to ~1 MB chunk msquic indicated.
_RECV_PIECE = 64 * 1024


_DIAG_KEYS = (
    "scheduling_blocked_us", "pacing_blocked_us", "amplification_blocked_us",
    "congestion_blocked_us", "connection_flow_control_blocked_us", "stream_id_blocked_us",
    "stream_flow_control_blocked_us", "app_blocked_us", "receive_paused", "send_queued",
)


class QuicStream:
    """One QUIC stream.

    Pull API: :meth:`read`, :meth:`read_all`, :meth:`readexactly`.  Push API
    for protocol layers: :meth:`set_receiver` delivers data synchronously as
    it arrives; the receiver then reports consumption with :meth:`consumed`
    so the shim can keep the per-stream buffer bounded.
    """

    # Slots: a connection has at least three streams (HTTP/3 control both ways, CONNECT).
    __slots__ = (
        "_conn", "_handle", "_held", "_loop", "stream_id", "is_unidirectional", "is_local",
        "_buffer", "_eof", "_read_error", "_write_error", "_fin_sent", "_send_aborted",
        "_recv_aborted", "_readers", "_writers", "_started_fut", "_is_closed", "_closed_fut",
        "_receiver", "_on_reset", "_on_stop", "_on_closed", "bytes_sent", "bytes_received",
        "reliable_size", "write_timeout", "release_when_done", "_can_read", "_can_write", "_pending",
        "__weakref__",
    )

    def __init__(
        self, conn: "QuicConnection", handle: Any, *, unidirectional: bool, local: bool
    ) -> None:
        self.write_timeout: float | None = None  # seconds a write may wait for flow control (None: forever)
        self._conn = conn
        self._handle = handle
        # A peer stream whose shutdown completed while received bytes were
        # still unconsumed keeps its native handle here until they are: the
        # peer's stream credit is returned only when the handle is closed.
        self._held: Any = None
        self._loop = conn._loop
        self.stream_id: int = -1
        self.is_unidirectional = unidirectional
        self.is_local = local
        self._can_read = not (unidirectional and local)
        self._can_write = not (unidirectional and not local)
        self._buffer = ChunkBuffer()
        self._eof = False
        self._read_error: QuicError | None = None
        self._write_error: QuicError | None = None
        self._pending: bytes | None = None  # small writes not handed to msquic yet
        self._fin_sent = False
        self._send_aborted = False
        self._recv_aborted = False
        # Made by the first read or write that has to wait (most streams never do).
        self._readers: Waiters | None = None
        self._writers: Waiters | None = None
        # Streams are usable at once (local ids are predicted, see
        # QuicConnection.open_stream): the future is made, already resolved,
        # only if someone asks for it.
        self._started_fut: asyncio.Future[None] | None = None
        # The close future is made only for wait_closed() callers.
        self._is_closed = False
        self._closed_fut: asyncio.Future[None] | None = None
        self._receiver: DataReceiver | None = None
        self._on_reset: ErrorReceiver | None = None
        self._on_stop: ErrorReceiver | None = None
        self._on_closed: Callable[[], None] | None = None
        self.bytes_sent = 0
        self.bytes_received = 0
        # Leading bytes a reset must still deliver (RESET_STREAM_AT), e.g. a stream header.
        self.reliable_size = 0
        # Release the stream as soon as both directions are finished here (FIN or reset
        # each way, every received byte consumed) instead of at msquic's SHUTDOWN_COMPLETE:
        # the shim then closes the handle itself, and Python gets no record for it.
        self.release_when_done = False

    @property
    def _started(self) -> "asyncio.Future[None]":
        fut = self._started_fut
        if fut is None:
            fut = self._started_fut = self._loop.create_future()
            fut.set_result(None)
        return fut

    # -- properties --------------------------------------------------------
    @property
    def readable(self) -> bool:
        return self._can_read

    @property
    def writable(self) -> bool:
        return self._can_write

    @property
    def is_closed(self) -> bool:
        return self._is_closed

    @property
    def at_eof(self) -> bool:
        return self._eof and not self._buffer

    @property
    def buffered_bytes(self) -> int:
        """Received bytes not yet consumed by the application."""
        return self._buffer.size

    def native_buffered(self) -> int:
        """Bytes the shim has handed over and not yet seen consumed."""
        handle = self._handle if self._handle is not None else self._held
        if handle is None:
            return 0
        return int(lib.pwt_stream_buffered(handle))

    def diagnostics(self) -> dict[str, int]:
        """msquic's per-stream blocked times (µs by cause), the shim's receive pause, bytes queued."""
        handle = self._handle if self._handle is not None else self._held
        if handle is None:
            return {}
        out = ffi.new("uint64_t[10]")
        if lib.pwt_stream_diag(handle, out) != 0:
            return {}
        return dict(zip(_DIAG_KEYS, out))

    @property
    def holds_credit(self) -> bool:
        """True while the finished stream still counts against the peer's stream limit."""
        return self._held is not None

    # -- push API ----------------------------------------------------------
    def set_receiver(
        self,
        on_data: DataReceiver,
        on_reset: ErrorReceiver | None = None,
        on_stop: ErrorReceiver | None = None,
        on_closed: Callable[[], None] | None = None,
    ) -> None:
        """Deliver data to ``on_data(data, fin)`` instead of the read buffer.

        Anything already buffered is delivered immediately.  The receiver
        must call :meth:`consumed` once it has disposed of the bytes.
        """
        self._receiver = on_data
        self._on_reset = on_reset
        self._on_stop = on_stop
        self._on_closed = on_closed
        if self._buffer or self._eof:
            data = self._buffer.take()
            if data or self._eof:
                on_data(data, self._eof)
        if self._read_error is not None and isinstance(self._read_error, StreamReset) and on_reset:
            on_reset(self._read_error.error_code)

    def set_data_receiver(self, on_data: DataReceiver) -> None:
        """Replace only the data callback (the stream must be in push mode already).

        Used once a stream is bound to its final owner: later bytes go straight
        there.  Nothing is re-delivered.
        """
        if self._receiver is None:
            raise RuntimeError("set_data_receiver() needs set_receiver() first")
        self._receiver = on_data

    @property
    def write_error(self) -> QuicError | None:
        """Why the send direction cannot be used any more (None while it can)."""
        return self._write_error

    def consumed(self, n: int) -> None:
        """Report that ``n`` delivered bytes were consumed (push mode)."""
        if n:
            if self._handle is not None:
                lib.pwt_stream_consumed(self._handle, n)
                if self._eof:
                    self._release_if_done()
            elif self._held is not None:
                lib.pwt_stream_consumed(self._held, n)
                self._maybe_release()

    def release(self) -> None:
        """Give the peer its stream credit back now, dropping unconsumed bytes.

        Only meaningful after the stream finished; open streams release at
        their shutdown (or when their bytes are consumed).
        """
        held = self._held
        if held is not None:
            self._held = None
            self._conn._release_held(self)
            lib.pwt_stream_close(held)

    def _release_if_done(self) -> None:
        """With :attr:`release_when_done`: release the stream once both directions are done here."""
        handle = self._handle
        if handle is None or not self.release_when_done:
            return
        # Cheapest test first: this runs at every consumption once the FIN arrived.
        if self._can_write and not (self._fin_sent or self._send_aborted or self._write_error is not None):
            return
        if self._can_read and self._read_error is None and not self._recv_aborted:
            if not self._eof or self._buffer or lib.pwt_stream_buffered(handle) > 0:
                return
        self._handle = None
        self._conn._forget_stream(self, handle)
        if lib.pwt_stream_release_when_done(handle) == 2:
            lib.pwt_stream_close(handle)  # msquic completed it already; its record was dropped
        self._closed_now(False)

    def _maybe_release(self) -> None:
        held = self._held
        if held is not None and lib.pwt_stream_buffered(held) <= 0:
            self.release()

    # -- events ------------------------------------------------------------
    def _on_event(self, ev: Any) -> None:
        t = ev.type
        if t == _EV_RECEIVE:
            n = ev.len
            self._on_receive(ffi.unpack(ev.data, n) if n else b"", bool(ev.u0))
        elif t == _EV_RECEIVE_ZC:
            self._on_receive_in_place(ev)
        elif t == _EV_WRITABLE:
            self._wake_writer()
        elif t == _EV_START_COMPLETE:
            self._on_start_complete(int(ev.u0), int(ev.u1))
        elif t == _EV_PEER_FIN:
            if not self._eof:
                self._eof = True
                if self._receiver is not None:
                    self._receiver(b"", True)
                self._wake_reader()
                self._release_if_done()
        elif t == _EV_PEER_RESET:
            code = int(ev.u0)
            self._read_error = StreamReset(self.stream_id, code)
            if self._on_reset is not None:
                self._on_reset(code)
            self._wake_reader()
            self._release_if_done()
        elif t == _EV_PEER_STOP:
            code = int(ev.u0)
            self._write_error = StreamStopped(self.stream_id, code)
            if not self._send_aborted and not self._fin_sent:
                # Answer STOP_SENDING with RESET_STREAM carrying the same code.
                self._send_aborted = True
                self._mark_reliable()
                lib.pwt_stream_shutdown(self._handle, lib.PWT_SHUTDOWN_ABORT_SEND, code)
            if self._on_stop is not None:
                self._on_stop(code)
            self._wake_writer()
            self._release_if_done()
        elif t == _EV_SHUTDOWN_COMPLETE:
            self._finalize(bool(ev.u0))
        elif t == _EV_RESUME:
            if self._handle is not None:
                lib.pwt_stream_resume(self._handle)

    def _on_receive(self, data: bytes, fin: bool) -> None:
        self.bytes_received += len(data)
        if fin:
            self._eof = True
        if self._receiver is not None:
            self._receiver(data, fin)
        else:
            self._buffer.append(data)
            self._wake_reader()
        if fin and self.release_when_done:
            self._release_if_done()

    def _on_receive_in_place(self, ev: Any) -> None:
        """A large chunk still in msquic's buffers: copy it out, then let msquic go on."""
        count = int(ev.u2)
        chunks = ffi.cast("pwt_chunk *", ev.data)
        parts: list[bytes] = []
        try:
            for i in range(count):
                data, n = chunks[i].data, chunks[i].len
                off = 0
                while n - off > _RECV_PIECE:
                    parts.append(ffi.unpack(data + off, _RECV_PIECE))
                    off += _RECV_PIECE
                parts.append(ffi.unpack(data + off, n - off))
        finally:
            # msquic indicates nothing more on this stream until told (even if this failed).
            lib.pwt_stream_receive_complete(ev.obj, ev.len)
        fin = bool(ev.u0)
        last = len(parts) - 1
        for i, part in enumerate(parts):
            self._on_receive(part, fin and i == last)

    def _on_start_complete(self, status: int, stream_id: int) -> None:
        """The shim reports a start only when it failed or got another id than predicted."""
        from .. import _native

        if status == 0:
            # Another start of this connection failed after its id was counted; the
            # protocol layers above already use the predicted id, so stop here.
            self._conn._stream_id_mismatch(self.stream_id, stream_id)
            self.stream_id = stream_id
            return
        err = StreamClosedError(f"stream start failed: {_native.status_name(status)}")
        started = self._started_fut
        if started is None:
            started = self._started_fut = self._loop.create_future()
        if not started.done():
            started.set_exception(err)
            started.exception()  # retrieved: nobody may be waiting
        if self._write_error is None:
            self._write_error = err
        if self._read_error is None and not self._eof:
            self._read_error = err
        self._wake_reader()
        self._wake_writer()

    def _connection_closing(self, reason: CloseReason) -> None:
        """The connection is shutting down (msquic aborted this stream): fail waiters now.

        The native handle stays until the connection's shutdown completes
        (:meth:`_finalize`); buffered bytes can still be read.
        """
        if self._handle is None:
            return
        self._fail_with(ConnectionClosed, reason)
        self._wake_reader()
        self._wake_writer()

    def _fail_with(self, error: Callable[[Any], QuicError], arg: Any) -> None:
        """Fail reads (unless at EOF) and writes not failed yet with one ``error(arg)``, made only if needed."""
        read = self._read_error is None and not self._eof
        if read or self._write_error is None:
            err = error(arg)
            if read:
                self._read_error = err
            if self._write_error is None:
                self._write_error = err

    def _finalize(self, connection_shutdown: bool) -> None:
        handle = self._handle
        if handle is None:
            if connection_shutdown:
                self.release()
            return
        self._handle = None
        self._conn._forget_stream(self, handle)
        if (
            not connection_shutdown
            and not self.is_local
            and not self._recv_aborted
            and lib.pwt_stream_buffered(handle) > 0
        ):
            self._held = handle
            self._conn._hold(self)
        else:
            lib.pwt_stream_close(handle)
        self._closed_now(connection_shutdown)

    def _closed_now(self, connection_shutdown: bool) -> None:
        """The stream is released: fail further reads and writes, wake waiters, tell the owner."""
        if self._loop.is_closed():
            return
        if connection_shutdown:
            self._fail_with(ConnectionClosed, self._conn.close_reason or CloseReason("local"))
        else:
            self._fail_with(StreamClosedError, f"stream {self.stream_id} closed")
        started = self._started_fut
        if started is not None and not started.done():
            assert self._write_error is not None  # set just above
            started.set_exception(self._write_error)
        self._is_closed = True
        closed = self._closed_fut
        if closed is not None and not closed.done():
            closed.set_result(None)
        self._wake_reader()
        self._wake_writer()
        if self._on_closed is not None:
            self._on_closed()

    def _wake_reader(self) -> None:
        if self._readers is not None:
            self._readers.wake_all()

    def _wake_writer(self) -> None:
        if self._writers is not None:
            self._writers.wake_all()

    # -- reading -----------------------------------------------------------
    def _check_readable(self) -> None:
        if not self.readable:
            raise StreamClosedError("cannot read from a local unidirectional stream")

    async def _wait_readable(self) -> None:
        readers = self._readers
        if readers is None:
            readers = self._readers = Waiters()
        await readers.wait()

    def _take(self, n: int) -> bytes:
        data = self._buffer.take(n)
        if data:
            if self._handle is not None:
                lib.pwt_stream_consumed(self._handle, len(data))
                if self._eof:
                    self._release_if_done()
            elif self._held is not None:
                lib.pwt_stream_consumed(self._held, len(data))
                self._maybe_release()
        return data

    async def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes (all buffered if ``n < 0``); ``b""`` at FIN."""
        self._check_readable()
        while not self._buffer:
            if self._read_error is not None:
                raise fresh(self._read_error)
            if self._eof:
                return b""
            await self._wait_readable()
        return self._take(n)

    async def read_all(self, limit: int | None = None) -> bytes:
        """Read until FIN.  ``limit`` bounds the total (StreamClosedError above it)."""
        self._check_readable()
        parts: list[bytes] = []
        total = 0
        while True:
            if self._buffer:
                data = self._take(-1)
                total += len(data)
                if limit is not None and total > limit:
                    raise StreamClosedError(f"stream data exceeds the limit of {limit} bytes")
                parts.append(data)
                continue
            if self._read_error is not None:
                raise fresh(self._read_error)
            if self._eof:
                return b"".join(parts)
            await self._wait_readable()

    async def readexactly(self, n: int) -> bytes:
        self._check_readable()
        while self._buffer.size < n:
            if self._read_error is not None:
                raise fresh(self._read_error)
            if self._eof:
                raise asyncio.IncompleteReadError(self._take(-1), n)
            await self._wait_readable()
        return self._take(n)

    # -- writing -----------------------------------------------------------
    async def wait_started(self) -> None:
        await self._started

    def _check_writable(self) -> None:
        if not self.writable:
            raise StreamClosedError("cannot write to a peer's unidirectional stream")
        if self._write_error is not None:
            raise fresh(self._write_error)
        if self._fin_sent or self._send_aborted:
            raise StreamClosedError(f"stream {self.stream_id} is closed for writing")
        if self._handle is None:
            raise StreamClosedError(f"stream {self.stream_id} is closed")

    def write_with_first(self, data: bytes) -> None:
        """Send ``data`` with the first write, or alone at the next loop iteration.

        For a stream header: a stream opened and written at once then costs one
        send (and often one packet) instead of two.  A reset sends it first, so that
        a reliable size covering it still holds.
        """
        self._defer(data)

    def _defer(self, data: bytes) -> None:
        pending = self._pending
        if pending is None:
            self._pending = data
            self._conn._engine.defer(self)
        else:
            self._pending = pending + data

    def _flush_pending(self) -> None:
        pending = self._pending
        if pending is not None:
            self._pending = None
            if self._handle is not None and not (self._fin_sent or self._send_aborted or self._write_error):
                try:
                    self._send(pending, False)
                except StreamClosedError as exc:  # the next write reports it
                    if self._write_error is None:
                        self._write_error = exc

    def write_nowait(self, data: bytes | bytearray | memoryview, fin: bool = False) -> None:
        """Queue data without waiting for backpressure (for small protocol writes)."""
        self._check_writable()
        pending = self._pending
        if pending is not None:
            self._pending = None
        engine = self._conn._engine
        if engine.deferred:  # earlier small writes (of any stream) go first
            engine.flush_deferred()
        if pending is not None:
            if len(data) > _COALESCE_MAX:  # not worth a copy of the payload
                self._send(pending, False)
            else:
                data = pending + data
        self._send(data, fin)

    def _send(self, data: bytes | bytearray | memoryview, fin: bool) -> None:
        if not isinstance(data, bytes):
            data = memoryview(data).cast("B")  # len() must count bytes, not items
        n = len(data)
        buf = data if isinstance(data, bytes) else ffi.from_buffer(data)
        status = lib.pwt_stream_send(self._handle, buf, n, 1 if fin else 0)
        self._conn._engine.sent = True
        if status != 0:
            if self._write_error is not None:
                raise fresh(self._write_error)
            from .. import _native

            raise StreamClosedError(f"send failed: {_native.status_name(status)}")
        self.bytes_sent += n
        if fin:
            self._fin_sent = True
            if self.release_when_done:
                self._release_if_done()

    async def write(self, data: bytes | bytearray | memoryview, fin: bool = False) -> None:
        """Write data, waiting while too much is in flight; ``fin`` ends the stream."""
        try:
            await self._write(data, fin)
        except StreamClosedError:
            # msquic aborts the send side as soon as STOP_SENDING arrives, which can be
            # just before its event reaches us: wait briefly to report the peer's code.
            if self._write_error is None and not self._fin_sent:
                await self._settle()
                if self._write_error is not None:
                    raise fresh(self._write_error) from None
            raise

    async def _settle(self) -> None:
        for _ in range(20):
            self._conn._engine._drain()
            if self._write_error is not None or self._handle is None:
                return
            await asyncio.sleep(0.005)

    async def _write(self, data: bytes | bytearray | memoryview, fin: bool) -> None:
        self._check_writable()
        if not isinstance(data, bytes):
            data = memoryview(data).cast("B")
        n = len(data)
        if not fin and n <= _COALESCE_MAX:
            if n == 0:
                return
            pending = self._pending
            if pending is None or len(pending) + n <= _COALESCE_MAX:
                self._defer(data if isinstance(data, bytes) else bytes(data))  # the caller may reuse its buffer
                return
        if n <= WRITE_CHUNK:
            self.write_nowait(data, fin)
            await self._backpressure()
            return
        view = memoryview(data).cast("B")
        for off in range(0, n, WRITE_CHUNK):
            last = off + WRITE_CHUNK >= n
            self.write_nowait(view[off : off + WRITE_CHUNK], fin and last)
            await self._backpressure()

    async def _backpressure(self) -> None:
        while self._handle is not None and lib.pwt_stream_outstanding(
            self._handle
        ) > self._conn._send_high_water:
            if lib.pwt_stream_want_writable(self._handle):
                return
            writers = self._writers
            if writers is None:
                writers = self._writers = Waiters()
            if not await wait_with_timeout(writers.wait(), self.write_timeout):
                raise WriteTimeout(f"stream {self.stream_id}: write not accepted within {self.write_timeout}s")
            if self._write_error is not None and not self._fin_sent:
                raise fresh(self._write_error)

    async def drain(self) -> None:
        await self._backpressure()

    def finish(self) -> None:
        """Send FIN (idempotent)."""
        if self._fin_sent or self._send_aborted or self._handle is None or not self.writable:
            return
        self.write_nowait(b"", fin=True)

    def _mark_reliable(self) -> bool:
        """Before an abort: make the first ``reliable_size`` bytes survive it."""
        n = min(self.reliable_size, self.bytes_sent)
        if n <= 0 or not self._conn.reliable_reset or self._handle is None:
            return False
        return bool(lib.pwt_stream_set_reliable_offset(self._handle, n) == 0)

    def reset(self, error_code: int = 0) -> None:
        """Abort the sending side (RESET_STREAM).

        With :attr:`reliable_size` set and RESET_STREAM_AT negotiated, the
        first ``reliable_size`` bytes are still delivered (RESET_STREAM_AT).
        """
        if self._handle is None or self._send_aborted or not self.writable:
            return
        self._flush_pending()
        self._send_aborted = True
        self._mark_reliable()
        lib.pwt_stream_shutdown(self._handle, lib.PWT_SHUTDOWN_ABORT_SEND, error_code)
        self._release_if_done()

    def stop_sending(self, error_code: int = 0) -> None:
        """Abort the receiving side (STOP_SENDING)."""
        if self._held is not None and self.readable:
            # Finished already: nothing to stop, but unread bytes are dropped.
            self._recv_aborted = True
            self._buffer.take()
            self.release()
            return
        if self._handle is None or self._recv_aborted or not self.readable:
            return
        self._recv_aborted = True
        lib.pwt_stream_shutdown(self._handle, lib.PWT_SHUTDOWN_ABORT_RECEIVE, error_code)
        if self._read_error is None and not self._eof:
            self._read_error = StreamClosedError(f"stream {self.stream_id} stopped locally")
        self._wake_reader()
        self._release_if_done()

    def abort(self, error_code: int = 0) -> None:
        """Reset and stop-send at once."""
        self.reset(error_code)
        self.stop_sending(error_code)

    async def wait_closed(self) -> None:
        if self._is_closed:
            return
        closed = self._closed_fut
        if closed is None:
            closed = self._closed_fut = self._loop.create_future()
        await asyncio.shield(closed)

    def _abort_for_exit(self) -> None:
        if self._handle is not None:
            lib.pwt_stream_shutdown(
                self._handle, lib.PWT_SHUTDOWN_ABORT | lib.PWT_SHUTDOWN_IMMEDIATE, 0
            )

    def __repr__(self) -> str:
        kind = "uni" if self.is_unidirectional else "bidi"
        return f"<QuicStream id={self.stream_id} {kind} {'local' if self.is_local else 'peer'}>"
