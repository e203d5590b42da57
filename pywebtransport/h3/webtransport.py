"""WebTransport sessions in the sans-IO HTTP/3 core.

Everything specific to WebTransport over HTTP/3 lives here: the session
table and its state machine, the extended CONNECT and its answer, stream
headers (0x41 / 0x54 + session ID), streams and datagrams that arrive
before their session is usable, capsules on the CONNECT stream
(CLOSE / DRAIN / DATAGRAM / WT_MAX_DATA / WT_MAX_STREAMS) and session
flow-control accounting.  The receive-credit *policy* (when to raise the
limits) is in :mod:`.wt_credit`.

:class:`WebTransportSessions` is a base of
:class:`~pywebtransport.h3.connection.H3Connection`, which owns the stream
table, the request/control/QPACK stream parsing and the SETTINGS, and
calls into this part when a CONNECT, a WebTransport stream, a capsule or a
datagram shows up.
"""

from __future__ import annotations

import functools
from collections import deque
from typing import Iterable, Sequence

from ._streams import H3Config, UniStreamType, _is_client_initiated, _is_uni, _Kind, _Stream, _validate_local_fields
from .capsules import (
    Capsule,
    CapsuleParser,
    CloseSessionCapsule,
    DataBlockedCapsule,
    DatagramCapsule,
    DrainSessionCapsule,
    MaxDataCapsule,
    MaxStreamsCapsule,
    StreamsBlockedCapsule,
    encode_close_session,
    encode_data_blocked,
    encode_drain_session,
    encode_max_data,
    encode_max_streams,
    encode_streams_blocked,
)
from .errors import (
    DatagramError,
    ErrorCode,
    H3Error,
    H3UsageError,
    IdError,
    MessageError,
    SessionStateError,
    WebTransportFlowControlError,
)
from .events import (
    DatagramReceived,
    H3Event,
    SessionCloseReceived,
    SessionDrainReceived,
    SessionFlowControlUpdated,
    StreamResetRequested,
    StreamStopRequested,
    WebTransportStreamDataReceived,
    WebTransportStreamOpened,
)
from .frames import FrameType, encode_data_frame_header
from .messages import REQUEST_PSEUDO_HEADERS, RESPONSE_PSEUDO_HEADERS
from .session_state import SessionInput, SessionState, SessionStateMachine
from .settings import PeerSettings
from .structured_fields import serialize_string, serialize_string_list
from .varint import decode_varint, encode_varint


def _wt_header_in(stream_id: int, data: bytes) -> tuple[int, int] | None:
    """(session id, header length) when ``data`` starts with a whole WebTransport stream header."""
    first = decode_varint(data, 0)
    if first is None:
        return None
    signal, offset = first
    if signal != (UniStreamType.WEBTRANSPORT if _is_uni(stream_id) else FrameType.WEBTRANSPORT_STREAM):
        return None
    return decode_varint(data, offset)


@functools.lru_cache(maxsize=1024)
def _stream_prefix(session_id: int, bidi: bool) -> bytes:
    signal = FrameType.WEBTRANSPORT_STREAM if bidi else UniStreamType.WEBTRANSPORT
    return encode_varint(signal) + encode_varint(session_id)

__all__ = ["WT_PROTOCOL_DRAFT02", "WT_PROTOCOL_H3", "WebTransportSessions"]

HeaderList = Iterable[tuple[bytes, bytes]]

WT_PROTOCOL_DRAFT02 = "webtransport"
WT_PROTOCOL_H3 = "webtransport-h3"
_WT_PROTOCOLS = frozenset((WT_PROTOCOL_DRAFT02.encode(), WT_PROTOCOL_H3.encode()))

_REQUEST_PSEUDO = REQUEST_PSEUDO_HEADERS
_RESPONSE_PSEUDO = RESPONSE_PSEUDO_HEADERS

_USABLE_STATES = (SessionState.OPEN, SessionState.DRAINING)
_LIVE_STATES = (SessionState.OPEN, SessionState.DRAINING, SessionState.CONNECTING)


