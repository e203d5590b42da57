"""Pools built on the public client and session API.

* `ClientPool`: several independent `WebTransportClient` objects handed out in turn.
* `SessionPool` (alias `PooledClient`): open sessions kept per URL and reused.
* `StreamPool`: bidirectional streams of one session opened ahead of time.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .client import WebTransportClient
from .config import ClientConfig
from .exceptions import ClientError, SessionError
from .session import WebTransportSession
from .compat.stream import StreamPool

__all__ = ["ClientPool", "PooledClient", "SessionPool", "StreamPool"]

log = logging.getLogger("pywebtransport.pool")


class ClientPool:
    """A fixed set of clients, each with its own configuration, used round-robin."""

    def __init__(self, configs: Sequence[ClientConfig | None]) -> None:
        if not configs:
            raise ValueError("ClientPool needs at least one configuration")
        self._clients = [WebTransportClient(config=c) for c in configs]
        self._next = 0
        self._closed = False
        self._sessions: weakref.WeakSet[WebTransportSession] = weakref.WeakSet()

    @classmethod
    def create(cls, num_clients: int = 10, base_config: ClientConfig | None = None) -> "ClientPool":
        """A pool of ``num_clients`` clients sharing ``base_config`` (copied per client)."""
        if num_clients < 1:
            raise ValueError("num_clients must be at least 1")
        base = base_config or ClientConfig.create()
        return cls([base.copy() for _ in range(num_clients)])

    @property
    def clients(self) -> list[WebTransportClient]:
        """Every client in the pool, in round-robin order (a copy of the list)."""
        return list(self._clients)

    @property
    def is_closed(self) -> bool:
        """Whether `close_all()` has been called."""
        return self._closed

    def __len__(self) -> int:
        return len(self._clients)

    def get_client(self) -> WebTransportClient:
        """The next client in round-robin order."""
        if self._closed:
            raise ClientError("client pool is closed")
        client = self._clients[self._next % len(self._clients)]
        self._next = (self._next + 1) % len(self._clients)
        return client

    async def connect_all(self, url: str, timeout: float | None = None) -> list[WebTransportSession]:
        """Open one session to ``url`` from every client concurrently.

        Returns the sessions that opened (failures are logged); raises
        `ClientError` only if none did.
        """
        if self._closed:
            raise ClientError("client pool is closed", target_url=url)
        results = await asyncio.gather(
            *(c.connect(url, timeout=timeout) for c in self._clients), return_exceptions=True
        )
        sessions: list[WebTransportSession] = []
        errors: list[BaseException] = []
        for result in results:
            if isinstance(result, WebTransportSession):
                sessions.append(result)
                self._sessions.add(result)
            else:
                errors.append(result)
                log.warning("pool client failed to connect to %s: %s", url, result)
        if not sessions and errors:
            raise ClientError(f"no client of the pool could connect to {url}: {errors[0]}", target_url=url)
        return sessions

    def get_stats(self) -> dict[str, Any]:
        """Client count and each client's `stats` (under ``per_client``)."""
        return {"clients": len(self._clients), "per_client": [c.stats for c in self._clients]}

    async def close_all(self) -> None:
        """Close every client (and so every session they opened)."""
        self._closed = True
        for session in list(self._sessions):
            await session.close()
        await asyncio.gather(*(c.close() for c in self._clients), return_exceptions=True)

    async def __aenter__(self) -> "ClientPool":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close_all()


@dataclass
class _Idle:
    session: WebTransportSession
    since: float


