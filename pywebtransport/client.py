"""WebTransportClient: opens WebTransport sessions to https:// URLs."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .config import ClientConfig
from .connection import WebTransportConnection
from .exceptions import (
    CertificateVerificationError,
    ClientError,
    ConfigurationError,
    SessionError,
    TimeoutError,
    WebTransportError,
)
from .quic import CertificateVerifyError, ConnectError, QuicConfiguration, QuicError, connect
from .session import WebTransportSession
from .utils import get_logger, parse_webtransport_url

__all__ = ["WebTransportClient", "quic_config_for_client"]

logger = get_logger("client")
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
        alpn_protocols=["h3"],
        cafile=config.ca_certs,
        certfile=config.certfile,
        keyfile=config.keyfile,
        verify_peer=verify,
        check_hostname=bool(config.check_hostname),
        certificate_hashes=pins,
        idle_timeout=float(config.connection_idle_timeout or 60.0),
        handshake_timeout=float(config.connect_timeout),
        max_peer_bidi_streams=min(65535, int(config.max_incoming_streams)),
        max_peer_uni_streams=min(65535, int(config.max_incoming_streams) + 3),
        stream_receive_window=window,
        congestion_control="bbr" if config.congestion_control_algorithm == "bbr" else "cubic",
        max_stream_buffer=max(65536, int(config.max_stream_buffer_size)),
    )


class WebTransportClient:
    """Client that opens sessions; one QUIC connection per session unless
    ``reuse_connections`` lets several sessions share one."""

    def __init__(self, config: ClientConfig | None = None) -> None:
        self._config = config or ClientConfig.create()
        self._quic_config: QuicConfiguration | None = None
        self._connections: set[WebTransportConnection] = set()
        self._targets: dict[WebTransportConnection, tuple[str, int]] = {}
        self._retiring: set[WebTransportConnection] = set()
        self._default_headers: dict[str, str] = dict(self._config.headers or {})
        self._closed = False
        self._closing: set[asyncio.Task[None]] = set()
        self._created = time.monotonic()
        self._stats = {"attempted": 0, "successful": 0, "failed": 0, "connect_time_total": 0.0}

    @classmethod
    def create(cls, config: ClientConfig | None = None) -> "WebTransportClient":
        return cls(config=config)

    @property
    def config(self) -> ClientConfig:
        return self._config

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def stats(self) -> dict[str, Any]:
        ok = self._stats["successful"]
        return {
            "connections": {
                "attempted": self._stats["attempted"],
                "successful": ok,
                "failed": self._stats["failed"],
                "active": len(self._connections),
                "success_rate": ok / self._stats["attempted"] if self._stats["attempted"] else 0.0,
            },
            "performance": {"avg_connect_time": self._stats["connect_time_total"] / ok if ok else 0.0},
            "uptime": time.monotonic() - self._created,
        }

    def set_default_headers(self, headers: Mapping[str, str]) -> None:
        self._default_headers = dict(headers)

    async def connect(
        self,
        url: str,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
        subprotocols: Sequence[str] | None = None,
    ) -> WebTransportSession:
        """Open a session to ``url`` (``https://host[:port]/path``)."""
        if self._closed:
            raise ClientError("client is closed", target_url=url)
        host, port, path = parse_webtransport_url(url)
        timeout = self._config.connect_timeout if timeout is None else timeout
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive")
        self._stats["attempted"] += 1
        start = time.monotonic()
        try:
            session = await asyncio.wait_for(
                self._connect(host, port, path, {**self._default_headers, **(headers or {})}, subprotocols or ()),
                timeout,
            )
        except asyncio.TimeoutError:
            self._stats["failed"] += 1
            raise TimeoutError(
                f"connecting to {url} timed out after {timeout}s", timeout_duration=timeout, operation="connect"
            ) from None
        except (ClientError, ConfigurationError, TimeoutError):
            self._stats["failed"] += 1
            raise
        except WebTransportError as exc:  # 0.1.x: every other failure is a ClientError
            self._stats["failed"] += 1
            raise ClientError(f"cannot connect to {url}: {exc}", target_url=url) from exc
        except (QuicError, OSError) as exc:
            self._stats["failed"] += 1
            if isinstance(exc, CertificateVerifyError):
                raise CertificateVerificationError(
                    f"cannot connect to {url}: {exc}",
                    expected_host=host,
                    target_url=url,
                    certificate_error=str(exc),
                    certificate_path=self._config.ca_certs,
                ) from exc
            raise ClientError(f"cannot connect to {url}: {exc}", target_url=url) from exc
        self._stats["successful"] += 1
        self._stats["connect_time_total"] += time.monotonic() - start
        return session

    async def _connect(
        self, host: str, port: int, path: str, headers: Mapping[str, str], protocols: Sequence[str]
    ) -> WebTransportSession:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        reused = self._reusable(host, port)
        if reused is not None:
            session = await self._open_on(reused, path, authority, headers, protocols)
            if session is not None:
                return session
            # Lost a race for the last session slot: use a connection of our own.
        if self._quic_config is None:
            self._quic_config = quic_config_for_client(self._config)
        quic = await connect(host, port, self._quic_config)
        conn = WebTransportConnection(quic, config=self._config)
        self._connections.add(conn)
        self._targets[conn] = (host, port)

        def forget(_f: object) -> None:
            self._connections.discard(conn)
            self._targets.pop(conn, None)
            self._retiring.discard(conn)

        quic.closed.add_done_callback(forget)
        try:
            await conn.start()
            await conn.wait_settings()
            session = await conn.open_session(
                path, authority=authority, headers=list(headers.items()), protocols=protocols
            )
            await session.ready(timeout=None)
        except BaseException:
            conn.close()
            raise
        session._closed.add_done_callback(lambda _f: self._close_later(conn))
        return session

    async def _open_on(
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
            self._close_later(conn)
        session._closed.add_done_callback(lambda _f: self._close_later(conn))
        return session

    def _reusable(self, host: str, port: int) -> WebTransportConnection | None:
        """An open connection to host:port whose SETTINGS allow one more session."""
        if not self._config.reuse_connections:
            return None
        for conn, target in self._targets.items():
            if target == (host, port) and conn not in self._retiring and conn.can_open_session():
                return conn
        return None

    def _close_later(self, conn: WebTransportConnection) -> None:
        if conn.sessions or conn.pending_opens or conn in self._retiring:
            return  # another session still uses it, or is being opened on it
        self._retiring.add(conn)
        task = asyncio.get_running_loop().create_task(conn.close_gracefully(self._config.close_timeout))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Close every connection this client opened."""
        self._closed = True
        conns = list(self._connections)
        for conn in conns:
            for session in list(conn.sessions.values()):
                await session.close()
        if conns:
            await asyncio.wait(
                [asyncio.ensure_future(c.close_gracefully(self._config.close_timeout)) for c in conns],
                timeout=self._config.close_timeout + 1,
            )
            await asyncio.wait(
                [asyncio.ensure_future(c.wait_closed()) for c in conns], timeout=self._config.close_timeout
            )

    async def __aenter__(self) -> "WebTransportClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# 0.1.x exposed these from pywebtransport.client; they live in app-level modules that import this one.
_LAZY = {
    "ClientPool": ".pool",
    "PooledClient": ".pool",
    "ReconnectingClient": ".reconnect",
    "ClientMonitor": ".monitor",
}


def __getattr__(name: str) -> Any:
    from ._lazy import resolve

    return resolve(__name__, __package__, _LAZY, name)
