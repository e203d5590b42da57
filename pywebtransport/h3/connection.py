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

import functools
from collections import deque
from typing import Iterable

from .errors import (
    ClosedCriticalStreamError,
    ErrorCode,
    FrameError,
    FrameUnexpectedError,
    H3Error,
    H3StreamError,
    H3UsageError,
    http3_code_to_webtransport,
    IdError,
    MissingSettingsError,
    RequestIncompleteError,
    StreamCreationError,
)
from .events import (
    DataReceived,
    GoawayReceived,
    H3Event,
    HeadersReceived,
    SessionAborted,
    SessionCloseReceived,
    SettingsReceived,
    StopSendingReceived,
    StreamResetReceived,
    StreamResetRequested,
    StreamStopRequested,
    WebTransportSessionEstablished,
    WebTransportSessionRejected,
    WebTransportSessionRequested,
)
from .frames import decode_id_payload, encode_data_frame_header, encode_frame, Frame, FrameParser, FrameType
from .messages import header_value, parse_status, validate_fields, validate_request
from .qpack import (
    decode_field_section,
    DecoderStreamParser,
    encode_field_section,
    EncoderStreamParser,
    field_section_size,
)
from .session_state import SessionInput, SessionState
from .settings import decode_settings, encode_settings, local_settings, PeerSettings
from .structured_fields import parse_string_item, parse_string_list
from .varint import decode_varint, encode_varint
from ._streams import H3Config, _is_uni, _Kind, _Stream, UniStreamType, _validate_local_fields
from .webtransport import (
    HeaderList,
    _REQUEST_PSEUDO,
    _RESPONSE_PSEUDO,
    _Session,
    WebTransportSessions,
    _WT_PROTOCOLS,
)

__all__ = ["H3Config", "H3Connection", "UniStreamType"]


@functools.lru_cache(maxsize=64)
def _local_settings_for(config: H3Config) -> tuple[dict[int, int], bytes]:
    """Our SETTINGS for ``config`` and the control stream's first bytes (type + SETTINGS frame)."""
    settings = local_settings(
        max_field_section_size=config.max_field_section_size,
        enable_datagrams=config.enable_datagrams,
        max_sessions=config.max_sessions,
        initial_max_data=config.initial_max_data,
        initial_max_streams_bidi=config.initial_max_streams_bidi,
        initial_max_streams_uni=config.initial_max_streams_uni,
    )
    preface = encode_varint(UniStreamType.CONTROL) + encode_frame(FrameType.SETTINGS, encode_settings(settings))
    return settings, preface



# Our own field sections repeat (a client's CONNECT to one URL, a server's 200): short
# ones are encoded into a HEADERS frame once.  Bounded in entries and, by the RFC 9114
# size (32 bytes per field plus name and value), in bytes.
_CACHED_HEADERS_SIZE = 1024


def _headers_frame_uncached(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    return encode_frame(FrameType.HEADERS, encode_field_section(headers))


_headers_frame_cached = functools.lru_cache(maxsize=64)(_headers_frame_uncached)

class H3Connection(WebTransportSessions):
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
        # Shared, read-only: the same for every connection with this configuration.
        self._local_settings, self._control_preface = _local_settings_for(self.config)
        self._peer_settings: PeerSettings | None = None
        self._streams: dict[int, _Stream] = {}
        self._sessions: dict[int, _Session] = {}
        # Ids of closed sessions (bounded); the deque is made when the first one closes.
        self._closed_sessions: deque[int] | None = None
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
    def goaway_received(self) -> int | None:
        return self._goaway_received

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

    # ------------------------------------------------------- local streams

    def local_control_stream_data(self, stream_id: int | None = None) -> bytes:
        """Bytes for our control stream: stream type then SETTINGS."""
        self._register_local_critical(stream_id)
        return self._control_preface

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
        size = field_section_size(headers)
        if limit is not None and size > limit:
            raise H3UsageError(f"header section exceeds the peer's limit of {limit} bytes")
        if size <= _CACHED_HEADERS_SIZE:
            return _headers_frame_cached(tuple(headers))
        return _headers_frame_uncached(headers)

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
        if not stream.prefix and self._wt_first_chunk(stream, data, fin, events):
            return
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

    # -- WebTransport streams

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
            pending, stream.pending = stream.pending or [], None
            stream.pending_bytes = 0
            for chunk, fin in pending:
                self._request_data(stream, chunk, fin, events)

    def _request_data(self, stream: _Stream, data: bytes, fin: bool, events: list[H3Event]) -> None:
        if not self.is_client and self._peer_settings is None:
            # Servers must not act on requests before the client's SETTINGS.
            if not stream.pending:
                self._awaiting_settings.append(stream.stream_id)
                stream.pending = []
            stream.pending.append((data, fin))
            stream.pending_bytes += len(data)
            if stream.pending_bytes > self.config.max_pending_request_bytes:
                self._awaiting_settings.remove(stream.stream_id)
                stream.pending = None
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
