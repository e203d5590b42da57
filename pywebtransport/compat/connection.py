"""0.1.x connection extras: `ConnectionManager`, `ConnectionPool` and connection conveniences."""

from __future__ import annotations

import time
import uuid
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..exceptions import ConnectionError
from ..types import EventType
from ._registry import Registry

if TYPE_CHECKING:
    from ..config import ClientConfig
    from ..connection import WebTransportConnection
    from ..quic import CloseReason

__all__ = ["ConnectionCompat", "ConnectionManager", "ConnectionPool"]


class ConnectionCompat:
    """0.1.x conveniences of `WebTransportConnection` (a mixin; the core never calls these)."""

    @property
    def connection_id(self) -> str:
        """A random identifier, fixed for the connection's lifetime."""
        cid = self.__dict__.get("_pwt_connection_id")
        if cid is None:
            cid = self.__dict__["_pwt_connection_id"] = str(uuid.uuid4())
        return cid

    @property
    def is_connected(self: WebTransportConnection) -> bool:  # type: ignore[misc]
        """Whether the connection is up and not closing."""
        return not self.is_closed and str(self.state) == "connected"

    def get_summary(self: WebTransportConnection) -> dict[str, Any]:  # type: ignore[misc]
        """Identity, addresses, state and counters."""
        return {"connection_id": self.connection_id, "sessions": len(self.sessions), **self.info()}

    def _pwt_closed_events(self: WebTransportConnection, reason: CloseReason) -> None:  # type: ignore[misc]
        data = {"connection_id": self.connection_id, "reason": reason.describe(), "error_code": reason.error_code}
        if reason.initiator != "local":
            self._ee_fire(EventType.CONNECTION_LOST, data)
        self._ee_fire(EventType.CONNECTION_CLOSED, data)

    def diagnose_issues(self: WebTransportConnection) -> list[str]:  # type: ignore[misc]
        """Human-readable problems (empty when healthy)."""
        issues = []
        if self.is_closed:
            issues.append(f"connection is {self.state}")
        reason = self.quic.close_reason
        if reason is not None:
            issues.append(f"connection {reason.describe()}")
        return issues


class ConnectionManager:
    """Tracks connections up to `max_connections`; closed ones are forgotten.

    Connections are removed when they close; while the manager is entered
    (``async with``) a sweep also runs every `cleanup_interval` seconds.
    """

    def __init__(self, *, max_connections: int = 1000, cleanup_interval: float = 60.0) -> None:
        self._registry: Registry[str, WebTransportConnection] = Registry(
            limit=max_connections,
            cleanup_interval=cleanup_interval,
            is_closed=lambda c: c.is_closed,
            close=lambda c: c.aclose(),
            kind="connection",
        )

    async def add_connection(self, connection: WebTransportConnection) -> str:
        """Track `connection`; raises `ConnectionError` when full. Returns its id."""
        cid = connection.connection_id
        if self._registry.is_full() and cid not in self._registry:
            self._registry.cleanup()
            if self._registry.is_full():
                raise ConnectionError(f"connection limit reached ({self._registry.limit})")
        self._registry.add(cid, connection)
        connection.quic.closed.add_done_callback(lambda _f: self._registry.remove(cid))
        return cid

    async def remove_connection(self, connection_id: str) -> WebTransportConnection | None:
        """Stop tracking a connection; returns it (None if unknown)."""
        return self._registry.remove(connection_id)

    async def get_connection(self, connection_id: str) -> WebTransportConnection | None:
        """The tracked connection with this id, or None."""
        return self._registry.get(connection_id)

    async def get_all_connections(self) -> list[WebTransportConnection]:
        """Every tracked connection."""
        return self._registry.values()

    def get_connection_count(self) -> int:
        """How many connections are tracked."""
        return len(self._registry)

    async def cleanup_closed_connections(self) -> int:
        """Forget closed connections now; returns how many."""
        return self._registry.cleanup()

    async def close_all_connections(self) -> int:
        """Close every tracked connection; returns how many."""
        return await self._registry.close_all()

    def get_stats(self) -> dict[str, Any]:
        """Counters: active, maximum, totals and the peak."""
        stats = self._registry.stats()
        return {
            "active": stats["active_connections"],
            "max_connections": stats["max_connections"],
            "total_created": stats["total_added"],
            "total_closed": stats["total_removed"],
            "peak": stats["peak"],
        }

    async def shutdown(self) -> None:
        """Stop the sweep and close every tracked connection."""
        await self._registry.stop()
        await self._registry.close_all()

    async def __aenter__(self) -> ConnectionManager:
        self._registry.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()


