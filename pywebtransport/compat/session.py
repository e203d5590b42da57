"""0.1.x session extras: `SessionManager` and the session's convenience methods."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..exceptions import SessionError
from ..types import EventType
from ._registry import Registry

if TYPE_CHECKING:
    from ..protocol import WebTransportProtocolHandler
    from ..session import WebTransportSession
    from .stream import StreamManager

__all__ = ["SessionCompat", "SessionManager"]


class SessionCompat:
    """0.1.x conveniences of `WebTransportSession` (a mixin; the core never calls these)."""

    @property
    def protocol_handler(self: WebTransportSession) -> WebTransportProtocolHandler:  # type: ignore[misc]
        """A `WebTransportProtocolHandler` describing this session's connection."""
        from ..protocol import WebTransportProtocolHandler  # the protocol module imports this one

        handler = self.connection.__dict__.get("_pwt_protocol_handler")
        if handler is None:
            handler = WebTransportProtocolHandler(self.connection)
            self.connection.__dict__["_pwt_protocol_handler"] = handler
        return handler

    @property
    def stream_manager(self: WebTransportSession) -> StreamManager:  # type: ignore[misc]
        """A `StreamManager` tracking the streams opened through it (created on first use)."""
        from .stream import StreamManager

        manager = self.__dict__.get("_pwt_stream_manager")
        if manager is None:
            manager = StreamManager(self)
            self.__dict__["_pwt_stream_manager"] = manager
        return manager

    def _pwt_on_capsule(self: WebTransportSession, capsule_type: str, fields: dict[str, Any]) -> None:  # type: ignore[misc]
        self._ee_fire(EventType.CAPSULE_RECEIVED, {"session_id": self.session_id, "capsule_type": capsule_type, **fields})

    def _pwt_on_credit(self: WebTransportSession, max_data: int, bidi: int, uni: int) -> None:  # type: ignore[misc]
        """Emit CAPSULE_RECEIVED and the SESSION_MAX_*_UPDATED events for limits that changed."""
        last = self.__dict__.get("_pwt_peer_limits", (None, None, None))
        self.__dict__["_pwt_peer_limits"] = (max_data, bidi, uni)
        self._pwt_on_capsule("flow_control", {"max_data": max_data, "max_streams_bidi": bidi, "max_streams_uni": uni})
        for value, old, event_type, key in (
            (max_data, last[0], EventType.SESSION_MAX_DATA_UPDATED, "max_data"),
            (bidi, last[1], EventType.SESSION_MAX_STREAMS_BIDI_UPDATED, "max_streams_bidi"),
            (uni, last[2], EventType.SESSION_MAX_STREAMS_UNI_UPDATED, "max_streams_uni"),
        ):
            if value != old:
                self._ee_fire(event_type, {"session_id": self.session_id, key: value})

    def diagnose_issues(self: WebTransportSession) -> list[str]:  # type: ignore[misc]
        """Human-readable problems of this session (empty when healthy)."""
        issues: list[str] = []
        if self.is_closed:
            issues.append(f"session is closed (code {self.close_code}, reason {self.close_reason!r})")
        elif not self.is_ready:
            issues.append(f"session is not ready (state {self.state})")
        if self.connection.is_closed:
            issues.append("connection is closed")
        if self._datagrams is not None and self._datagrams.datagrams_dropped:
            issues.append(f"{self._datagrams.datagrams_dropped} received datagrams were dropped")
        return issues

    async def monitor_health(self: WebTransportSession, *, check_interval: float = 0.0) -> dict[str, Any]:  # type: ignore[misc]
        """A health snapshot: ``healthy``, ``issues`` and the session's counters."""
        issues = self.diagnose_issues()
        return {"healthy": not issues, "issues": issues, **self.get_session_stats()}


class SessionManager:
    """Tracks sessions up to `max_sessions`; closed sessions are forgotten.

    Sessions are removed as soon as they close; while the manager is entered
    (``async with``) a sweep also runs every `cleanup_interval` seconds.
    """

    def __init__(self, *, max_sessions: int = 1000, cleanup_interval: float = 300.0) -> None:
        self._registry: Registry[str, WebTransportSession] = Registry(
            limit=max_sessions,
            cleanup_interval=cleanup_interval,
            is_closed=lambda s: s.is_closed,
            close=lambda s: s.close(),
            kind="session",
        )

    async def add_session(self, session: WebTransportSession) -> str:
        """Track `session`; raises `SessionError` when `max_sessions` are tracked."""
        if self._registry.is_full() and session.session_id not in self._registry:
            raise SessionError(
                f"session limit reached ({self._registry.limit})", session_id=session.session_id
            )
        self._registry.add(session.session_id, session)
        session._closed.add_done_callback(lambda _f: self._registry.remove(session.session_id))
        return session.session_id

    async def remove_session(self, session_id: str) -> WebTransportSession | None:
        """Stop tracking a session; returns it (None if unknown)."""
        return self._registry.remove(str(session_id))

    async def get_session(self, session_id: str) -> WebTransportSession | None:
        """The tracked session with this id, or None."""
        return self._registry.get(str(session_id))

    async def get_all_sessions(self) -> list[WebTransportSession]:
        """Every tracked session."""
        return self._registry.values()

    def get_session_count(self) -> int:
        """How many sessions are tracked."""
        return len(self._registry)

    async def cleanup_closed_sessions(self) -> int:
        """Forget closed sessions now; returns how many."""
        return self._registry.cleanup()

    async def close_all_sessions(self) -> int:
        """Close every tracked session; returns how many."""
        return await self._registry.close_all()

    async def get_sessions_by_state(self, state: str) -> list[WebTransportSession]:
        """Tracked sessions in `state`."""
        return [s for s in self._registry.values() if s.state == state]

    def get_stats(self) -> dict[str, Any]:
        """Counters: active, maximum, totals and the peak."""
        stats = self._registry.stats()
        states: dict[str, int] = {}
        for session in self._registry.values():
            states[str(session.state)] = states.get(str(session.state), 0) + 1
        return {
            "active_sessions": stats["active_sessions"],
            "max_sessions": stats["max_sessions"],
            "total_created": stats["total_added"],
            "total_closed": stats["total_removed"],
            "peak": stats["peak"],
            "states": states,
        }

    async def shutdown(self) -> None:
        """Stop the sweep and close every tracked session."""
        await self._registry.stop()
        await self._registry.close_all()

    async def __aenter__(self) -> SessionManager:
        self._registry.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()
