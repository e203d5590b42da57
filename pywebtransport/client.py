"""WebTransportClient: opens WebTransport sessions to https:// URLs."""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .compat.diagnostics import ClientCompat
from .compat.settings import apply_logging
from .compat.stats import ClientStats
from .config import ClientConfig
from .connection import WebTransportConnection
from .events import EventEmitter
from .exceptions import (
    CertificateVerificationError,
    ClientError,
    ConfigurationError,
    SessionError,
    TimeoutError,
    WebTransportError,
)
from .protocol import session_event_data
from .quic import CertificateVerifyError, ConnectError, QuicConfiguration, QuicConnection, QuicError, connect
from .session import WebTransportSession
from .types import EventType
from .utils import get_logger, parse_webtransport_url

__all__ = [
    "ClientMonitor",
    "ClientPool",
    "ClientStats",
    "PooledClient",
    "ReconnectingClient",
    "WebTransportBrowser",
    "WebTransportClient",
    "WebTransportProxy",
    "benchmark_client_performance",
    "quic_config_for_client",
    "test_client_connectivity",
]

logger = get_logger("client")
# Clients connect to the same few URLs again and again; parsing one costs ~10 µs.
_parse_url = functools.lru_cache(maxsize=256)(parse_webtransport_url)
_warned_insecure = False


def _warn_insecure_once() -> None:
    global _warned_insecure
    if not _warned_insecure:
        _warned_insecure = True
        logger.warning(
            "Server certificate verification is disabled (verify_mode=CERT_NONE): any server "
            "can impersonate the one you connect to. Pin a self-signed server with "
            "ClientConfig(server_certificate_hashes=[...]) or trust its CA with ca_certs instead."
        )


def quic_config_for_client(config: ClientConfig) -> QuicConfiguration:
    """Translate the documented ClientConfig into the QUIC layer's configuration."""
    pins = config.pinned_certificate_hashes()
    verify = config.verify_mode != ssl.CERT_NONE
    if not verify and not pins:
        _warn_insecure_once()
    window = 1 << max(16, (int(config.initial_max_stream_data_bidi_local) - 1).bit_length())
    return QuicConfiguration(
        is_client=True,
        alpn_protocols=list(config.alpn_protocols),
        cafile=config.ca_certs,
        certfile=config.certfile,
        keyfile=config.keyfile,
        verify_peer=verify,
        check_hostname=bool(config.check_hostname),
        certificate_hashes=pins,
        idle_timeout=float(config.connection_idle_timeout or 60.0),
        handshake_timeout=float(config.connect_timeout),
        keep_alive_interval=float(config.connection_keepalive_timeout) or None,
        max_peer_bidi_streams=min(65535, int(config.max_incoming_streams)),
        max_peer_uni_streams=min(65535, int(config.max_incoming_streams) + 3),
        stream_receive_window=window,
        congestion_control="bbr" if config.congestion_control_algorithm == "bbr" else "cubic",
        max_stream_buffer=max(65536, int(config.max_stream_buffer_size)),
        share_udp_binding=bool(config.share_udp_binding),
        keylog_file=config.keylog_file,
        session_resumption=bool(config.session_resumption),
    )