class _Session:
    __slots__ = (
        "session_id",
        "machine",
        "capsules",
        "close_received",
        "streams",
        "offered_protocols",
        "draft02",
        "datagrams",
        "flow_control",
        "local_max_data",
        "local_max_streams_bidi",
        "local_max_streams_uni",
        "peer_max_data",
        "peer_max_streams_bidi",
        "peer_max_streams_uni",
        "data_received",
        "data_sent",
        "peer_opened_bidi",
        "peer_opened_uni",
        "local_opened_bidi",
        "local_opened_uni",
    )

    def __init__(self, session_id: int, max_capsule_size: int) -> None:
        self.session_id = session_id
        self.machine = SessionStateMachine()
        self.capsules = CapsuleParser(max_capsule_size)
        self.close_received = False
        self.streams: set[int] = set()
        self.offered_protocols: tuple[str, ...] = ()
        self.draft02 = False
        self.datagrams: list[bytes] = []
        self.flow_control = False
        self.local_max_data = 0
        self.local_max_streams_bidi = 0
        self.local_max_streams_uni = 0
        self.peer_max_data = 0
        self.peer_max_streams_bidi = 0
        self.peer_max_streams_uni = 0
        self.data_received = 0
        self.data_sent = 0
        self.peer_opened_bidi = 0
        self.peer_opened_uni = 0
        self.local_opened_bidi = 0
        self.local_opened_uni = 0

    @property
    def state(self) -> SessionState:
        return self.machine.state

    @property
    def usable(self) -> bool:
        return self.machine.state in _USABLE_STATES

    @property
    def live(self) -> bool:
        return self.machine.state in _LIVE_STATES