class ConnectionPool:
    """Reuses idle client connections keyed by ``host:port:path``.

    `get_connection` hands out an idle connection to the same target when one is open
    and younger than `max_idle_time`, else opens a new one (QUIC + HTTP/3 SETTINGS);
    `return_connection` puts it back, closing it when `max_size` idle ones are kept.
    """

    def __init__(self, *, max_size: int = 10, max_idle_time: float = 300.0) -> None:
        if max_size <= 0:
            raise ValueError("max_size must be positive")
        self._max_size = max_size
        self._max_idle = max_idle_time
        self._idle: dict[str, list[tuple[WebTransportConnection, float]]] = {}
        self._keys: dict[WebTransportConnection, str] = {}
        self.created = 0
        self.reused = 0

    async def get_connection(
        self, config: ClientConfig, host: str, port: int, path: str = "/"
    ) -> WebTransportConnection:
        """An open connection to `host`:`port` (`path` is part of the pool key)."""
        key = f"{host}:{port}:{path}"
        now = time.monotonic()
        idle = self._idle.get(key, [])
        while idle:
            conn, since = idle.pop()
            if not conn.is_closed and now - since <= self._max_idle:
                self.reused += 1
                return conn
            conn.close()
        conn = await _open_connection(config, host, port)
        self._keys[conn] = key
        self.created += 1
        return conn

    async def return_connection(self, connection: WebTransportConnection) -> None:
        """Give a connection back for reuse (closed ones, and overflow, are closed)."""
        key = self._keys.get(connection)
        if key is None or connection.is_closed:
            self._keys.pop(connection, None)
            connection.close()
            return
        if sum(len(v) for v in self._idle.values()) >= self._max_size:
            self._keys.pop(connection, None)
            await connection.close_gracefully(1.0)
            return
        self._idle.setdefault(key, []).append((connection, time.monotonic()))

    async def cleanup_idle_connections(self) -> int:
        """Close idle connections older than `max_idle_time`; returns how many."""
        now = time.monotonic()
        removed = 0
        for key, entries in list(self._idle.items()):
            keep = []
            for conn, since in entries:
                if conn.is_closed or now - since > self._max_idle:
                    conn.close()
                    self._keys.pop(conn, None)
                    removed += 1
                else:
                    keep.append((conn, since))
            self._idle[key] = keep
        return removed

    async def close_all(self) -> None:
        """Close every idle connection."""
        for entries in self._idle.values():
            for conn, _ in entries:
                self._keys.pop(conn, None)
                await conn.close_gracefully(1.0)
        self._idle.clear()

    def get_stats(self) -> dict[str, Any]:
        """Idle connections per key and totals."""
        return {
            "total_idle": sum(len(v) for v in self._idle.values()),
            "max_size": self._max_size,
            "pools": {k: len(v) for k, v in self._idle.items() if v},
            "created": self.created,
            "reused": self.reused,
        }

    async def __aenter__(self) -> ConnectionPool:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close_all()


async def _open_connection(config: ClientConfig, host: str, port: int) -> WebTransportConnection:
    # Imported here: pywebtransport.connection re-exports this module's names, and the
    # client module (which translates the configuration) imports pywebtransport.connection.
    from ..client import quic_config_for_client
    from ..connection import WebTransportConnection
    from ..quic import CloseReason
    from ..quic import connect

    quic = await connect(host, port, quic_config_for_client(config))
    conn = WebTransportConnection(quic, config=config)
    try:
        await conn.start()
        await conn.wait_settings(config.connect_timeout)
    except BaseException:
        conn.close()
        raise
    return conn
