"""QUIC connections, listeners and ``connect``/``serve`` over the shim."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import os
import socket
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from .. import _native
from .._native import ffi, lib
from .config import QuicConfiguration
from .engine import Engine, NativeConfig
from .errors import (
    CertificateVerifyError,
    CloseReason,
    ConfigError,
    ConnectError,
    ConnectionClosed,
    DatagramError,
    DatagramTooLarge,
    QuicError,
)
from .interface import QuicStreamTransport
from .stream import QuicStream
from .tls import PeerCertificate, verify_peer_certificate
from .waiters import Waiters, wait_future

logger = logging.getLogger("pywebtransport.quic")

_CERT_STATUSES = {
    "BAD_CERTIFICATE",
    "UNSUPPORTED_CERTIFICATE",
    "REVOKED_CERTIFICATE",
    "EXPIRED_CERTIFICATE",
    "UNKNOWN_CERTIFICATE",
    "REQUIRED_CERTIFICATE",
    "CERT_EXPIRED",
    "CERT_UNTRUSTED_ROOT",
    "CERT_NO_CERT",
}

Address = tuple[str, int]

_EV_DATAGRAM = lib.PWT_EV_CONN_DATAGRAM_RECEIVED
_EV_PEER_STREAM = lib.PWT_EV_CONN_PEER_STREAM_STARTED


@dataclass(frozen=True, slots=True)
class ConnectionStats:
    """Transport statistics of a connection (from msquic)."""

    rtt: float
    min_rtt: float
    max_rtt: float
    rtt_variance: float
    cwnd: int
    path_mtu: int
    packets_sent: int
    packets_lost: int
    packets_received: int
    bytes_sent: int
    bytes_received: int
    stream_bytes_sent: int
    stream_bytes_received: int
    congestion_events: int
    #: Received datagrams the shim dropped because the connection's event
    #: queue was full (``QuicConfiguration.max_queued_events``).
    native_datagrams_dropped: int = 0
    #: Events of this connection waiting for the event loop now, and the most ever.
    queued_events: int = 0
    peak_queued_events: int = 0
    #: Native streams not yet released by Python, and the most ever.
    live_streams: int = 0
    peak_live_streams: int = 0


@dataclass(frozen=True, slots=True)
class ConnectionCounters:
    """The shim's per-connection counters (cheap: no round trip to msquic)."""

    native_datagrams_dropped: int
    queued_events: int
    peak_queued_events: int
    live_streams: int
    peak_live_streams: int


# Client TLS resumption tickets: (configuration key, server name, address, port) ->
# (ticket, the certificate verified on the connection that received it).
_TICKETS: "OrderedDict[tuple[Any, ...], tuple[bytes, Any]]" = OrderedDict()
_TICKETS_MAX = 1024