class WebTransportClient(EventEmitter, ClientCompat):
    """Client that opens sessions; one QUIC connection per session unless
    ``reuse_connections`` lets several sessions share one.

    Events: ``CONNECTION_ESTABLISHED`` (``connection_id``, ``host``, ``port``,
    ``connection``) when a new connection's HTTP/3 is up; ``SESSION_READY`` (the session
    record plus ``session`` and ``url``) when `connect` succeeds; ``CONNECTION_FAILED``
    (``url``, ``error``) and, for timeouts, ``TIMEOUT_ERROR`` when it fails;
    ``CONNECTION_CLOSED`` (and ``CONNECTION_LOST`` unless we closed it) per connection.
    """

    def __init__(self, config: ClientConfig | None = None) -> None:
        super().__init__()
        self._pwt_config = config or ClientConfig.create()
        apply_logging(self._pwt_config)
        self._pwt_quic_config: QuicConfiguration | None = None
        self._pwt_connections: set[WebTransportConnection] = set()
        self._pwt_targets: dict[WebTransportConnection, tuple[str, int]] = {}
        self._pwt_retiring: set[WebTransportConnection] = set()
        self._pwt_default_headers: dict[str, str] = dict(self._pwt_config.headers or {})
        self._pwt_closed = False
        self._pwt_created = time.monotonic()
        self._pwt_stats = ClientStats()

    @classmethod
    def create(cls, config: ClientConfig | None = None) -> "WebTransportClient":
        """Build a client from `config` (the 0.1.x factory)."""
        return cls(config=config)

    @property
    def config(self) -> ClientConfig:
        """The client's `ClientConfig`."""
        return self._pwt_config

    @property
    def is_closed(self) -> bool:
        """True once the client has been closed."""
        return self._pwt_closed

    @property
    def stats(self) -> dict[str, Any]:
        """Connection counters (0.1.x keys: ``connections``, ``performance``, ``uptime``)."""
        return self._pwt_stats.to_dict(active=len(self._pwt_connections))

    def set_default_headers(self, headers: Mapping[str, str]) -> None:
        """Headers sent with every CONNECT request from now on."""
        self._pwt_default_headers = dict(headers)

    async def connect(
        self,
        url: str,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
        subprotocols: Sequence[str] | None = None,
    ) -> WebTransportSession:
        """Open a session to ``url`` (``https://host[:port]/path``)."""
        if self._pwt_closed:
            raise ClientError("client is closed", target_url=url)
        host, port, path = _parse_url(url) if isinstance(url, str) else parse_webtransport_url(url)
        timeout = self._pwt_config.connect_timeout if timeout is None else timeout
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive")
        self._pwt_stats.connections_attempted += 1
        start = time.monotonic()
        phase = ["connection"]  # becomes "session" once the CONNECT request is sent
        try:
            async with asyncio.timeout(timeout):  # in this task: no extra task per connect
                session = await self._pwt_connect(
                    host, port, path, {**self._pwt_default_headers, **(headers or {})}, subprotocols or (), phase
                )
        except asyncio.TimeoutError:
            if phase[0] == "session":  # 0.1.x: a session that is not ready in time is a ClientError
                error: Exception = ClientError(
                    f"session to {url} not ready within {timeout}s", target_url=url
                )
            else:
                error = TimeoutError(
                    f"connecting to {url} timed out after {timeout}s", timeout_duration=timeout, operation="connect"
                )
            raise self._pwt_failed(url, error) from None
        except (ClientError, ConfigurationError, TimeoutError) as exc:
            raise self._pwt_failed(url, exc)
        except CertificateVerifyError as exc:
            raise self._pwt_failed(
                url,
                CertificateVerificationError(
                    f"cannot connect to {url}: {exc}",
                    expected_host=host,
                    target_url=url,
                    certificate_error=str(exc),
                    certificate_path=self._pwt_config.ca_certs,
                ),
            ) from exc
        except ConnectError as exc:
            reason = exc.reason
            if reason is not None and ("TIMEOUT" in reason.status or "IDLE" in reason.status):
                raise self._pwt_failed(
                    url, TimeoutError(f"connecting to {url} timed out: {exc}", timeout_duration=timeout, operation="connect")
                ) from exc
            raise self._pwt_failed(url, ClientError(f"cannot connect to {url}: {exc}", target_url=url)) from exc
        except WebTransportError as exc:  # 0.1.x: every other failure is a ClientError
            raise self._pwt_failed(url, ClientError(f"cannot connect to {url}: {exc}", target_url=url)) from exc
        except (QuicError, OSError) as exc:
            raise self._pwt_failed(url, ClientError(f"cannot connect to {url}: {exc}", target_url=url)) from exc
        self._pwt_stats.record_success(time.monotonic() - start)
        if self._ee_listened and EventType.SESSION_READY in self._ee_listening:
            self._ee_fire(EventType.SESSION_READY, {**session_event_data(session), "url": url})
        return session

    def _pwt_failed(self, url: str, error: Exception) -> Exception:
        self._pwt_stats.connections_failed += 1
        if self._ee_listened:
            if isinstance(error, TimeoutError):
                self._ee_fire(EventType.TIMEOUT_ERROR, {"url": url, "error": str(error), "operation": "connect"})
            self._ee_fire(EventType.CONNECTION_FAILED, {"url": url, "error": str(error)})
        return error

    async def _pwt_connect(
        self,
        host: str,
        port: int,
        path: str,
        headers: Mapping[str, str],
        protocols: Sequence[str],
        phase: list[str],
    ) -> WebTransportSession:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        reused = self._pwt_reusable(host, port)
        if reused is not None:
            phase[0] = "session"
            session = await self._pwt_open_on(reused, path, authority, headers, protocols)
            if session is not None:
                return session
            # Lost a race for the last session slot: use a connection of our own.
        if self._pwt_quic_config is None:
            self._pwt_quic_config = quic_config_for_client(self._pwt_config)
        early: list[WebTransportConnection] = []

        header_list = list(headers.items())

        def started(attempt: QuicConnection) -> None:
            # Our control and QPACK streams are queued while the handshake runs: msquic
            # sends them with the handshake's last flight, off the critical path. The
            # connection starts in the handshake-done callback and the CONNECT request
            # leaves as soon as the server's SETTINGS are parsed, all within the loop
            # iteration that brought them (this coroutine resumes only for the answer).
            made = WebTransportConnection(attempt, config=self._pwt_config)
            try:
                made.send_preface()
            except QuicError:
                return  # start() tries again and reports why
            early.append(made)
            made.queue_session(path, authority=authority, headers=header_list, protocols=protocols)

            def connected(_quic: QuicConnection) -> None:
                try:
                    made.start_nowait()
                except QuicError:
                    pass  # start() below reports why

            attempt.on_connected = connected

        quic = await connect(host, port, self._pwt_quic_config, on_started=started)
        conn = early[-1] if early and early[-1].quic is quic else WebTransportConnection(quic, config=self._pwt_config)
        self._pwt_connections.add(conn)
        self._pwt_targets[conn] = (host, port)

        def forget(_f: object) -> None:
            self._pwt_connections.discard(conn)
            self._pwt_targets.pop(conn, None)
            self._pwt_retiring.discard(conn)
            if self._ee_listened:
                self._pwt_connection_closed(conn)

        quic.closed.add_done_callback(forget)
        try:
            await conn.start()
            await conn.wait_settings()
            if self._ee_listened and EventType.CONNECTION_ESTABLISHED in self._ee_listening:
                self._ee_fire(
                    EventType.CONNECTION_ESTABLISHED,
                    {"connection_id": conn.connection_id, "host": host, "port": port, "connection": conn},
                )
            phase[0] = "session"
            session = conn.take_queued_session() or await conn.open_session(
                path, authority=authority, headers=header_list, protocols=protocols
            )
            await session.ready(timeout=None)
        except BaseException:
            conn.close()
            raise
        session._closed.add_done_callback(lambda _f: self._pwt_close_later(conn))
        return session

    async def _pwt_open_on(
        self,
        conn: WebTransportConnection,
        path: str,
        authority: str,
        headers: Mapping[str, str],
        protocols: Sequence[str],
    ) -> WebTransportSession | None:
        """Open a session on an existing connection; None if it has no room after all."""
        conn.pending_opens += 1  # keeps _close_later from retiring the connection meanwhile
        try:
            try:
                session = await conn.open_session(
                    path, authority=authority, headers=list(headers.items()), protocols=protocols
                )
            except SessionError:
                return None
            try:
                await session.ready(timeout=None)
            except BaseException:
                await session.close()
                raise
        finally:
            conn.pending_opens -= 1
            self._pwt_close_later(conn)
        session._closed.add_done_callback(lambda _f: self._pwt_close_later(conn))
        return session

    def _pwt_connection_closed(self, conn: WebTransportConnection) -> None:
        reason = conn.quic.close_reason
        data = {
            "connection_id": conn.connection_id,
            "reason": reason.describe() if reason is not None else "",
            "connection": conn,
        }
        if reason is not None and reason.initiator != "local":
            self._ee_fire(EventType.CONNECTION_LOST, data)
        self._ee_fire(EventType.CONNECTION_CLOSED, data)

    def _pwt_reusable(self, host: str, port: int) -> WebTransportConnection | None:
        """An open connection to host:port whose SETTINGS allow one more session."""
        if not self._pwt_config.reuse_connections:
            return None
        for conn, target in self._pwt_targets.items():
            if target == (host, port) and conn not in self._pwt_retiring and conn.can_open_session():
                return conn
        return None

    def _pwt_close_later(self, conn: WebTransportConnection) -> None:
        if conn.sessions or conn.pending_opens or conn in self._pwt_retiring:
            return  # another session still uses it, or is being opened on it
        self._pwt_retiring.add(conn)
        conn.close_when_sessions_end(self._pwt_config.close_timeout)

    async def close(self) -> None:
        """Close every connection this client opened."""
        self._pwt_closed = True
        conns = list(self._pwt_connections)
        for conn in conns:
            for session in list(conn.sessions.values()):
                await session.close()
        if conns:
            await asyncio.wait(
                [asyncio.ensure_future(c.close_gracefully(self._pwt_config.close_timeout)) for c in conns],
                timeout=self._pwt_config.close_timeout + 1,
            )
            await asyncio.wait(
                [asyncio.ensure_future(c.wait_closed()) for c in conns], timeout=self._pwt_config.close_timeout
            )

    async def __aenter__(self) -> "WebTransportClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# The 0.1.x names of this module. They are built on WebTransportClient, so they are
# imported after it is defined.
from .compat.client import (  # noqa: E402
    WebTransportBrowser,
    WebTransportProxy,
    benchmark_client_performance,
    test_client_connectivity,
)
from .monitor import ClientMonitor  # noqa: E402
from .pool import ClientPool, PooledClient  # noqa: E402
from .reconnect import ReconnectingClient  # noqa: E402
