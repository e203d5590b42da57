"""WebTransportServer: accepts QUIC connections and hands out session requests."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from typing import Any

from ..config import ServerConfig
from ..connection import WebTransportConnection
from ..exceptions import ServerError
from ..quic import QuicConfiguration, QuicConnection, QuicError, QuicListener, serve
from ..session import WebTransportSession

__all__ = ["WebTransportServer", "quic_config_for_server"]


def quic_config_for_server(config: ServerConfig) -> QuicConfiguration:
    """Translate the documented ServerConfig into the QUIC layer's configuration."""
    if not config.certfile or not config.keyfile:
        raise ServerError("ServerConfig needs certfile and keyfile to serve WebTransport")
    window = 1 << max(16, (int(config.initial_max_stream_data_bidi_remote) - 1).bit_length())
    return QuicConfiguration(
        is_client=False,
        alpn_protocols=["h3"],
        certfile=config.certfile,
        keyfile=config.keyfile,
        cafile=config.ca_certs,
        verify_peer=config.verify_mode == ssl.CERT_REQUIRED,
        request_client_certificate=config.verify_mode != ssl.CERT_NONE,
        idle_timeout=float(config.connection_idle_timeout or 60.0),
        max_peer_bidi_streams=min(65535, int(config.max_streams_per_connection)),
        max_peer_uni_streams=min(65535, int(config.max_streams_per_connection) + 3),
        stream_receive_window=window,
        congestion_control="bbr" if config.congestion_control_algorithm == "bbr" else "cubic",
        max_stream_buffer=max(65536, int(config.max_stream_buffer_size)),
    )


SessionRequestHandler = Callable[[WebTransportSession], None]


class WebTransportServer:
    """Listens for QUIC connections and runs HTTP/3 + WebTransport on each."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self._config = config or ServerConfig()
        self._listener: QuicListener | None = None
        self.connections: set[WebTransportConnection] = set()
        self.on_session_request: SessionRequestHandler | None = None
        self._started = 0.0
        self._serving: asyncio.Future[None] | None = None
        self._stats = {"connections_accepted": 0, "connections_rejected": 0}

    @property
    def config(self) -> ServerConfig:
        return self._config

    @property
    def is_serving(self) -> bool:
        return self._listener is not None

    @property
    def local_address(self) -> tuple[str, int] | None:
        return self._listener.address if self._listener is not None else None

    async def listen(self, host: str | None = None, port: int | None = None) -> None:
        host = self._config.bind_host if host is None else host
        port = self._config.bind_port if port is None else port
        if host == "localhost":
            host = "127.0.0.1"
        try:
            self._listener = await serve(host, port, quic_config_for_server(self._config), self._on_connection)
        except QuicError as exc:
            raise ServerError(f"cannot listen on {host}:{port}: {exc}", bind_address=(host, port)) from exc
        self._started = time.monotonic()

    async def _on_connection(self, quic: QuicConnection) -> None:
        if len(self.connections) >= self._config.max_connections:
            self._stats["connections_rejected"] += 1
            quic.close(0x107)  # H3_EXCESSIVE_LOAD
            return
        conn = WebTransportConnection(quic, config=self._config)
        conn.on_session_request = self._on_session_request
        self.connections.add(conn)
        self._stats["connections_accepted"] += 1
        quic.closed.add_done_callback(lambda _f: self.connections.discard(conn))
        try:
            await conn.start()
        except Exception:
            conn.close()

    def _on_session_request(self, session: WebTransportSession) -> None:
        if self.on_session_request is None:
            session.reject(404)
        else:
            self.on_session_request(session)

    async def serve_forever(self) -> None:
        if self._listener is None:
            raise ServerError("call listen() before serve_forever()")
        self._serving = asyncio.get_running_loop().create_future()
        await self._serving

    async def close(self, timeout: float = 5.0) -> None:
        """Stop listening; connections close once their CONNECT streams ended (bounded)."""
        listener, self._listener = self._listener, None
        if self.connections:
            await asyncio.wait(
                [asyncio.ensure_future(c.close_gracefully(min(timeout, 2.0))) for c in self.connections],
                timeout=timeout,
            )
        if listener is not None:
            listener.close(0x100)  # H3_NO_ERROR
            try:
                await listener.wait_closed(timeout)
            except asyncio.TimeoutError:
                pass
        if self._serving is not None and not self._serving.done():
            self._serving.set_result(None)

    def get_server_stats(self) -> dict[str, Any]:
        return {
            **self._stats,
            "active_connections": len(self.connections),
            "uptime": time.monotonic() - self._started if self._started else 0.0,
        }

    async def __aenter__(self) -> "WebTransportServer":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
