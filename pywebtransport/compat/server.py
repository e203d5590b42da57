"""0.1.x server extras: `ServerCluster` and `create_simple_app`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from ..config import ServerConfig
from ..exceptions import ServerError
from ..server.app import ServerApp
from ..server.dev import echo_handler, health_check_handler
from ..server.server import WebTransportServer

__all__ = ["ServerCluster", "create_simple_app"]


def create_simple_app(config: ServerConfig | None = None) -> ServerApp:
    """A `ServerApp` with `health_check_handler` on ``/health`` and `echo_handler` on ``/echo``."""
    app = ServerApp(config=config)
    app.add_route("/health", health_check_handler)
    app.add_route("/echo", echo_handler)
    return app


class ServerCluster:
    """Several `WebTransportServer` instances started and stopped together.

    Each configuration gives one server, listening on its ``bind_host``/``bind_port``
    (port 0 picks a free one). Servers answer session requests as a bare
    `WebTransportServer` does: register handlers with ``server.on(EventType.SESSION_REQUEST, ...)``
    on each of `get_servers`, or pass `ServerApp` objects' servers via `add_server`.
    """

    def __init__(self, configs: Iterable[ServerConfig]) -> None:
        self._configs = list(configs)
        self._servers: list[WebTransportServer] = []
        self._running = False
        self._lock = asyncio.Lock()

    @property
    def is_running(self) -> bool:
        """Whether `start_all` ran and `stop_all` did not."""
        return self._running

    async def _start(self, config: ServerConfig) -> WebTransportServer:
        server = WebTransportServer(config=config)
        await server.listen()
        return server

    async def start_all(self) -> None:
        """Start one server per configuration; on any failure, stop those started."""
        async with self._lock:
            if self._running:
                return
            results = await asyncio.gather(*(self._start(c) for c in self._configs), return_exceptions=True)
            started = [r for r in results if isinstance(r, WebTransportServer)]
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                await asyncio.gather(*(s.close() for s in started), return_exceptions=True)
                raise ServerError(f"{len(errors)} of {len(results)} cluster servers failed to start: {errors[0]}")
            self._servers = started
            self._running = True

    async def stop_all(self) -> None:
        """Stop every server (each closes its connections gracefully, bounded)."""
        async with self._lock:
            servers, self._servers = self._servers, []
            self._running = False
            await asyncio.gather(*(s.close() for s in servers), return_exceptions=True)

    async def add_server(self, config: ServerConfig) -> WebTransportServer | None:
        """Add a configuration; when the cluster runs, the server starts at once and is returned."""
        async with self._lock:
            self._configs.append(config)
            if not self._running:
                return None
            server = await self._start(config)
            self._servers.append(server)
            return server

    async def remove_server(self, host: str, port: int) -> bool:
        """Stop and drop the server listening on ``host:port``; False if none does."""
        async with self._lock:
            for server in self._servers:
                if server.local_address == (host, port):
                    self._servers.remove(server)
                    await server.close()
                    return True
            return False

    async def get_servers(self) -> list[WebTransportServer]:
        """The running servers."""
        return list(self._servers)

    def get_server_count(self) -> int:
        """How many servers run."""
        return len(self._servers)

    async def get_cluster_stats(self) -> dict[str, Any]:
        """Totals over the running servers plus each server's stats."""
        per_server = [s.get_server_stats() for s in self._servers]
        return {
            "server_count": len(per_server),
            "total_connections_accepted": sum(s.get("connections_accepted", 0) for s in per_server),
            "total_connections_rejected": sum(s.get("connections_rejected", 0) for s in per_server),
            "total_active_connections": sum(s.get("active_connections", 0) for s in per_server),
            "total_sessions_requested": sum(s.get("sessions_requested", 0) for s in per_server),
            "servers": per_server,
        }

    async def __aenter__(self) -> ServerCluster:
        await self.start_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop_all()
