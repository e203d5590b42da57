"""Sans-IO HTTP/3 connection with WebTransport sessions.

:class:`H3Connection` never does I/O and never opens streams: msquic assigns
stream IDs, so the adapter opens streams itself and tells the core which ID it
got.  Input arrives through ``receive_*`` calls, which return events; every
``send``-style method returns the bytes the adapter must write.

Adapter duties, in short:

* open three unidirectional streams and write ``local_control_stream_data()``,
  ``local_qpack_encoder_stream_data()`` and ``local_qpack_decoder_stream_data()``;
* feed every stream's data, resets and STOP_SENDINGs, and every DATAGRAM;
* act on :class:`StreamStopRequested` / :class:`StreamResetRequested`;
* turn a raised :class:`H3Error` into CONNECTION_CLOSE with ``error.code``;
* when a session ends, reset/stop ``session_stream_ids(session_id)`` with
  ``WT_SESSION_GONE``; after ``close_session_data`` FIN the CONNECT stream.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Iterable, Sequence

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
    ClosedCriticalStreamError,
    DatagramError,
    ErrorCode,
    FrameError,
    FrameUnexpectedError,
    H3Error,
    H3StreamError,
    H3UsageError,
    IdError,
    MessageError,
    MissingSettingsError,
    RequestIncompleteError,
    SessionStateError,
    StreamCreationError,
    WebTransportFlowControlError,
    http3_code_to_webtransport,
)
from .events import (
    DatagramReceived,
    DataReceived,
    GoawayReceived,
    H3Event,
    HeadersReceived,
    SessionAborted,
    SessionCloseReceived,
    SessionDrainReceived,
    SessionFlowControlUpdated,
    SettingsReceived,
    StopSendingReceived,
    StreamResetReceived,
    StreamResetRequested,
    StreamStopRequested,
    WebTransportSessionEstablished,
    WebTransportSessionRejected,
    WebTransportSessionRequested,
    WebTransportStreamDataReceived,
    WebTransportStreamOpened,
)
from .frames import Frame, FrameParser, FrameType, decode_id_payload, encode_data_frame_header, encode_frame
from .messages import (
    REQUEST_PSEUDO_HEADERS,
    RESPONSE_PSEUDO_HEADERS,
    header_value,
    parse_status,
    validate_fields,
    validate_request,
)
from .qpack import (
    DecoderStreamParser,
    EncoderStreamParser,
    decode_field_section,
    encode_field_section,
    field_section_size,
)
from .session_state import SessionInput, SessionState, SessionStateMachine
from .settings import PeerSettings, decode_settings, encode_settings, local_settings
from .structured_fields import parse_string_item, parse_string_list, serialize_string, serialize_string_list
from .varint import decode_varint, encode_varint

__all__ = ["H3Config", "H3Connection", "UniStreamType"]

HeaderList = Iterable[tuple[bytes, bytes]]

WT_PROTOCOL_DRAFT02 = "webtransport"
WT_PROTOCOL_H3 = "webtransport-h3"
_WT_PROTOCOLS = frozenset((WT_PROTOCOL_DRAFT02.encode(), WT_PROTOCOL_H3.encode()))

_REQUEST_PSEUDO = REQUEST_PSEUDO_HEADERS
_RESPONSE_PSEUDO = RESPONSE_PSEUDO_HEADERS


class UniStreamType:
    CONTROL = 0x00
    PUSH = 0x01
    QPACK_ENCODER = 0x02
    QPACK_DECODER = 0x03
    WEBTRANSPORT = 0x54


@dataclass(frozen=True, slots=True)
class H3Config:
    """Knobs of the HTTP/3 core; defaults suit a browser-facing endpoint."""

    #: Largest decoded field section we accept; advertised as MAX_FIELD_SECTION_SIZE.
    max_field_section_size: int = 16384
    #: Largest payload of a non-DATA frame (HEADERS, SETTINGS, ...).
    max_frame_payload_size: int = 65536
    #: Largest known capsule on a CONNECT stream (unknown ones are skipped).
    max_capsule_size: int = 65536
    #: Send H3_DATAGRAM=1; only if the QUIC max_datagram_frame_size TP is sent too.
    enable_datagrams: bool = True
    #: Concurrent sessions we allow; >1 only takes effect if the peer agrees.
    max_sessions: int = 1
    #: WebTransport flow-control initial limits (0 = not sent, flow control off).
    initial_max_data: int = 0
    initial_max_streams_bidi: int = 0
    initial_max_streams_uni: int = 0
    #: Streams arriving before their session is usable that we hold on to.
    max_buffered_streams: int = 24
    #: Bytes held per buffered stream before it is rejected.
    max_buffered_stream_bytes: int = 65536
    #: Datagrams arriving before their session is usable that we hold on to.
    max_buffered_datagrams: int = 64
    #: Request bytes held per stream while waiting for the peer's SETTINGS.
    max_pending_request_bytes: int = 65536
    #: Closed session IDs remembered so late streams get WT_SESSION_GONE.
    closed_sessions_remembered: int = 16


class _Kind(Enum):
    UNKNOWN = 0
    CONTROL = 1
    QPACK_ENCODER = 2
    QPACK_DECODER = 3
    REQUEST = 4
    WEBTRANSPORT = 5
    IGNORED = 6
    LOCAL_CRITICAL = 7


class _Stream:
    __slots__ = (
        "stream_id",
        "kind",
        "prefix",
        "parser",
        "qpack",
        "session_id",
        "message_state",
        "pending",
        "pending_bytes",
        "buffered",
        "buffered_bytes",
        "buffered_fin",
        "announced",
        "settings_seen",
        "recv_done",
    )

    def __init__(self, stream_id: int, kind: _Kind = _Kind.UNKNOWN) -> None:
        self.stream_id = stream_id
        self.kind = kind
        self.prefix = bytearray()
        self.parser: FrameParser | None = None
        self.qpack: EncoderStreamParser | DecoderStreamParser | None = None
        self.session_id: int | None = None
        # Request streams: 0 = before headers, 1 = body, 2 = after trailers.
        self.message_state = 0
        # Request input held until the peer's SETTINGS arrive (server side).
        self.pending: list[tuple[bytes, bool]] = []
        self.pending_bytes = 0
        # WebTransport payload held until the session is usable.
        self.buffered: list[bytes] = []
        self.buffered_bytes = 0
        self.buffered_fin = False
        self.announced = False
        self.settings_seen = False
        self.recv_done = False


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
        return self.machine.state in (SessionState.OPEN, SessionState.DRAINING)

    @property
    def live(self) -> bool:
        return self.machine.state in (SessionState.CONNECTING, SessionState.OPEN, SessionState.DRAINING)


def _is_uni(stream_id: int) -> bool:
    return bool(stream_id & 0x2)


def _is_client_initiated(stream_id: int) -> bool:
    return not stream_id & 0x1


def _validate_local_fields(headers: Sequence[tuple[bytes, bytes]], allowed_pseudo: frozenset[bytes]) -> None:
    try:
        validate_fields(headers, allowed_pseudo)
    except MessageError as exc:
        raise H3UsageError(exc.message) from None


class H3Connection:
    """HTTP/3 + QPACK + WebTransport protocol state for one QUIC connection.

    ``receive_*`` methods return events and raise :class:`H3Error` for
    connection errors (close the connection with ``error.code``); after that
    the connection ignores further input.  Stream-level errors never raise:
    they come back as :class:`StreamStopRequested` / :class:`StreamResetRequested`.
    """

    #: WT_DATA_BLOCKED / WT_STREAMS_BLOCKED capsules received (informational; flow control on).
    blocked_capsules_received = 0

    def __init__(self, is_client: bool, config: H3Config | None = None) -> None:
        self.is_client = is_client
        self.config = config or H3Config()
        self._local_settings = local_settings(
            max_field_section_size=self.config.max_field_section_size,
            enable_datagrams=self.config.enable_datagrams,
            max_sessions=self.config.max_sessions,
            initial_max_data=self.config.initial_max_data,
            initial_max_streams_bidi=self.config.initial_max_streams_bidi,
            initial_max_streams_uni=self.config.initial_max_streams_uni,
        )
        self._peer_settings: PeerSettings | None = None
        self._streams: dict[int, _Stream] = {}
        self._sessions: dict[int, _Session] = {}
        self._closed_sessions: deque[int] = deque(maxlen=max(1, self.config.closed_sessions_remembered))
        self._peer_control: int | None = None
        self._peer_encoder: int | None = None
        self._peer_decoder: int | None = None
        # Streams/datagrams waiting for a session to become usable.
        self._early_streams: dict[int, list[int]] = {}
        self._early_stream_count = 0
        self._early_datagrams: dict[int, list[bytes]] = {}
        self._early_datagram_count = 0
        # Server: request streams waiting for the peer's SETTINGS.
        self._awaiting_settings: list[int] = []
        self._goaway_sent: int | None = None
        self._goaway_received: int | None = None
        self._max_push_id_received: int | None = None
        self._highest_request_id = -4
        self._pending_events: list[H3Event] = []
        self._error: H3Error | None = None

    # ------------------------------------------------------------------ info

    @property
    def peer_settings(self) -> PeerSettings | None:
        """The peer's SETTINGS, once received."""
        return self._peer_settings

    @property
    def local_settings(self) -> dict[int, int]:
        return dict(self._local_settings)

    @property
    def flow_control_enabled(self) -> bool:
        """WebTransport flow control is on: both peers sent a non-zero FC setting."""
        config = self.config
        local = bool(config.initial_max_data or config.initial_max_streams_bidi or config.initial_max_streams_uni)
        return local and self._peer_settings is not None and self._peer_settings.flow_control

    @property
    def goaway_received(self) -> int | None:
        return self._goaway_received

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
                stream.buffered.clear()
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

    def resource_usage(self) -> dict[str, int]:
        """What the peer currently makes us hold (each bounded, see docs/limits.md).

        ``early_streams`` / ``early_stream_bytes`` / ``early_datagrams``: held
        for sessions not yet usable; ``live_sessions``; ``pending_request_bytes``:
        request bytes held until the peer's SETTINGS; ``streams``: tracked streams.
        """
        early_ids = [i for ids in self._early_streams.values() for i in ids]
        return {
            "streams": len(self._streams),
            "live_sessions": sum(1 for s in self._sessions.values() if s.live),
            "early_streams": self._early_stream_count,
            "early_stream_bytes": sum(s.buffered_bytes for i in early_ids if (s := self._streams.get(i))),
            "early_datagrams": self._early_datagram_count,
            "pending_request_bytes": sum(s.pending_bytes for s in self._streams.values()),
        }

    def pop_events(self) -> list[H3Event]:
        """Events made ready by a local call (e.g. streams released by ``accept_session``)."""
        events, self._pending_events = self._pending_events, []
        return events

    # ------------------------------------------------------- local streams

    def local_control_stream_data(self, stream_id: int | None = None) -> bytes:
        """Bytes for our control stream: stream type then SETTINGS."""
        self._register_local_critical(stream_id)
        return encode_varint(UniStreamType.CONTROL) + encode_frame(
            FrameType.SETTINGS, encode_settings(self._local_settings)
        )

    def local_qpack_encoder_stream_data(self, stream_id: int | None = None) -> bytes:
        self._register_local_critical(stream_id)
        return encode_varint(UniStreamType.QPACK_ENCODER)

    def local_qpack_decoder_stream_data(self, stream_id: int | None = None) -> bytes:
        self._register_local_critical(stream_id)
        return encode_varint(UniStreamType.QPACK_DECODER)

    def _register_local_critical(self, stream_id: int | None) -> None:
        if stream_id is not None:
            self._streams[stream_id] = _Stream(stream_id, _Kind.LOCAL_CRITICAL)

    # ------------------------------------------------------------- senders

    def send_headers(self, stream_id: int, headers: HeaderList, end_stream: bool = False) -> bytes:
        """A HEADERS frame for ``stream_id``; registers a new local request stream.

        ``end_stream`` is informational: the adapter sends the FIN.
        """
        header_list = list(headers)
        _validate_local_fields(header_list, _REQUEST_PSEUDO | _RESPONSE_PSEUDO)
        stream = self._streams.get(stream_id)
        if stream is None:
            if _is_uni(stream_id) or not self._is_local(stream_id) or not self.is_client:
                raise H3UsageError(f"stream {stream_id} is not a request stream")
            self._new_request_stream(stream_id)
        elif stream.kind is not _Kind.REQUEST:
            raise H3UsageError(f"stream {stream_id} is not a request stream")
        return self._headers_frame(header_list)

    def encode_request(self, stream_id: int, headers: HeaderList) -> bytes:
        """Client: HEADERS frame opening a request on local stream ``stream_id``."""
        return self.send_headers(stream_id, headers)

    def send_data(self, stream_id: int, data: bytes) -> bytes:
        """A DATA frame carrying ``data``."""
        return encode_data_frame_header(len(data)) + data

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
        signal = FrameType.WEBTRANSPORT_STREAM if bidi else UniStreamType.WEBTRANSPORT
        return encode_varint(signal) + encode_varint(session_id)

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

    def send_goaway(self, last_id: int | None = None) -> bytes:
        """A GOAWAY frame for our control stream.

        Server: ``last_id`` defaults to just past the highest request seen, and
        later requests at or above it are refused.  Client: a push ID (0).
        """
        if last_id is None:
            last_id = self._highest_request_id + 4 if not self.is_client else 0
        if not self.is_client and last_id % 4:
            raise H3UsageError("GOAWAY from a server must name a client bidi stream")
        if self._goaway_sent is not None and last_id > self._goaway_sent:
            raise H3UsageError("GOAWAY identifiers must not increase")
        self._goaway_sent = last_id
        return encode_frame(FrameType.GOAWAY, encode_varint(last_id))

    def connection_lost(self) -> None:
        """The QUIC connection is gone; end every session."""
        for session in self._sessions.values():
            session.machine.process(SessionInput.CONNECTION_LOST)

    # ------------------------------------------------------------ receivers

    def receive_stream_data(self, stream_id: int, data: bytes, fin: bool = False) -> list[H3Event]:
        """Process bytes received on any stream."""
        if self._error is not None:
            return []
        events: list[H3Event] = self.pop_events()
        try:
            self._receive(stream_id, data, fin, events)
        except H3Error as exc:
            self._error = exc
            raise
        return events

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
        elif (session is None or session.state is SessionState.CONNECTING) and session_id not in self._closed_sessions:
            if self._early_datagram_count < self.config.max_buffered_datagrams:
                self._early_datagrams.setdefault(session_id, []).append(payload)
                self._early_datagram_count += 1
        return events

    def receive_stream_reset(self, stream_id: int, error_code: int) -> list[H3Event]:
        """The peer reset its sending side of ``stream_id`` (RESET_STREAM)."""
        if self._error is not None:
            return []
        events = self.pop_events()
        try:
            self._on_reset(stream_id, error_code, events, stop_sending=False)
        except H3Error as exc:
            self._error = exc
            raise
        return events

    def receive_stop_sending(self, stream_id: int, error_code: int) -> list[H3Event]:
        """The peer asked us to stop sending on ``stream_id`` (STOP_SENDING)."""
        if self._error is not None:
            return []
        events = self.pop_events()
        try:
            self._on_reset(stream_id, error_code, events, stop_sending=True)
        except H3Error as exc:
            self._error = exc
            raise
        return events

    def holds_early(self, stream_id: int) -> bool:
        """Whether ``stream_id`` waits (with its bytes) for its session to open.

        The adapter must keep such a stream's transport object until the
        session is accepted or rejected, even if QUIC is done with it.
        """
        stream = self._streams.get(stream_id)
        if stream is None or stream.session_id is None:
            return False
        return stream_id in self._early_streams.get(stream.session_id, ())

    def stream_closed(self, stream_id: int) -> None:
        """Both directions of ``stream_id`` are finished; drop its state."""
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        if stream.session_id is not None:
            session = self._sessions.get(stream.session_id)
            if session is not None:
                session.streams.discard(stream_id)
                if stream_id == session.session_id and not session.live:
                    self._forget_session(session)
            early = self._early_streams.get(stream.session_id)
            if early and stream_id in early:
                early.remove(stream_id)
                self._early_stream_count -= 1

    # ------------------------------------------------------------ internals

    def _headers_frame(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        peer = self._peer_settings
        limit = peer.max_field_section_size if peer is not None else None
        if limit is not None and field_section_size(headers) > limit:
            raise H3UsageError(f"header section exceeds the peer's limit of {limit} bytes")
        return encode_frame(FrameType.HEADERS, encode_field_section(headers))

    def _is_local(self, stream_id: int) -> bool:
        return _is_client_initiated(stream_id) == self.is_client

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
        self._closed_sessions.append(session.session_id)
        self._early_datagram_count -= len(self._early_datagrams.pop(session.session_id, ()))

    def _new_request_stream(self, stream_id: int) -> _Stream:
        stream = _Stream(stream_id, _Kind.REQUEST)
        stream.parser = FrameParser(self.config.max_frame_payload_size)
        self._streams[stream_id] = stream
        return stream

    def _receive(self, stream_id: int, data: bytes, fin: bool, events: list[H3Event]) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            if self._is_local(stream_id):
                raise H3UsageError(f"data on unregistered local stream {stream_id}")
            stream = _Stream(stream_id)
            self._streams[stream_id] = stream
        kind = stream.kind
        if kind is _Kind.WEBTRANSPORT:
            self._wt_data(stream, data, fin, events)
        elif kind is _Kind.REQUEST:
            if not stream.recv_done:
                self._request_data(stream, data, fin, events)
        elif kind is _Kind.UNKNOWN:
            self._unknown_data(stream, data, fin, events)
        elif kind is _Kind.CONTROL:
            self._control_data(stream, data, fin, events)
        elif kind is _Kind.QPACK_ENCODER or kind is _Kind.QPACK_DECODER:
            self._qpack_data(stream, data, fin)
        elif kind is _Kind.LOCAL_CRITICAL:
            raise H3UsageError(f"data on local unidirectional stream {stream_id}")
        # _Kind.IGNORED: discard.

    # -- stream type detection

    def _unknown_data(self, stream: _Stream, data: bytes, fin: bool, events: list[H3Event]) -> None:
        stream.prefix += data
        buf = stream.prefix
        first = decode_varint(buf, 0)
        if first is None:
            if fin:
                self._truncated_prefix(stream, events)
            return
        stream_type, offset = first
        stream_id = stream.stream_id
        if _is_uni(stream_id):
            if stream_type == UniStreamType.WEBTRANSPORT:
                self._wt_prefix(stream, offset, bidi=False, fin=fin, events=events)
                return
            del buf[:offset]
            rest = bytes(buf)
            buf.clear()
            if stream_type == UniStreamType.CONTROL:
                if self._peer_control is not None:
                    raise StreamCreationError("second control stream")
                self._peer_control = stream_id
                stream.kind = _Kind.CONTROL
                stream.parser = FrameParser(self.config.max_frame_payload_size)
                self._control_data(stream, rest, fin, events)
            elif stream_type == UniStreamType.QPACK_ENCODER or stream_type == UniStreamType.QPACK_DECODER:
                if stream_type == UniStreamType.QPACK_ENCODER:
                    if self._peer_encoder is not None:
                        raise StreamCreationError("second QPACK encoder stream")
                    self._peer_encoder = stream_id
                    stream.kind = _Kind.QPACK_ENCODER
                    stream.qpack = EncoderStreamParser()
                else:
                    if self._peer_decoder is not None:
                        raise StreamCreationError("second QPACK decoder stream")
                    self._peer_decoder = stream_id
                    stream.kind = _Kind.QPACK_DECODER
                    stream.qpack = DecoderStreamParser()
                self._qpack_data(stream, rest, fin)
            elif stream_type == UniStreamType.PUSH:
                if self.is_client:
                    raise IdError("push stream without MAX_PUSH_ID")
                raise StreamCreationError("clients cannot open push streams")
            else:
                stream.kind = _Kind.IGNORED
                events.append(StreamStopRequested(stream_id, ErrorCode.H3_STREAM_CREATION_ERROR))
            return
        # Peer-initiated bidirectional stream.
        if stream_type == FrameType.WEBTRANSPORT_STREAM:
            self._wt_prefix(stream, offset, bidi=True, fin=fin, events=events)
            return
        if self.is_client:
            raise StreamCreationError("server-initiated bidirectional stream is not WebTransport")
        rest = bytes(buf)
        buf.clear()
        stream.kind = _Kind.REQUEST
        stream.parser = FrameParser(self.config.max_frame_payload_size)
        self._request_data(stream, rest, fin, events)

    def _truncated_prefix(self, stream: _Stream, events: list[H3Event]) -> None:
        # A stream that ends before its type is known carries nothing usable.
        stream.kind = _Kind.IGNORED
        if not _is_uni(stream.stream_id) and not self.is_client:
            events.append(StreamResetRequested(stream.stream_id, ErrorCode.H3_REQUEST_INCOMPLETE))

    def _wt_prefix(self, stream: _Stream, offset: int, *, bidi: bool, fin: bool, events: list[H3Event]) -> None:
        buf = stream.prefix
        parsed = decode_varint(buf, offset)
        if parsed is None:
            if fin:
                stream.kind = _Kind.IGNORED
            return
        session_id, offset = parsed
        if session_id & 0x3:
            raise IdError(f"invalid WebTransport session ID {session_id}")
        rest = bytes(buf[offset:])
        buf.clear()
        stream.kind = _Kind.WEBTRANSPORT
        stream.session_id = session_id
        self._wt_new_stream(stream, bidi, events)
        if stream.kind is _Kind.WEBTRANSPORT:
            self._wt_data(stream, rest, fin, events)

    # -- WebTransport streams

    def _wt_new_stream(self, stream: _Stream, bidi: bool, events: list[H3Event]) -> None:
        session_id = stream.session_id
        assert session_id is not None
        session = self._sessions.get(session_id)
        if (session is not None and not session.live) or (session is None and session_id in self._closed_sessions):
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
        stream.buffered.clear()
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
            stream.buffered.append(data)
            stream.buffered_bytes += len(data)
        stream.buffered_fin = stream.buffered_fin or fin
        if stream.buffered_bytes > self.config.max_buffered_stream_bytes:
            self._drop_early(stream)
            self._refuse_stream(stream, ErrorCode.WT_BUFFERED_STREAM_REJECTED, events)

    def _drop_early(self, stream: _Stream) -> None:
        stream.kind = _Kind.IGNORED
        stream.buffered.clear()
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
                payload = b"".join(stream.buffered)
                events.append(WebTransportStreamDataReceived(session_id, stream_id, payload, stream.buffered_fin))
            stream.buffered.clear()
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

    # -- control and QPACK streams

    def _control_data(self, stream: _Stream, data: bytes, fin: bool, events: list[H3Event]) -> None:
        if fin:
            raise ClosedCriticalStreamError("control stream closed")
        assert stream.parser is not None
        for frame in stream.parser.feed(data):
            self._control_frame(stream, frame, events)

    def _control_frame(self, stream: _Stream, frame: Frame, events: list[H3Event]) -> None:
        frame_type = frame.type
        if not stream.settings_seen:
            if frame_type != FrameType.SETTINGS:
                raise MissingSettingsError("first control frame is not SETTINGS")
            stream.settings_seen = True
            raw = decode_settings(frame.payload)
            self._peer_settings = PeerSettings(raw)
            events.append(SettingsReceived(raw))
            self._replay_awaiting_settings(events)
            return
        if frame_type == FrameType.GOAWAY:
            last_id = decode_id_payload(frame_type, frame.payload)
            if self.is_client and last_id % 4:
                raise IdError("GOAWAY must name a client-initiated bidirectional stream")
            if self._goaway_received is not None and last_id > self._goaway_received:
                raise IdError("GOAWAY identifier increased")
            self._goaway_received = last_id
            events.append(GoawayReceived(last_id))
        elif frame_type == FrameType.MAX_PUSH_ID:
            if self.is_client:
                raise FrameUnexpectedError("MAX_PUSH_ID from a server")
            push_id = decode_id_payload(frame_type, frame.payload)
            if self._max_push_id_received is not None and push_id < self._max_push_id_received:
                raise IdError("MAX_PUSH_ID decreased")
            self._max_push_id_received = push_id
        elif frame_type == FrameType.CANCEL_PUSH:
            push_id = decode_id_payload(frame_type, frame.payload)
            # We never send MAX_PUSH_ID (client) nor promise pushes (server).
            if self.is_client or self._max_push_id_received is None or push_id > self._max_push_id_received:
                raise IdError("CANCEL_PUSH for a push that cannot exist")
        else:
            # SETTINGS again, DATA, HEADERS, PUSH_PROMISE.
            raise FrameUnexpectedError(f"frame type {frame_type:#x} on the control stream")

    def _qpack_data(self, stream: _Stream, data: bytes, fin: bool) -> None:
        if fin:
            raise ClosedCriticalStreamError("QPACK stream closed")
        if data and stream.qpack is not None:
            stream.qpack.feed(data)

    # -- request streams

    def _replay_awaiting_settings(self, events: list[H3Event]) -> None:
        waiting, self._awaiting_settings = self._awaiting_settings, []
        for stream_id in waiting:
            stream = self._streams.get(stream_id)
            if stream is None or stream.kind is not _Kind.REQUEST:
                continue
            pending, stream.pending = stream.pending, []
            stream.pending_bytes = 0
            for chunk, fin in pending:
                self._request_data(stream, chunk, fin, events)

    def _request_data(self, stream: _Stream, data: bytes, fin: bool, events: list[H3Event]) -> None:
        if not self.is_client and self._peer_settings is None:
            # Servers must not act on requests before the client's SETTINGS.
            if not stream.pending:
                self._awaiting_settings.append(stream.stream_id)
            stream.pending.append((data, fin))
            stream.pending_bytes += len(data)
            if stream.pending_bytes > self.config.max_pending_request_bytes:
                self._awaiting_settings.remove(stream.stream_id)
                stream.pending.clear()
                stream.pending_bytes = 0
                self._stream_error(stream, ErrorCode.H3_REQUEST_REJECTED, events)
            return
        assert stream.parser is not None
        try:
            for frame in stream.parser.feed(data):
                if stream.kind is not _Kind.REQUEST or stream.recv_done:
                    break
                self._request_frame(stream, frame, events)
            if fin and stream.kind is _Kind.REQUEST and not stream.recv_done:
                if not stream.parser.at_frame_boundary:
                    raise FrameError("request stream ended inside a frame")
                self._request_fin(stream, events)
        except H3StreamError as exc:
            self._stream_error(stream, exc.code, events)

    def _stream_error(self, stream: _Stream, code: int, events: list[H3Event]) -> None:
        stream.kind = _Kind.IGNORED
        events.append(StreamStopRequested(stream.stream_id, code))
        events.append(StreamResetRequested(stream.stream_id, code))
        if stream.session_id is not None:
            session = self._sessions.get(stream.session_id)
            if session is not None and session.live:
                session.machine.process(SessionInput.RESET)
                events.append(SessionAborted(session.session_id, code))
                events.extend(self._reject_early(session.session_id))

    def _request_frame(self, stream: _Stream, frame: Frame, events: list[H3Event]) -> None:
        frame_type = frame.type
        if frame_type == FrameType.DATA:
            if stream.message_state == 0:
                raise FrameUnexpectedError("DATA before HEADERS")
            if stream.message_state == 2:
                raise FrameUnexpectedError("DATA after trailers")
            if stream.session_id is not None:
                self._connect_body(stream, frame.payload, events)
            elif frame.payload:
                events.append(DataReceived(stream.stream_id, frame.payload, False))
        elif frame_type == FrameType.HEADERS:
            if stream.message_state == 2:
                raise FrameUnexpectedError("HEADERS after trailers")
            headers = decode_field_section(frame.payload, self.config.max_field_section_size)
            if stream.message_state == 1:
                validate_fields(headers, frozenset())
                stream.message_state = 2
                if stream.session_id is None:
                    events.append(HeadersReceived(stream.stream_id, tuple(headers), False))
            elif self.is_client:
                self._response_headers(stream, headers, events)
            else:
                self._request_headers(stream, headers, events)
        elif frame_type == FrameType.PUSH_PROMISE and self.is_client:
            raise IdError("PUSH_PROMISE without MAX_PUSH_ID")
        else:
            raise FrameUnexpectedError(f"frame type {frame_type:#x} on a request stream")

    def _request_fin(self, stream: _Stream, events: list[H3Event]) -> None:
        stream.recv_done = True
        session_id = stream.session_id
        if session_id is None:
            if stream.message_state == 0:
                raise RequestIncompleteError("request stream ended without HEADERS")
            events.append(DataReceived(stream.stream_id, b"", True))
            return
        session = self._sessions.get(session_id)
        if session is None:
            return
        was_live = session.live
        session.machine.process(SessionInput.FIN_RECEIVED)
        if was_live and not session.close_received:
            events.append(SessionCloseReceived(session_id, 0, ""))
            events.extend(self._reject_early(session_id))

    def _request_headers(self, stream: _Stream, headers: list[tuple[bytes, bytes]], events: list[H3Event]) -> None:
        method, protocol = validate_request(headers)
        stream_id = stream.stream_id
        stream.message_state = 1
        self._highest_request_id = max(self._highest_request_id, stream_id)
        if self._goaway_sent is not None and stream_id >= self._goaway_sent:
            self._stream_error(stream, ErrorCode.H3_REQUEST_REJECTED, events)
            return
        if method != b"CONNECT" or protocol not in _WT_PROTOCOLS:
            events.append(HeadersReceived(stream_id, tuple(headers), False))
            return
        assert protocol is not None
        if sum(1 for s in self._sessions.values() if s.live) >= self._session_limit():
            self._stream_error(stream, ErrorCode.H3_REQUEST_REJECTED, events)
            return
        session = self._new_session(stream_id)
        session.machine.process(SessionInput.REQUEST_RECEIVED)
        session.draft02 = header_value(headers, b"sec-webtransport-http3-draft02") is not None
        offered = header_value(headers, b"wt-available-protocols")
        if offered is not None:
            session.offered_protocols = tuple(parse_string_list(offered) or ())
        stream.session_id = stream_id
        events.append(
            WebTransportSessionRequested(stream_id, tuple(headers), protocol.decode(), session.offered_protocols)
        )

    def _response_headers(self, stream: _Stream, headers: list[tuple[bytes, bytes]], events: list[H3Event]) -> None:
        status = parse_status(headers)
        if status < 200:
            return  # interim response
        stream.message_state = 1
        session_id = stream.session_id
        if session_id is None:
            events.append(HeadersReceived(stream.stream_id, tuple(headers), False))
            return
        session = self._sessions.get(session_id)
        if session is None or session.state is not SessionState.CONNECTING:
            return
        if status >= 300:
            session.machine.process(SessionInput.RESPONSE_REJECTED)
            events.append(WebTransportSessionRejected(session_id, status, tuple(headers)))
            events.extend(self._reject_early(session_id))
            return
        selected: str | None = None
        raw_protocol = header_value(headers, b"wt-protocol")
        if raw_protocol is not None:
            selected = parse_string_item(raw_protocol)
            if selected is not None and selected not in session.offered_protocols:
                # The server picked something we did not offer (WT_ALPN_ERROR).
                session.machine.process(SessionInput.RESPONSE_REJECTED)
                events.append(WebTransportSessionRejected(session_id, status, tuple(headers)))
                events.append(StreamStopRequested(stream.stream_id, ErrorCode.WT_ALPN_ERROR))
                events.append(StreamResetRequested(stream.stream_id, ErrorCode.WT_ALPN_ERROR))
                events.extend(self._reject_early(session_id))
                stream.kind = _Kind.IGNORED
                return
        session.machine.process(SessionInput.RESPONSE_2XX)
        events.append(WebTransportSessionEstablished(session_id, tuple(headers), selected))
        events.extend(self._release_early(session))

    # -- capsules on CONNECT streams

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

    # -- resets

    def _on_reset(self, stream_id: int, error_code: int, events: list[H3Event], *, stop_sending: bool) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        kind = stream.kind
        if kind in (_Kind.CONTROL, _Kind.QPACK_ENCODER, _Kind.QPACK_DECODER, _Kind.LOCAL_CRITICAL):
            if kind is _Kind.LOCAL_CRITICAL and not stop_sending:
                return
            if kind is not _Kind.LOCAL_CRITICAL and stop_sending:
                return
            raise ClosedCriticalStreamError("critical stream reset")
        session_id = stream.session_id
        if session_id is not None and stream_id == session_id:
            session = self._sessions.get(session_id)
            if stop_sending:
                # STOP_SENDING only ends our send direction; a closing peer may send it
                # right before its CLOSE capsule and FIN, which must still be read.
                events.append(StopSendingReceived(stream_id, error_code, session_id, None))
                return
            stream.kind = _Kind.IGNORED
            if session is not None and session.live:
                session.machine.process(SessionInput.RESET)
                events.append(SessionAborted(session_id, error_code))
                events.extend(self._reject_early(session_id))
            return
        if kind is _Kind.WEBTRANSPORT and session_id is not None:
            app_code = http3_code_to_webtransport(error_code)
            session = self._sessions.get(session_id)
            if session is None or not session.usable:
                # Still buffered (or session gone): forget the stream.
                if not stop_sending:
                    self._drop_early(stream)
                return
            if not stop_sending:
                stream.kind = _Kind.IGNORED
                events.append(StreamResetReceived(stream_id, error_code, session_id, app_code))
            else:
                events.append(StopSendingReceived(stream_id, error_code, session_id, app_code))
            return
        if kind is _Kind.REQUEST or (kind is _Kind.IGNORED and stop_sending):
            if stop_sending:
                events.append(StopSendingReceived(stream_id, error_code, None, None))
            else:
                stream.kind = _Kind.IGNORED
                events.append(StreamResetReceived(stream_id, error_code, None, None))
