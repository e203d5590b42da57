"""0.1.x ``pywebtransport.protocol``: session and stream records and a protocol-handler view.

The wire protocol itself is the sans-IO core in `pywebtransport.h3`; the
`WebTransportProtocolHandler` here is a read-mostly view of one connection's sessions
(as 0.1.x code reached it through ``session.protocol_handler``), and the two dataclasses
are the records 0.1.x put into event data.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .events import EventEmitter
from .exceptions import SessionError
from .types import SessionState, StreamDirection, StreamState

if TYPE_CHECKING:
    from .connection import WebTransportConnection
    from .session import WebTransportSession
    from .stream import WebTransportReceiveStream, WebTransportSendStream

__all__ = ["StreamInfo", "WebTransportProtocolHandler", "WebTransportSessionInfo"]


def _wall_clock(monotonic_stamp: float) -> float:
    return time.time() - (time.monotonic() - monotonic_stamp)


@dataclass
class WebTransportSessionInfo:
    """What is known about one session (0.1.x's session record)."""

    session_id: str
    stream_id: int
    state: SessionState
    path: str
    created_at: float
    headers: dict[str, str] = field(default_factory=dict)
    ready_at: float | None = None
    closed_at: float | None = None
    close_code: int | None = None
    close_reason: str | None = None

    @classmethod
    def from_session(cls, session: WebTransportSession) -> WebTransportSessionInfo:
        """Snapshot a live session."""
        return cls(
            session_id=session.session_id,
            stream_id=session.id,
            state=session.state,
            path=session.path,
            created_at=_wall_clock(session._created),
            headers=dict(session.headers),
            close_code=session.close_code,
            close_reason=session.close_reason or None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The record as a dict (the ``Event.data`` of session events in 0.1.x)."""
        return asdict(self)


@dataclass
class StreamInfo:
    """What is known about one stream (0.1.x's stream record)."""

    stream_id: int
    session_id: str
    direction: StreamDirection
    state: StreamState
    created_at: float
    bytes_sent: int = 0
    bytes_received: int = 0
    closed_at: float | None = None

    @classmethod
    def from_stream(cls, stream: WebTransportReceiveStream | WebTransportSendStream) -> StreamInfo:
        """Snapshot a live stream."""
        return cls(
            stream_id=stream.stream_id,
            session_id=stream.session.session_id,
            direction=stream.direction,
            state=stream.state,
            created_at=_wall_clock(stream._created),
            bytes_sent=stream._quic.bytes_sent,
            bytes_received=stream._quic.bytes_received,
        )

    def to_dict(self) -> dict[str, Any]:
        """The record as a dict (the ``Event.data`` of ``STREAM_OPENED`` in 0.1.x)."""
        return asdict(self)


def session_event_data(session: WebTransportSession) -> dict[str, Any]:
    """``Event.data`` of SESSION_REQUEST / SESSION_READY: the session record plus the session."""
    return {**WebTransportSessionInfo.from_session(session).to_dict(), "session": session}


def stream_event_data(stream: WebTransportReceiveStream | WebTransportSendStream) -> dict[str, Any]:
    """``Event.data`` of STREAM_OPENED: the stream record plus the stream."""
    return {**StreamInfo.from_stream(stream).to_dict(), "stream": stream}


class WebTransportProtocolHandler(EventEmitter):
    """The sessions of one connection, as 0.1.x's protocol handler exposed them.

    Obtain it from ``session.protocol_handler``; it does not parse anything itself.
    """

    def __init__(self, connection: WebTransportConnection) -> None:
        super().__init__()
        self._connection = connection

    @property
    def connection(self) -> WebTransportConnection:
        """The connection whose sessions this handler describes."""
        return self._connection

    @property
    def is_client(self) -> bool:
        """Whether this is the client end of the connection."""
        return self._connection.is_client

    def _find(self, session_id: str | int) -> WebTransportSession | None:
        for session in list(self._connection.sessions.values()):
            if session.session_id == str(session_id) or session.id == session_id:
                return session
        return None

    def _session(self, session_id: str | int) -> WebTransportSession:
        session = self._find(session_id)
        if session is None:
            raise SessionError(f"no session {session_id} on this connection", session_id=str(session_id))
        return session

    def get_session_info(self, session_id: str | int) -> WebTransportSessionInfo | None:
        """The record of one open session, or None."""
        session = self._find(session_id)
        return None if session is None else WebTransportSessionInfo.from_session(session)

    def get_all_sessions(self) -> list[WebTransportSessionInfo]:
        """Records of every open session of the connection."""
        return [WebTransportSessionInfo.from_session(s) for s in list(self._connection.sessions.values())]

    async def close_webtransport_session(self, session_id: str | int, code: int = 0, reason: str = "") -> None:
        """Close one session with an application code and reason."""
        await self._session(session_id).close(code=code, reason=reason)

    async def create_webtransport_stream(
        self, session_id: str | int, is_unidirectional: bool = False
    ) -> WebTransportReceiveStream | WebTransportSendStream:
        """Open a stream on one session (bidirectional unless `is_unidirectional`)."""
        session = self._session(session_id)
        if is_unidirectional:
            return await session.create_unidirectional_stream()
        return await session.create_bidirectional_stream()

    def send_webtransport_datagram(self, session_id: str | int, data: bytes) -> None:
        """Send one datagram on one session."""
        self._session(session_id).datagrams.try_send(data)

    def get_stats(self) -> dict[str, Any]:
        """Counters of the connection's sessions."""
        sessions = list(self._connection.sessions.values())
        return {
            "sessions_active": len(sessions),
            "streams_created": sum(s._stats["streams_created"] for s in sessions),
            "streams_accepted": sum(s._stats["streams_accepted"] for s in sessions),
            "datagrams_sent": sum(s._stats["datagrams_sent"] for s in sessions),
            "datagrams_received": sum(s._stats["datagrams_received"] for s in sessions),
        }