@functools.lru_cache(maxsize=256)
def _packed_ip(host: str) -> tuple[int, bytes] | None:
    """(4 or 6, packed address) of an IP literal, None for anything else (cached: every connect asks)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return (6 if ip.version == 6 else 4), ip.packed


def _addr_to_native(host: str, port: int) -> Any:
    a = ffi.new("pwt_addr *")
    a.port = port
    if host in ("", "::", "*"):
        a.family = 0
        return a
    parsed = _packed_ip(host)
    if parsed is None:
        raise ValueError(f"{host!r} does not appear to be an IPv4 or IPv6 address")
    a.family, packed = parsed
    a.addr[0 : len(packed)] = packed
    return a


_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"


@functools.lru_cache(maxsize=1024)
def _ip_text(packed: bytes) -> str:
    """The text form of a packed IPv4 (4 bytes) or IPv6 (16 bytes) address (peers repeat)."""
    # socket.inet_ntop prints what ipaddress would, at a fraction of the cost.
    if len(packed) == 16:
        if packed[:12] == _V4_MAPPED:
            return socket.inet_ntop(socket.AF_INET, packed[12:])
        return socket.inet_ntop(socket.AF_INET6, packed)
    return socket.inet_ntop(socket.AF_INET, packed)


def _addr_from_native(a: Any) -> Address:
    return (_ip_text(ffi.buffer(a.addr, 16 if a.family == 6 else 4)[:]), int(a.port))


async def _resolve_all(host: str, port: int) -> list[str]:
    if _packed_ip(host) is not None:
        return [host]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise ConnectError(f"cannot resolve {host!r}: {exc}") from None
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ConnectError(f"cannot resolve {host!r}")
    return addresses


async def _resolve(host: str, port: int) -> str:
    return (await _resolve_all(host, port))[0]


class QuicConnection:
    """One QUIC connection (client or server side)."""

    # Slots: one per connection, ~40 attributes (a dict that size is ~1.6 KB).
    __slots__ = (
        "_closed", "_connected", "_datagram_waiters", "_datagrams", "_engine",
        "_handle", "_held_streams", "_incoming", "_incoming_waiters", "_local_address",
        "_local_close_code", "_loop", "_max_datagram", "_max_stream_buffer", "_native_config", "_reliable_reset",
        "_next_stream_id", "_on_datagram", "_on_stream", "_remote_address", "_resumed_certificate", "_addr_gen",
        "_send_high_water", "_stream_out", "_streams", "_ticket_key", "_alpn", "certificate_error",
        "close_reason", "config", "datagrams_dropped", "datagrams_lost", "is_client", "on_closed",
        "on_connected", "peer_certificate", "server_name", "session_resumed", "__weakref__",
    )

    def __init__(
        self, engine: Engine, handle: Any, *, is_client: bool, config: QuicConfiguration
    ) -> None:
        self._engine = engine
        self._loop = engine.loop
        self._handle = handle
        self.is_client = is_client
        self.config = config
        self._send_high_water = config.send_buffer_high_water
        self._max_stream_buffer = config.max_stream_buffer
        self._connected: asyncio.Future[None] = self._loop.create_future()
        self._closed: asyncio.Future[CloseReason] = self._loop.create_future()
        self._streams: dict[Any, QuicStream] = {}
        # Queues for when no on_stream / on_datagram callback is set; made on first use.
        self._incoming: deque[QuicStream] | None = None
        self._incoming_waiters = Waiters()
        self._datagrams: deque[bytes] | None = None
        self._datagram_waiters = Waiters()
        self.datagrams_dropped = 0
        self.datagrams_lost = 0
        self.close_reason: CloseReason | None = None
        self._local_close_code: int | None = None
        self._max_datagram = 0
        self._reliable_reset = False
        self._on_stream: Callable[[QuicStreamTransport], None] | None = None
        self._on_datagram: Callable[[bytes], None] | None = None
        self.on_connected: Callable[["QuicConnection"], None] | None = None
        self.on_closed: Callable[[CloseReason], None] | None = None
        self._native_config: NativeConfig | None = None
        self._alpn: str | None = None  # read from the shim when first asked for
        self._addr_gen = -1  # pwt_conn_addr_gen() when the addresses were last read
        self._remote_address: Address | None = None
        self._local_address: Address | None = None
        self._held_streams: set[QuicStream] | None = None  # made by the first _hold
        # Ids of our next bidirectional / unidirectional stream (RFC 9000 2.1).
        base = 0 if is_client else 1
        self._next_stream_id = [base, base + 2]
        self._stream_out = ffi.new("pwt_stream **")
        self._ticket_key: tuple[Any, ...] | None = None
        self._resumed_certificate: PeerCertificate | None = None
        #: True when the TLS handshake resumed an earlier session (ticket).
        self.session_resumed = False
        self.server_name: str | None = None
        # The peer's verified certificate (None if not verified or none was sent),
        # and why we rejected it if we did.
        self.peer_certificate: PeerCertificate | None = None
        self.certificate_error: str | None = None
        engine.register(handle, self)

    @property
    def on_stream(self) -> Callable[[QuicStreamTransport], None] | None:
        """Callback for peer-opened streams; setting it delivers any queued ones."""
        return self._on_stream

    @on_stream.setter
    def on_stream(self, callback: Callable[[QuicStreamTransport], None] | None) -> None:
        self._on_stream = callback
        incoming = self._incoming
        while callback is not None and incoming:
            callback(incoming.popleft())

    @property
    def on_datagram(self) -> Callable[[bytes], None] | None:
        """Callback for incoming datagrams; setting it delivers any queued ones."""
        return self._on_datagram

    @on_datagram.setter
    def on_datagram(self, callback: Callable[[bytes], None] | None) -> None:
        self._on_datagram = callback
        datagrams = self._datagrams
        while callback is not None and datagrams:
            callback(datagrams.popleft())

    # -- state -------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._connected.done() and not self._closed.done() and self.close_reason is None

    @property
    def is_closed(self) -> bool:
        return self._closed.done()

    @property
    def closed(self) -> "asyncio.Future[CloseReason]":
        """Resolves with the CloseReason once the connection is fully shut down."""
        return self._closed

    async def wait_closed(self) -> CloseReason:
        return await asyncio.shield(self._closed)

    async def wait_connected(self) -> None:
        await asyncio.shield(self._connected)

    @property
    def max_datagram_size(self) -> int:
        """Largest datagram payload the path allows now (0 if datagrams are off)."""
        if self._handle is not None:
            self._max_datagram = int(lib.pwt_conn_datagram_max(self._handle))
        return self._max_datagram

    @property
    def reliable_reset(self) -> bool:
        """Both sides offered RESET_STREAM_AT: `QuicStream.reliable_size` takes effect.

        msquic settles it while processing the peer's transport parameters; the
        shim keeps the answer (no event), read here when first needed.
        """
        if not self._reliable_reset and self._handle is not None:
            self._reliable_reset = bool(lib.pwt_conn_reliable_reset(self._handle))
        return self._reliable_reset

    # -- events ------------------------------------------------------------
    def _on_event(self, ev: Any) -> None:
        t = ev.type
        if t == _EV_DATAGRAM:
            data = ffi.unpack(ev.data, ev.len)
            on_datagram = self._on_datagram
            if on_datagram is not None:
                on_datagram(data)
                return
            datagrams = self._datagrams
            if datagrams is None:
                datagrams = self._datagrams = deque()
            if len(datagrams) >= self.config.max_datagram_queue:
                datagrams.popleft()
                self.datagrams_dropped += 1
            datagrams.append(data)
            self._datagram_waiters.wake_all()
        elif t == _EV_PEER_STREAM:
            # The shim queues a peer stream's start with its first bytes (and FIN).
            handle = ev.obj2
            stream = QuicStream(self, handle, unidirectional=bool(ev.u1 & 1), local=False)
            stream.stream_id = ev.u0
            self._track_stream(stream, handle)
            if self._on_stream is not None:
                self._on_stream(stream)
            else:
                if self._incoming is None:
                    self._incoming = deque()
                self._incoming.append(stream)
                self._wake_incoming()
            n = ev.len
            if n or ev.u2:
                stream._on_receive(ffi.unpack(ev.data, n) if n else b"", bool(ev.u2))
        elif t == lib.PWT_EV_CONN_CONNECTED:
            self.session_resumed = bool(ev.u0)
            if self.session_resumed and self._resumed_certificate is not None:
                # A resumed handshake carries no certificate: report the one that was
                # verified when the ticket was issued (the ticket is bound to it).
                self.peer_certificate = self._resumed_certificate
            self._on_connected()
        elif t == lib.PWT_EV_CONN_RESUMPTION_TICKET:
            if self._ticket_key is not None:
                _TICKETS[self._ticket_key] = (ffi.unpack(ev.data, ev.len), self.peer_certificate)
                _TICKETS.move_to_end(self._ticket_key)
                while len(_TICKETS) > _TICKETS_MAX:
                    _TICKETS.popitem(last=False)
        elif t == lib.PWT_EV_CONN_PEER_CERTIFICATE:
            self._on_peer_certificate(ev)
        elif t == lib.PWT_EV_CONN_DATAGRAM_LOST:
            self.datagrams_lost += 1
        elif t == lib.PWT_EV_CONN_SHUTDOWN_BY_TRANSPORT:
            if self.close_reason is None:
                self.close_reason = CloseReason(
                    "transport", int(ev.u1), _native.status_name(int(ev.u0))
                )
            self._streams_closing()
        elif t == lib.PWT_EV_CONN_SHUTDOWN_BY_PEER:
            if self.close_reason is None:
                self.close_reason = CloseReason("peer", int(ev.u0))
            self._streams_closing()
        elif t == lib.PWT_EV_CONN_SHUTDOWN_COMPLETE:
            self._finalize()

    def _on_peer_certificate(self, ev: Any) -> None:
        """Verify the peer's certificate and let the paused handshake go on (or fail)."""
        data = ffi.unpack(ffi.cast("char *", ev.data), ev.len) if ev.len else b""
        cert_len = int(ev.u0)
        try:
            verdict = verify_peer_certificate(
                self.config, data[:cert_len], data[cert_len:], self.server_name
            )
        except Exception as exc:  # never accept because of a bug
            logger.exception("certificate verification raised")
            accepted, alert, error = False, 80, f"certificate verification raised {exc!r}"
        else:
            accepted, alert, error = verdict.accepted, verdict.alert, verdict.error
            self.peer_certificate = verdict.certificate
        if not accepted:
            self.peer_certificate = None
            self.certificate_error = error
            side = "server" if self.is_client else "client"
            logger.info("rejected the %s's certificate: %s", side, error)
        if self._handle is not None:
            lib.pwt_conn_certificate_complete(self._handle, 1 if accepted else 0, alert)

    def _refresh_addresses(self) -> None:
        handle = self._handle
        if handle is None:
            return
        gen = lib.pwt_conn_addr_gen(handle)
        if gen == self._addr_gen:
            return  # unchanged since the last read (no migration)
        self._addr_gen = gen
        addr = ffi.new("pwt_addr *")
        if lib.pwt_conn_addr(self._handle, 1, addr) == 0:
            self._remote_address = _addr_from_native(addr)
        if lib.pwt_conn_addr(self._handle, 0, addr) == 0:
            self._local_address = _addr_from_native(addr)

    @property
    def remote_address(self) -> Address | None:
        """The peer's address (follows migration while the connection is open)."""
        if self._connected.done():
            self._refresh_addresses()
        return self._remote_address

    @property
    def local_address(self) -> Address | None:
        if self._connected.done():
            self._refresh_addresses()
        return self._local_address

    @property
    def alpn(self) -> str | None:
        """The negotiated ALPN protocol (None before the handshake completed)."""
        alpn = self._alpn
        if alpn is None and self._handle is not None and self._connected.done():
            buf = ffi.new("char[256]")
            n = lib.pwt_conn_alpn(self._handle, buf, 256)
            alpn = self._alpn = ffi.unpack(buf, n).decode(errors="replace")
        return alpn

    def _on_connected(self) -> None:
        self._refresh_addresses()  # known for the connection's lifetime, also after it closed
        if not self._connected.done():
            self._connected.set_result(None)
        callback, self.on_connected = self.on_connected, None  # once; holding it made a cycle
        if callback is not None:
            callback(self)

    # cffi pointers hash and compare by address whatever their type, so the
    # handle itself is the key (no ffi.cast per stream).
    def _track_stream(self, stream: QuicStream, handle: Any) -> None:
        self._streams[handle] = stream
        self._engine.objects[handle] = stream

    def _forget_stream(self, stream: QuicStream, handle: Any) -> None:
        self._streams.pop(handle, None)
        self._engine.objects.pop(handle, None)

    def _stream_id_mismatch(self, predicted: int, actual: int) -> None:
        # Only an earlier start that failed inside msquic (out of memory) can
        # cause this; the connection cannot go on with streams misnumbered.
        logger.error("stream id %d was predicted, msquic assigned %d: closing the connection", predicted, actual)
        self.close(0x102)  # H3_INTERNAL_ERROR

    def _hold(self, stream: QuicStream) -> None:
        if self._held_streams is None:
            self._held_streams = set()
        self._held_streams.add(stream)

    def _release_held(self, stream: QuicStream) -> None:
        if self._held_streams is not None:
            self._held_streams.discard(stream)

    def counters(self) -> ConnectionCounters:
        """The shim's counters for this connection (queue, drops, live streams)."""
        if self._handle is None:
            return ConnectionCounters(0, 0, 0, 0, 0)
        c = ffi.new("pwt_conn_counters *")
        lib.pwt_conn_counters_get(self._handle, c)
        return ConnectionCounters(
            native_datagrams_dropped=int(c.datagrams_dropped),
            queued_events=int(c.queued_events),
            peak_queued_events=int(c.peak_queued_events),
            live_streams=int(c.live_streams),
            peak_live_streams=int(c.peak_live_streams),
        )

    def _streams_closing(self) -> None:
        """The connection is shutting down: fail waiting reads and writes now.

        msquic aborts every stream at once, but the shim does not report those
        streams' shutdowns one by one; their handles are closed when the
        connection's SHUTDOWN_COMPLETE arrives (:meth:`_finalize`), which after
        a local close can be a round trip later.
        """
        reason = self.close_reason or CloseReason("local")
        for stream in list(self._streams.values()):
            stream._connection_closing(reason)

    def _finalize(self) -> None:
        handle = self._handle
        if handle is None:
            return
        if self.close_reason is None:
            self.close_reason = CloseReason("local", self._local_close_code or 0)
        connected = self._connected
        if self._alpn is None and connected.done() and not connected.cancelled() and connected.exception() is None:
            _ = self.alpn  # still readable after the close, like the addresses
        # msquic completes streams before their connection; close any left.
        for stream in list(self._streams.values()):
            stream._finalize(True)
        for stream in list(self._held_streams or ()):
            stream.release()
        self._handle = None
        self._engine.unregister(handle)
        lib.pwt_conn_close(handle)
        self._native_config = None
        reason = self.close_reason
        if self._loop.is_closed():
            return
        if not self._connected.done():
            self._connected.set_exception(ConnectionClosed(reason))
            self._connected.exception()  # mark retrieved
        if not self._closed.done():
            self._closed.set_result(reason)
        self._wake_incoming()
        self._datagram_waiters.wake_all()
        if self.on_closed is not None:
            self.on_closed(reason)

    def _wake_incoming(self) -> None:
        self._incoming_waiters.wake_all()

    def _check_open(self) -> Any:
        if self._handle is None or self.close_reason is not None:
            raise ConnectionClosed(self.close_reason or CloseReason("local"))
        return self._handle

    # -- streams -----------------------------------------------------------
    async def open_stream(self, *, unidirectional: bool = False) -> QuicStream:
        """Open a stream (see :meth:`open_stream_nowait`; this never waits)."""
        return self.open_stream_nowait(unidirectional=unidirectional)

    def open_stream_nowait(self, *, unidirectional: bool = False) -> QuicStream:
        """Open a stream; it can be written to at once.

        msquic numbers local streams in the order they are started, and every
        start of this connection is queued from this thread, so the id is known
        here without waiting for msquic's START_COMPLETE (one thread hop less
        per stream).  The shim reports START_COMPLETE only when the start
        failed or the id differs (see :meth:`QuicStream._on_start_failed`).
        """
        handle = self._check_open()
        kind = 1 if unidirectional else 0
        stream_id = self._next_stream_id[kind]
        out = self._stream_out
        status = lib.pwt_stream_open(handle, kind, stream_id, out)
        if status != 0:
            raise QuicError(f"cannot open stream: {_native.status_name(status)}")
        self._next_stream_id[kind] = stream_id + 4
        stream = QuicStream(self, out[0], unidirectional=unidirectional, local=True)
        stream.stream_id = stream_id
        self._track_stream(stream, out[0])
        return stream

    async def closing_reason(self, timeout: float = 1.0) -> CloseReason | None:
        """Why the connection is closing, or None; waits up to `timeout` for msquic's event.

        An operation that fails with ABORTED often means msquic already shut the
        connection down (for example, the peer rejected our certificate) while the
        shutdown event is still queued for the loop.
        """
        if self.close_reason is None and not self._closed.done():
            await asyncio.wait([self._closed], timeout=timeout)
        return self.close_reason

    async def open_bidi_stream(self) -> QuicStream:
        return await self.open_stream(unidirectional=False)

    async def open_uni_stream(self) -> QuicStream:
        return await self.open_stream(unidirectional=True)

    async def accept_stream(self) -> QuicStream:
        """Next peer-initiated stream (only when ``on_stream`` is not set)."""
        while not self._incoming:
            if self._closed.done() or self.close_reason is not None:
                raise ConnectionClosed(self.close_reason or CloseReason("local"))
            await self._incoming_waiters.wait()
        return self._incoming.popleft()

    # -- datagrams ---------------------------------------------------------
    def send_datagram(self, data: bytes | bytearray | memoryview) -> None:
        handle = self._check_open()
        limit = int(lib.pwt_conn_datagram_max(handle))
        if not isinstance(data, bytes):
            data = memoryview(data).cast("B")
        n = len(data)
        if limit == 0:
            raise DatagramError("datagrams are not enabled on this connection")
        if n > limit:
            raise DatagramTooLarge(n, limit)
        buf = data if isinstance(data, bytes) else ffi.from_buffer(data)
        status = lib.pwt_conn_datagram_send(handle, buf, n)
        self._engine.sent = True
        if status != 0:
            raise DatagramError(f"datagram send failed: {_native.status_name(status)}")

    async def receive_datagram(self) -> bytes:
        while not self._datagrams:
            if self._closed.done() or self.close_reason is not None:
                raise ConnectionClosed(self.close_reason or CloseReason("local"))
            await self._datagram_waiters.wait()
        return self._datagrams.popleft()

    # -- closing -----------------------------------------------------------
    def close(self, error_code: int = 0, *, silent: bool = False) -> None:
        """Start closing with an application error code (idempotent)."""
        if self._handle is None or self._local_close_code is not None:
            return
        self._local_close_code = error_code
        if self.close_reason is None:
            self.close_reason = CloseReason("local", error_code)
        lib.pwt_conn_shutdown(self._handle, error_code, 1 if silent else 0)
        self._streams_closing()

    async def aclose(self, error_code: int = 0) -> CloseReason:
        self.close(error_code)
        return await self.wait_closed()

    def _abort_for_exit(self) -> None:
        if self._handle is not None:
            lib.pwt_conn_shutdown(self._handle, 0, 1)

    # -- info --------------------------------------------------------------
    def stats(self) -> ConnectionStats:
        handle = self._check_open()
        s = ffi.new("pwt_stats *")
        status = lib.pwt_conn_stats(handle, s)
        if status != 0:
            raise QuicError(f"cannot read statistics: {_native.status_name(status)}")
        counters = self.counters()
        return ConnectionStats(
            rtt=s.rtt_us / 1e6,
            min_rtt=s.min_rtt_us / 1e6,
            max_rtt=s.max_rtt_us / 1e6,
            rtt_variance=s.rtt_variance_us / 1e6,
            cwnd=int(s.cwnd),
            path_mtu=int(s.path_mtu),
            packets_sent=int(s.send_total_packets),
            packets_lost=int(s.send_lost_packets - s.send_spurious_lost_packets),
            packets_received=int(s.recv_total_packets),
            bytes_sent=int(s.send_total_bytes),
            bytes_received=int(s.recv_total_bytes),
            stream_bytes_sent=int(s.send_stream_bytes),
            stream_bytes_received=int(s.recv_stream_bytes),
            congestion_events=int(s.send_congestion_count),
            native_datagrams_dropped=counters.native_datagrams_dropped,
            queued_events=counters.queued_events,
            peak_queued_events=counters.peak_queued_events,
            live_streams=counters.live_streams,
            peak_live_streams=counters.peak_live_streams,
        )

    async def __aenter__(self) -> "QuicConnection":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        side = "client" if self.is_client else "server"
        return f"<QuicConnection {side} remote={self.remote_address} closed={self.is_closed}>"


