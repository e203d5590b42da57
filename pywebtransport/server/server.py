"""WebTransportServer: accepts QUIC connections and hands out session requests."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from typing import Any

from ..config import ServerConfig
from ..connection import WebTransportConnection
from ..compat.diagnostics import ServerCompat
from ..compat.settings import apply_logging
from ..compat.stats import ServerStats
from ..events import EventEmitter
from ..exceptions import ServerError
from ..protocol import session_event_data
from ..quic import QuicConfiguration, QuicConnection, QuicError, QuicListener, serve
from ..session import WebTransportSession
from ..types import EventType

__all__ = ["WebTransportServer", "quic_config_for_server"]


def quic_config_for_server(config: ServerConfig) -> QuicConfiguration:
    """Translate the documented ServerConfig into the QUIC layer's configuration."""
    if not config.certfile or not config.keyfile:
        raise ServerError("ServerConfig needs certfile and keyfile to serve WebTransport")
    window = 1 << max(16, (int(config.initial_max_stream_data_bidi_remote) - 1).bit_length())
    return QuicConfiguration(
        is_client=False,
        alpn_protocols=list(config.alpn_protocols),
        certfile=config.certfile,
        keyfile=config.keyfile,
        cafile=config.ca_certs,
        verify_peer=config.verify_mode == ssl.CERT_REQUIRED,
        request_client_certificate=config.verify_mode != ssl.CERT_NONE,
        idle_timeout=float(config.connection_idle_timeout or 60.0),
        keep_alive_interval=(float(config.connection_keepalive_timeout) or None) if config.keep_alive else None,
        max_peer_bidi_streams=min(65535, int(config.max_streams_per_connection)),
        max_peer_uni_streams=min(65535, int(config.max_streams_per_connection) + 3),
        stream_receive_window=window,
        congestion_control="bbr" if config.congestion_control_algorithm == "bbr" else "cubic",
        max_stream_buffer=max(65536, int(config.max_stream_buffer_size)),
        session_resumption=bool(config.session_resumption),
    )


SessionRequestHandler = Callable[[WebTransportSession], None]


