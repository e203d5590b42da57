"""QUIC configuration: what msquic needs to open a listener or a connection."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

_CONGESTION = {"cubic": 0, "bbr": 1}


@dataclass(slots=True)
class QuicConfiguration:
    """Settings of one QUIC endpoint.

    Server endpoints need ``certfile`` + ``keyfile`` (PEM) or ``pkcs12``.
    Clients verify the server certificate by default: its chain against the
    trust anchors (``cafile`` alone when given, else the system store) and,
    with ``check_hostname``, the server name against its subjectAltNames.
    ``certificate_hashes`` (SHA-256 digests of DER certificates) replace that
    check with pinning.  Set ``verify_peer=False`` to opt out explicitly.

    Servers ask for a client certificate when ``request_client_certificate``
    or ``verify_peer`` is set; one that is sent is verified against ``cafile``
    (else the system store), and ``verify_peer`` makes it mandatory.
    ``reliable_reset`` offers RESET_STREAM_AT (draft-ietf-quic-reliable-stream-reset,
    transport parameter 0x1d), which WebTransport draft-14+ peers require.

    Bounds and options of the native data path (see docs/tuning.md):

    * ``max_queued_events``: events of one connection waiting for the event
      loop; received datagrams beyond it are dropped and counted
      (``QuicConnection.counters().native_datagrams_dropped``).
    * ``share_udp_binding`` (clients): connections to the same server address
      share one UDP socket instead of 4 file descriptors each.
    * ``session_resumption``: clients keep TLS resumption tickets and resume
      the next connection to the same server; servers issue tickets.
    * ``early_data``: also 0-RTT (servers accept it; resuming clients may
      send stream data before the handshake completes).
    * ``keylog_file`` (clients): append the TLS secrets of every connection to
      this file in the NSS key log format, so that Wireshark can decrypt a
      capture; ``None`` uses the ``SSLKEYLOGFILE`` environment variable when it
      is set.  Anyone who can read the file can decrypt the traffic.
    * ``stream_receive_buffer``: the receive buffer a stream starts with
      (bytes, a power of two from 256); it doubles as data arrives, up to
      ``stream_receive_window``.  Small saves memory per idle stream (HTTP/3
      opens six per connection that carry a few bytes each).
    """

    is_client: bool = True
    alpn_protocols: list[str] = field(default_factory=lambda: ["h3"])
    certfile: str | None = None
    keyfile: str | None = None
    key_password: str | None = None
    pkcs12: bytes | None = None
    pkcs12_password: str | None = None
    cafile: str | None = None
    verify_peer: bool | None = None
    check_hostname: bool = True
    certificate_hashes: list[bytes] = field(default_factory=list)
    request_client_certificate: bool = False
    idle_timeout: float = 30.0
    handshake_timeout: float = 10.0
    keep_alive_interval: float | None = None
    max_peer_bidi_streams: int = 100
    max_peer_uni_streams: int = 100
    datagrams: bool = True
    stream_receive_window: int = 1 << 20
    stream_receive_buffer: int = 512
    connection_receive_window: int = 16 << 20
    congestion_control: str = "cubic"
    max_stream_buffer: int = 1 << 20
    send_buffer_high_water: int = 1 << 20
    max_datagram_queue: int = 1024
    pacing: bool = True
    reliable_reset: bool = True
    max_queued_events: int = 4096
    share_udp_binding: bool = True
    session_resumption: bool = False
    early_data: bool = False
    keylog_file: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    @property
    def verifies_peer(self) -> bool:
        """Whether the peer's certificate is verified (``verify_peer``, or by default only on clients)."""
        if self.verify_peer is None:
            return self.is_client
        return self.verify_peer

    @property
    def verifies_in_python(self) -> bool:
        """Whether the peer certificate is handed to Python (see ``quic.tls``)."""
        if self.is_client:
            return self.verifies_peer or bool(self.certificate_hashes)
        return self.verifies_peer or self.request_client_certificate

    @property
    def issues_tickets(self) -> bool:
        """Server: whether clients get resumption tickets.

        Not when client certificates are requested: a resumed handshake
        carries no certificate, so the application could not see who it is.
        """
        return (
            not self.is_client
            and self.session_resumption
            and not (self.verifies_peer or self.request_client_certificate)
        )

    def validate(self) -> None:
        """Raise ConfigError with a clear message on any invalid value."""
        if not self.alpn_protocols:
            raise ConfigError("alpn_protocols must name at least one protocol")
        for alpn in self.alpn_protocols:
            if not isinstance(alpn, str) or not 0 < len(alpn.encode()) <= 255:
                raise ConfigError(f"invalid ALPN {alpn!r}: must be 1..255 bytes")
        if not self.is_client and self.pkcs12 is None and not (self.certfile and self.keyfile):
            raise ConfigError("a server needs certfile and keyfile (PEM) or a pkcs12 blob")
        if bool(self.certfile) != bool(self.keyfile):
            raise ConfigError("certfile and keyfile must be given together")
        for name in ("certfile", "keyfile", "cafile"):
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise ConfigError(f"{name} {path!r} does not exist or is not a file")
        if self.certfile and self.keyfile:
            _check_pem(self.certfile, self.keyfile, self.key_password)
        if self.cafile:
            _check_pem_certs(self.cafile, "cafile")
        for digest in self.certificate_hashes:
            if not isinstance(digest, bytes) or len(digest) != 32:
                raise ConfigError("certificate_hashes must be 32-byte SHA-256 digests")
        for name in ("idle_timeout", "handshake_timeout"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        if self.keep_alive_interval is not None and self.keep_alive_interval <= 0:
            raise ConfigError("keep_alive_interval must be > 0 or None")
        for name in ("max_peer_bidi_streams", "max_peer_uni_streams"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise ConfigError(f"{name} must be within 0..65535, got {value}")
        w = self.stream_receive_window
        if w <= 0 or w & (w - 1):
            raise ConfigError(f"stream_receive_window must be a power of two, got {w}")
        b = self.stream_receive_buffer
        if b < 256 or b & (b - 1) or b > w:
            raise ConfigError(
                f"stream_receive_buffer must be a power of two from 256 up to stream_receive_window, got {b}"
            )
        if not 0 < self.connection_receive_window < 1 << 32:
            raise ConfigError("connection_receive_window must be within 1..2**32-1")
        if self.congestion_control not in _CONGESTION:
            raise ConfigError(
                f"congestion_control must be one of {sorted(_CONGESTION)}, got {self.congestion_control!r}"
            )
        if self.max_stream_buffer <= 0 or self.send_buffer_high_water <= 0:
            raise ConfigError("max_stream_buffer and send_buffer_high_water must be > 0")
        if not 1 <= self.max_queued_events <= 1 << 30:
            raise ConfigError(f"max_queued_events must be within 1..2**30, got {self.max_queued_events}")
        if self.early_data and not self.session_resumption:
            raise ConfigError("early_data (0-RTT) needs session_resumption=True")

    def cache_key(self) -> tuple[Any, ...]:
        """A snapshot identifying the native configuration this produces.

        Includes the credential files' modification times, so a rotated
        certificate yields a new key.
        """
        values: list[Any] = []
        for name in self.__slots__:
            value = getattr(self, name)
            values.append(tuple(value) if isinstance(value, list) else value)
        for path in (self.certfile, self.keyfile, self.cafile):
            values.append(os.stat(path).st_mtime_ns if path and os.path.exists(path) else None)
        return tuple(values)

    def native_settings(self) -> dict[str, Any]:
        """Field values for the shim's ``pwt_settings`` struct."""
        return {
            "idle_timeout_ms": int(self.idle_timeout * 1000),
            "handshake_idle_timeout_ms": int(self.handshake_timeout * 1000),
            "keep_alive_interval_ms": (
                int(self.keep_alive_interval * 1000) if self.keep_alive_interval else -1
            ),
            "peer_bidi_stream_count": self.max_peer_bidi_streams,
            "peer_unidi_stream_count": self.max_peer_uni_streams,
            "stream_recv_window": self.stream_receive_window,
            "stream_recv_buffer": self.stream_receive_buffer,
            "conn_flow_control_window": self.connection_receive_window,
            "datagram_receive_enabled": 1 if self.datagrams else 0,
            "congestion_control": _CONGESTION[self.congestion_control],
            "send_buffering_enabled": -1,
            "pacing_enabled": 1 if self.pacing else 0,
            "server_resumption_level": (
                -1 if not self.issues_tickets else 2 if self.early_data else 1
            ),
            "disconnect_timeout_ms": -1,
            "max_operations_per_drain": -1,
            "reliable_reset_enabled": 1 if self.reliable_reset else 0,
        }


def _check_pem_certs(path: str, what: str) -> None:
    from cryptography import x509

    data = _read(path, what)
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ConfigError(f"{what} {path!r} is not a PEM certificate: {exc}") from None


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path!r}: {exc.strerror}") from None


def _check_pem(certfile: str, keyfile: str, password: str | None) -> None:
    """Parse the certificate and key now so errors surface at configuration time."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    _check_pem_certs(certfile, "certfile")
    data = _read(keyfile, "keyfile")
    try:
        load_pem_private_key(data, password.encode() if password else None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"keyfile {keyfile!r} is not a usable PEM private key: {exc}") from None