class WebTransportSessions:
    """The WebTransport part of the HTTP/3 core (a base of ``H3Connection``).

    It works on state the connection creates in its ``__init__``; the
    annotations below name that state.
    """

    #: WT_DATA_BLOCKED / WT_STREAMS_BLOCKED capsules received (informational; flow control on).
    blocked_capsules_received = 0

    is_client: bool
    config: H3Config
    _peer_settings: PeerSettings | None
    _streams: dict[int, _Stream]
    _sessions: dict[int, _Session]
    _closed_sessions: deque[int] | None
    _early_streams: dict[int, list[int]]
    _early_stream_count: int
    _early_datagrams: dict[int, list[bytes]]
    _early_datagram_count: int
    _goaway_received: int | None
    _pending_events: list[H3Event]
    _error: H3Error | None

    # Provided by H3Connection.
    def _headers_frame(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        raise NotImplementedError

    def _new_request_stream(self, stream_id: int) -> _Stream:
        raise NotImplementedError

    def _is_local(self, stream_id: int) -> bool:
        return _is_client_initiated(stream_id) == self.is_client

    def _was_closed(self, session_id: int) -> bool:
        closed = self._closed_sessions
        return closed is not None and session_id in closed

    def pop_events(self) -> list[H3Event]:
        """Events made ready by a local call (e.g. streams released by ``accept_session``)."""
        events, self._pending_events = self._pending_events, []
        return events

    @property
    def flow_control_enabled(self) -> bool:
        """WebTransport flow control is on: both peers sent a non-zero FC setting."""
        config = self.config
        local = bool(config.initial_max_data or config.initial_max_streams_bidi or config.initial_max_streams_uni)
        return local and self._peer_settings is not None and self._peer_settings.flow_control

    def session_state(self, session_id: int) -> SessionState | None:
        session = self._sessions.get(session_id)
        return session.state if session else None

    def session_stream_ids(self, session_id: int) -> list[int]:
        """IDs of all WebTransport streams of a session (for WT_SESSION_GONE resets)."""
        session = self._sessions.get(session_id)
        ids = set(session.streams) if session else set()
        ids.update(self._early_streams.get(session_id, ()))
        return sorted(ids)

    def reset_session_streams(self, session_id: int, code: int = ErrorCode.WT_SESSION_GONE) -> list[H3Event]:
        """Reset/stop requests ending every stream of a finished session.

        Bidirectional streams get both, unidirectional ones only the direction
        that exists locally.  Further data on those streams is discarded.
        """
        events: list[H3Event] = []
        for stream_id in self.session_stream_ids(session_id):
            stream = self._streams.get(stream_id)
            if stream is not None:
                stream.kind = _Kind.IGNORED
                stream.buffered = None
            if not _is_uni(stream_id) or not self._is_local(stream_id):
                events.append(StreamStopRequested(stream_id, code))
            if not _is_uni(stream_id) or self._is_local(stream_id):
                events.append(StreamResetRequested(stream_id, code))
        return events

    def session_send_credit(self, session_id: int) -> int | None:
        """Bytes the session may still send; ``None`` when flow control is off."""
        session = self._require_session(session_id)
        if not session.flow_control:
            return None
        return max(0, session.peer_max_data - session.data_sent)

    def can_open_stream(self, session_id: int, bidi: bool) -> bool:
        """Whether the peer's stream limit allows another WebTransport stream."""
        session = self._sessions.get(session_id)
        if session is None or not session.usable:
            return False
        if not session.flow_control:
            return True
        if bidi:
            return session.local_opened_bidi < session.peer_max_streams_bidi
        return session.local_opened_uni < session.peer_max_streams_uni

    def connect_session(
        self,
        stream_id: int,
        *,
        authority: str,
        path: str,
        origin: str | None = None,
        protocols: Sequence[str] = (),
        headers: HeaderList = (),
    ) -> bytes:
        """Client: the extended CONNECT opening a WebTransport session.

        Needs the server's SETTINGS first.  ``:protocol`` is ``webtransport-h3``
        when the server announced SETTINGS_WT_ENABLED, else ``webtransport``
        with the draft-02 version header.
        """
        if not self.is_client:
            raise H3UsageError("only clients open sessions")
        peer = self._peer_settings
        if peer is None:
            raise H3UsageError("the server's SETTINGS have not arrived yet")
        if not peer.supports_webtransport:
            raise H3UsageError("the server does not support WebTransport")
        if self._goaway_received is not None and stream_id >= self._goaway_received:
            raise H3UsageError("the server sent GOAWAY")
        if stream_id in self._streams or _is_uni(stream_id) or not _is_client_initiated(stream_id):
            raise H3UsageError(f"stream {stream_id} cannot carry a new session")
        if sum(1 for s in self._sessions.values() if s.live) >= self._session_limit():
            raise H3UsageError("the peer does not allow another session")
        protocol = WT_PROTOCOL_H3 if peer.webtransport_h3 else WT_PROTOCOL_DRAFT02
        header_list: list[tuple[bytes, bytes]] = [
            (b":method", b"CONNECT"),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
            (b":protocol", protocol.encode()),
        ]
        if protocol == WT_PROTOCOL_DRAFT02:
            header_list.append((b"sec-webtransport-http3-draft02", b"1"))
        if origin is not None:
            header_list.append((b"origin", origin.encode()))
        if protocols:
            try:
                header_list.append((b"wt-available-protocols", serialize_string_list(tuple(protocols))))
            except ValueError as exc:
                raise H3UsageError(str(exc)) from None
        header_list.extend(headers)
        _validate_local_fields(header_list, _REQUEST_PSEUDO)
        frame = self._headers_frame(header_list)
        session = self._new_session(stream_id)
        session.offered_protocols = tuple(protocols)
        session.draft02 = protocol == WT_PROTOCOL_DRAFT02
        session.machine.process(SessionInput.REQUEST_SENT)
        stream = self._new_request_stream(stream_id)
        stream.session_id = stream_id
        return frame

    def accept_session(
        self, stream_id: int, protocol: str | None = None, extra_headers: HeaderList = ()
    ) -> bytes:
        """Server: the 2xx response establishing a requested session.

        Streams and datagrams that arrived early become available through
        :meth:`pop_events`.
        """
        session = self._pending_session(stream_id)
        header_list: list[tuple[bytes, bytes]] = [(b":status", b"200")]
        if session.draft02:
            header_list.append((b"sec-webtransport-http3-draft", b"draft02"))
        if protocol is not None:
            if protocol not in session.offered_protocols:
                raise H3UsageError(f"subprotocol {protocol!r} was not offered")
            try:
                header_list.append((b"wt-protocol", serialize_string(protocol)))
            except ValueError as exc:
                raise H3UsageError(str(exc)) from None
        header_list.extend(extra_headers)
        _validate_local_fields(header_list, _RESPONSE_PSEUDO)
        frame = self._headers_frame(header_list)
        session.machine.process(SessionInput.RESPONSE_2XX)
        self._pending_events.extend(self._release_early(session))
        return frame

    def reject_session(self, stream_id: int, status: int = 404, extra_headers: HeaderList = ()) -> bytes:
        """Server: a non-2xx response refusing a session; the adapter then FINs."""
        if 200 <= status < 300 or not 100 <= status <= 999:
            raise H3UsageError(f"status {status} cannot reject a session")
        session = self._pending_session(stream_id)
        header_list = [(b":status", str(status).encode()), *extra_headers]
        _validate_local_fields(header_list, _RESPONSE_PSEUDO)
        frame = self._headers_frame(header_list)
        session.machine.process(SessionInput.RESPONSE_REJECTED)
        self._pending_events.extend(self._reject_early(session.session_id))
        self._forget_session(session)
        return frame

    @staticmethod
    def webtransport_stream_prefix(session_id: int, bidi: bool) -> bytes:
        """The header of a WebTransport stream (0x41 or 0x54, then the session ID)."""
        return _stream_prefix(session_id, bidi)

    def open_webtransport_stream(self, session_id: int, stream_id: int, bidi: bool) -> bytes:
        """Register a stream the adapter opened for a session; returns its header."""
        session = self._require_session(session_id)
        if not session.usable:
            raise H3UsageError(f"session {session_id} is {session.state.value}")
        if not self._is_local(stream_id) or _is_uni(stream_id) == bidi or stream_id in self._streams:
            raise H3UsageError(f"stream {stream_id} cannot be a new local {'bidi' if bidi else 'uni'} stream")
        if not self.can_open_stream(session_id, bidi):
            raise H3UsageError("the peer's WebTransport stream limit is reached")
        if bidi:
            session.local_opened_bidi += 1
        else:
            session.local_opened_uni += 1
        stream = _Stream(stream_id, _Kind.WEBTRANSPORT)
        stream.session_id = session_id
        stream.announced = True
        self._streams[stream_id] = stream
        session.streams.add(stream_id)
        return self.webtransport_stream_prefix(session_id, bidi)

    def record_sent_data(self, session_id: int, length: int) -> None:
        """Account ``length`` payload bytes sent on the session's streams."""
        session = self._require_session(session_id)
        if session.flow_control and session.data_sent + length > session.peer_max_data:
            raise H3UsageError("the peer's WebTransport data limit is exceeded")
        session.data_sent += length

    def encode_datagram(self, session_id: int, payload: bytes) -> bytes:
        """A QUIC DATAGRAM payload for the session (quarter stream ID prefix)."""
        session = self._sessions.get(session_id)
        if session is None or not session.usable:
            raise H3UsageError(f"session {session_id} cannot send datagrams")
        return encode_varint(session_id >> 2) + payload

    def close_session_data(self, session_id: int, code: int = 0, reason: str = "") -> bytes:
        """CLOSE_WEBTRANSPORT_SESSION in its own DATA frame; the adapter then FINs.

        Do not STOP_SENDING the CONNECT stream first (Chromium would drop the capsule).
        """
        session = self._require_session(session_id)
        capsule = encode_close_session(code, reason)
        self._local_input(session, SessionInput.CLOSE_SENT)
        return encode_data_frame_header(len(capsule)) + capsule

    def drain_session_data(self, session_id: int) -> bytes:
        """DRAIN_WEBTRANSPORT_SESSION in its own DATA frame."""
        session = self._require_session(session_id)
        self._local_input(session, SessionInput.DRAIN_SENT)
        capsule = encode_drain_session()
        return encode_data_frame_header(len(capsule)) + capsule

    def grant_session_credit(
        self,
        session_id: int,
        *,
        max_data: int | None = None,
        max_streams_bidi: int | None = None,
        max_streams_uni: int | None = None,
    ) -> bytes:
        """WT_MAX_DATA / WT_MAX_STREAMS capsules raising our limits (flow control on)."""
        session = self._require_session(session_id)
        if not session.flow_control:
            raise H3UsageError("WebTransport flow control is not negotiated")
        out = b""
        if max_data is not None and max_data > session.local_max_data:
            session.local_max_data = max_data
            out += encode_max_data(max_data)
        if max_streams_bidi is not None and max_streams_bidi > session.local_max_streams_bidi:
            session.local_max_streams_bidi = max_streams_bidi
            out += encode_max_streams(True, max_streams_bidi)
        if max_streams_uni is not None and max_streams_uni > session.local_max_streams_uni:
            session.local_max_streams_uni = max_streams_uni
            out += encode_max_streams(False, max_streams_uni)
        return encode_data_frame_header(len(out)) + out if out else b""

    def session_blocked_data(self, session_id: int, *, data: bool = False, bidi: bool | None = None) -> bytes:
        """WT_DATA_BLOCKED and/or WT_STREAMS_BLOCKED (one DATA frame) at the peer's current limits.

        For a sender held back by the peer's WT_MAX_DATA (``data``) or WT_MAX_STREAMS (``bidi``:
        which stream kind).  Empty when flow control is off or the session is not usable.
        """
        session = self._sessions.get(session_id)
        if session is None or not session.usable or not session.flow_control:
            return b""
        out = b""
        if data:
            out += encode_data_blocked(session.peer_max_data)
        if bidi is not None:
            limit = session.peer_max_streams_bidi if bidi else session.peer_max_streams_uni
            out += encode_streams_blocked(bidi, limit)
        return encode_data_frame_header(len(out)) + out if out else b""

    def connection_lost(self) -> None:
        """The QUIC connection is gone; end every session."""
        for session in self._sessions.values():
            session.machine.process(SessionInput.CONNECTION_LOST)

    def receive_datagram(self, data: bytes) -> list[H3Event]:
        """Process a QUIC DATAGRAM payload."""
        if self._error is not None:
            return []
        parsed = decode_varint(data, 0)
        if parsed is None:
            self._error = DatagramError("malformed datagram")
            raise self._error
        quarter, offset = parsed
        session_id = quarter << 2
        payload = data[offset:]
        events = self.pop_events()
        session = self._sessions.get(session_id)
        if session is not None and session.usable:
            events.append(DatagramReceived(session_id, payload))
        elif (session is None or session.state is SessionState.CONNECTING) and not self._was_closed(session_id):
            if self._early_datagram_count < self.config.max_buffered_datagrams:
                self._early_datagrams.setdefault(session_id, []).append(payload)
                self._early_datagram_count += 1
        return events

    def bound_stream_data(self, session_id: int, length: int) -> None:
        """Account ``length`` payload bytes the adapter delivered straight to a bound stream.

        Once :class:`WebTransportStreamOpened` was dispatched and the adapter
        bound the stream to its session, later payload bypasses
        :meth:`receive_stream_data`; only session flow control needs to see
        it.  Raises :class:`H3Error` (close the connection) when the peer
        exceeds the session's WT_MAX_DATA.
        """
        if self._error is not None:
            return
        session = self._sessions.get(session_id)
        if session is None or not session.flow_control:
            return
        session.data_received += length
        if session.data_received > session.local_max_data:
            self._error = WebTransportFlowControlError("peer exceeded the WebTransport data limit")
            raise self._error

    def session_flow_control(self, session_id: int) -> bool:
        """Whether WebTransport flow control applies to this session."""
        session = self._sessions.get(session_id)
        return session is not None and session.flow_control

    def holds_early(self, stream_id: int) -> bool:
        """Whether ``stream_id`` waits (with its bytes) for its session to open.

        The adapter must keep such a stream's transport object until the
        session is accepted or rejected, even if QUIC is done with it.
        """
        stream = self._streams.get(stream_id)
        if stream is None or stream.session_id is None:
            return False
        return stream_id in self._early_streams.get(stream.session_id, ())

    def session_limit(self) -> int:
        """Concurrent sessions allowed on this connection by our SETTINGS and the peer's."""
        return self._session_limit()

    def _session_limit(self) -> int:
        peer = self._peer_settings
        if peer is None:
            return 1
        multiple = self.flow_control_enabled or (self.config.max_sessions > 1 and peer.max_sessions > 1)
        return max(1, self.config.max_sessions) if multiple else 1

    def _require_session(self, session_id: int) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise H3UsageError(f"unknown session {session_id}")
        return session

    def _pending_session(self, stream_id: int) -> _Session:
        if self.is_client:
            raise H3UsageError("only servers answer session requests")
        session = self._require_session(stream_id)
        if session.state is not SessionState.CONNECTING:
            raise H3UsageError(f"session {stream_id} is {session.state.value}")
        return session

    def _local_input(self, session: _Session, event: SessionInput) -> None:
        try:
            session.machine.process(event)
        except SessionStateError as exc:
            raise H3UsageError(str(exc)) from None
        if event is SessionInput.CLOSE_SENT:
            self._pending_events.extend(self._reject_early(session.session_id))

    def _new_session(self, session_id: int) -> _Session:
        session = _Session(session_id, self.config.max_capsule_size)
        if self.flow_control_enabled:
            peer = self._peer_settings
            assert peer is not None
            session.flow_control = True
            session.local_max_data = self.config.initial_max_data
            session.local_max_streams_bidi = self.config.initial_max_streams_bidi
            session.local_max_streams_uni = self.config.initial_max_streams_uni
            session.peer_max_data = peer.initial_max_data
            session.peer_max_streams_bidi = peer.initial_max_streams_bidi
            session.peer_max_streams_uni = peer.initial_max_streams_uni
        self._sessions[session_id] = session
        return session

    def _forget_session(self, session: _Session) -> None:
        self._sessions.pop(session.session_id, None)
        closed = self._closed_sessions
        if closed is None:
            closed = self._closed_sessions = deque(maxlen=max(1, self.config.closed_sessions_remembered))
        closed.append(session.session_id)
        self._early_datagram_count -= len(self._early_datagrams.pop(session.session_id, ()))

    def _wt_prefix(self, stream: _Stream, offset: int, *, bidi: bool, fin: bool, events: list[H3Event]) -> None:
        buf = stream.prefix
        parsed = decode_varint(buf, offset)
        if parsed is None:
            if fin:
                stream.kind = _Kind.IGNORED
            return
        session_id, offset = parsed
        rest = bytes(buf[offset:])
        buf.clear()
        self._wt_header(stream, session_id, rest, bidi=bidi, fin=fin, events=events)

    def webtransport_stream_started(self, stream_id: int, data: bytes) -> tuple[int, int] | None:
        """Fast path for the first chunk of a peer's WebTransport stream.

        When ``stream_id`` is new, ``data`` holds its whole header and the session is
        usable without WebTransport flow control, the stream is registered as
        :meth:`receive_stream_data` would and ``(session id, header length)`` is
        returned: the caller delivers the rest of ``data`` as the stream's first payload
        (no events are made).  ``None`` means nothing was changed: use
        :meth:`receive_stream_data`.
        """
        if self._error is not None or stream_id in self._streams or self._is_local(stream_id):
            return None
        header = _wt_header_in(stream_id, data)
        if header is None:
            return None
        session_id, offset = header
        session = self._sessions.get(session_id)
        if session_id & 0x3 or session is None or not session.usable or session.flow_control:
            return None
        stream = _Stream(stream_id, _Kind.WEBTRANSPORT)
        stream.session_id = session_id
        stream.announced = True
        self._streams[stream_id] = stream
        session.streams.add(stream_id)
        return session_id, offset

    def _wt_first_chunk(self, stream: _Stream, data: bytes, fin: bool, events: list[H3Event]) -> bool:
        """Fast path: a new stream whose first chunk holds a whole WebTransport header.

        Returns False (nothing consumed) when the chunk needs the general parser.
        """
        header = _wt_header_in(stream.stream_id, data)
        if header is None:
            return False
        session_id, offset = header
        bidi = not _is_uni(stream.stream_id)
        self._wt_header(stream, session_id, data[offset:], bidi=bidi, fin=fin, events=events)
        return True

    def _wt_header(
        self, stream: _Stream, session_id: int, rest: bytes, *, bidi: bool, fin: bool, events: list[H3Event]
    ) -> None:
        if session_id & 0x3:
            raise IdError(f"invalid WebTransport session ID {session_id}")
        stream.kind = _Kind.WEBTRANSPORT
        stream.session_id = session_id
        self._wt_new_stream(stream, bidi, events)
        if stream.kind is _Kind.WEBTRANSPORT:
            self._wt_data(stream, rest, fin, events)

    def _wt_new_stream(self, stream: _Stream, bidi: bool, events: list[H3Event]) -> None:
        session_id = stream.session_id
        assert session_id is not None
        session = self._sessions.get(session_id)
        if (session is not None and not session.live) or (session is None and self._was_closed(session_id)):
            self._refuse_stream(stream, ErrorCode.WT_SESSION_GONE, events)
            return
        if session is not None:
            if session.flow_control:
                if bidi:
                    session.peer_opened_bidi += 1
                    over = session.peer_opened_bidi > session.local_max_streams_bidi
                else:
                    session.peer_opened_uni += 1
                    over = session.peer_opened_uni > session.local_max_streams_uni
                if over:
                    raise WebTransportFlowControlError("peer exceeded the WebTransport stream limit")
            session.streams.add(stream.stream_id)
            if session.usable:
                return
        if self._early_stream_count >= self.config.max_buffered_streams:
            if session is not None:
                session.streams.discard(stream.stream_id)
            self._refuse_stream(stream, ErrorCode.WT_BUFFERED_STREAM_REJECTED, events)
            return
        self._early_streams.setdefault(session_id, []).append(stream.stream_id)
        self._early_stream_count += 1

    def _refuse_stream(self, stream: _Stream, code: int, events: list[H3Event]) -> None:
        stream.kind = _Kind.IGNORED
        stream.buffered = None
        events.append(StreamStopRequested(stream.stream_id, code))
        if not _is_uni(stream.stream_id):
            events.append(StreamResetRequested(stream.stream_id, code))

    def _wt_data(self, stream: _Stream, data: bytes, fin: bool, events: list[H3Event]) -> None:
        session_id = stream.session_id
        assert session_id is not None
        session = self._sessions.get(session_id)
        if session is not None and session.flow_control and data:
            session.data_received += len(data)
            if session.data_received > session.local_max_data:
                raise WebTransportFlowControlError("peer exceeded the WebTransport data limit")
        if session is not None and session.usable:
            if not stream.announced:
                stream.announced = True
                events.append(WebTransportStreamOpened(session_id, stream.stream_id, not _is_uni(stream.stream_id)))
            if data or fin:
                events.append(WebTransportStreamDataReceived(session_id, stream.stream_id, data, fin))
            return
        if session is not None and not session.live:
            # Session over: its streams were (or are being) reset; discard.
            return
        if data:
            if stream.buffered is None:
                stream.buffered = []
            stream.buffered.append(data)
            stream.buffered_bytes += len(data)
        stream.buffered_fin = stream.buffered_fin or fin
        if stream.buffered_bytes > self.config.max_buffered_stream_bytes:
            self._drop_early(stream)
            self._refuse_stream(stream, ErrorCode.WT_BUFFERED_STREAM_REJECTED, events)

    def _drop_early(self, stream: _Stream) -> None:
        stream.kind = _Kind.IGNORED
        stream.buffered = None
        if stream.session_id is None:
            return
        early = self._early_streams.get(stream.session_id)
        if early and stream.stream_id in early:
            early.remove(stream.stream_id)
            self._early_stream_count -= 1
        session = self._sessions.get(stream.session_id)
        if session is not None:
            session.streams.discard(stream.stream_id)

    def _release_early(self, session: _Session) -> list[H3Event]:
        """Events for streams/datagrams that waited for ``session`` to open."""
        events: list[H3Event] = []
        session_id = session.session_id
        for stream_id in self._early_streams.pop(session_id, ()):
            self._early_stream_count -= 1
            stream = self._streams.get(stream_id)
            if stream is None or stream.kind is not _Kind.WEBTRANSPORT:
                continue
            session.streams.add(stream_id)
            stream.announced = True
            events.append(WebTransportStreamOpened(session_id, stream_id, not _is_uni(stream_id)))
            if stream.buffered or stream.buffered_fin:
                payload = b"".join(stream.buffered or ())
                events.append(WebTransportStreamDataReceived(session_id, stream_id, payload, stream.buffered_fin))
            stream.buffered = None
        datagrams = self._early_datagrams.pop(session_id, [])
        self._early_datagram_count -= len(datagrams)
        events.extend(DatagramReceived(session_id, d) for d in datagrams)
        return events

    def _reject_early(self, session_id: int) -> list[H3Event]:
        events: list[H3Event] = []
        for stream_id in self._early_streams.pop(session_id, ()):
            self._early_stream_count -= 1
            stream = self._streams.get(stream_id)
            if stream is not None:
                self._refuse_stream(stream, ErrorCode.WT_SESSION_GONE, events)
        self._early_datagram_count -= len(self._early_datagrams.pop(session_id, ()))
        return events

    def _connect_body(self, stream: _Stream, payload: bytes, events: list[H3Event]) -> None:
        session = self._sessions.get(stream.session_id) if stream.session_id is not None else None
        if session is None or not payload:
            return
        if session.close_received:
            raise MessageError("data after CLOSE_WEBTRANSPORT_SESSION")
        for capsule in session.capsules.feed(payload):
            if session.close_received:
                raise MessageError("capsule after CLOSE_WEBTRANSPORT_SESSION")
            self._capsule(session, capsule, events)

    def _capsule(self, session: _Session, capsule: Capsule, events: list[H3Event]) -> None:
        session_id = session.session_id
        if isinstance(capsule, CloseSessionCapsule):
            was_live = session.live
            session.close_received = True
            session.machine.process(SessionInput.CLOSE_RECEIVED)
            if was_live:
                events.append(SessionCloseReceived(session_id, capsule.code, capsule.reason))
                events.extend(self._reject_early(session_id))
        elif isinstance(capsule, DrainSessionCapsule):
            if session.state is not SessionState.CONNECTING:
                session.machine.process(SessionInput.DRAIN_RECEIVED)
                if session.usable:
                    events.append(SessionDrainReceived(session_id))
        elif isinstance(capsule, DatagramCapsule):
            if session.usable:
                events.append(DatagramReceived(session_id, capsule.payload))
        elif isinstance(capsule, (MaxDataCapsule, MaxStreamsCapsule)):
            # Without negotiated flow control these capsules are ignored.
            if session.flow_control:
                self._flow_control_capsule(session, capsule, events)
        elif isinstance(capsule, (DataBlockedCapsule, StreamsBlockedCapsule)):
            if session.flow_control:
                self.blocked_capsules_received += 1

    def _flow_control_capsule(
        self, session: _Session, capsule: MaxDataCapsule | MaxStreamsCapsule, events: list[H3Event]
    ) -> None:
        if isinstance(capsule, MaxDataCapsule):
            if capsule.maximum < session.peer_max_data:
                raise WebTransportFlowControlError("WT_MAX_DATA decreased")
            session.peer_max_data = capsule.maximum
        elif capsule.bidi:
            if capsule.maximum < session.peer_max_streams_bidi:
                raise WebTransportFlowControlError("WT_MAX_STREAMS decreased")
            session.peer_max_streams_bidi = capsule.maximum
        else:
            if capsule.maximum < session.peer_max_streams_uni:
                raise WebTransportFlowControlError("WT_MAX_STREAMS decreased")
            session.peer_max_streams_uni = capsule.maximum
        events.append(
            SessionFlowControlUpdated(
                session.session_id, session.peer_max_data, session.peer_max_streams_bidi, session.peer_max_streams_uni
            )
        )