def _connect_error(
    reason: CloseReason, host: str, port: int, certificate_error: str | None = None
) -> ConnectError:
    if certificate_error is not None:
        return CertificateVerifyError(f"{host}:{port}: {certificate_error}", reason)
    if reason.status in _CERT_STATUSES or (reason.initiator == "transport" and 0x100 <= reason.error_code < 0x200 and reason.error_code in (0x12A, 0x12B, 0x12C, 0x12D, 0x12E, 0x130)):
        return CertificateVerifyError(
            f"certificate verification of {host}:{port} failed ({reason.status or hex(reason.error_code)}); "
            "pass the CA file (cafile=...) or disable verification explicitly",
            reason,
        )
    if reason.status in ("CONNECTION_REFUSED", "UNREACHABLE"):
        return ConnectError(f"{host}:{port} refused the connection ({reason.status})", reason)
    if reason.status in ("CONNECTION_IDLE", "CONNECTION_TIMEOUT"):
        return ConnectError(f"connecting to {host}:{port} timed out ({reason.status})", reason)
    return ConnectError(f"connecting to {host}:{port} failed: {reason.describe()}", reason)


async def connect(
    host: str,
    port: int,
    config: QuicConfiguration | None = None,
    *,
    server_name: str | None = None,
    timeout: float | None = None,
    early_data: bool = False,
    on_started: Callable[[QuicConnection], None] | None = None,
) -> QuicConnection:
    """Connect to ``host:port``; returns once the handshake completed.

    ``on_started`` is called with each connection attempt as soon as its
    handshake began: streams it opens and writes go out the moment msquic has
    keys for them, without waiting for this coroutine to resume.

    Every address ``host`` resolves to is tried in turn (``localhost`` often
    resolves to ``::1`` first while servers listen on ``127.0.0.1``);
    ``timeout`` bounds the whole attempt.

    With ``early_data=True`` and a configuration with ``early_data`` enabled,
    a connection that resumes with a stored ticket is returned as soon as it
    started: streams written now travel as 0-RTT data (msquic resends them
    if the server declines).  Use :meth:`QuicConnection.wait_connected` to
    wait for the handshake.  Without a ticket it waits as usual.
    """
    config = config or QuicConfiguration(is_client=True)
    if not config.is_client:
        raise ConfigError("connect() needs a client configuration (is_client=True)")
    engine = Engine.current()
    native_config = NativeConfig.shared(config)
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    name = server_name if server_name is not None else host
    addresses = await _resolve_all(host, port)
    for index, ip in enumerate(addresses):
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            return await _connect_one(
                engine, config, native_config, ip, port, name, remaining, host, early_data, on_started
            )
        except CertificateVerifyError:
            raise
        except ConnectError:
            if index == len(addresses) - 1:
                raise
    raise ConnectError(f"cannot resolve {host!r}")


