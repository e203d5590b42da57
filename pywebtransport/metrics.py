"""Prometheus metrics for a WebTransport server (optional extra ``pywebtransport[metrics]``).

    from pywebtransport.metrics import PrometheusMetrics

    metrics = PrometheusMetrics()
    metrics.instrument(app)                  # a ServerApp or WebTransportServer
    await metrics.serve(port=9464)           # GET /metrics on the server's own event loop

Nothing is added to the per-stream or per-chunk data path: sessions are counted from the
library's events (two handler calls per session while metrics are on), streams and datagrams from
the sessions' own counters, byte totals from msquic's own counters, and gauges and QUIC path statistics are read when
Prometheus scrapes. The HTTP endpoint runs on the asyncio loop, so a scrape reads the
server's state from the thread that owns it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .observers import server_of, stream_counts, watch_sessions
from .quic.observe import PERF_COUNTER_NAMES, PERF_GAUGES, perf_counters

if TYPE_CHECKING:
    from .server.app import ServerApp
    from .server.server import WebTransportServer
    from .session import WebTransportSession

try:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "pywebtransport.metrics needs prometheus_client: pip install 'pywebtransport[metrics]'"
    ) from exc

__all__ = ["PrometheusMetrics", "SETUP_BUCKETS"]

# Seconds from a CONNECT request to the session being ready (or its rejection).
SETUP_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SESSION_COUNTERS = ("datagrams_sent", "datagrams_received", "bytes_sent")


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.total += value
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                return
        self.counts[-1] += 1

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(self.buckets, self.counts):
            running += count
            out.append((repr(bound), running))
        out.append(("+Inf", running + self.counts[-1]))
        return out


class PrometheusMetrics:
    """Collects metrics of the servers it instruments into a Prometheus registry.

    Args:
        registry: where to register (a fresh ``CollectorRegistry`` by default).
        namespace: metric name prefix.
        max_sampled_connections: at most this many live connections are asked for their
            QUIC statistics per scrape (each question is a call into msquic).
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, namespace: str = "pywebtransport",
                 max_sampled_connections: int = 200) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.namespace = namespace
        self.max_sampled_connections = max_sampled_connections
        self._servers: list[WebTransportServer] = []
        self._sessions_total: dict[str, int] = {"accepted": 0, "rejected": 0, "failed": 0}
        self._streams: dict[tuple[str, str], int] = {}
        self._closed: dict[str, int] = {k: 0 for k in (*_SESSION_COUNTERS, "datagrams_dropped")}
        self._setup = _Histogram(SETUP_BUCKETS)
        self._http: asyncio.AbstractServer | None = None
        self.registry.register(self)

    # -- wiring ---------------------------------------------------------------------------
    def instrument(self, target: "ServerApp | WebTransportServer") -> None:
        """Count sessions, streams and datagrams of `target` (a ServerApp or WebTransportServer)."""
        server = server_of(target)
        if server in self._servers:
            return
        self._servers.append(server)
        watch_sessions(server, self)

    def session_requested(self, session: "WebTransportSession", started: float) -> None:
        """See :class:`~pywebtransport.observers.SessionObserver`."""
        return None

    def session_ready(self, session: "WebTransportSession", token: None, started: float) -> None:
        """Count the accepted session and its setup time."""
        self._sessions_total["accepted"] += 1
        self._setup.observe(time.monotonic() - started)

    def session_closed(self, session: "WebTransportSession", token: None, started: float, was_ready: bool) -> None:
        """Count a refused or failed request and fold the session's counters in."""
        if not was_ready:
            outcome = "rejected" if session.status is not None and session.status >= 300 else "failed"
            self._sessions_total[outcome] += 1
            self._setup.observe(time.monotonic() - started)
        for key, value in self._session_counts(session).items():
            self._closed[key] += value
        for kind, count in stream_counts(session).items():
            self._streams[kind] = self._streams.get(kind, 0) + count

    @staticmethod
    def _session_counts(session: "WebTransportSession") -> dict[str, int]:
        stats = session.stats
        counts = {k: int(stats.get(k, 0)) for k in _SESSION_COUNTERS}
        dgrams = session._datagrams  # noqa: SLF001 - not created if the app never used datagrams
        counts["datagrams_dropped"] = int(dgrams.datagrams_dropped) if dgrams is not None else 0
        return counts

    def _live_sessions(self) -> Iterator["WebTransportSession"]:
        for server in self._servers:
            for conn in list(server.connections):
                yield from list(conn.sessions.values())

    # -- exposition -----------------------------------------------------------------------
    def collect(self) -> Iterable[Any]:
        """Called by the registry on each scrape (on the event loop when served by `serve`)."""
        ns = self.namespace
        connections = [c for s in self._servers for c in list(s.connections)]
        live = list(self._live_sessions())
        yield GaugeMetricFamily(f"{ns}_connections_active", "Open QUIC connections.", value=len(connections))
        yield GaugeMetricFamily(f"{ns}_sessions_active", "Open WebTransport sessions.", value=len(live))

        total = CounterMetricFamily(f"{ns}_sessions", "Session requests by outcome.", labels=["outcome"])
        for outcome, value in self._sessions_total.items():
            total.add_metric([outcome], value)
        yield total

        opened = dict(self._streams)
        for session in live:
            for kind, count in stream_counts(session).items():
                opened[kind] = opened.get(kind, 0) + count
        streams = CounterMetricFamily(f"{ns}_streams_opened", "Streams opened.", labels=["direction", "initiator"])
        for (direction, initiator), value in sorted(opened.items()):
            streams.add_metric([direction, initiator], value)
        yield streams

        sums = dict(self._closed)
        for session in live:
            for key, value in self._session_counts(session).items():
                sums[key] += value
        yield CounterMetricFamily(f"{ns}_datagrams_sent", "Datagrams sent.", value=sums["datagrams_sent"])
        yield CounterMetricFamily(f"{ns}_datagrams_received", "Datagrams received.", value=sums["datagrams_received"])
        dropped = CounterMetricFamily(f"{ns}_datagrams_dropped", "Datagrams dropped, by reason.", labels=["reason"])
        dropped.add_metric(["receive_queue_full"], sums["datagrams_dropped"])
        yield dropped

        counters = perf_counters()
        yield CounterMetricFamily(f"{ns}_bytes_sent", "Application bytes sent (msquic, whole process).",
                                  value=counters.get("app_send_bytes", 0))
        yield CounterMetricFamily(f"{ns}_bytes_received", "Application bytes received (msquic, whole process).",
                                  value=counters.get("app_recv_bytes", 0))

        buckets = self._setup.cumulative()
        yield HistogramMetricFamily(f"{ns}_session_setup_seconds",
                                    "From CONNECT request to the session being ready or refused.",
                                    buckets=buckets, sum_value=self._setup.total)

        for name in PERF_COUNTER_NAMES:
            if name not in counters:
                continue
            doc = f"msquic performance counter {name.upper()} (whole process)."
            if name in PERF_GAUGES:
                yield GaugeMetricFamily(f"{ns}_msquic_{name}", doc, value=counters[name])
            else:
                yield CounterMetricFamily(f"{ns}_msquic_{name}", doc, value=counters[name])

        yield from self._quic_path_metrics(connections)

    def _quic_path_metrics(self, connections: list[Any]) -> Iterator[Any]:
        ns = self.namespace
        rtts: list[float] = []
        cwnds: list[int] = []
        lost = 0
        for conn in connections[: self.max_sampled_connections]:
            quic = conn.quic
            if quic.is_closed:
                continue
            try:
                stats = quic.stats()
            except Exception:
                continue
            rtts.append(stats.rtt)
            cwnds.append(stats.cwnd)
            lost += stats.packets_lost
        rtt = GaugeMetricFamily(f"{ns}_quic_rtt_seconds", "Smoothed RTT over sampled live connections.",
                                labels=["stat"])
        cwnd = GaugeMetricFamily(f"{ns}_quic_congestion_window_bytes",
                                 "Congestion window over sampled live connections.", labels=["stat"])
        if rtts:
            rtt.add_metric(["min"], min(rtts))
            rtt.add_metric(["avg"], sum(rtts) / len(rtts))
            rtt.add_metric(["max"], max(rtts))
            cwnd.add_metric(["min"], min(cwnds))
            cwnd.add_metric(["avg"], sum(cwnds) / len(cwnds))
            cwnd.add_metric(["max"], max(cwnds))
        yield rtt
        yield cwnd
        yield GaugeMetricFamily(f"{ns}_quic_lost_packets", "Packets lost so far by the sampled live connections.",
                                value=lost)
        yield GaugeMetricFamily(f"{ns}_quic_sampled_connections", "Connections sampled for QUIC statistics.",
                                value=len(rtts))

    def render(self) -> bytes:
        """The text exposition format of everything in the registry."""
        return bytes(generate_latest(self.registry))

    async def serve(self, port: int = 9464, host: str = "127.0.0.1") -> int:
        """Serve ``GET /metrics`` on the running event loop; returns the bound port."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
                if path.split(b"?")[0] == b"/metrics":
                    body, status = self.render(), b"200 OK"
                    ctype = b"text/plain; version=0.0.4; charset=utf-8"
                else:
                    body, status, ctype = b"not found\n", b"404 Not Found", b"text/plain"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype + b"\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
                await writer.drain()
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
                pass
            finally:
                writer.close()

        self._http = await asyncio.start_server(handle, host, port)
        bound: int = self._http.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        """Stop the HTTP endpoint (the registry keeps its collector)."""
        if self._http is not None:
            self._http.close()
            await self._http.wait_closed()
            self._http = None
