"""ServerApp: routes, middleware and lifecycle hooks over a WebTransportServer."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
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
Hook = Callable[[], Awaitable[None] | None]


class ServerApp:
    """A WebTransport application: ``@app.route(path)`` handlers behind middleware.

    Unmatched paths are answered 404, rejected requests with the middleware's
    status (403 by default).  A session is closed when its handler returns.
    """

    def __init__(self, config: ServerConfig | None = None) -> None:
        self._config = config or ServerConfig.create()
        self._server = WebTransportServer(self._config)
        self._server.on_session_request = self._on_session_request
        self._router = RequestRouter()
        self._middleware: MiddlewareManager[WebTransportSession] = MiddlewareManager(
            list(getattr(self._config, "middleware", None) or [])
        )
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._entered: list[Any] = []

    @property
    def server(self) -> WebTransportServer:
        return self._server

    @property
    def config(self) -> ServerConfig:
        return self._config

    # -- registration ---------------------------------------------------------
    def route(self, path: str) -> Callable[[SessionHandler], SessionHandler]:
        return self._router.route(path)

    def pattern_route(self, pattern: str) -> Callable[[SessionHandler], SessionHandler]:
        return self._router.pattern_route(pattern)

    def add_route(self, path: str, handler: SessionHandler) -> None:
        self._router.add_route(path, handler)

    def set_default_handler(self, handler: SessionHandler | None) -> None:
        self._router.set_default_handler(handler)

    def middleware(self, fn: Any) -> Any:
        self._middleware.add_middleware(fn)
        return fn

    def add_middleware(self, fn: Any) -> None:
        self._middleware.add_middleware(fn)

    def on_startup(self, fn: Hook) -> Hook:
        self._startup.append(fn)
        return fn

    def on_shutdown(self, fn: Hook) -> Hook:
        self._shutdown.append(fn)
        return fn

    # -- request flow -------------------------------------------------------------
    def _on_session_request(self, session: WebTransportSession) -> None:
        task = asyncio.get_running_loop().create_task(self._handle(session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, session: WebTransportSession) -> None:
        try:
            await self._middleware.check(session)
        except MiddlewareRejected as rejection:
            self._answer(session, rejection.status)
            return
        found = self._router.lookup(session.path)
        if found is None:
            self._answer(session, 404)
            return
        handler, params = found
        session.path_params = params
        protocol = session.available_protocols[0] if session.available_protocols else None
        if not self._answer(session, 200, protocol):
            return
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

    @staticmethod
    def _answer(session: WebTransportSession, status: int, protocol: str | None = None) -> bool:
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
        return True

    # -- lifecycle ---------------------------------------------------------------
    async def startup(self) -> None:
        for mw in self._middleware.middleware:
            if hasattr(mw, "__aenter__"):
                self._entered.append(await mw.__aenter__())
        for hook in self._startup:
            result = hook()
            if inspect.isawaitable(result):
                await result

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Graceful stop: GOAWAY + DRAIN every session, give handlers until the
        deadline to finish, then close what is left and stop listening."""
        connections = list(self._server.connections)
        for conn in connections:
            conn.send_goaway()
            for session in list(conn.sessions.values()):
                session.drain()
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        for conn in connections:
            for session in list(conn.sessions.values()):
                await session.close(0, "server shutting down")
        await self._server.close(timeout)
        for hook in self._shutdown:
            result = hook()
            if inspect.isawaitable(result):
                await result

    async def serve(self, host: str | None = None, port: int | None = None) -> None:
        """Listen and serve until cancelled."""
        await self.startup()
        await self._server.listen(host=host, port=port)
        try:
            await self._server.serve_forever()
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
