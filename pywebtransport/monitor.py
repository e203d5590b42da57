"""Background monitors for clients, servers and datagram streams.

Each monitor is an async context manager that samples its subject every
``monitoring_interval`` seconds into a bounded history, raises alerts when a
sample crosses a threshold, and reports ``"healthy"``, ``"degraded"`` or
``"unhealthy"``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Union


if TYPE_CHECKING:
    from .client import WebTransportClient
    from .datagram import WebTransportDatagramDuplexStream
    from .server.app import ServerApp
    from .server.server import WebTransportServer

__all__ = ["Alert", "ClientMonitor", "DatagramMonitor", "HealthStatus", "MonitorBase", "ServerMonitor"]

log = logging.getLogger("pywebtransport.monitor")

HealthStatus = Literal["healthy", "degraded", "unhealthy"]
_RANK: dict[str, int] = {"healthy": 0, "degraded": 1, "unhealthy": 2}


@dataclass(frozen=True)
class Alert:
    """One threshold crossing: ``level`` is "degraded" or "unhealthy"."""

    level: str
    message: str
    timestamp: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """The alert as a JSON-friendly dict (``level``, ``message``, ``timestamp``)."""
        return {"level": self.level, "message": self.message, "timestamp": self.timestamp}


class MonitorBase:
    """Sampling loop, history, alerts and health shared by the monitors."""

    def __init__(self, monitoring_interval: float, history_size: int = 100, max_alerts: int = 100) -> None:
        if monitoring_interval <= 0:
            raise ValueError("monitoring_interval must be positive")
        if history_size < 1:
            raise ValueError("history_size must be at least 1")
        self.monitoring_interval = monitoring_interval
        self.history: deque[dict[str, Any]] = deque(maxlen=history_size)
        self.alerts: deque[Alert] = deque(maxlen=max_alerts)
        self._task: asyncio.Task[None] | None = None
        self._status: HealthStatus = "healthy"
        self._problems: list[str] = []
        self._active: set[tuple[str, str]] = set()

    # -- to implement ----------------------------------------------------------
    def _sample(self) -> dict[str, Any]:
        raise NotImplementedError

    def _evaluate(self, sample: dict[str, Any]) -> list[tuple[HealthStatus, str, str]]:
        """Problems found in ``sample`` as (level, stable code, message)."""
        raise NotImplementedError

    # -- sampling ----------------------------------------------------------------
    @property
    def is_monitoring(self) -> bool:
        """Whether the background sampling task is running."""
        return self._task is not None and not self._task.done()

    def collect_metrics(self) -> dict[str, Any]:
        """Take one sample now, record it and update health and alerts."""
        sample = {"timestamp": time.time(), **self._sample()}
        problems = self._evaluate(sample)  # before appending: _delta compares with the previous sample
        self.history.append(sample)
        status: HealthStatus = "healthy"
        for level, _, _ in problems:
            if _RANK[level] > _RANK[status]:
                status = level
        # Alert once per problem (and level) until it clears.
        for level, code, message in problems:
            if (level, code) not in self._active:
                self.alerts.append(Alert(level, message))
                log.warning("%s: %s", type(self).__name__, message)
        self._active = {(level, code) for level, code, _ in problems}
        self._problems = [m for _, _, m in problems]
        self._status = status
        return sample

    async def _loop(self) -> None:
        while True:
            try:
                self.collect_metrics()
            except Exception:
                log.exception("%s sample failed", type(self).__name__)
            await asyncio.sleep(self.monitoring_interval)

    def start(self) -> None:
        """Start background sampling (the first sample is taken immediately)."""
        if not self.is_monitoring:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop background sampling and wait for the task to finish (idempotent)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # -- reporting -----------------------------------------------------------------
    def get_health_status(self) -> HealthStatus:
        """Status after the latest sample (a sample is taken if none exists yet)."""
        if not self.history:
            self.collect_metrics()
        return self._status

    def get_health_report(self) -> dict[str, Any]:
        """The health status and the list of issues found by the latest sample."""
        return {"status": self.get_health_status(), "issues": list(self._problems)}

    def get_alerts(self, level: str | None = None) -> list[Alert]:
        """Recorded alerts, oldest first; only those of ``level`` if given."""
        return [a for a in self.alerts if level is None or a.level == level]

    def clear_alerts(self) -> None:
        """Forget every recorded alert."""
        self.alerts.clear()

    def get_metrics_summary(self) -> dict[str, Any]:
        """Latest sample, numeric min/max/average over the history, health and alert count."""
        if not self.history:
            self.collect_metrics()
        samples = list(self.history)
        numeric: dict[str, list[float]] = {}
        for sample in samples:
            for key, value in sample.items():
                if key != "timestamp" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    numeric.setdefault(key, []).append(float(value))
        aggregates = {
            key: {"min": min(values), "max": max(values), "avg": sum(values) / len(values)}
            for key, values in numeric.items()
        }
        return {
            "samples": len(samples),
            "period": samples[-1]["timestamp"] - samples[0]["timestamp"],
            "latest": dict(samples[-1]),
            "aggregates": aggregates,
            "health": self._status,
            "issues": list(self._problems),
            "alerts": len(self.alerts),
        }

    def _delta(self, key: str, sample: dict[str, Any]) -> float:
        """Change of ``key`` since the previous recorded sample."""
        if not self.history:
            return float(sample.get(key, 0))
        return float(sample.get(key, 0)) - float(self.history[-1].get(key, 0))

    async def __aenter__(self) -> "MonitorBase":
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class ClientMonitor(MonitorBase):
    """Samples a `WebTransportClient`'s connection statistics.

    Degraded when the connection success rate drops below
    ``degraded_success_rate`` or the average connect time exceeds
    ``max_connect_time``; unhealthy below ``unhealthy_success_rate`` or when
    the client is closed.
    """

    def __init__(
        self,
        client: WebTransportClient,
        monitoring_interval: float = 30,
        *,
        history_size: int = 100,
        degraded_success_rate: float = 0.9,
        unhealthy_success_rate: float = 0.5,
        max_connect_time: float = 5.0,
    ) -> None:
        super().__init__(monitoring_interval, history_size)
        self.client = client
        self.degraded_success_rate = degraded_success_rate
        self.unhealthy_success_rate = unhealthy_success_rate
        self.max_connect_time = max_connect_time

    def _sample(self) -> dict[str, Any]:
        stats = self.client.stats
        conns = stats["connections"]
        completed = conns["successful"] + conns["failed"]
        return {
            "attempted": conns["attempted"],
            "successful": conns["successful"],
            "failed": conns["failed"],
            "active": conns["active"],
            # Attempts still in progress count neither way.
            "success_rate": conns["successful"] / completed if completed else 1.0,
            "avg_connect_time": stats["performance"]["avg_connect_time"],
            "uptime": stats["uptime"],
            "closed": self.client.is_closed,
        }

    def _evaluate(self, sample: dict[str, Any]) -> list[tuple[HealthStatus, str, str]]:
        problems: list[tuple[HealthStatus, str, str]] = []
        if sample["closed"]:
            problems.append(("unhealthy", "closed", "client is closed"))
        rate = sample["success_rate"]
        if rate < self.unhealthy_success_rate:
            problems.append(("unhealthy", "success_rate", f"connection success rate {rate:.0%} is very low"))
        elif rate < self.degraded_success_rate:
            problems.append(("degraded", "success_rate", f"connection success rate {rate:.0%} is low"))
        if sample["avg_connect_time"] > self.max_connect_time:
            problems.append(("degraded", "connect_time", f"average connect time {sample['avg_connect_time']:.2f}s is high"))
        return problems


ServerLike = Union["ServerApp", "WebTransportServer"]


class ServerMonitor(MonitorBase):
    """Samples a `WebTransportServer` (or a `ServerApp`'s server).

    Unhealthy when not serving; degraded when connections reach
    ``connection_load_threshold`` of ``max_connections`` or connections were
    rejected since the previous sample.
    """

    def __init__(
        self,
        server: ServerLike,
        monitoring_interval: float = 30,
        *,
        history_size: int = 100,
        connection_load_threshold: float = 0.9,
    ) -> None:
        super().__init__(monitoring_interval, history_size)
        from .server.app import ServerApp

        self.server: WebTransportServer = server.server if isinstance(server, ServerApp) else server
        self.connection_load_threshold = connection_load_threshold

    def _sample(self) -> dict[str, Any]:
        stats = self.server.get_server_stats()
        sessions = sum(len(getattr(c, "sessions", {})) for c in list(self.server.connections))
        return {
            "serving": self.server.is_serving,
            "connections_accepted": stats.get("connections_accepted", 0),
            "connections_rejected": stats.get("connections_rejected", 0),
            "active_connections": stats.get("active_connections", 0),
            "active_sessions": sessions,
            "max_connections": self.server.config.max_connections,
            "uptime": stats.get("uptime", 0.0),
        }

    def _evaluate(self, sample: dict[str, Any]) -> list[tuple[HealthStatus, str, str]]:
        problems: list[tuple[HealthStatus, str, str]] = []
        if not sample["serving"]:
            problems.append(("unhealthy", "not_serving", "server is not serving"))
        limit = sample["max_connections"]
        if limit and sample["active_connections"] >= self.connection_load_threshold * limit:
            problems.append(("degraded", "load", f"{sample['active_connections']} of {limit} connections in use"))
        rejected = self._delta("connections_rejected", sample)
        if rejected > 0:
            problems.append(("degraded", "rejected", f"{int(rejected)} connection(s) rejected since the last sample"))
        return problems


class DatagramMonitor(MonitorBase):
    """Samples a datagram stream's counters.

    Degraded when the share of incoming datagrams dropped for a full receive
    queue exceeds ``degraded_drop_rate`` or the queue is at least
    ``queue_threshold`` full; unhealthy above ``unhealthy_drop_rate`` or once
    the stream is closed.
    """

    def __init__(
        self,
        datagram_stream: WebTransportDatagramDuplexStream,
        monitoring_interval: float = 5,
        *,
        history_size: int = 100,
        degraded_drop_rate: float = 0.05,
        unhealthy_drop_rate: float = 0.5,
        queue_threshold: float = 0.9,
    ) -> None:
        super().__init__(monitoring_interval, history_size)
        self.datagram_stream = datagram_stream
        self.degraded_drop_rate = degraded_drop_rate
        self.unhealthy_drop_rate = unhealthy_drop_rate
        self.queue_threshold = queue_threshold

    def _sample(self) -> dict[str, Any]:
        ds = self.datagram_stream
        stats = ds.stats
        received = stats["datagrams_received"]
        sample: dict[str, Any] = {
            **stats,
            "receive_queue": ds.get_receive_buffer_size(),
            "high_water_mark": ds.high_water_mark,
            "drop_rate": stats["datagrams_dropped"] / received if received else 0.0,
            "closed": ds.is_closed,
        }
        if self.history:
            elapsed = max(1e-9, time.time() - float(self.history[-1]["timestamp"]))
            sample["send_rate"] = self._delta("datagrams_sent", sample) / elapsed
            sample["receive_rate"] = self._delta("datagrams_received", sample) / elapsed
        else:
            sample["send_rate"] = sample["receive_rate"] = 0.0
        return sample

    def _evaluate(self, sample: dict[str, Any]) -> list[tuple[HealthStatus, str, str]]:
        problems: list[tuple[HealthStatus, str, str]] = []
        if sample["closed"]:
            problems.append(("unhealthy", "closed", "datagram stream is closed"))
        rate = sample["drop_rate"]
        if rate > self.unhealthy_drop_rate:
            problems.append(("unhealthy", "drops", f"{rate:.0%} of incoming datagrams dropped"))
        elif rate > self.degraded_drop_rate:
            problems.append(("degraded", "drops", f"{rate:.0%} of incoming datagrams dropped"))
        hwm = sample["high_water_mark"]
        if hwm and sample["receive_queue"] >= self.queue_threshold * hwm:
            problems.append(("degraded", "queue", f"receive queue holds {sample['receive_queue']} of {hwm} datagrams"))
        return problems
