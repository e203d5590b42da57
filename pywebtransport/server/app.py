"""ServerApp: routes, middleware and lifecycle hooks over a WebTransportServer."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ..config import ServerConfig
from ..exceptions import MiddlewareRejected, ServerError, WebTransportError
from ..quic import QuicError
from ..session import WebTransportSession
from ..types import SessionHandler
from .middleware import MiddlewareManager
from .router import RequestRouter
from .server import WebTransportServer

__all__ = ["ServerApp"]

log = logging.getLogger("pywebtransport.server")
access_log = logging.getLogger("pywebtransport.server.access")


def _peer(session: WebTransportSession) -> str:
    address = session.remote_address
    return f"{address[0]}:{address[1]}" if address else "-"
Hook = Callable[[], Awaitable[None] | None]


def _log_access_when_done(session: WebTransportSession, status: int) -> None:
    """One access-log line per session: at its end if accepted, at once if refused.

    The line is ``PEER PATH -> STATUS DURATIONs sent=N recv=N datagrams=N/N close=CODE``; the same
    values are attached as structured fields (``record.wt_peer``, ``wt_path``, ``wt_status``,
    ``wt_duration``, ``wt_bytes_sent``, ``wt_bytes_received``, ``wt_close_code``,
    ``wt_close_reason``) for JSON formatters.
    """
    started = time.monotonic()

    def write(_event: object = None) -> None:
        stats = session.stats
        fields = {
            "wt_peer": _peer(session),
            "wt_path": session.path,
            "wt_status": status,
            "wt_duration": round(time.monotonic() - started, 6),
            "wt_bytes_sent": int(stats.get("bytes_sent", 0)),
            "wt_bytes_received": int(stats.get("bytes_received", 0)),
            "wt_datagrams_sent": int(stats.get("datagrams_sent", 0)),
            "wt_datagrams_received": int(stats.get("datagrams_received", 0)),
            "wt_close_code": session.close_code,
            "wt_close_reason": session.close_reason,
        }
        access_log.info(
            "%s %s -> %d %.3fs sent=%d recv=%d datagrams=%d/%d close=%s",
            fields["wt_peer"], fields["wt_path"], status, fields["wt_duration"], fields["wt_bytes_sent"],
            fields["wt_bytes_received"], fields["wt_datagrams_sent"], fields["wt_datagrams_received"],
            "-" if session.close_code is None else session.close_code,
            extra=fields,
        )

    if 200 <= status < 300 and not session.is_closed:
        # The session's own closed future rather than an event handler: no emitter
        # state per session.
        session._closed.add_done_callback(write)
    else:
        write()


class ServerApp:
    """A WebTransport application: ``@app.route(path)`` handlers behind middleware.

    Unmatched paths are answered 404, rejected requests with the middleware's
    status (403 by default).  A session is closed when its handler returns.
    """

    def __init__(self, config: ServerConfig | None = None) -> None:
        self._pwt_config = config or ServerConfig.create()
        self._pwt_server = WebTransportServer(self._pwt_config)
        self._pwt_server._pwt_app_router = self._pwt_route_request
        self._pwt_router = RequestRouter()
        self._pwt_middleware: MiddlewareManager[WebTransportSession] = MiddlewareManager(
            list(getattr(self._pwt_config, "middleware", None) or [])
        )
        self._pwt_startup: list[Hook] = []
        self._pwt_shutdown: list[Hook] = []
        self._pwt_tasks: set[asyncio.Task[None]] = set()
        self._pwt_entered: list[Any] = []

    @property
    def server(self) -> WebTransportServer:
        """The underlying `WebTransportServer`."""
        return self._pwt_server

    @property
    def config(self) -> ServerConfig:
        """The app's `ServerConfig`."""
        return self._pwt_config

    # -- registration ---------------------------------------------------------
    def route(self, path: str) -> Callable[[SessionHandler], SessionHandler]:
        """Decorator registering a session handler for an exact `path`."""
        return self._pwt_router.route(path)

    def pattern_route(self, pattern: str) -> Callable[[SessionHandler], SessionHandler]:
        """Decorator registering a handler for a path pattern; captured groups go to ``session.path_params``."""
        return self._pwt_router.pattern_route(pattern)

    def add_route(self, path: str, handler: SessionHandler) -> None:
        """Register `handler` for an exact `path`."""
        self._pwt_router.add_route(path, handler)

    def set_default_handler(self, handler: SessionHandler | None) -> None:
        """Handler for paths no route matches (otherwise they get 404)."""
        self._pwt_router.set_default_handler(handler)

    def middleware(self, fn: Any) -> Any:
        """Decorator adding a middleware (returns False or raises to refuse a session)."""
        self._pwt_middleware.add_middleware(fn)
        return fn

    def add_middleware(self, fn: Any) -> None:
        """Add a middleware (returns False or raises to refuse a session)."""
        self._pwt_middleware.add_middleware(fn)

    def on_startup(self, fn: Hook) -> Hook:
        """Decorator registering a hook run when the app starts."""
        self._pwt_startup.append(fn)
        return fn

    def on_shutdown(self, fn: Hook) -> Hook:
        """Decorator registering a hook run when the app stops."""
        self._pwt_shutdown.append(fn)
        return fn

    # -- request flow -------------------------------------------------------------
    def _pwt_route_request(self, session: WebTransportSession) -> None:
        coro: Coroutine[Any, Any, None]
        if self._pwt_middleware.get_middleware_count():
            coro = self._pwt_handle(session)
        else:
            # Nothing to await before answering: route and answer now (the 200 leaves
            # in this loop iteration), and run only the handler in a task.
            handler = self._pwt_admit(session)
            if handler is None:
                return
            coro = self._pwt_run(session, handler)
        task = asyncio.get_running_loop().create_task(coro)
        self._pwt_tasks.add(task)
        task.add_done_callback(self._pwt_tasks.discard)

    async def _pwt_handle(self, session: WebTransportSession) -> None:
        try:
            await self._pwt_middleware.check(session)
        except MiddlewareRejected as rejection:
            self._pwt_answer(session, rejection.status)
            return
        handler = self._pwt_admit(session)
        if handler is not None:
            await self._pwt_run(session, handler)

    def _pwt_admit(self, session: WebTransportSession) -> SessionHandler | None:
        """Route the request and answer it: the handler to run, or None if refused or gone."""
        found = self._pwt_router.lookup(session.path)
        if found is None:
            self._pwt_answer(session, 404)
            return None
        handler, params = found
        session.path_params = params
        protocol = session.available_protocols[0] if session.available_protocols else None
        if not self._pwt_answer(session, 200, protocol):
            return None
        return handler

    async def _pwt_run(self, session: WebTransportSession, handler: SessionHandler) -> None:
        try:
            await handler(session)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("handler for %s failed", session.path)
            await session.close(1, "internal error")
            return
        finally:
            if not session.is_closed and not asyncio.current_task().cancelling():  # type: ignore[union-attr]
                await session.close()

    def _pwt_answer(self, session: WebTransportSession, status: int, protocol: str | None = None) -> bool:
        """Accept (2xx) or reject a request; False if the client is already gone."""
        if session.is_closed:
            return False
        try:
            if 200 <= status < 300:
                session.accept(protocol)
            else:
                session.reject(status)
        except (KeyError, ValueError, QuicError, WebTransportError) as exc:
            log.debug("could not answer the session request for %s: %s", session.path, exc)
            return False
        stats = self._pwt_server._pwt_stats
        if 200 <= status < 300:
            stats.sessions_accepted += 1
        else:
            stats.sessions_rejected += 1
        if self._pwt_config.access_log and access_log.isEnabledFor(logging.INFO):
            _log_access_when_done(session, status)
        return True

    # -- lifecycle ---------------------------------------------------------------
    async def startup(self) -> None:
        """Enter middleware contexts and run the startup hooks."""
        for mw in self._pwt_middleware.middleware:
            if hasattr(mw, "__aenter__"):
                self._pwt_entered.append(await mw.__aenter__())
        for hook in self._pwt_startup:
            result = hook()
            if inspect.isawaitable(result):
                await result

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Graceful stop: GOAWAY + DRAIN every session, give handlers until the
        deadline to finish, then close what is left and stop listening."""
        connections = list(self._pwt_server.connections)
        for conn in connections:
            conn.send_goaway()
            for session in list(conn.sessions.values()):
                session.drain()
        if self._pwt_tasks:
            _, pending = await asyncio.wait(list(self._pwt_tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        for conn in connections:
            for session in list(conn.sessions.values()):
                await session.close(0, "server shutting down")
        await self._pwt_server.close(timeout)
        for hook in self._pwt_shutdown:
            result = hook()
            if inspect.isawaitable(result):
                await result

    async def serve(self, host: str | None = None, port: int | None = None) -> None:
        """Listen and serve until cancelled."""
        await self.startup()
        await self._pwt_server.listen(host=host, port=port)
        try:
            await self._pwt_server.serve_forever()
        finally:
            await self.shutdown()

    def run(self, host: str | None = None, port: int | None = None, workers: int = 1) -> None:
        """Blocking entry point: ``asyncio.run(serve())``; Ctrl-C stops it.

        With ``workers > 1`` the app is served by that many forked processes sharing the UDP
        port (Linux; see `pywebtransport.server.workers`); raises ServerError if a worker fails.
        """
        if workers > 1:
            from .workers import run_workers

            if run_workers(self, host, port, workers) != 0:
                raise ServerError("a worker process exited; all workers were stopped")
            return
        try:
            asyncio.run(self.serve(host=host, port=port))
        except KeyboardInterrupt:
            pass

    async def __aenter__(self) -> "ServerApp":
        await self.startup()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()
