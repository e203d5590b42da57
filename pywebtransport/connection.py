"""WebTransportConnection: binds one QUIC connection to the sans-IO HTTP/3 core.

QUIC stream bytes go into :class:`~pywebtransport.h3.connection.H3Connection`;
the events it returns are turned into session and stream objects.  Protocol
errors become a QUIC connection close carrying the HTTP/3 error code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .balancer import ConnectionLoadBalancer
from .compat.connection import ConnectionCompat, ConnectionManager, ConnectionPool
from .constants import Defaults
from .events import EventEmitter
from .exceptions import ConnectionError, SessionError, StreamResetError
from .h3 import events as ev
from .h3.connection import H3Config, H3Connection
from .h3.errors import ErrorCode, H3Error, H3UsageError
from .h3.session_state import SessionState as H3SessionState
from .h3.varint import encode_varint
from .h3.wt_credit import ReceiveCredit, data_consumed, new_receive_credit, peer_stream_finished
from .quic import CloseReason, PeerCertificate, QuicError, WriteTimeout
from .quic.interface import DataReceiver, QuicStreamTransport, QuicTransport
from .quic.waiters import Waiters, wait_future, wait_with_timeout
from .types import ConnectionState, EventType

if TYPE_CHECKING:
    from .config import ClientConfig, ServerConfig
    from .session import WebTransportSession
    from .stream import WebTransportReceiveStream

__all__ = [
    "ConnectionInfo",
    "ConnectionLoadBalancer",
    "ConnectionManager",
    "ConnectionPool",
    "WebTransportConnection",
    "h3_config_for",
]

log = logging.getLogger("pywebtransport.connection")

_USABLE = (H3SessionState.OPEN, H3SessionState.DRAINING)


class ConnectionInfo(dict[str, Any]):
    """Transport counters of a connection (dict for 0.1.x compatibility)."""


def h3_config_for(config: "ClientConfig | ServerConfig") -> H3Config:
    """The HTTP/3 core knobs a client or server configuration asks for.

    WebTransport flow control (and with it several sessions per connection) is
    offered only with ``webtransport_flow_control``; otherwise the SETTINGS are
    the browser-compatible defaults.
    """
    if not config.webtransport_flow_control:
        return H3Config()
    return H3Config(
        max_sessions=config.max_sessions,
        initial_max_data=config.initial_max_data,
        initial_max_streams_bidi=config.initial_max_streams_bidi,
        initial_max_streams_uni=config.initial_max_streams_uni,
    )


class _Binding:
    """The callbacks of one QUIC stream while the HTTP/3 core parses it.

    Stream-level resets, STOP_SENDING and the final release always go
    through the core; data does until the stream is bound to a public
    stream (then :meth:`QuicStreamTransport.set_data_receiver` sends it
    straight there).
    """

    __slots__ = ("conn", "stream", "stream_id", "session")

    def __init__(self, conn: "WebTransportConnection", stream: QuicStreamTransport) -> None:
        self.conn = conn
        self.stream = stream
        self.stream_id = stream.stream_id
        # The session owning the public stream, once bound (told of the release).
        self.session: "WebTransportSession | None" = None

    def on_data(self, data: bytes, fin: bool) -> None:
        self.conn._on_stream_data(self.stream, data, fin)

    def on_reset(self, code: int) -> None:
        conn, sid = self.conn, self.stream_id
        conn._run(lambda: conn.h3.receive_stream_reset(sid, code))

    def on_stop(self, code: int) -> None:
        conn, sid = self.conn, self.stream_id
        conn._run(lambda: conn.h3.receive_stop_sending(sid, code))

    def on_closed(self) -> None:
        self.conn._on_stream_closed(self.stream)


class WebTransportConnection(EventEmitter, ConnectionCompat):
    """HTTP/3 + WebTransport over one QUIC connection.

    Events: CONNECTION_ESTABLISHED, SETTINGS_RECEIVED, SESSION_REQUEST, PROTOCOL_ERROR,
    CONNECTION_CLOSED and CONNECTION_LOST (see the events guide).

    Uses the QUIC layer only through :class:`~pywebtransport.quic.interface.QuicTransport`.
    Every stream's bytes go through the sans-IO core until the stream is
    bound to a public stream object; from then on the QUIC stream delivers
    payload straight to it (the core still sees resets, STOP_SENDING and
    the stream's release).  Datagrams of usable sessions are routed by one
    dict lookup on their quarter-stream-id prefix.
    """

    def __init__(
        self,
        quic: QuicTransport,
        *,
        h3_config: H3Config | None = None,
        config: "ClientConfig | ServerConfig | None" = None,
        on_session_request: Callable[["WebTransportSession"], None] | None = None,
    ) -> None:
        self.quic = quic
        self.is_client = quic.is_client
        if h3_config is None and config is not None:
            h3_config = h3_config_for(config)
        self.h3 = H3Connection(quic.is_client, h3_config)
        # Session flow control (used only when negotiated).
        self._window = config.flow_control_window_size if config else Defaults.FLOW_CONTROL_WINDOW_SIZE
        self._auto_scale = config.flow_control_window_auto_scale if config else True
        self._stream_increment = (
            (config.stream_flow_control_increment_bidi, config.stream_flow_control_increment_uni)
            if config
            else (Defaults.STREAM_FLOW_CONTROL_INCREMENT, Defaults.STREAM_FLOW_CONTROL_INCREMENT)
        )
        # 0.1.x configuration fields applied per session.
        self.max_datagram_payload: int = getattr(config, "max_datagram_size", Defaults.MAX_DATAGRAM_SIZE)
        self.max_incoming_streams: int = getattr(config, "max_incoming_streams", Defaults.MAX_INCOMING_STREAMS)
        self.read_timeout: float | None = getattr(config, "read_timeout", None)
        self.write_timeout: float | None = getattr(config, "write_timeout", None)
        self.stream_creation_timeout: float = getattr(
            config, "stream_creation_timeout", Defaults.STREAM_CREATION_TIMEOUT
        )
        self._credit: dict[int, ReceiveCredit] = {}
        self._credit_waiters = Waiters()
        self.credit_updates_sent = 0
        self.credit_updates_received = 0
        # Last WT_*_BLOCKED frame sent per (session, kind): one per peer limit value.
        self._blocked_reported: dict[tuple[int, str], bytes] = {}
        self.blocked_sent = 0
        self._loop = asyncio.get_running_loop()
        self._streams: dict[int, QuicStreamTransport] = {}
        self._bindings: dict[int, _Binding] = {}
        self.sessions: dict[int, "WebTransportSession"] = {}
        # Quarter-stream-id prefix (encoded) -> datagram sink of a usable session.
        self._datagram_sinks: dict[bytes, Callable[[bytes], None]] = {}
        self._datagram_prefixes: dict[int, bytes] = {}
        self._settings: asyncio.Future[None] = self._loop.create_future()
        self._control: QuicStreamTransport | None = None
        self._created = time.monotonic()
        self.state = ConnectionState.CONNECTING
        # Set before the streams below are drained: a request already buffered
        # there must reach the server, not get a 404 for want of a handler.
        self.on_session_request: Callable[["WebTransportSession"], None] | None = on_session_request
        # Told of every HTTP/3 connection error (code, message) before the connection
        # closes; a plain callback (a server counts them) costs less than an event handler.
        self.on_protocol_error: Callable[[WebTransportConnection, int, str], None] | None = None
        self._closing = False
        self._close_timer: asyncio.TimerHandle | None = None  # close_when_sessions_end's deadline
        self._connect_streams: set[int] = set()
        self._answered: set[int] | None = None  # plain requests answered (server); made on the first
        self._current_stream: int | None = None
        self._retired: dict[int, QuicStreamTransport] = {}
        self.pending_opens = 0  # client: sessions being opened on this connection
        self._rtt_value = 0.1
        self._rtt_at = 0.0
        # Client: a session whose CONNECT goes out as soon as the peer's SETTINGS arrive
        # (see queue_session), with the arguments of open_session_nowait.
        self._queued_session: "tuple[WebTransportSession, str, str, Sequence[tuple[str, str]], Sequence[str]] | None" = None
        self._sent_queued: "WebTransportSession | None" = None
        # Cached h3.flow_control_enabled (it changes only when the peer's SETTINGS arrive).
        self._flow_control = False
        quic.on_datagram = self._on_datagram
        quic.on_closed = self._on_quic_closed

    # -- setup -------------------------------------------------------------
    async def start(self) -> None:
        """Take the peer's streams, open our control and QPACK streams and send SETTINGS."""
        try:
            self.start_nowait()
        except QuicError as exc:
            raise await self._setup_error("cannot set up HTTP/3", exc) from exc

    async def _setup_error(self, what: str, exc: QuicError) -> ConnectionError:
        """Why setting up failed: the peer's or transport's close reason rather than just ABORTED.

        An operation that fails with ABORTED often means msquic already shut the
        connection down (a server refusing our client certificate does so right
        after our side of the handshake completed) while its event is still queued.
        """
        reason = await self.quic.closing_reason()
        if reason is not None and reason.initiator != "local":
            return ConnectionError(f"{what}: {reason.describe()}")
        return ConnectionError(f"{what}: {exc}")

    def start_nowait(self) -> None:
        """:meth:`start` without waiting: raises the ``QuicError`` if the streams cannot be opened."""
        if self.state is ConnectionState.CONNECTED:
            return  # started already (a client starts in its handshake-done callback)
        # Installed here rather than in __init__ (it also delivers streams that arrived before),
        # so listeners registered between construction and start() see every protocol error.
        self.quic.on_stream = self._on_peer_stream
        self.send_preface()
        self.state = ConnectionState.CONNECTED
        if self._ee_listened and EventType.CONNECTION_ESTABLISHED in self._ee_listening:  # event hook
            self._ee_fire(EventType.CONNECTION_ESTABLISHED, {"connection_id": self.connection_id})

    def send_preface(self) -> None:
        """Open our control stream and queue SETTINGS (once).

        A server calls this while the QUIC handshake is still running, so that
        SETTINGS travel as 0.5-RTT data and the client can send its CONNECT as
        soon as its handshake completes; :meth:`start` calls it otherwise.

        No QPACK encoder or decoder stream: we announce a dynamic table of
        capacity 0 and never use the peer's, so neither would ever carry an
        instruction (RFC 9204 4.2 lets an endpoint skip both then; quic-go never
        opens them).  That is two streams fewer per connection and side.
        """
        if self._control is not None:
            return
        control = self.quic.open_stream_nowait(unidirectional=True)
        control.write_nowait(self.h3.local_control_stream_data(control.stream_id))
        self._control = control

    async def wait_settings(self, timeout: float | None = None) -> None:
        """Wait until the peer's HTTP/3 SETTINGS have arrived."""
        try:
            await wait_future(self._settings, timeout)
        except asyncio.TimeoutError:
            raise ConnectionError("the peer sent no HTTP/3 SETTINGS in time") from None

    @property
    def is_closed(self) -> bool:
        """True once the connection is closing or closed."""
        return self.quic.is_closed or self._closing

    @property
    def remote_address(self) -> tuple[str, int] | None:
        """The peer's ``(host, port)``, or None when unknown."""
        return self.quic.remote_address

    @property
    def local_address(self) -> tuple[str, int] | None:
        """Our ``(host, port)``, or None when unknown."""
        return self.quic.local_address

    @property
    def flow_control_enabled(self) -> bool:
        """WebTransport flow control was negotiated on this connection."""
        return self._flow_control

    @property
    def max_datagram_size(self) -> int:
        """Largest QUIC datagram payload the path allows now (0 if datagrams are off)."""
        return self.quic.max_datagram_size

    @property
    def peer_certificate(self) -> PeerCertificate | None:
        """The peer's verified certificate, if one was verified (see `quic.PeerCertificate`)."""
        return self.quic.peer_certificate

    def info(self) -> ConnectionInfo:
        """Addresses, uptime, state and QUIC statistics of the connection as a dict."""
        data: dict[str, Any] = {
            "remote_address": self.remote_address,
            "local_address": self.local_address,
            "uptime": time.monotonic() - self._created,
            "state": str(self.state),
        }
        if not self.quic.is_closed and self.quic.close_reason is None:
            stats = self.quic.stats()
            data.update(
                rtt=stats.rtt,
                cwnd=stats.cwnd,
                bytes_sent=stats.bytes_sent,
                bytes_received=stats.bytes_received,
                packets_sent=stats.packets_sent,
                packets_received=stats.packets_received,
                packets_lost=stats.packets_lost,
                datagrams_lost=self.quic.datagrams_lost,
            )
        if self.h3.flow_control_enabled:
            data.update(
                credit_updates_sent=self.credit_updates_sent,
                credit_updates_received=self.credit_updates_received,
            )
        return ConnectionInfo(data)

    # -- incoming ----------------------------------------------------------
    def _on_peer_stream(self, stream: QuicStreamTransport) -> None:
        self._streams[stream.stream_id] = stream
        self._attach(stream)

    def _attach(self, stream: QuicStreamTransport) -> None:
        binding = _Binding(self, stream)
        self._bindings[stream.stream_id] = binding
        stream.set_receiver(binding.on_data, binding.on_reset, binding.on_stop, binding.on_closed)

    def _on_stream_closed(self, stream: QuicStreamTransport) -> None:
        sid = stream.stream_id
        self._streams.pop(sid, None)
        binding = self._bindings.pop(sid, None)
        if binding is not None and binding.session is not None:
            binding.session._on_stream_released(sid)
        # Drop the callbacks (bound methods of the binding and the public stream):
        # without those back references the stream's objects are freed by reference
        # counting instead of piling up for the cyclic garbage collector.
        stream.set_receiver(_discard)
        self._connect_streams.discard(sid)
        if self._close_timer is not None and not self.h3_session_ids():
            self._close_timer.cancel()
            self._close_timer = None
            self._loop.call_soon(self.close)  # not from inside QUIC's event handling
        if self._answered is not None:
            self._answered.discard(sid)
        if self.h3.holds_early(sid):
            # QUIC is done but the core still holds its bytes for a session that
            # is not accepted yet: keep it until that is decided.
            self._retired[sid] = stream
        else:
            self.h3.stream_closed(sid)

    def _on_stream_data(self, stream: QuicStreamTransport, data: bytes, fin: bool) -> None:
        sid = stream.stream_id
        started = self.h3.webtransport_stream_started(sid, data)
        if started is not None:
            # A peer's new WebTransport stream for a usable session, header complete: bind it
            # and hand over its first payload without event objects.
            session_id, offset = started
            session = self.sessions.get(session_id)
            if session is not None:
                session._on_peer_stream(stream, not (sid & 0x2))
                if len(data) > offset or fin:
                    session._on_stream_data(sid, data[offset:] if offset else data, fin)
                stream.consumed(offset)  # the header
                return
            gone = int(ErrorCode.WT_SESSION_GONE)  # the core knows a session we do not: refuse
            stream.consumed(len(data))
            stream.stop_sending(gone)
            stream.reset(gone)
            return
        self._current_stream = sid
        try:
            events = self._run(lambda: self.h3.receive_stream_data(stream.stream_id, data, fin))
        finally:
            self._current_stream = None
        payload = 0
        for event in events:
            if isinstance(event, ev.WebTransportStreamDataReceived) and event.stream_id == stream.stream_id:
                payload += len(event.data)
        # Framing bytes are consumed now; payload bytes when the application reads them.
        if len(data) > payload:
            stream.consumed(len(data) - payload)

    def bind_stream(
        self,
        session: "WebTransportSession",
        quic: QuicStreamTransport,
        stream: "WebTransportReceiveStream | None",
    ) -> None:
        """Bind a WebTransport stream to its public object.

        The session hears of the stream's release.  A readable ``stream``
        gets ``quic``'s later payload straight from the QUIC stream: with
        session flow control the bytes are still counted by the core (one
        call, no events); without it nothing else runs.
        """
        binding = self._bindings.get(quic.stream_id)
        if binding is None or quic.is_closed:
            # Released already (bytes held for a session accepted later): tell the
            # session once the events of this batch (its data) are delivered.
            self._loop.call_soon(session._on_stream_released, quic.stream_id)
            return
        binding.session = session
        # A WebTransport stream is released as soon as both directions are finished here:
        # the shim closes it when msquic completes it, with no record for Python.
        quic.release_when_done = True
        if stream is None:
            return
        sink: DataReceiver = stream._on_data
        session_id = session.id
        if self.h3.session_flow_control(session_id):
            feed = sink
            h3 = self.h3

            def counted(data: bytes, fin: bool) -> None:
                if data:
                    try:
                        h3.bound_stream_data(session_id, len(data))
                    except H3Error as exc:
                        self.close(int(exc.code), str(exc))
                        quic.consumed(len(data))
                        return
                feed(data, fin)

            sink = counted
        quic.set_data_receiver(sink)

    def _on_datagram(self, data: bytes) -> None:
        if data:
            # The quarter stream ID is a varint; its length is in the top two bits.
            n = 1 << (data[0] >> 6)
            sink = self._datagram_sinks.get(data[:n])
            if sink is not None:
                sink(data[n:])
                return
        self._run(lambda: self.h3.receive_datagram(data))

    def _route_datagrams(self, session_id: int, sink: Callable[[bytes], None] | None) -> None:
        """Install (or with None remove) the fast routes for a session's datagrams.

        Received: prefix -> ``sink``.  Sent: session -> prefix, so sending skips
        the core while the session is usable.
        """
        key = encode_varint(session_id >> 2)
        if sink is None:
            self._datagram_sinks.pop(key, None)
            self._datagram_prefixes.pop(session_id, None)
        else:
            self._datagram_sinks[key] = sink
            self._datagram_prefixes[session_id] = key

    def _run(self, call: Callable[[], list[ev.H3Event]]) -> list[ev.H3Event]:
        try:
            events = call()
        except H3Error as exc:
            log.debug("HTTP/3 connection error: %s", exc)
            if self.on_protocol_error is not None:
                self.on_protocol_error(self, int(exc.code), str(exc))
            if self._ee_listened and EventType.PROTOCOL_ERROR in self._ee_listening:  # event hook
                self._ee_fire(EventType.PROTOCOL_ERROR, {"error_code": int(exc.code), "message": str(exc)})
            self.close(int(exc.code), str(exc))
            return []
        pending = self.h3.pop_events()
        if pending:
            events = events + pending
        if events:
            self._dispatch_all(events)
        return events

    def _dispatch_all(self, events: list[ev.H3Event]) -> None:
        for event in events:
            try:
                self._dispatch(event)
            except Exception:  # one bad handler must not break the connection
                log.exception("error while handling %r", event)
        if self._retired:
            for sid in [s for s in self._retired if not self.h3.holds_early(s)]:
                del self._retired[sid]
                self.h3.stream_closed(sid)

    def _dispatch(self, event: ev.H3Event) -> None:
        if isinstance(event, ev.WebTransportStreamDataReceived):
            # Bytes not from the stream being processed were held back by the core
            # (early arrivals) and already counted as consumed when they came in.
            preconsumed = event.stream_id != self._current_stream
            session = self.sessions.get(event.session_id)
            if session is not None:
                session._on_stream_data(event.stream_id, event.data, event.stream_ended, preconsumed)
            else:
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    if not preconsumed:
                        stream.consumed(len(event.data))
                    stream.stop_sending(int(ErrorCode.WT_SESSION_GONE))
                    stream.reset(int(ErrorCode.WT_SESSION_GONE))
        elif isinstance(event, ev.WebTransportStreamOpened):
            session = self.sessions.get(event.session_id)
            quic = self._streams.get(event.stream_id) or self._retired.get(event.stream_id)
            if session is not None and quic is not None:
                session._on_peer_stream(quic, event.bidi)
        elif isinstance(event, ev.DatagramReceived):
            session = self.sessions.get(event.session_id)
            if session is not None:
                session._on_datagram(event.data)
        elif isinstance(event, ev.SettingsReceived):
            self._flow_control = self.h3.flow_control_enabled
            if not self._settings.done():
                self._settings.set_result(None)
            queued, self._queued_session = self._queued_session, None
            if queued is not None:
                self._send_queued_session(*queued)
            if self._ee_listened and EventType.SETTINGS_RECEIVED in self._ee_listening:  # event hook
                self._ee_fire(EventType.SETTINGS_RECEIVED, {"settings": dict(event.settings)})
        elif isinstance(event, ev.WebTransportSessionRequested):
            self._on_session_requested(event)
        elif isinstance(event, ev.WebTransportSessionEstablished):
            session = self.sessions.get(event.session_id)
            if session is not None:
                session._on_established(event.headers, event.protocol)
        elif isinstance(event, ev.WebTransportSessionRejected):
            session = self.sessions.get(event.session_id)
            if session is not None:
                session._on_rejected(event.status)
        elif isinstance(event, ev.SessionCloseReceived):
            self._route_datagrams(event.session_id, None)
            session = self.sessions.get(event.session_id)
            if session is not None and session._ee_listened:  # event hook
                session._pwt_on_capsule("close_webtransport_session", {"code": event.code, "reason": event.reason})
            if session is not None:
                session._on_remote_close(event.code, event.reason)
            self._end_session_streams(event.session_id)
            connect = self._streams.get(event.session_id)
            if connect is not None:
                connect.finish()
        elif isinstance(event, ev.SessionAborted):
            self._route_datagrams(event.session_id, None)
            session = self.sessions.get(event.session_id)
            if session is not None:
                session._on_aborted(event.error_code)
            self._end_session_streams(event.session_id)
            connect = self._streams.get(event.session_id)
            if connect is not None:
                connect.reset(int(ErrorCode.WT_SESSION_GONE))
                connect.stop_sending(int(ErrorCode.WT_SESSION_GONE))
        elif isinstance(event, ev.SessionDrainReceived):
            session = self.sessions.get(event.session_id)
            if session is not None and session._ee_listened:  # event hook
                session._pwt_on_capsule("drain_webtransport_session", {})
            if session is not None:
                session._on_drain()
        elif isinstance(event, ev.StreamResetReceived):
            if event.session_id is not None:
                session = self.sessions.get(event.session_id)
                if session is not None:
                    session._on_stream_error(
                        event.stream_id,
                        StreamResetError(
                            reset_code=event.app_error_code or 0,
                            remote=True,
                            stream_id=event.stream_id,
                        ),
                    )
        elif isinstance(event, ev.StopSendingReceived):
            self._credit_waiters.wake_all()  # a writer waiting for credit must see its stream stop
        elif isinstance(event, ev.StreamStopRequested):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream.stop_sending(event.error_code)
        elif isinstance(event, ev.StreamResetRequested):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream.reset(event.error_code)
        elif isinstance(event, ev.SessionFlowControlUpdated):
            self.credit_updates_received += 1
            self._credit_waiters.wake_all()
            session = self.sessions.get(event.session_id)
            if session is not None and session._ee_listened:  # event hook
                session._pwt_on_credit(event.max_data, event.max_streams_bidi, event.max_streams_uni)
        elif isinstance(event, ev.GoawayReceived):
            for session in self.sessions.values():
                session._on_drain()
        elif isinstance(event, ev.HeadersReceived) and not self.is_client:
            self._answer_plain_request(event.stream_id)

    def _answer_plain_request(self, stream_id: int) -> None:
        """A server speaks only WebTransport: other HTTP/3 requests get 404."""
        stream = self._streams.get(stream_id)
        answered = self._answered
        if stream is None or (answered is not None and stream_id in answered) or stream_id in self.sessions:
            return
        if answered is None:
            answered = self._answered = set()
        answered.add(stream_id)  # forgotten when the stream is released
        try:
            data = self.h3.send_headers(stream_id, [(b":status", b"404")], end_stream=True)
        except (H3UsageError, H3Error):
            stream.reset(int(ErrorCode.H3_REQUEST_REJECTED))
            return
        stream.write_nowait(data, fin=True)

    def _on_session_requested(self, event: ev.WebTransportSessionRequested) -> None:
        from .session import WebTransportSession

        headers = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in event.headers}
        session = WebTransportSession(
            self,
            event.session_id,
            path=headers.get(":path", "/"),
            headers=headers,
            available_protocols=event.available_protocols,
            max_incoming_streams=self.max_incoming_streams,
        )
        self.sessions[event.session_id] = session
        self._connect_streams.add(event.session_id)
        self._track_credit(event.session_id)
        if self._ee_listened and EventType.SESSION_REQUEST in self._ee_listening:  # event hook
            self._ee_fire(EventType.SESSION_REQUEST, {"session_id": session.session_id, "path": session.path, "headers": headers, "session": session})
        if self.on_session_request is not None:
            self.on_session_request(session)
        else:
            self.reject_session(event.session_id, 404)

    def _end_session_streams(self, session_id: int) -> None:
        gone = int(ErrorCode.WT_SESSION_GONE)
        for sid in self.h3.session_stream_ids(session_id):
            stream = self._streams.get(sid)
            if stream is not None and not stream.is_closed:
                stream.reset(gone)
                stream.stop_sending(gone)

    def _on_quic_closed(self, reason: CloseReason) -> None:
        self.state = ConnectionState.CLOSED
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._datagram_sinks.clear()
        self._datagram_prefixes.clear()
        if self._ee_listened:  # event hook
            self._pwt_closed_events(reason)
        self.h3.connection_lost()
        for session in list(self.sessions.values()):
            session._on_connection_lost(reason)
        self._credit_waiters.wake_all()
        if not self._settings.done():
            self._settings.set_exception(ConnectionError(f"connection {reason.describe()}"))
            self._settings.exception()
        # Nothing more comes from QUIC: drop its references to us (reference cycles).
        quic = self.quic
        quic.on_stream = None
        quic.on_datagram = None
        quic.on_closed = None
        self._bindings.clear()

    # -- outgoing ----------------------------------------------------------
    def queue_session(
        self,
        path: str,
        *,
        authority: str,
        headers: Sequence[tuple[str, str]] = (),
        protocols: Sequence[str] = (),
    ) -> "WebTransportSession":
        """Client: a session whose CONNECT is sent as soon as the server's SETTINGS arrive.

        Called while the handshake runs: with the connection started from its
        handshake-done callback, the request leaves in the very loop iteration that
        brought the SETTINGS, without waiting for the connecting coroutine to resume.
        Failures (the request cannot be sent) fail the session's ``ready()``.
        """
        from .session import WebTransportSession

        session = WebTransportSession(
            self,
            -1,  # the CONNECT stream's id, once it is opened
            path=path,
            headers=dict(headers),
            available_protocols=tuple(protocols),
            max_incoming_streams=self.max_incoming_streams,
        )
        self._queued_session = (session, path, authority, headers, protocols)
        if self._settings.done() and self._settings.exception() is None:
            self._queued_session = None
            self._send_queued_session(session, path, authority, headers, protocols)
        return session

    def take_queued_session(self) -> "WebTransportSession | None":
        """The session made by :meth:`queue_session` if its CONNECT went out (else None: open anew)."""
        queued = self._queued_session
        if queued is not None:
            self._queued_session = None
            queued[0]._fail_unsent(SessionError("the session request was not sent"))
            return None
        # Handed over once: kept here it would tie the session and this connection in a cycle.
        sent, self._sent_queued = self._sent_queued, None
        return sent

    def _send_queued_session(
        self,
        session: "WebTransportSession",
        path: str,
        authority: str,
        headers: Sequence[tuple[str, str]],
        protocols: Sequence[str],
    ) -> None:
        try:
            self._sent_queued = self.open_session_nowait(
                path, authority=authority, headers=headers, protocols=protocols, session=session
            )
        except (QuicError, SessionError) as exc:
            session._fail_unsent(exc if isinstance(exc, SessionError) else SessionError(f"cannot open the session: {exc}"))
            self._sent_queued = None

    async def open_session(
        self,
        path: str,
        *,
        authority: str,
        headers: Sequence[tuple[str, str]] = (),
        protocols: Sequence[str] = (),
        origin: str | None = None,
    ) -> "WebTransportSession":
        """Client: send an extended CONNECT; returns the (connecting) session."""
        try:
            return self.open_session_nowait(
                path, authority=authority, headers=headers, protocols=protocols, origin=origin
            )
        except QuicError as exc:
            raise await self._setup_error("cannot open the session", exc) from exc

    def open_session_nowait(
        self,
        path: str,
        *,
        authority: str,
        headers: Sequence[tuple[str, str]] = (),
        protocols: Sequence[str] = (),
        origin: str | None = None,
        session: "WebTransportSession | None" = None,
    ) -> "WebTransportSession":
        """:meth:`open_session` without waiting; raises ``QuicError`` if the request cannot be sent."""
        from .session import WebTransportSession

        stream = self.quic.open_stream_nowait()
        try:
            data = self.h3.connect_session(
                stream.stream_id,
                authority=authority,
                path=path,
                origin=origin,
                protocols=protocols,
                headers=[(k.lower().encode(), v.encode()) for k, v in headers],
            )
        except H3UsageError as exc:
            stream.reset(int(ErrorCode.H3_REQUEST_CANCELLED))
            raise SessionError(str(exc)) from None
        self._streams[stream.stream_id] = stream
        self._connect_streams.add(stream.stream_id)
        if session is None:
            session = WebTransportSession(
                self,
                stream.stream_id,
                path=path,
                headers=dict(headers),
                available_protocols=tuple(protocols),
                max_incoming_streams=self.max_incoming_streams,
            )
        else:
            session._id = stream.stream_id
        self.sessions[stream.stream_id] = session
        self._track_credit(stream.stream_id)
        self._attach(stream)
        stream.write_nowait(data)
        return session

    def can_open_session(self) -> bool:
        """Client: whether another session fits on this connection (SETTINGS of both sides)."""
        peer = self.h3.peer_settings
        if peer is None or self.is_closed or self.h3.goaway_received is not None:
            return False
        limit = min(self.h3.session_limit(), peer.max_sessions)
        # Count CONNECT streams still open (the peer counts a session until its
        # CONNECT stream ends) plus opens in progress.
        return len(self._connect_streams) + self.pending_opens < limit

    def accept_session(self, session_id: int, protocol: str | None = None) -> None:
        """Answer a session request with 200 (optionally selecting `protocol`)."""
        stream = self._streams[session_id]
        data = self.h3.accept_session(session_id, protocol)
        stream.write_nowait(data)
        self._dispatch_all(self.h3.pop_events())

    def reject_session(self, session_id: int, status: int) -> None:
        """Answer a session request with HTTP `status`."""
        stream = self._streams.get(session_id)
        session = self.sessions.pop(session_id, None)
        try:
            data = self.h3.reject_session(session_id, status)
        except H3UsageError:
            return
        self._dispatch_all(self.h3.pop_events())
        if stream is not None and not stream.is_closed:
            stream.write_nowait(data, fin=True)
        if session is not None:
            session._on_rejected(status)

    def session_established(self, session_id: int, sink: Callable[[bytes], None]) -> None:
        """A session became usable: route its datagrams to ``sink`` directly."""
        if self.h3.session_state(session_id) in _USABLE:
            self._route_datagrams(session_id, sink)

    def open_stream_nowait(self, session_id: int, *, bidi: bool) -> QuicStreamTransport | None:
        """:meth:`open_stream` when the peer's stream credit allows it now, else None."""
        if not self.h3.can_open_stream(session_id, bidi):
            return None
        stream = self.quic.open_stream_nowait(unidirectional=not bidi)
        try:
            prefix = self.h3.open_webtransport_stream(session_id, stream.stream_id, bidi)
        except H3UsageError as exc:
            stream.abort(int(ErrorCode.H3_REQUEST_CANCELLED))
            raise SessionError(str(exc)) from None
        return self._wt_stream_opened(stream, bidi, prefix)

    async def open_stream(self, session_id: int, *, bidi: bool) -> QuicStreamTransport:
        """Open a WebTransport stream for a session; its header is already queued."""
        stream = await self.quic.open_stream(unidirectional=not bidi)
        try:
            # The peer's WT_MAX_STREAMS may hold us back; wait for its credit.
            while not self.h3.can_open_stream(session_id, bidi) and self._usable(session_id):
                self._send_blocked(session_id, bidi=bidi)
                await self._credit_waiters.wait()
            prefix = self.h3.open_webtransport_stream(session_id, stream.stream_id, bidi)
        except H3UsageError as exc:
            stream.abort(int(ErrorCode.H3_REQUEST_CANCELLED))
            raise SessionError(str(exc)) from None
        except BaseException:
            stream.abort(int(ErrorCode.H3_REQUEST_CANCELLED))
            raise
        return self._wt_stream_opened(stream, bidi, prefix)

    def _wt_stream_opened(self, stream: QuicStreamTransport, bidi: bool, prefix: bytes) -> QuicStreamTransport:
        self._streams[stream.stream_id] = stream
        if bidi:
            self._attach(stream)
        else:
            # Nothing to receive: only the release matters.
            binding = _Binding(self, stream)
            self._bindings[stream.stream_id] = binding
            stream.set_receiver(_discard, None, binding.on_stop, binding.on_closed)
        # A reset must still deliver the stream header (RESET_STREAM_AT when negotiated).  One
        # payload byte more, when one was sent: quic-go (webtransport-go v0.12) reads the header
        # byte by byte and drops the stream if the reset error arrives with the header's last
        # byte, i.e. whenever RESET_STREAM_AT is processed before the header is read.
        stream.reliable_size = len(prefix) + 1
        stream.write_with_first(prefix)  # one send with the first payload, not two
        return stream

    async def send_stream_data(
        self, session_id: int, stream: QuicStreamTransport, data: bytes | bytearray | memoryview, fin: bool
    ) -> None:
        """Write stream payload, within the peer's WT_MAX_DATA when flow control is on."""
        if not self._flow_control:
            await stream.write(data, fin=fin)
            return
        credit = self._send_credit(session_id)
        if credit is None:
            await stream.write(data, fin=fin)
            return
        rest = memoryview(data)
        while True:
            if credit is None:
                await stream.write(rest, fin=fin)
                return
            if credit == 0 and rest:
                if stream.write_error is not None or stream.is_closed:
                    await stream.write(rest, fin=fin)  # raises the stream's own error
                    return
                self._send_blocked(session_id, data=True)
                if not await wait_with_timeout(self._credit_waiters.wait(), self.write_timeout):  # config: write_timeout
                    raise WriteTimeout(f"no WebTransport credit within {self.write_timeout}s")
                credit = self._send_credit(session_id)
                continue
            chunk, rest = rest[:credit], rest[credit:]
            self.h3.record_sent_data(session_id, len(chunk))
            await stream.write(chunk, fin=fin and not rest)
            if not rest:
                return
            credit = self._send_credit(session_id)

    def _usable(self, session_id: int) -> bool:
        return not self.quic.is_closed and self.h3.session_state(session_id) in _USABLE

    def _send_credit(self, session_id: int) -> int | None:
        """Bytes the session may send now; None without flow control (or once it is over)."""
        if not self._usable(session_id):
            return None
        return self.h3.session_send_credit(session_id)

    # -- session flow control: credit we grant -------------------------------
    def _track_credit(self, session_id: int) -> None:
        if self._flow_control:
            config = self.h3.config
            self._credit[session_id] = new_receive_credit(
                config.initial_max_data,
                config.initial_max_streams_bidi,
                config.initial_max_streams_uni,
                self._window,
                time.monotonic(),
            )

    def session_finished(self, session_id: int) -> None:
        """A session object is done: forget it and wake tasks waiting for credit."""
        self._route_datagrams(session_id, None)
        self.sessions.pop(session_id, None)
        self._credit.pop(session_id, None)
        for kind in ("data", "bidi", "uni"):
            self._blocked_reported.pop((session_id, kind), None)
        self._credit_waiters.wake_all()

    def payload_consumed(self, session_id: int, n: int) -> None:
        """The application consumed ``n`` payload bytes: extend WT_MAX_DATA when half used."""
        credit = self._credit.get(session_id)
        if credit is None or n <= 0:
            return
        if credit.max_data - (credit.consumed + n) >= credit.window // 2:
            self._credit[session_id] = ReceiveCredit(
                credit.consumed + n,
                credit.max_data,
                credit.window,
                credit.granted_at,
                credit.closed_bidi,
                credit.closed_uni,
                credit.max_streams_bidi,
                credit.max_streams_uni,
            )
            return
        credit, max_data = data_consumed(
            credit, n, time.monotonic(), self._rtt(), base_window=self._window, auto_scale=self._auto_scale
        )
        self._credit[session_id] = credit
        if max_data is not None:
            self._grant(session_id, max_data=max_data)

    def peer_stream_finished(self, session_id: int, bidi: bool) -> None:
        """A peer-opened stream is done: extend WT_MAX_STREAMS once enough have finished."""
        credit = self._credit.get(session_id)
        if credit is None:
            return
        config = self.h3.config
        initial = config.initial_max_streams_bidi if bidi else config.initial_max_streams_uni
        increment = self._stream_increment[0 if bidi else 1]
        credit, target = peer_stream_finished(credit, bidi, initial, increment)
        self._credit[session_id] = credit
        if target is None:
            return
        if bidi:
            self._grant(session_id, max_streams_bidi=target)
        else:
            self._grant(session_id, max_streams_uni=target)

    def _grant(self, session_id: int, **limits: int) -> None:
        stream = self._streams.get(session_id)
        if stream is None or stream.is_closed or not self._usable(session_id):
            return
        try:
            data = self.h3.grant_session_credit(session_id, **limits)
            if data:
                stream.write_nowait(data)
                self.credit_updates_sent += 1
        except (H3UsageError, QuicError) as exc:
            log.debug("cannot grant WebTransport credit on session %d: %s", session_id, exc)

    def _send_blocked(self, session_id: int, *, data: bool = False, bidi: bool | None = None) -> None:
        """Tell the peer its limit holds us back (WT_DATA_BLOCKED / WT_STREAMS_BLOCKED).

        Sent once per limit value: waiting again at the same limit sends nothing more.
        """
        stream = self._streams.get(session_id)
        if stream is None or stream.is_closed:
            return
        frame = self.h3.session_blocked_data(session_id, data=data, bidi=bidi)
        key = (session_id, "data" if data else "bidi" if bidi else "uni")
        if not frame or self._blocked_reported.get(key) == frame:
            return
        self._blocked_reported[key] = frame
        try:
            stream.write_nowait(frame)
            self.blocked_sent += 1
        except QuicError as exc:
            log.debug("cannot send a BLOCKED capsule on session %d: %s", session_id, exc)

    def _rtt(self) -> float:
        """Smoothed RTT, refreshed at most every 100 ms (a stats query blocks the loop briefly)."""
        now = time.monotonic()
        if now - self._rtt_at > 0.1:
            self._rtt_at = now
            try:
                self._rtt_value = max(0.001, self.quic.stats().rtt)
            except QuicError:
                pass
        return self._rtt_value

    def cancel_session(self, session_id: int) -> None:
        """Abandon a session that is not established yet."""
        if self.is_client:
            stream = self._streams.get(session_id)
            if stream is not None:
                stream.abort(int(ErrorCode.H3_REQUEST_CANCELLED))
        else:
            self.reject_session(session_id, 503)

    def send_datagram(self, session_id: int, data: bytes) -> None:
        """Send one datagram of a session (raises the QUIC layer's DatagramError)."""
        prefix = self._datagram_prefixes.get(session_id)
        if prefix is None:  # not usable (the core says why) or not established here yet
            self.quic.send_datagram(self.h3.encode_datagram(session_id, data))
        else:
            self.quic.send_datagram(prefix + data)

    def close_session(self, session_id: int, code: int, reason: str) -> None:
        """Close a session with a CLOSE capsule carrying `code` and `reason`."""
        self._route_datagrams(session_id, None)
        stream = self._streams.get(session_id)
        try:
            data = self.h3.close_session_data(session_id, code, reason)
        except (H3UsageError, H3Error):
            data = b""
        self._end_session_streams(session_id)
        if stream is not None and not stream.is_closed:
            try:
                stream.write_nowait(data, fin=True)
            except QuicError:
                pass

    def send_goaway(self) -> None:
        """Tell the peer no new sessions will be accepted (GOAWAY on the control stream)."""
        if self._control is None or self._control.is_closed or self.quic.is_closed:
            return
        try:
            self._control.write_nowait(self.h3.send_goaway())
        except (H3UsageError, QuicError):
            pass

    def drain_session(self, session_id: int) -> None:
        """Ask the peer to wind a session down (DRAIN capsule)."""
        stream = self._streams.get(session_id)
        if stream is None or stream.is_closed or self.quic.is_closed:
            return
        try:
            stream.write_nowait(self.h3.drain_session_data(session_id))
        except QuicError:
            # The CONNECT stream or the connection went away meanwhile (the peer left, an
            # idle timeout): nothing to drain, and a server's graceful stop must go on.
            pass

    def close(self, error_code: int = 0, reason: str = "") -> None:  # type: ignore[override]  # sync, unlike EventEmitter.close
        """Close the whole QUIC connection with an HTTP/3 error code."""
        if self._closing:
            return
        self._closing = True
        self.state = ConnectionState.CLOSING
        self.quic.close(error_code or int(ErrorCode.H3_NO_ERROR))

    def close_when_sessions_end(self, timeout: float = 2.0) -> None:
        """:meth:`close_gracefully` without waiting: a callback closes the connection
        once every CONNECT stream has ended, a timer after ``timeout`` seconds at the latest.

        What a client does with a connection whose last session closed: no task, no
        waiters, one loop iteration after the peer finished its CONNECT stream.
        """
        if self._closing or self.quic.is_closed or self._close_timer is not None:
            return
        if not self.h3_session_ids():
            self.close()
            return
        self._close_timer = self._loop.call_later(timeout, self._close_timer_fired)

    def _close_timer_fired(self) -> None:
        self._close_timer = None
        self.close()

    async def close_gracefully(self, timeout: float = 2.0) -> None:
        """Close the connection once every CONNECT stream has ended (bounded).

        Closing QUIC right after a CLOSE_WEBTRANSPORT_SESSION capsule would
        discard the capsule still in flight; give the peer time to see it and
        FIN its side first.
        """
        pending = [s.wait_closed() for sid, s in self._streams.items() if sid in self.h3_session_ids()]
        if pending:
            try:
                await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), timeout)
            except asyncio.TimeoutError:
                pass
        self.close()

    def h3_session_ids(self) -> set[int]:
        """Stream ids of the CONNECT streams of sessions on this connection."""
        return {sid for sid in self._connect_streams if sid in self._streams}

    async def aclose(self, error_code: int = 0) -> None:
        """Close the connection and wait until it is closed."""
        self.close(error_code)
        await self.quic.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed."""
        await self.quic.wait_closed()


def _discard(data: bytes, fin: bool) -> None:
    """Receiver of streams that carry nothing to us (our unidirectional ones)."""
