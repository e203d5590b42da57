"""0.1.x diagnostics of clients and servers: ``debug_state()`` and ``diagnose_issues()``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..client import WebTransportClient
    from ..server.server import WebTransportServer

__all__ = ["ClientCompat", "ServerCompat"]


class ClientCompat:
    """0.1.x conveniences of `WebTransportClient` (a mixin; the core never calls these)."""

    def debug_state(self: WebTransportClient) -> dict[str, Any]:  # type: ignore[misc]
        """The client's state: closed flag, statistics and one summary per open connection."""
        return {
            "client": {"closed": self.is_closed, "default_headers": dict(self._pwt_default_headers)},
            "statistics": self.stats,
            "connections": [conn.get_summary() for conn in list(self._pwt_connections)],
        }

    def diagnose_issues(self: WebTransportClient) -> list[str]:  # type: ignore[misc]
        """Human-readable problems (empty when healthy)."""
        issues = []
        stats = self.stats["connections"]
        if self.is_closed:
            issues.append("client is closed")
        if stats["attempted"] >= 5 and stats["success_rate"] < 0.9:
            issues.append(f"low connection success rate: {stats['success_rate']:.0%}")
        avg = self.stats["performance"]["avg_connect_time"]
        if avg > 5.0:
            issues.append(f"slow connections: {avg:.1f}s on average")
        return issues


class ServerCompat:
    """0.1.x conveniences of `WebTransportServer` (a mixin; the core never calls these)."""

    def debug_state(self: WebTransportServer) -> dict[str, Any]:  # type: ignore[misc]
        """The server's state: address, statistics and one summary per connection."""
        return {
            "server": {"serving": self.is_serving, "local_address": self.local_address},
            "statistics": self.get_server_stats(),
            "connections": [conn.get_summary() for conn in list(self.connections)],
        }

    def diagnose_issues(self: WebTransportServer) -> list[str]:  # type: ignore[misc]
        """Human-readable problems (empty when healthy)."""
        issues = []
        stats = self.get_server_stats()
        if not self.is_serving:
            issues.append("server is not serving")
        limit = self.config.max_connections
        if stats["active_connections"] >= 0.9 * limit:
            issues.append(f"{stats['active_connections']} of {limit} connections in use")
        if stats["connection_errors"]:
            issues.append(f"{stats['connection_errors']} connections failed during setup")
        return issues