async def _connect_one(
    engine: Engine,
    config: QuicConfiguration,
    native_config: NativeConfig,
    ip: str,
    port: int,
    server_name: str,
    timeout: float | None,
    host: str,
    early_data: bool = False,
    on_started: Callable[[QuicConnection], None] | None = None,
) -> QuicConnection:
    share_key = (ip, port)
    shared = engine.shared_bindings.get(share_key) if config.share_udp_binding else None
    out = ffi.new("pwt_conn **")
    status = lib.pwt_conn_open(engine.queue, out)
    if status != 0:
        raise ConnectError(f"cannot open connection: {_native.status_name(status)}")
    lib.pwt_conn_set_limits(out[0], config.max_stream_buffer, config.send_buffer_high_water)
    lib.pwt_conn_set_event_limit(out[0], config.max_queued_events)
    conn = QuicConnection(engine, out[0], is_client=True, config=config)
    conn._native_config = native_config
    conn.server_name = server_name
    local = _addr_to_native(*shared) if shared is not None else ffi.NULL
    zero_rtt = False
    ticket: bytes | None = None
    if config.session_resumption:
        lib.pwt_conn_want_tickets(out[0], 1)
        conn._ticket_key = (native_config.key, server_name, ip, port)
        stored = _TICKETS.pop(conn._ticket_key, None)  # tickets are single use
        if stored is not None:
            ticket, conn._resumed_certificate = stored
        if ticket is not None and config.early_data:
            lib.pwt_conn_allow_early_data(out[0], 1)
            zero_rtt = early_data
    keylog = config.keylog_file or os.environ.get("SSLKEYLOGFILE")
    if keylog and lib.pwt_conn_log_secrets(out[0]) == 0:
        conn._connected.add_done_callback(functools.partial(_write_keylog, conn, keylog))
    status = lib.pwt_conn_start_ex(
        out[0],
        native_config.handle,
        _addr_to_native(ip, port),
        server_name.encode(),
        1 if server_name == ip else 0,
        1 if config.share_udp_binding else 0,
        local,
        ticket if ticket is not None else ffi.NULL,
        len(ticket) if ticket is not None else 0,
    )
    if status != 0:
        conn.close()
        raise ConnectError(f"cannot start connection: {_native.status_name(status)}")
    if on_started is not None:
        on_started(conn)
    if zero_rtt:
        return conn
    try:
        await wait_future(conn._connected, timeout)
    except asyncio.TimeoutError:
        conn.close()
        raise ConnectError(f"connecting to {host}:{port} timed out after {timeout}s") from None
    except ConnectionClosed as exc:
        if shared is not None and engine.shared_bindings.get(share_key) == shared:
            # The shared socket is gone and its port was taken: use a new one.
            del engine.shared_bindings[share_key]
            if exc.reason.status == "ADDRESS_IN_USE":
                return await _connect_one(
                    engine, config, native_config, ip, port, server_name, timeout, host, early_data, on_started
                )
        raise _connect_error(exc.reason, host, port, conn.certificate_error) from None
    except BaseException:  # cancelled: do not leave a handshake running unowned
        conn.close()
        raise
    if config.share_udp_binding and shared is None and conn.local_address is not None:
        engine.shared_bindings[share_key] = conn.local_address
    return conn


