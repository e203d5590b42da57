"""OpenTelemetry tracing and metrics for a WebTransport server (extra ``pywebtransport[otel]``).

    from pywebtransport.otel import OpenTelemetryInstrumentation

    OpenTelemetryInstrumentation().instrument(app)   # global tracer and meter providers

Each session becomes one span, ``WebTransport <path>`` (kind SERVER), from the CONNECT request
to the session's end, with the peer address, the response status, the close code and reason,
and the bytes and datagrams it carried. The same counters as :mod:`pywebtransport.metrics` are
reported through the OTel metrics API. Like the Prometheus integration, nothing runs per chunk.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .observers import server_of, stream_counts, watch_sessions
from .quic.observe import perf_counters

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "pywebtransport.otel needs opentelemetry-api: pip install 'pywebtransport[otel]'"
    ) from exc

if TYPE_CHECKING:
    from .server.app import ServerApp
    from .server.server import WebTransportServer
    from .session import WebTransportSession

__all__ = ["OpenTelemetryInstrumentation"]

_SCOPE = "pywebtransport"


class OpenTelemetryInstrumentation:
    """Spans per session and OTel metrics for the servers it instruments.

    Args:
        tracer_provider: defaults to the global provider.
        meter_provider: defaults to the global provider.
    """

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        from ._version import __version__

        self._tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider=tracer_provider)
        meter = otel_metrics.get_meter(_SCOPE, __version__, meter_provider=meter_provider)
        self._servers: list[WebTransportServer] = []
        self._sessions = meter.create_counter("pywebtransport.sessions", unit="{session}",
                                              description="Session requests by outcome.")
        self._streams = meter.create_counter("pywebtransport.streams.opened", unit="{stream}",
                                             description="Streams opened, by direction and initiator.")
        self._setup = meter.create_histogram("pywebtransport.session.setup", unit="s",
                                             description="CONNECT request to session ready or refused.")
        meter.create_observable_gauge("pywebtransport.connections.active", [self._observe_connections],
                                      unit="{connection}", description="Open QUIC connections.")
        meter.create_observable_gauge("pywebtransport.sessions.active", [self._observe_sessions],
                                      unit="{session}", description="Open WebTransport sessions.")
        meter.create_observable_counter("pywebtransport.bytes.sent", [self._observe_bytes("app_send_bytes")],
                                        unit="By", description="Application bytes sent (msquic, whole process).")
        meter.create_observable_counter("pywebtransport.bytes.received",
                                        [self._observe_bytes("app_recv_bytes")], unit="By",
                                        description="Application bytes received (msquic, whole process).")

    def instrument(self, target: "ServerApp | WebTransportServer") -> None:
        """Trace and measure every session of `target` from now on."""
        server = server_of(target)
        if server not in self._servers:
            self._servers.append(server)
            watch_sessions(server, self)

    # -- observer ---------------------------------------------------------------------------
    def session_requested(self, session: "WebTransportSession", started: float) -> Span:
        """See :class:`~pywebtransport.observers.SessionObserver`."""
        attributes: dict[str, Any] = {"url.path": session.path, "webtransport.session_id": session.session_id}
        peer = session.remote_address
        if peer is not None:
            attributes["network.peer.address"] = peer[0]
            attributes["network.peer.port"] = peer[1]
        return self._tracer.start_span(f"WebTransport {session.path}", kind=SpanKind.SERVER,
                                       attributes=attributes)

    def session_ready(self, session: "WebTransportSession", span: Span, started: float) -> None:
        """Count the accepted session and its setup time."""
        span.set_attribute("http.response.status_code", 200)
        span.add_event("session ready")
        self._sessions.add(1, {"outcome": "accepted"})
        self._setup.record(time.monotonic() - started)

    def session_closed(self, session: "WebTransportSession", span: Span, started: float, was_ready: bool) -> None:
        """End the span, count a refused or failed request and the session's streams."""
        for (direction, initiator), count in stream_counts(session).items():
            if count:
                self._streams.add(count, {"direction": direction, "initiator": initiator})
        stats = session.stats
        span.set_attribute("webtransport.bytes_sent", int(stats.get("bytes_sent", 0)))
        span.set_attribute("webtransport.datagrams_sent", int(stats.get("datagrams_sent", 0)))
        span.set_attribute("webtransport.datagrams_received", int(stats.get("datagrams_received", 0)))
        span.set_attribute("webtransport.streams", int(stats.get("streams_created", 0))
                           + int(stats.get("streams_accepted", 0)))
        if session.close_code is not None:
            span.set_attribute("webtransport.close_code", session.close_code)
        if session.close_reason:
            span.set_attribute("webtransport.close_reason", session.close_reason)
        span.set_attribute("webtransport.closed_by_peer", bool(session.closed_by_peer))
        if not was_ready:
            outcome = "rejected" if session.status is not None and session.status >= 300 else "failed"
            if session.status is not None:
                span.set_attribute("http.response.status_code", session.status)
            span.set_status(Status(StatusCode.ERROR, f"session {outcome}"))
            self._sessions.add(1, {"outcome": outcome})
            self._setup.record(time.monotonic() - started)
        span.end()

    # -- observable instruments -----------------------------------------------------------
    def _observe_connections(self, _options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(sum(len(s.connections) for s in self._servers))

    def _observe_sessions(self, _options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(sum(len(c.sessions) for s in self._servers for c in list(s.connections)))

    @staticmethod
    def _observe_bytes(name: str) -> Any:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            yield Observation(perf_counters().get(name, 0))

        return observe
