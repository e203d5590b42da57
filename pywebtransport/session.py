"""WebTransportSession: one WebTransport session over an HTTP/3 connection."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .compat.session import SessionCompat, SessionManager
from .datagram import WebTransportDatagramDuplexStream
from .events import EventEmitter
from .exceptions import (
    ConnectionError,
    SessionClosedError,
    SessionError,
    SessionRejectedError,
    StreamError,
    TimeoutError,
)
from .quic import CloseReason, PeerCertificate, QuicError
from .quic.interface import QuicStreamTransport
from .quic.waiters import Waiters, wait_with_timeout
from .stream import WebTransportReceiveStream, WebTransportSendStream, WebTransportStream
from .protocol import session_event_data, stream_event_data
from .types import EventType, SessionState

if TYPE_CHECKING:
    from .connection import WebTransportConnection

__all__ = ["SessionManager", "SessionStats", "WebTransportSession"]

IncomingStream = WebTransportStream | WebTransportReceiveStream
_SESSION_SERIAL = itertools.count(1)

_CLOSED = SessionState.CLOSED  # looked up once (hot: every write checks it)


class SessionStats(dict[str, Any]):
    """Counters of one session (dict for 0.1.x compatibility)."""


class WebTransportSession(EventEmitter, SessionCompat):
    """A WebTransport session: streams and datagrams scoped to one CONNECT.

    Events (see the events guide): SESSION_READY, SESSION_DRAINING, SESSION_CLOSED,
    STREAM_OPENED, DATAGRAM_RECEIVED, CAPSULE_RECEIVED, SESSION_MAX_*_UPDATED.
    """

    def __init__(
        self,
        connection: "WebTransportConnection",
        session_id: int,
        *,
        path: str,
        headers: dict[str, str],
        available_protocols: tuple[str, ...] = (),
        max_incoming_streams: int = 100,
    ) -> None:
        self._connection = connection
        self._id = session_id
        self._path = path
        self._headers = headers
        self.available_protocols = available_protocols
        self.protocol: str | None = None
        self.path_params: dict[str, str] = {}
        self._state = SessionState.CONNECTING
        self._loop = asyncio.get_running_loop()
        self._ready: asyncio.Future[None] = self._loop.create_future()
        self._ready_waiters = Waiters()  # ready() callers, woken directly when _ready is set
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._streams: dict[int, WebTransportReceiveStream | WebTransportSendStream] = {}
        # Peer-opened stream ids with their direction (for WT_MAX_STREAMS credit).
        self._peer_opened: dict[int, bool] = {}
        self._incoming: deque[IncomingStream] | None = None  # made on the first peer stream
        self._incoming_waiters = Waiters()
        self._max_incoming = max_incoming_streams
        self._datagrams: WebTransportDatagramDuplexStream | None = None
        self.close_code: int | None = None
        self.close_reason: str = ""
        self.closed_by_peer = False
        self.status: int | None = None
        self._created = time.monotonic()
        self._stats = {
            "streams_created": 0,
            "streams_accepted": 0,
            "streams_created_uni": 0,
            "streams_accepted_uni": 0,
            "bytes_sent": 0,
            "datagrams_sent": 0,
        }

    # -- properties --------------------------------------------------------
    @property
    def session_id(self) -> str:
        """A string unique among this process's sessions (0.1.x); `id` is the CONNECT stream id."""
        sid = self.__dict__.get("_pwt_session_id")
        if sid is None:
            sid = self.__dict__["_pwt_session_id"] = f"{self._id}-{next(_SESSION_SERIAL)}"
        return sid

    @property
    def id(self) -> int:
        """The session id: the stream id of its CONNECT stream."""
        return self._id

    @property
    def path(self) -> str:
        """The request path of the CONNECT (e.g. ``/chat``)."""
        return self._path

    @property
    def headers(self) -> dict[str, str]:
        """The CONNECT request's headers."""
        return self._headers

    @property
    def state(self) -> SessionState:
        """The session's current `SessionState`."""
        return self._state

    @property
    def is_ready(self) -> bool:
        """True once the session is established and usable."""
        return self._state == SessionState.CONNECTED

    @property
    def is_closed(self) -> bool:
        """True once the session has ended (by either side or the connection)."""
        return self._state is _CLOSED

    @property
    def connection(self) -> "WebTransportConnection":
        """The `WebTransportConnection` that carries this session."""
        return self._connection

    @property
    def remote_address(self) -> tuple[str, int] | None:
        """The peer's ``(host, port)``, or None when unknown."""
        return self._connection.remote_address

    @property
    def peer_certificate(self) -> PeerCertificate | None:
        """The peer's verified TLS certificate (DER, subject, subjectAltNames, SHA-256).

        On a server: the client certificate, when `ServerConfig.verify_mode` asked for one
        and the client sent it (None otherwise). On a client: the server's certificate (None
        with ``CERT_NONE``, where nothing was verified).
        """
        return self._connection.peer_certificate

    @property
    def datagrams(self) -> WebTransportDatagramDuplexStream:
        """The session's datagram channel (created on first use)."""
        if self._state == SessionState.CLOSED:
            raise SessionError(
                f"session {self.session_id} is closed", session_id=self.session_id, session_state=self._state
            )
        if self._datagrams is None:
            self._datagrams = WebTransportDatagramDuplexStream(self)
        return self._datagrams

    def connection_info(self) -> dict[str, Any]:
        """Information about the underlying connection (addresses, RTT, bytes, ...) as a dict."""
        return dict(self._connection.info())

    # -- events from the connection -----------------------------------------
    def _on_established(self, headers: Any, protocol: str | None) -> None:
        self.protocol = protocol
        self.status = 200
        if self._state == SessionState.CONNECTING:
            self._state = SessionState.CONNECTED
            # From now on datagrams go straight to the duplex stream.
            self._connection.session_established(self._id, self.datagrams._feed)
        if not self._ready.done():
            self._ready.set_result(None)
            self._ready_waiters.wake_all()
            if self._ee_listened and EventType.SESSION_READY in self._ee_listening:  # event hook
                self._ee_fire(EventType.SESSION_READY, session_event_data(self))

    def _fail_unsent(self, error: Exception) -> None:
        """A queued session whose request never went out: fail ``ready()``; nothing to close."""
        if self._state == SessionState.CLOSED:
            return
        self._state = SessionState.CLOSED
        self._error = error
        if not self._ready.done():
            self._ready.set_exception(error)
            self._ready.exception()
            self._ready_waiters.wake_all()
        if not self._closed.done():
            self._closed.set_result(None)

    def _on_rejected(self, status: int) -> None:
        self.status = status
        self._finish(
            SessionState.CLOSED,
            SessionRejectedError(f"server rejected the session with HTTP status {status}", status=status),
        )

    def _on_remote_close(self, code: int, reason: str) -> None:
        self.close_code = code
        self.close_reason = reason
        self.closed_by_peer = True
        self._finish(
            SessionState.CLOSED,
            SessionClosedError(
                f"session closed by peer (code {code}, reason {reason!r})",
                code=code,
                reason=reason,
                remote=True,
                session_id=self.session_id,
            ),
        )

    def _on_aborted(self, error_code: int) -> None:
        self.closed_by_peer = True
        self._finish(
            SessionState.CLOSED,
            SessionClosedError(
                f"session aborted (HTTP/3 error 0x{error_code:x})",
                code=error_code,
                remote=True,
                session_id=self.session_id,
            ),
        )

    def _on_drain(self) -> None:
        if self._state == SessionState.CONNECTED:
            self._state = SessionState.DRAINING
            if self._ee_listened and EventType.SESSION_DRAINING in self._ee_listening:  # event hook
                self._ee_fire(EventType.SESSION_DRAINING, {"session_id": self.session_id})

    def _on_connection_lost(self, reason: CloseReason) -> None:
        if self._state != SessionState.CLOSED and reason.initiator == "peer":
            self.closed_by_peer = True
        self._finish(
            SessionState.CLOSED,
            ConnectionError(f"connection {reason.describe()}"),
        )

    def _finish(self, state: SessionState, error: Exception) -> None:
        if self._state == SessionState.CLOSED:
            return
        self._state = state
        self._error = error
        if not self._ready.done():
            self._ready.set_exception(error)
            self._ready.exception()
            self._ready_waiters.wake_all()
        for stream in list(self._streams.values()):
            if isinstance(stream, WebTransportReceiveStream):
                stream._feed_error(StreamError(f"session closed: {error}", stream_id=stream.stream_id))
                # Bytes still in flight belong to a gone session: drop them (counted as consumed).
                stream._discarding = True
        if self._datagrams is not None:
            self._datagrams._close(error)
        if not self._closed.done():
            self._closed.set_result(None)
        self._wake_incoming()
        self._connection.session_finished(self._id)
        if self._ee_listened and EventType.SESSION_CLOSED in self._ee_listening:  # event hook
            self._ee_fire(EventType.SESSION_CLOSED, {"session_id": self.session_id, "code": self.close_code, "reason": self.close_reason})

    def _on_peer_stream(self, quic: QuicStreamTransport, bidi: bool) -> None:
        stream: IncomingStream
        if bidi:
            stream = WebTransportStream(self, quic)
        else:
            stream = WebTransportReceiveStream(self, quic)
        sid = quic.stream_id
        self._streams[sid] = stream
        self._peer_opened[sid] = bidi
        self._stats["streams_accepted"] += 1
        if not bidi:
            self._stats["streams_accepted_uni"] += 1
        self._connection.bind_stream(self, quic, stream)
        if self._ee_listened and EventType.STREAM_OPENED in self._ee_listening:  # event hook
            self._ee_fire(EventType.STREAM_OPENED, stream_event_data(stream))
        incoming = self._incoming
        if incoming is None:
            incoming = self._incoming = deque()
        if len(incoming) >= self._max_incoming:
            stream.abort(0)
            return
        incoming.append(stream)
        self._incoming_waiters.wake_all()

    def _on_stream_released(self, stream_id: int) -> None:
        """The transport released a stream of this session (both directions done)."""
        stream = self._streams.pop(stream_id, None)
        if stream is not None and stream._ee_listened and EventType.STREAM_CLOSED in stream._ee_listening:  # event hook
            stream._ee_fire(EventType.STREAM_CLOSED, {"stream_id": stream_id, "state": str(stream.state)})
        if isinstance(stream, WebTransportReceiveStream) and not stream._eof and stream._error is None:
            # Released without FIN or reset (the connection went away): readers must not hang.
            reason = self._connection.quic.close_reason
            cause = f"connection {reason.describe()}" if reason is not None else "released by the transport"
            stream._feed_error(StreamError(f"stream {stream_id} closed: {cause}", stream_id=stream_id))
        bidi = self._peer_opened.pop(stream_id, None)
        if bidi is not None:
            self._connection.peer_stream_finished(self._id, bidi)

    def _on_stream_data(self, stream_id: int, data: bytes, fin: bool, preconsumed: bool = False) -> None:
        stream = self._streams.get(stream_id)
        if isinstance(stream, WebTransportReceiveStream):
            stream._feed_data(data, fin, preconsumed)

    def _on_stream_error(self, stream_id: int, error: Exception) -> None:
        stream = self._streams.get(stream_id)
        if isinstance(stream, WebTransportReceiveStream):
            stream._feed_error(error)

    def _on_datagram(self, data: bytes) -> None:
        if self._datagrams is None:
            self._datagrams = WebTransportDatagramDuplexStream(self)
        self._datagrams._feed(data)

    async def _send(self, quic: QuicStreamTransport, data: bytes | bytearray | memoryview, fin: bool) -> None:
        await self._connection.send_stream_data(self._id, quic, data, fin)

    def _on_consumed(self, n: int) -> None:
        self._connection.payload_consumed(self._id, n)

    def _count_sent(self, n: int) -> None:
        self._stats["bytes_sent"] += n

    def _wake_incoming(self) -> None:
        self._incoming_waiters.wake_all()

    def _check_usable(self) -> None:
        if self._state == SessionState.CLOSED:
            raise SessionError(
                f"session {self.session_id} is closed", session_id=self.session_id, session_state=self._state
            )
        if self._state == SessionState.CONNECTING:
            raise SessionError(
                f"session {self.session_id} is not ready", session_id=self.session_id, session_state=self._state
            )

    # -- public API --------------------------------------------------------
    async def ready(self, timeout: float | None = 30.0) -> None:
        """Wait until the session is established."""
        ready = self._ready
        if not ready.done() and not await wait_with_timeout(self._ready_waiters.wait(), timeout):
            # A future of its own, set by the answer itself: the caller resumes in the next
            # loop iteration (awaiting the shared future through a shield takes two).
            raise TimeoutError(
                f"session {self.session_id} not ready after {timeout}s",
                timeout_duration=timeout,
                operation="session_ready",
            )
        ready.result()  # the failure, if the session failed

    async def wait_closed(self) -> None:
        """Wait until the session is closed (by either side or the connection)."""
        await asyncio.shield(self._closed)

    async def create_bidirectional_stream(self, timeout: float | None = None) -> WebTransportStream:
        """Open a bidirectional stream; waits for stream credit up to `timeout` seconds."""
        self._check_usable()
        quic = await self._open(bidi=True, timeout=timeout)
        stream = WebTransportStream(self, quic)
        self._streams[quic.stream_id] = stream
        self._stats["streams_created"] += 1
        self._connection.bind_stream(self, quic, stream)
        if self._ee_listened and EventType.STREAM_OPENED in self._ee_listening:  # event hook
            self._ee_fire(EventType.STREAM_OPENED, stream_event_data(stream))
        return stream

    async def create_unidirectional_stream(self, timeout: float | None = None) -> WebTransportSendStream:
        """Open a unidirectional (send-only) stream; waits for stream credit up to `timeout` seconds."""
        self._check_usable()
        quic = await self._open(bidi=False, timeout=timeout)
        stream = WebTransportSendStream(self, quic)
        self._streams[quic.stream_id] = stream
        self._stats["streams_created"] += 1
        self._stats["streams_created_uni"] += 1
        self._connection.bind_stream(self, quic, None)
        if self._ee_listened and EventType.STREAM_OPENED in self._ee_listening:  # event hook
            self._ee_fire(EventType.STREAM_OPENED, stream_event_data(stream))
        return stream

    async def _open(self, *, bidi: bool, timeout: float | None) -> QuicStreamTransport:
        if timeout is None and not self._connection.flow_control_enabled:
            # The common case: no credit to wait for, nothing to await.
            try:
                quic = self._connection.open_stream_nowait(self._id, bidi=bidi)
            except QuicError as exc:
                raise SessionError(f"cannot open stream: {exc}", session_id=self.session_id) from exc
            if quic is not None:
                return quic
        if timeout is None and self._connection.flow_control_enabled:
            # May wait for the peer's WT_MAX_STREAMS credit.
            timeout = self._connection.stream_creation_timeout
        try:
            if timeout is None:
                return await self._connection.open_stream(self._id, bidi=bidi)
            return await asyncio.wait_for(self._connection.open_stream(self._id, bidi=bidi), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(
                "stream creation timed out", timeout_duration=timeout, operation="create_stream"
            ) from None
        except QuicError as exc:
            raise SessionError(f"cannot open stream: {exc}", session_id=self.session_id) from exc

    async def incoming_streams(self) -> AsyncIterator[IncomingStream]:
        """Yield peer-opened streams until the session closes."""
        while True:
            while self._incoming:
                yield self._incoming.popleft()
            if self._state == SessionState.CLOSED:
                return
            await self._incoming_waiters.wait()

    async def close(self, code: int = 0, reason: str = "") -> None:
        """Close the session with an application code and reason (≤ 1024 bytes)."""
        if self._state == SessionState.CLOSED:
            return
        encoded = reason.encode()
        if len(encoded) > 1024:
            reason = encoded[:1024].decode(errors="ignore")
        self.close_code = code
        self.close_reason = reason
        if self._state == SessionState.CONNECTING:
            self._connection.cancel_session(self._id)
        else:
            self._connection.close_session(self._id, code, reason)
        self._finish(
            SessionState.CLOSED,
            SessionClosedError("session closed locally", code=code, reason=reason, session_id=self.session_id),
        )

    def drain(self) -> None:
        """Tell the peer to wrap up (DRAIN_WEBTRANSPORT_SESSION)."""
        if self._state == SessionState.CONNECTED:
            self._connection.drain_session(self._id)
            self._state = SessionState.DRAINING

    # -- server side --------------------------------------------------------
    def accept(self, protocol: str | None = None) -> None:
        """Server side: accept the session request (answers 200), optionally selecting `protocol`."""
        self._connection.accept_session(self._id, protocol)
        self.protocol = protocol
        self._on_established((), protocol)

    def reject(self, status: int = 404) -> None:
        """Server side: refuse the session request with HTTP `status`."""
        self._connection.reject_session(self._id, status)

    # -- stats --------------------------------------------------------------
    def get_session_stats(self) -> SessionStats:
        """Counters of this session (a dict-like `SessionStats`)."""
        received = self._datagrams.datagrams_received if self._datagrams is not None else 0
        return SessionStats(
            {
                **self._stats,
                "datagrams_received": received,
                "uptime": time.monotonic() - self._created,
                "state": str(self._state),
            }
        )

    @property
    def stats(self) -> SessionStats:
        """Counters of this session (same as `get_session_stats()`)."""
        return self.get_session_stats()

    def get_summary(self) -> dict[str, Any]:
        """Session id, path and counters in one dict."""
        return {"session_id": self.session_id, "path": self._path, **self.get_session_stats()}

    def debug_state(self) -> dict[str, Any]:
        """The summary plus the ids of the session's open streams."""
        return {**self.get_summary(), "streams": sorted(self._streams)}

    async def __aenter__(self) -> "WebTransportSession":
        await self.ready()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<WebTransportSession id={self._id} path={self._path!r} state={self._state}>"