class WebTransportServer(EventEmitter, ServerCompat):
    """Listens for QUIC connections and runs HTTP/3 + WebTransport on each.

    Events: ``CONNECTION_ESTABLISHED`` (data ``connection_id``, ``remote_address``,
    ``connection``) once a connection's HTTP/3 is up; ``CONNECTION_CLOSED`` (and
    ``CONNECTION_LOST`` when the peer or the network ended it) when it closes;
    ``SESSION_REQUEST`` (the session record: ``session_id``, ``stream_id``, ``state``,
    ``created_at``, ``path``, ``headers``, plus ``connection`` and ``session``) for each
    extended CONNECT. Without a `ServerApp`, a request nobody listens for is answered 404;
    with listeners, accepting (``session.accept()``) or rejecting is up to them.
    """

    def __init__(self, config: ServerConfig | None = None) -> None:
        super().__init__()
        self._pwt_config = config or ServerConfig()
        apply_logging(self._pwt_config)
        self._pwt_listener: QuicListener | None = None
        self.connections: set[WebTransportConnection] = set()
        self._pwt_app_router: SessionRequestHandler | None = None  # set by ServerApp
        self._pwt_started = 0.0
        # Connections whose handshake is still running (their SETTINGS are out already).
        self._pwt_handshaking: dict[QuicConnection, WebTransportConnection] = {}
        self._pwt_serving: asyncio.Future[None] | None = None
        self._pwt_stats = ServerStats()

    @property
    def config(self) -> ServerConfig:
        """The server's `ServerConfig`."""
        return self._pwt_config

    @property
    def is_serving(self) -> bool:
        """True while the server is listening."""
        return self._pwt_listener is not None

    @property
    def local_address(self) -> tuple[str, int] | None:
        """The bound ``(host, port)``, or None when not listening."""
        return self._pwt_listener.address if self._pwt_listener is not None else None

    async def listen(self, host: str | None = None, port: int | None = None) -> None:
        """Start listening on `host`:`port` (defaults from the config; port 0 picks a free one)."""
        host = self._pwt_config.bind_host if host is None else host
        port = self._pwt_config.bind_port if port is None else port
        if host == "localhost":
            host = "127.0.0.1"
        try:
            self._pwt_listener = await serve(host, port, quic_config_for_server(self._pwt_config), self._pwt_on_connection)
        except QuicError as exc:
            raise ServerError(f"cannot listen on {host}:{port}: {exc}", bind_address=(host, port)) from exc
        self._pwt_listener.on_new_connection = self._pwt_on_handshake_start
        self._pwt_started = time.monotonic()

    def _pwt_on_handshake_start(self, quic: QuicConnection) -> None:
        """A client's handshake began: queue our SETTINGS now (0.5-RTT), act on it when it completes."""
        if len(self.connections) + len(self._pwt_handshaking) >= self._pwt_config.max_connections:
            return  # refused once the handshake completes
        try:
            conn = WebTransportConnection(quic, config=self._pwt_config, on_session_request=self._pwt_on_session_request)
            conn.send_preface()
        except Exception:  # e.g. msquic refused the streams: start() reports it later
            return
        self._pwt_handshaking[quic] = conn
        quic.closed.add_done_callback(lambda _f: self._pwt_handshaking.pop(quic, None))

    def _pwt_on_connection(self, quic: QuicConnection) -> None:
        early = self._pwt_handshaking.pop(quic, None)
        if len(self.connections) >= self._pwt_config.max_connections:
            self._pwt_stats.connections_rejected += 1
            quic.close(0x107)  # H3_EXCESSIVE_LOAD
            return
        conn = early or WebTransportConnection(
            quic, config=self._pwt_config, on_session_request=self._pwt_on_session_request
        )
        conn.on_protocol_error = self._pwt_protocol_error  # counted in the stats
        self.connections.add(conn)
        self._pwt_stats.connections_accepted += 1
        quic.closed.add_done_callback(lambda _f: self._pwt_connection_closed(conn))
        try:
            conn.start_nowait()  # no task per connection: nothing here waits
        except Exception:
            self._pwt_stats.connection_errors += 1
            conn.close()
            return
        if self._ee_listened and EventType.CONNECTION_ESTABLISHED in self._ee_listening:
            self._ee_fire(
                EventType.CONNECTION_ESTABLISHED,
                {"connection_id": conn.connection_id, "remote_address": conn.remote_address, "connection": conn},
            )

    def _pwt_protocol_error(self, conn: WebTransportConnection, code: int, message: str) -> None:
        self._pwt_stats.protocol_errors += 1
        if self._ee_listened and EventType.PROTOCOL_ERROR in self._ee_listening:
            self._ee_fire(EventType.PROTOCOL_ERROR, {"error_code": code, "message": message, "connection": conn})

    def _pwt_connection_closed(self, conn: WebTransportConnection) -> None:
        self.connections.discard(conn)
        if self._ee_listened:
            reason = conn.quic.close_reason
            data = {
                "connection_id": conn.connection_id,
                "remote_address": conn.remote_address,
                "reason": reason.describe() if reason is not None else "",
                "connection": conn,
            }
            if reason is not None and reason.initiator != "local":
                self._ee_fire(EventType.CONNECTION_LOST, data)
            self._ee_fire(EventType.CONNECTION_CLOSED, data)

    def _pwt_on_session_request(self, session: WebTransportSession) -> None:
        self._pwt_stats.sessions_requested += 1
        if self._ee_listened and EventType.SESSION_REQUEST in self._ee_listening:
            self._ee_fire(EventType.SESSION_REQUEST, {**session_event_data(session), "connection": session.connection})
        if self._pwt_app_router is not None:
            self._pwt_app_router(session)
        elif not self.listener_count(EventType.SESSION_REQUEST) and not session.is_closed:
            self._pwt_stats.sessions_rejected += 1
            session.reject(404)

    async def serve_forever(self) -> None:
        """Wait until the server is closed."""
        if self._pwt_listener is None:
            raise ServerError("call listen() before serve_forever()")
        self._pwt_serving = asyncio.get_running_loop().create_future()
        await self._pwt_serving

    async def close(self, timeout: float = 5.0) -> None:
        """Stop listening; connections close once their CONNECT streams ended (bounded)."""
        listener, self._pwt_listener = self._pwt_listener, None
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
        if self._pwt_serving is not None and not self._pwt_serving.done():
            self._pwt_serving.set_result(None)

    def get_server_stats(self) -> dict[str, Any]:
        """Server counters (connections, sessions, uptime) as a dict."""
        return {
            **self._pwt_stats.to_dict(),
            "active_connections": len(self.connections),
            "uptime": time.monotonic() - self._pwt_started if self._pwt_started else 0.0,
            "is_serving": self.is_serving,
        }

    async def __aenter__(self) -> "WebTransportServer":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
