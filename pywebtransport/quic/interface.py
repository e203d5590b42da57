"""The declared interface between the QUIC layer and the layers above it.

The public WebTransport objects (:mod:`pywebtransport.connection`,
``session``, ``stream``, ``datagram``) use a QUIC connection and its streams
only through :class:`QuicTransport` and :class:`QuicStreamTransport`: no
private attributes, no native handles.  :class:`~pywebtransport.quic.QuicConnection`
and :class:`~pywebtransport.quic.QuicStream` implement them over msquic; unit
tests implement them in memory.

Receiving is push-based: the layer above installs callbacks with
:meth:`QuicStreamTransport.set_receiver` and reports every byte it has
disposed of with :meth:`QuicStreamTransport.consumed` (the one route by which
consumed bytes reach the transport, which returns flow-control credit for
them).  Once a stream is bound to its final owner, :meth:`set_data_receiver`
swaps only the data callback, so bytes go straight from the transport to that
owner.
"""

from __future__ import annotations

import asyncio

from typing import TYPE_CHECKING, Callable, Protocol, runtime_checkable

from .errors import CloseReason, QuicError

if TYPE_CHECKING:
    from .connection import ConnectionStats
    from .tls import PeerCertificate

__all__ = ["DataReceiver", "ErrorReceiver", "QuicStreamTransport", "QuicTransport"]

#: ``on_data(data, fin)``: received bytes (possibly empty with ``fin``).
DataReceiver = Callable[[bytes, bool], None]
#: ``on_reset(code)`` / ``on_stop(code)``: the peer's RESET_STREAM / STOP_SENDING code.
ErrorReceiver = Callable[[int], None]


@runtime_checkable
class QuicStreamTransport(Protocol):
    """What the layers above need from one QUIC stream."""

    stream_id: int
    is_unidirectional: bool
    is_local: bool
    bytes_sent: int
    bytes_received: int
    #: Seconds a write may wait for flow control (None: forever).
    write_timeout: float | None
    #: Bytes from the start that a reset still delivers (RESET_STREAM_AT when negotiated).
    reliable_size: int
    #: Release the stream once both directions are finished locally (FIN or reset each
    #: way, every delivered byte consumed), without waiting for the peer's acknowledgements.
    release_when_done: bool

    @property
    def is_closed(self) -> bool:
        """Both directions are finished and the stream is released."""
        ...

    @property
    def write_error(self) -> QuicError | None:
        """Why the send direction cannot be used any more (None while it can)."""
        ...

    @property
    def buffered_bytes(self) -> int:
        """Received bytes held by the transport and not delivered yet."""
        ...

    def diagnostics(self) -> dict[str, int]:
        """Why the stream is held back, for debugging: microseconds blocked by each cause
        (``*_us``), whether receiving is paused for the application, bytes queued to send."""
        ...

    def set_receiver(
        self,
        on_data: DataReceiver,
        on_reset: ErrorReceiver | None = None,
        on_stop: ErrorReceiver | None = None,
        on_closed: Callable[[], None] | None = None,
    ) -> None:
        """Switch to push delivery; anything already buffered is delivered at once.

        ``on_closed`` runs synchronously once the stream is fully released.
        """
        ...

    def set_data_receiver(self, on_data: DataReceiver) -> None:
        """Replace only the data callback of a stream already in push mode."""
        ...

    def consumed(self, n: int) -> None:
        """``n`` delivered bytes were disposed of (returns transport credit)."""
        ...

    def write_nowait(self, data: bytes | bytearray | memoryview, fin: bool = False) -> None:
        """Queue bytes without waiting for backpressure (small protocol writes)."""
        ...

    def write_with_first(self, data: bytes) -> None:
        """Send ``data`` (a small header) together with the first write, or on its own in the
        next loop iteration if nothing was written by then; a reset sends it first."""
        ...

    async def write(self, data: bytes | bytearray | memoryview, fin: bool = False) -> None:
        """Queue bytes and wait while too much is in flight."""
        ...

    async def drain(self) -> None:
        """Wait until the in-flight bytes are below the high-water mark."""
        ...

    def finish(self) -> None:
        """Send FIN (idempotent)."""
        ...

    def reset(self, error_code: int = 0) -> None:
        """Abort the send direction (RESET_STREAM)."""
        ...

    def stop_sending(self, error_code: int = 0) -> None:
        """Abort the receive direction (STOP_SENDING)."""
        ...

    def abort(self, error_code: int = 0) -> None:
        """Reset and stop-send at once."""
        ...

    async def wait_closed(self) -> None:
        """Wait until :attr:`is_closed`."""
        ...


@runtime_checkable
class QuicTransport(Protocol):
    """What the layers above need from one QUIC connection."""

    is_client: bool
    close_reason: CloseReason | None
    #: Datagrams msquic reported lost (counter).
    datagrams_lost: int
    #: The peer's verified certificate (None if none was verified).
    peer_certificate: "PeerCertificate | None"

    @property
    def closed(self) -> "asyncio.Future[CloseReason]":
        """Resolved with the close reason once the connection has shut down."""

    @property
    def on_stream(self) -> Callable[[QuicStreamTransport], None] | None:
        """Callback for peer-opened streams; setting it delivers any queued ones."""
        ...

    @on_stream.setter
    def on_stream(self, callback: Callable[[QuicStreamTransport], None] | None) -> None: ...

    @property
    def on_datagram(self) -> Callable[[bytes], None] | None:
        """Callback for received datagrams; setting it delivers any queued ones."""
        ...

    @on_datagram.setter
    def on_datagram(self, callback: Callable[[bytes], None] | None) -> None: ...

    on_closed: Callable[[CloseReason], None] | None

    @property
    def is_closed(self) -> bool:
        """The connection is fully shut down."""
        ...

    @property
    def remote_address(self) -> tuple[str, int] | None: ...

    @property
    def local_address(self) -> tuple[str, int] | None: ...

    @property
    def max_datagram_size(self) -> int:
        """Largest datagram payload the path allows now (0 when datagrams are off)."""
        ...

    async def open_stream(self, *, unidirectional: bool = False) -> QuicStreamTransport:
        """Open a stream; returns once it has its id."""
        ...

    def open_stream_nowait(self, *, unidirectional: bool = False) -> QuicStreamTransport:
        """Open a stream that has its id and can be written to at once."""
        ...

    def send_datagram(self, data: bytes | bytearray | memoryview) -> None:
        """Send one datagram now (raises DatagramTooLarge / DatagramError)."""
        ...

    def close(self, error_code: int = 0) -> None:
        """Start closing the connection with an application error code."""
        ...

    async def wait_closed(self) -> CloseReason:
        """Wait until the connection is fully shut down."""
        ...

    async def closing_reason(self, timeout: float = 1.0) -> CloseReason | None:
        """Why the connection is closing, or None (waits up to ``timeout`` for the event)."""
        ...

    def stats(self) -> "ConnectionStats":
        """Transport statistics (see :class:`~pywebtransport.quic.ConnectionStats`)."""
        ...


if TYPE_CHECKING:
    from .connection import QuicConnection
    from .stream import QuicStream

    def _msquic_classes_conform(conn: QuicConnection, stream: QuicStream) -> tuple[QuicTransport, QuicStreamTransport]:
        """Never called: ``mypy --strict`` checks here that the msquic classes implement the interface."""
        return conn, stream