# Key log labels (NSS key log format, read by Wireshark) of secrets 1-5 of pwt_conn_secret.
_KEYLOG_LABELS = (
    "CLIENT_EARLY_TRAFFIC_SECRET",
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
)


def _write_keylog(conn: QuicConnection, path: str, connected: "asyncio.Future[None]") -> None:
    """Append a connection's TLS secrets to ``path`` once its handshake completed."""
    handle = conn._handle
    if connected.cancelled() or connected.exception() is not None or handle is None:
        return
    buf = ffi.new("unsigned char[64]")
    n = lib.pwt_conn_secret(handle, 0, buf)
    if n != 32:
        return
    random = bytes(ffi.buffer(buf, n)).hex()
    lines = []
    for which, label in enumerate(_KEYLOG_LABELS, 1):
        n = lib.pwt_conn_secret(handle, which, buf)
        if n:
            lines.append(f"{label} {random} {bytes(ffi.buffer(buf, n)).hex()}\n")
    try:
        with open(path, "a", encoding="ascii") as f:
            f.writelines(lines)
    except OSError as exc:
        logger.warning("cannot write the TLS key log %s: %s", path, exc)


ConnectionHandler = Callable[[QuicConnection], Awaitable[None] | None]


class QuicListener:
    """A listening endpoint; completed handshakes are handed to ``handler``
    or queued for :meth:`accept`."""

    def __init__(
        self, engine: Engine, config: QuicConfiguration, handler: ConnectionHandler | None
    ) -> None:
        self._engine = engine
        self._loop = engine.loop
        self.config = config
        self._handler = handler
        self._native_config = NativeConfig.shared(config)
        out = ffi.new("pwt_listener **")
        status = lib.pwt_listener_open(engine.queue, self._native_config.handle, out)
        if status != 0:
            raise QuicError(f"cannot open listener: {_native.status_name(status)}")
        self._handle = out[0]
        lib.pwt_listener_set_limits(self._handle, config.max_stream_buffer, config.send_buffer_high_water)
        lib.pwt_listener_set_event_limit(self._handle, config.max_queued_events)
        lib.pwt_listener_set_resumption(self._handle, 1 if config.issues_tickets else 0)
        engine.register(self._handle, self)
        self._stopped: asyncio.Future[None] = self._loop.create_future()
        self._pending: deque[QuicConnection] = deque()
        self._waiters = Waiters()
        self._closing = False
        self.connections: set[QuicConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.address: Address = ("", 0)
        #: Called with each new connection while its handshake is still running:
        #: what it writes goes out as soon as msquic has 1-RTT keys (0.5-RTT data,
        #: e.g. HTTP/3 SETTINGS).  Peer streams and the handler wait for the handshake.
        self.on_new_connection: Callable[[QuicConnection], None] | None = None

    def _start(self, host: str, port: int) -> None:
        nc = self._native_config
        status = lib.pwt_listener_start(
            self._handle, nc.alpn_array, len(nc.alpns), _addr_to_native(host, port)
        )
        if status != 0:
            self._engine.unregister(self._handle)
            lib.pwt_listener_close(self._handle)
            self._handle = None
            raise QuicError(f"cannot listen on {host}:{port}: {_native.status_name(status)}")
        addr = ffi.new("pwt_addr *")
        lib.pwt_listener_local_addr(self._handle, addr)
        bound = _addr_from_native(addr)
        self.address = (host or bound[0], bound[1])

    @property
    def port(self) -> int:
        return self.address[1]

    def _on_event(self, ev: Any) -> None:
        if ev.type == lib.PWT_EV_LISTENER_NEW_CONNECTION:
            conn = QuicConnection(self._engine, ev.obj2, is_client=False, config=self.config)
            if self._closing:  # accepted by msquic before our stop took effect
                conn.close(0)
                return
            conn._native_config = self._native_config
            conn.on_connected = self._on_handshake_done
            self.connections.add(conn)
            conn._closed.add_done_callback(functools.partial(self._forget, conn))
            if self.on_new_connection is not None:
                self.on_new_connection(conn)
        elif ev.type == lib.PWT_EV_LISTENER_STOP_COMPLETE:
            handle = self._handle
            if handle is not None:
                self._handle = None
                self._engine.unregister(handle)
                lib.pwt_listener_close(handle)
            if not self._stopped.done():
                self._stopped.set_result(None)
            self._waiters.wake_all()

    def _forget(self, conn: QuicConnection, _fut: object) -> None:
        self.connections.discard(conn)

    def _on_handshake_done(self, conn: QuicConnection) -> None:
        conn.on_connected = None
        if self._loop.is_closed():  # drained at exit / after the loop ended: nobody to serve it
            conn.close(0)
            return
        if self._handler is None:
            self._pending.append(conn)
            self._waiters.wake_all()
            return
        result = self._handler(conn)
        if asyncio.iscoroutine(result):
            task = self._loop.create_task(result)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def accept(self) -> QuicConnection:
        while not self._pending:
            if self._stopped.done():
                raise QuicError("listener is closed")
            await self._waiters.wait()
        return self._pending.popleft()

    def close(self, error_code: int = 0) -> None:
        """Stop accepting and close every live connection."""
        self._closing = True
        if self._handle is not None:
            lib.pwt_listener_stop(self._handle)
        for conn in list(self.connections):
            conn.close(error_code)
        for task in list(self._tasks):
            task.cancel()

    async def wait_closed(self, timeout: float | None = 5.0) -> None:
        waits: list[Any] = [self._stopped, *(c.closed for c in self.connections)]
        await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), timeout)

    async def aclose(self, error_code: int = 0) -> None:
        self.close(error_code)
        await self.wait_closed()

    def _abort_for_exit(self) -> None:
        if self._handle is not None:
            lib.pwt_listener_stop(self._handle)

    async def __aenter__(self) -> "QuicListener":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def serve(
    host: str,
    port: int,
    config: QuicConfiguration,
    handler: ConnectionHandler | None = None,
) -> QuicListener:
    """Listen on ``host:port`` (port 0 picks one: see ``listener.port``)."""
    if config.is_client:
        raise ConfigError("serve() needs a server configuration (is_client=False)")
    engine = Engine.current()
    if host and host not in ("::", "*"):
        host = await _resolve(host, port)
    listener = QuicListener(engine, config, handler)
    listener._start(host, port)
    return listener
