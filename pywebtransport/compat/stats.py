"""0.1.x statistics records: `ClientStats` and `ServerStats` (real counters)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ClientStats", "ServerStats"]


@dataclass
class ClientStats:
    """Connection attempts and timings of a `WebTransportClient` (its ``stats`` source)."""

    created_at: float = field(default_factory=time.time)
    connections_attempted: int = 0
    connections_successful: int = 0
    connections_failed: int = 0
    total_connect_time: float = 0.0
    min_connect_time: float = float("inf")
    max_connect_time: float = 0.0

    def record_success(self, connect_time: float) -> None:
        """Count one session opened after `connect_time` seconds."""
        self.connections_successful += 1
        self.total_connect_time += connect_time
        self.min_connect_time = min(self.min_connect_time, connect_time)
        self.max_connect_time = max(self.max_connect_time, connect_time)

    @property
    def avg_connect_time(self) -> float:
        """Mean time of the successful connects."""
        return self.total_connect_time / self.connections_successful if self.connections_successful else 0.0

    @property
    def success_rate(self) -> float:
        """Successful share of the attempts (0.0 before the first attempt)."""
        return self.connections_successful / self.connections_attempted if self.connections_attempted else 0.0

    def to_dict(self, *, active: int = 0) -> dict[str, Any]:
        """The dict 0.1.x returned from ``client.stats``."""
        return {
            "created_at": self.created_at,
            "uptime": time.time() - self.created_at,
            "connections": {
                "attempted": self.connections_attempted,
                "successful": self.connections_successful,
                "failed": self.connections_failed,
                "active": active,
                "success_rate": self.success_rate,
            },
            "performance": {
                "avg_connect_time": self.avg_connect_time,
                "min_connect_time": self.min_connect_time if self.connections_successful else 0.0,
                "max_connect_time": self.max_connect_time,
            },
        }


@dataclass
class ServerStats:
    """Connections and session requests a `WebTransportServer` has seen."""

    start_time: float = field(default_factory=time.time)
    connections_accepted: int = 0
    connections_rejected: int = 0
    connection_errors: int = 0
    sessions_requested: int = 0
    sessions_accepted: int = 0
    sessions_rejected: int = 0
    protocol_errors: int = 0

    @property
    def uptime(self) -> float:
        """Seconds since the server object was created."""
        return time.time() - self.start_time

    def to_dict(self) -> dict[str, Any]:
        """Every counter plus ``uptime``."""
        return {
            "start_time": self.start_time,
            "uptime": self.uptime,
            "connections_accepted": self.connections_accepted,
            "connections_rejected": self.connections_rejected,
            "connection_errors": self.connection_errors,
            "sessions_requested": self.sessions_requested,
            "sessions_accepted": self.sessions_accepted,
            "sessions_rejected": self.sessions_rejected,
            "protocol_errors": self.protocol_errors,
        }