class SessionPool:
    """Reuses open sessions per URL.

    `get_session` hands out an idle open session for the URL if there is one,
    otherwise connects; `return_session` puts it back (up to ``pool_size``
    idle sessions per URL; extra ones are closed).  Every ``cleanup_interval``
    seconds, closed sessions are dropped and sessions idle longer than
    ``max_idle_time`` are closed.
    """

    def __init__(
        self,
        config: ClientConfig | None = None,
        pool_size: int = 10,
        cleanup_interval: float = 60,
        *,
        max_idle_time: float = 300.0,
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        if cleanup_interval <= 0:
            raise ValueError("cleanup_interval must be positive")
        self._client = WebTransportClient(config=config)
        self._pool_size = pool_size
        self._cleanup_interval = cleanup_interval
        self._max_idle = max_idle_time
        self._idle: dict[str, deque[_Idle]] = {}
        self._in_use: dict[WebTransportSession, str] = {}
        self._cleanup_task: asyncio.Task[None] | None = None
        self._closed = False
        self._stats = {"created": 0, "reused": 0, "returned": 0, "discarded": 0}

    @property
    def client(self) -> WebTransportClient:
        """The client that opens the pooled sessions."""
        return self._client

    @property
    def is_closed(self) -> bool:
        """Whether `close()` has been called."""
        return self._closed

    def idle_count(self, url: str | None = None) -> int:
        """Idle sessions kept for ``url`` (or for all URLs)."""
        if url is not None:
            return len(self._idle.get(url, ()))
        return sum(len(q) for q in self._idle.values())

    def _ensure_cleanup(self) -> None:
        if self._cleanup_task is None or self._cleanup_task.done():
            self._cleanup_task = asyncio.get_running_loop().create_task(self._cleanup_loop())

    async def get_session(self, url: str, timeout: float | None = None) -> WebTransportSession:
        """An open session to ``url``: a pooled idle one, or a new one."""
        if self._closed:
            raise ClientError("session pool is closed", target_url=url)
        self._ensure_cleanup()
        queue = self._idle.get(url)
        while queue:
            entry = queue.pop()  # most recently used first
            if entry.session.is_ready and not entry.session.is_closed:
                self._in_use[entry.session] = url
                self._stats["reused"] += 1
                return entry.session
            self._stats["discarded"] += 1
        session = await self._client.connect(url, timeout=timeout)
        self._stats["created"] += 1
        self._in_use[session] = url
        return session

    async def return_session(self, session: WebTransportSession) -> None:
        """Give a session back for reuse (closed sessions are simply forgotten)."""
        url = self._in_use.pop(session, None)
        if url is None:
            raise SessionError("session was not obtained from this pool", session_id=session.session_id)
        if self._closed or session.is_closed or not session.is_ready:
            self._stats["discarded"] += 1
            await session.close()
            return
        queue = self._idle.setdefault(url, deque())
        if len(queue) >= self._pool_size:
            self._stats["discarded"] += 1
            await session.close()
            return
        queue.append(_Idle(session, time.monotonic()))
        self._stats["returned"] += 1

    async def cleanup(self) -> int:
        """Drop closed and over-idle sessions now; returns how many were removed."""
        now = time.monotonic()
        removed = 0
        for url, queue in list(self._idle.items()):
            keep: deque[_Idle] = deque()
            for entry in queue:
                if entry.session.is_closed:
                    removed += 1
                elif now - entry.since > self._max_idle:
                    removed += 1
                    await entry.session.close()
                else:
                    keep.append(entry)
            if keep:
                self._idle[url] = keep
            else:
                del self._idle[url]
        self._stats["discarded"] += removed
        return removed

    async def _cleanup_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self._cleanup_interval)
            try:
                await self.cleanup()
            except Exception:  # keep cleaning on the next round
                log.exception("session pool cleanup failed")

    def get_stats(self) -> dict[str, Any]:
        """Pool counters plus the number of ``idle`` and ``in_use`` sessions."""
        return {**self._stats, "idle": self.idle_count(), "in_use": len(self._in_use)}

    async def close(self) -> None:
        """Close every pooled and handed-out session and the underlying client."""
        self._closed = True
        if self._cleanup_task is not None:
            self._cleanup_task.cancel()
            await asyncio.gather(self._cleanup_task, return_exceptions=True)
        sessions = [e.session for q in self._idle.values() for e in q] + list(self._in_use)
        self._idle.clear()
        self._in_use.clear()
        for session in sessions:
            await session.close()
        await self._client.close()

    async def __aenter__(self) -> "SessionPool":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


PooledClient = SessionPool
