"""Session lifecycle hooks shared by the metrics and tracing integrations.

`watch_sessions` subscribes to a server's ``SESSION_REQUEST`` event and, for each session,
to its ready and closed events, calling the observer's methods. Nothing runs per stream, chunk
or datagram: stream counts come from the session's counters (`stream_counts`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from .events import Event
from .types import EventType

if TYPE_CHECKING:
    from .server.app import ServerApp
    from .server.server import WebTransportServer
    from .session import WebTransportSession

__all__ = ["SessionObserver", "server_of", "stream_counts", "watch_sessions"]


class SessionObserver(Protocol):
    """What `watch_sessions` calls; `started` is the monotonic time of the CONNECT request."""

    def session_requested(self, session: "WebTransportSession", started: float) -> Any:
        """A CONNECT arrived; the returned token is passed to the other calls for this session."""

    def session_ready(self, session: "WebTransportSession", token: Any, started: float) -> None:
        """The session was accepted and is ready."""

    def session_closed(self, session: "WebTransportSession", token: Any, started: float, was_ready: bool) -> None:
        """The session ended; `was_ready` is False for a refused or failed request."""


def server_of(target: "ServerApp | WebTransportServer") -> "WebTransportServer":
    """The WebTransportServer behind a ServerApp (or the server itself)."""
    from .server.server import WebTransportServer

    return target if isinstance(target, WebTransportServer) else target.server


def stream_counts(session: "WebTransportSession") -> dict[tuple[str, str], int]:
    """Streams a session has opened so far by ``(direction, initiator)`` (``bidi``/``uni``, ``local``/``peer``)."""
    stats = session.stats
    created, accepted = int(stats.get("streams_created", 0)), int(stats.get("streams_accepted", 0))
    created_uni, accepted_uni = int(stats.get("streams_created_uni", 0)), int(stats.get("streams_accepted_uni", 0))
    return {
        ("bidi", "local"): created - created_uni,
        ("uni", "local"): created_uni,
        ("bidi", "peer"): accepted - accepted_uni,
        ("uni", "peer"): accepted_uni,
    }


def watch_sessions(server: "WebTransportServer", observer: SessionObserver) -> None:
    """Call `observer` for every session `server` receives from now on."""

    def on_request(event: Event) -> None:
        session: WebTransportSession = event.data["session"]
        started = time.monotonic()
        token = observer.session_requested(session, started)
        ready = [False]

        def on_ready(_e: Event) -> None:
            ready[0] = True
            observer.session_ready(session, token, started)

        def on_closed(_e: Event) -> None:
            observer.session_closed(session, token, started, ready[0])

        session.once(EventType.SESSION_READY, on_ready)
        session.once(EventType.SESSION_CLOSED, on_closed)

    server.on(EventType.SESSION_REQUEST, on_request)
