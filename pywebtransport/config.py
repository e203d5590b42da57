"""Client and server configuration.

`ClientConfig` and `ServerConfig` are plain dataclasses. Build them with ``create(**kw)``
(which validates), with the constructor (which does not), from a dictionary with
`from_dict`, or step by step with `ConfigBuilder`. Configurations are treated as values:
`update` and `merge` return new objects and leave the original untouched.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import ssl
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar, overload

from pywebtransport.constants import DEFAULT_USER_AGENT, Defaults, WebTransportConstants
from pywebtransport.exceptions import ConfigurationError, invalid_config

__all__ = ["ClientConfig", "ConfigBuilder", "ServerConfig"]

_LOG_LEVELS = frozenset(logging.getLevelNamesMapping())
_PATH_FIELDS = ("ca_certs", "certfile", "keyfile")


def _default_alpn() -> list[str]:
    return list(WebTransportConstants.DEFAULT_ALPN_PROTOCOLS)


def _matches(value: Any, hint: Any) -> bool:
    """Check `value` against a (resolved) field annotation, recursing into containers."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        return any(_matches(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(_matches(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            _matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items()
        )
    if origin is Callable:
        return callable(value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _describe(hint: Any) -> str:
    text = str(hint) if typing.get_origin(hint) else getattr(hint, "__name__", str(hint))
    return text.replace("typing.", "").replace("collections.abc.", "").replace("ssl.", "")


def certificate_hash_bytes(value: bytes | str) -> bytes | None:
    """A SHA-256 digest given as 32 bytes or hex text (colons allowed), or None if invalid."""
    if isinstance(value, bytes | bytearray):
        return bytes(value) if len(value) == 32 else None
    if isinstance(value, str):
        text = value.replace(":", "").strip()
        if len(text) == 64:
            try:
                return bytes.fromhex(text)
            except ValueError:
                return None
    return None


class _ConfigMixin:
    """Behaviour shared by the two configuration dataclasses."""

    # Numeric fields grouped by the rule they must satisfy; filled in by each subclass.
    _POSITIVE: ClassVar[tuple[str, ...]] = ()
    _NON_NEGATIVE: ClassVar[tuple[str, ...]] = ()
    _DEFAULT_VERIFY_MODE: ClassVar[ssl.VerifyMode]
    _HINTS: ClassVar[dict[str, Any] | None] = None

    @classmethod
    def _field_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    @classmethod
    def _type_hints(cls) -> dict[str, Any]:
        hints = cls.__dict__.get("_HINTS")
        if hints is None:
            hints = typing.get_type_hints(cls)
            cls._HINTS = hints
        # Declaration order, so that validation reports the same field on every run.
        return {f.name: hints[f.name] for f in dataclasses.fields(cls)}  # type: ignore[arg-type]

    @classmethod
    def _check_keys(cls, keys: Iterable[str]) -> None:
        unknown = sorted(set(keys) - cls._field_names())
        if unknown:
            raise ConfigurationError(
                f"Unknown {cls.__name__} option(s): {', '.join(unknown)}",
                config_key=unknown[0],
            )

    @classmethod
    def create(cls, **kwargs: Any) -> Self:
        """Create a configuration from keyword arguments and validate it."""
        return cls.from_dict(kwargs)

    @classmethod
    def from_dict(cls, config_dict: Mapping[str, Any]) -> Self:
        """Create a validated configuration from a mapping of field names to values.

        Unknown keys raise `ConfigurationError`, so typos do not go unnoticed.
        """
        cls._check_keys(config_dict)
        config = cls(**config_dict)
        config.validate()
        return config

    def _normalize(self) -> None:
        # Accept the spellings people naturally use and store one canonical form.
        mode: Any = getattr(self, "verify_mode")
        if mode is None:
            mode = self._DEFAULT_VERIFY_MODE
        elif isinstance(mode, str) and mode.upper() in ssl.VerifyMode.__members__:
            mode = ssl.VerifyMode[mode.upper()]
        elif isinstance(mode, int) and not isinstance(mode, bool | ssl.VerifyMode):
            if mode in set(ssl.VerifyMode):
                mode = ssl.VerifyMode(mode)
        setattr(self, "verify_mode", mode)
        for name in _PATH_FIELDS:
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                setattr(self, name, os.fspath(value))
        log_level = getattr(self, "log_level")
        if isinstance(log_level, str):
            setattr(self, "log_level", log_level.upper())
        algorithm = getattr(self, "congestion_control_algorithm")
        if isinstance(algorithm, str):
            setattr(self, "congestion_control_algorithm", algorithm.lower())
        alpn = getattr(self, "alpn_protocols")
        if isinstance(alpn, tuple):
            setattr(self, "alpn_protocols", list(alpn))

    def validate(self) -> None:
        """Check every field; raise `ConfigurationError` naming the first offending one."""
        for name, hint in self._type_hints().items():
            value = getattr(self, name)
            if not _matches(value, hint):
                raise invalid_config(name, value, f"expected {_describe(hint)}")
        if getattr(self, "webtransport_flow_control", False):
            for name in ("initial_max_data", "initial_max_streams_bidi", "initial_max_streams_uni"):
                if getattr(self, name) <= 0:
                    # A zero initial limit would leave the peer unable to send the
                    # first byte or stream that could earn it more credit.
                    raise invalid_config(name, getattr(self, name), "must be > 0 with webtransport_flow_control")
        for name in self._POSITIVE:
            if getattr(self, name) <= 0:
                raise invalid_config(name, getattr(self, name), "must be positive")
        for name in self._NON_NEGATIVE:
            if getattr(self, name) < 0:
                raise invalid_config(name, getattr(self, name), "must not be negative")
        self._validate_common()

    def _validate_common(self) -> None:
        get = self.__getattribute__
        if get("max_stream_buffer_size") < get("stream_buffer_size"):
            raise invalid_config(
                "max_stream_buffer_size",
                get("max_stream_buffer_size"),
                "must be at least stream_buffer_size",
            )
        if not 1 <= get("max_datagram_size") <= WebTransportConstants.MAX_DATAGRAM_SIZE:
            raise invalid_config(
                "max_datagram_size", get("max_datagram_size"), "must be between 1 and 65535"
            )
        if get("verify_mode") not in set(ssl.VerifyMode):
            raise invalid_config(
                "verify_mode", get("verify_mode"), "must be ssl.CERT_NONE, CERT_OPTIONAL or CERT_REQUIRED"
            )
        if get("http_version") != "3":
            raise invalid_config("http_version", get("http_version"), 'only HTTP/3 ("3") is supported')
        alpn = get("alpn_protocols")
        if not alpn or any(not 0 < len(p.encode()) <= 255 for p in alpn):
            raise invalid_config(
                "alpn_protocols", alpn, "must be a non-empty list of protocol names (1-255 bytes)"
            )
        if get("log_level") not in _LOG_LEVELS:
            raise invalid_config(
                "log_level", get("log_level"), f"must be one of {', '.join(sorted(_LOG_LEVELS))}"
            )
        algorithm = get("congestion_control_algorithm")
        if algorithm not in Defaults.CONGESTION_CONTROL_ALGORITHMS:
            raise invalid_config(
                "congestion_control_algorithm",
                algorithm,
                f"must be one of {', '.join(sorted(Defaults.CONGESTION_CONTROL_ALGORITHMS))}",
            )
        certfile, keyfile = get("certfile"), get("keyfile")
        if bool(certfile) != bool(keyfile):
            missing = "keyfile" if certfile else "certfile"
            raise invalid_config(
                missing, get(missing), "certfile and keyfile must be given together"
            )
        for name in _PATH_FIELDS:
            path = get(name)
            if path and not os.path.isfile(path):
                raise invalid_config(name, path, "file does not exist")

    def copy(self) -> Self:
        """Return an independent copy (lists and dicts are copied, not shared)."""
        containers = {
            f.name: type(value)(value)
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if isinstance(value := getattr(self, f.name), list | dict)
        }
        return dataclasses.replace(self, **containers)  # type: ignore[type-var]

    def update(self, **kwargs: Any) -> Self:
        """Return a validated copy with the given fields changed."""
        self._check_keys(kwargs)
        updated = dataclasses.replace(self.copy(), **kwargs)  # type: ignore[type-var]
        updated.validate()
        return updated

    def merge(self, other: Self | Mapping[str, Any]) -> Self:
        """Return a validated copy overridden by `other`.

        A mapping overrides the fields it names. A configuration of the same class
        overrides the fields whose values differ from that class's defaults.
        """
        if isinstance(other, Mapping):
            return self.update(**other)
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        defaults = type(self)()
        changes = {
            name: getattr(other, name)
            for name in self._field_names()
            if getattr(other, name) != getattr(defaults, name)
        }
        return self.update(**other.to_dict(only=changes))

    def to_dict(self, *, only: Iterable[str] | None = None) -> dict[str, Any]:
        """Return the fields as a dictionary; `from_dict` accepts it back."""
        names = self._field_names() if only is None else set(only)
        result: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name in names:
                value = getattr(self, f.name)
                result[f.name] = type(value)(value) if isinstance(value, list | dict) else value
        return result


@dataclass
class ClientConfig(_ConfigMixin):
    """Configuration of a `WebTransportClient`.

    Timeouts are in seconds and sizes in bytes.
    """

    connect_timeout: float = Defaults.CONNECT_TIMEOUT
    """Time allowed for the QUIC handshake plus the WebTransport CONNECT exchange."""
    read_timeout: float = Defaults.READ_TIMEOUT
    """Default time allowed for a stream read."""
    write_timeout: float = Defaults.WRITE_TIMEOUT
    """Default time allowed for a stream write to be accepted."""
    close_timeout: float = Defaults.CLOSE_TIMEOUT
    """Time allowed for a graceful close before it is forced."""
    stream_creation_timeout: float = Defaults.STREAM_CREATION_TIMEOUT
    """Time allowed to open a stream while waiting for the peer's stream credit."""
    max_streams: int = Defaults.MAX_STREAMS
    """Maximum number of streams per session."""
    stream_buffer_size: int = Defaults.STREAM_BUFFER_SIZE
    """Receive buffer per stream."""
    max_stream_buffer_size: int = Defaults.MAX_STREAM_BUFFER_SIZE
    """Upper bound the stream receive buffer may grow to."""
    verify_mode: ssl.VerifyMode = ssl.CERT_REQUIRED
    """Server certificate verification; ``ssl.CERT_NONE`` accepts any certificate (and logs
    a warning once); prefer `server_certificate_hashes` for self-signed servers."""
    ca_certs: str | None = None
    """PEM file of the CA certificates trusted to sign the server's certificate. When given,
    these are the only trust anchors; the system store is used when None."""
    certfile: str | None = None
    """Client certificate (PEM) for mutual TLS; requires `keyfile`."""
    keyfile: str | None = None
    """Private key (PEM) matching `certfile`."""
    check_hostname: bool = True
    """Check that the server's certificate is valid for the URL's host (DNS name or IP
    address in its subjectAltName; wildcards per RFC 6125). Ignored with ``CERT_NONE``."""
    alpn_protocols: list[str] = field(default_factory=_default_alpn)
    """ALPN protocol identifiers offered in the TLS handshake."""
    http_version: str = "3"
    """HTTP version; only ``"3"`` is supported."""
    user_agent: str = DEFAULT_USER_AGENT
    """Value of the ``user-agent`` header sent with session requests."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra headers sent with every session request."""
    max_datagram_size: int = Defaults.MAX_DATAGRAM_SIZE
    """Largest datagram payload accepted, 1..65535."""
    initial_max_data: int = Defaults.INITIAL_MAX_DATA
    """Connection-level flow-control credit granted to the peer."""
    initial_max_stream_data_bidi_local: int = Defaults.INITIAL_MAX_STREAM_DATA
    """Credit for bidirectional streams we open."""
    initial_max_stream_data_bidi_remote: int = Defaults.INITIAL_MAX_STREAM_DATA
    """Credit for bidirectional streams the peer opens."""
    initial_max_stream_data_uni: int = Defaults.INITIAL_MAX_STREAM_DATA
    """Credit for unidirectional streams the peer opens."""
    initial_max_streams_bidi: int = Defaults.INITIAL_MAX_STREAMS_BIDI
    """Number of bidirectional streams the peer may open."""
    initial_max_streams_uni: int = Defaults.INITIAL_MAX_STREAMS_UNI
    """Number of unidirectional streams the peer may open."""
    max_retries: int = Defaults.MAX_RETRIES
    """Connection attempts after the first one fails (for reconnecting clients)."""
    retry_delay: float = Defaults.RETRY_DELAY
    """Delay before the first retry."""
    retry_backoff: float = Defaults.RETRY_BACKOFF
    """Factor applied to the delay after each failed retry (at least 1)."""
    max_retry_delay: float = Defaults.MAX_RETRY_DELAY
    """Upper bound of the retry delay."""
    debug: bool = False
    """Enable debug behaviour and logging."""
    log_level: str = Defaults.LOG_LEVEL
    """Logging level name, such as ``"INFO"`` or ``"DEBUG"``."""
    auto_reconnect: bool = False
    """Reconnect automatically when the connection is lost."""
    congestion_control_algorithm: str = Defaults.CONGESTION_CONTROL_ALGORITHM
    """Congestion controller: ``"cubic"``, ``"reno"`` or ``"bbr"``."""
    connection_idle_timeout: float = Defaults.CONNECTION_IDLE_TIMEOUT
    """QUIC idle timeout: the connection closes after this long without traffic."""
    connection_keepalive_timeout: float = Defaults.CONNECTION_KEEPALIVE_TIMEOUT
    """Interval of keep-alive PINGs while idle; 0 disables them."""
    flow_control_window_size: int = Defaults.FLOW_CONTROL_WINDOW_SIZE
    """Session-level flow-control window."""
    flow_control_window_auto_scale: bool = True
    """Let the flow-control window grow with the observed throughput."""
    max_connections: int = Defaults.CLIENT_MAX_CONNECTIONS
    """Maximum number of simultaneous connections held by one client."""
    max_incoming_streams: int = Defaults.MAX_INCOMING_STREAMS
    """Maximum number of peer-initiated streams per session."""
    max_pending_events_per_session: int = Defaults.MAX_PENDING_EVENTS_PER_SESSION
    """Events buffered for a session that is not established yet."""
    max_total_pending_events: int = Defaults.MAX_TOTAL_PENDING_EVENTS
    """Events buffered across all not-yet-established sessions."""
    pending_event_ttl: float = Defaults.PENDING_EVENT_TTL
    """How long buffered events for an unknown session are kept."""
    stream_flow_control_increment_bidi: int = Defaults.STREAM_FLOW_CONTROL_INCREMENT
    """Bidirectional stream credit granted at a time."""
    stream_flow_control_increment_uni: int = Defaults.STREAM_FLOW_CONTROL_INCREMENT
    """Unidirectional stream credit granted at a time."""
    webtransport_flow_control: bool = False
    """Offer WebTransport session flow control (``initial_max_data``/``initial_max_streams_*``
    as WT settings, credit from ``flow_control_window_size``); it is used only if the server
    offers it too. Off by default so the SETTINGS sent to browsers and other peers stay as before."""
    max_sessions: int = 1
    """Sessions allowed on one connection; above 1 only with `webtransport_flow_control`."""
    reuse_connections: bool = False
    """Open new sessions on an existing connection to the same host and port when its
    negotiated settings allow another session."""
    share_udp_binding: bool = True
    """Let this process's connections to the same server address share one UDP socket
    (4 file descriptors per connection otherwise, which caps a process near
    ``ulimit -n`` / 4 connections). Turn it off to give each connection its own source
    port, e.g. when a multi-process server should spread one client's connections."""
    session_resumption: bool = False
    """Keep the TLS resumption tickets servers send and resume the next connection to the same
    server name, address and port with one (at most 1,024 kept, each used once): a resumed
    handshake skips the server's certificate and signature. The session's certificate is then
    the one verified when the ticket was issued. Servers need ``session_resumption`` too."""
    keylog_file: str | None = None
    """Append each connection's TLS secrets to this file (NSS key log format) so that Wireshark
    or tshark can decrypt a packet capture. ``None`` (default) uses the ``SSLKEYLOGFILE``
    environment variable when it is set, like browsers and curl. Anyone who can read the file
    can decrypt the traffic: for debugging only."""
    server_certificate_hashes: list[bytes | str] = field(default_factory=list)
    """SHA-256 digests of server certificates to accept (32 bytes, or 64 hex digits with or
    without colons), like browsers' ``serverCertificateHashes``. When given, a server is
    accepted if and only if its certificate's digest is listed and the certificate is within
    its validity period; CA, host name and `verify_mode` checks do not apply."""

    _POSITIVE: ClassVar[tuple[str, ...]] = (
        "connect_timeout",
        "read_timeout",
        "write_timeout",
        "close_timeout",
        "stream_creation_timeout",
        "max_streams",
        "stream_buffer_size",
        "max_stream_buffer_size",
        "retry_delay",
        "max_retry_delay",
        "connection_idle_timeout",
        "flow_control_window_size",
        "max_connections",
        "max_incoming_streams",
        "max_pending_events_per_session",
        "max_total_pending_events",
        "pending_event_ttl",
        "stream_flow_control_increment_bidi",
        "stream_flow_control_increment_uni",
        "max_sessions",
    )
    _NON_NEGATIVE: ClassVar[tuple[str, ...]] = (
        "initial_max_data",
        "initial_max_stream_data_bidi_local",
        "initial_max_stream_data_bidi_remote",
        "initial_max_stream_data_uni",
        "initial_max_streams_bidi",
        "initial_max_streams_uni",
        "max_retries",
        "connection_keepalive_timeout",
    )
    _DEFAULT_VERIFY_MODE: ClassVar[ssl.VerifyMode] = ssl.CERT_REQUIRED

    def __post_init__(self) -> None:
        self._normalize()

    def validate(self) -> None:
        """Check every field; raise `ConfigurationError` naming the first offending one."""
        super().validate()
        if self.retry_backoff < 1:
            raise invalid_config("retry_backoff", self.retry_backoff, "must be at least 1")
        if self.max_retry_delay < self.retry_delay:
            raise invalid_config(
                "max_retry_delay", self.max_retry_delay, "must be at least retry_delay"
            )
        for value in self.server_certificate_hashes:
            if certificate_hash_bytes(value) is None:
                raise invalid_config(
                    "server_certificate_hashes",
                    value,
                    "each entry must be a SHA-256 digest: 32 bytes or 64 hex digits",
                )

    def pinned_certificate_hashes(self) -> list[bytes]:
        """`server_certificate_hashes` as 32-byte digests (invalid entries raise)."""
        digests: list[bytes] = []
        for value in self.server_certificate_hashes:
            digest = certificate_hash_bytes(value)
            if digest is None:
                raise invalid_config(
                    "server_certificate_hashes", value, "each entry must be a SHA-256 digest"
                )
            digests.append(digest)
        return digests

    @classmethod
    def create_for_development(cls, *, verify_ssl: bool = False, **kwargs: Any) -> Self:
        """Create a configuration for local development.

        Certificate verification is off unless `verify_ssl` is true, logging is verbose and
        timeouts are short. Keyword arguments override any of these.
        """
        settings: dict[str, Any] = {
            "verify_mode": ssl.CERT_REQUIRED if verify_ssl else ssl.CERT_NONE,
            "check_hostname": verify_ssl,
            "connect_timeout": 10.0,
            "read_timeout": 30.0,
            "debug": True,
            "log_level": "DEBUG",
        }
        settings.update(kwargs)
        return cls.create(**settings)

    @classmethod
    def create_for_production(
        cls,
        *,
        ca_certs: str | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        **kwargs: Any,
    ) -> Self:
        """Create a configuration for production: full verification and more retries."""
        settings: dict[str, Any] = {
            "verify_mode": ssl.CERT_REQUIRED,
            "check_hostname": True,
            "ca_certs": ca_certs,
            "certfile": certfile,
            "keyfile": keyfile,
            "max_retries": 5,
            "debug": False,
            "log_level": "INFO",
        }
        settings.update(kwargs)
        return cls.create(**settings)


@dataclass
class ServerConfig(_ConfigMixin):
    """Configuration of a `WebTransportServer` / `ServerApp`.

    `certfile` and `keyfile` may be left empty while building a configuration, but a
    server needs both to listen. Timeouts are in seconds and sizes in bytes.
    """

    bind_host: str = Defaults.SERVER_BIND_HOST
    """Address to listen on."""
    bind_port: int = Defaults.SERVER_BIND_PORT
    """UDP port to listen on; 0 picks a free port."""
    max_connections: int = Defaults.SERVER_MAX_CONNECTIONS
    """Maximum number of simultaneous QUIC connections."""
    max_streams_per_connection: int = Defaults.MAX_STREAMS
    """Maximum number of streams per connection."""
    connection_timeout: float = Defaults.SERVER_CONNECTION_TIMEOUT
    """Time after which an idle connection without sessions is closed."""
    read_timeout: float = Defaults.READ_TIMEOUT
    """Default time allowed for a stream read."""
    write_timeout: float = Defaults.WRITE_TIMEOUT
    """Default time allowed for a stream write to be accepted."""
    certfile: str = ""
    """Server certificate chain (PEM); required to listen."""
    keyfile: str = ""
    """Private key (PEM) matching `certfile`; required to listen."""
    ca_certs: str | None = None
    """PEM file of the CAs trusted to sign client certificates; when given, the only trust
    anchors (the system store is used when None)."""
    verify_mode: ssl.VerifyMode = ssl.CERT_NONE
    """Client certificates: ``ssl.CERT_NONE`` does not ask for one; ``CERT_OPTIONAL`` asks,
    verifies one that is sent and accepts clients without; ``CERT_REQUIRED`` rejects the
    handshake without a valid one. The verified certificate is `WebTransportSession.peer_certificate`."""
    alpn_protocols: list[str] = field(default_factory=_default_alpn)
    """ALPN protocol identifiers accepted in the TLS handshake."""
    http_version: str = "3"
    """HTTP version; only ``"3"`` is supported."""
    backlog: int = Defaults.SERVER_BACKLOG
    """Not supported (msquic has no listen backlog): values other than 128 are rejected."""
    reuse_port: bool = True
    """Set SO_REUSEPORT on the listening socket where supported."""
    keep_alive: bool = True
    """Send keep-alive PINGs on idle connections."""
    session_resumption: bool = False
    """Issue TLS resumption tickets, so that clients with ``session_resumption`` reconnect with a
    cheaper handshake (no certificate, no signature). Not when client certificates are
    requested (a resumed handshake carries none)."""
    stream_buffer_size: int = Defaults.STREAM_BUFFER_SIZE
    """Receive buffer per stream."""
    max_stream_buffer_size: int = Defaults.MAX_STREAM_BUFFER_SIZE
    """Upper bound the stream receive buffer may grow to."""
    max_datagram_size: int = Defaults.MAX_DATAGRAM_SIZE
    """Largest datagram payload accepted, 1..65535."""
    initial_max_data: int = Defaults.INITIAL_MAX_DATA
    """Connection-level flow-control credit granted to the peer."""
    initial_max_stream_data_bidi_local: int = Defaults.INITIAL_MAX_STREAM_DATA
    """Credit for bidirectional streams we open."""
    initial_max_stream_data_bidi_remote: int = Defaults.INITIAL_MAX_STREAM_DATA
    """Credit for bidirectional streams the peer opens."""
    initial_max_stream_data_uni: int = Defaults.INITIAL_MAX_STREAM_DATA
    """Credit for unidirectional streams the peer opens."""
    initial_max_streams_bidi: int = Defaults.INITIAL_MAX_STREAMS_BIDI
    """Number of bidirectional streams the peer may open."""
    initial_max_streams_uni: int = Defaults.INITIAL_MAX_STREAMS_UNI
    """Number of unidirectional streams the peer may open."""
    middleware: list[Callable[..., Any]] = field(default_factory=list)
    """Middleware applied to every session request, in order."""
    debug: bool = False
    """Enable debug behaviour and logging."""
    log_level: str = Defaults.LOG_LEVEL
    """Logging level name, such as ``"INFO"`` or ``"DEBUG"``."""
    access_log: bool = True
    """Log one line per session request."""
    congestion_control_algorithm: str = Defaults.CONGESTION_CONTROL_ALGORITHM
    """Congestion controller: ``"cubic"``, ``"reno"`` or ``"bbr"``."""
    connection_idle_timeout: float = Defaults.CONNECTION_IDLE_TIMEOUT
    """QUIC idle timeout: the connection closes after this long without traffic."""
    connection_keepalive_timeout: float = Defaults.CONNECTION_KEEPALIVE_TIMEOUT
    """Interval of keep-alive PINGs while idle (when `keep_alive` is on); 0 disables them."""
    flow_control_window_size: int = Defaults.FLOW_CONTROL_WINDOW_SIZE
    """Session-level flow-control window."""
    flow_control_window_auto_scale: bool = True
    """Let the flow-control window grow with the observed throughput."""
    max_sessions: int = Defaults.SERVER_MAX_SESSIONS
    """Maximum number of simultaneous sessions across all connections; with
    `webtransport_flow_control` also the per-connection limit advertised to clients."""
    max_incoming_streams: int = Defaults.MAX_INCOMING_STREAMS
    """Maximum number of peer-initiated streams per session."""
    max_pending_events_per_session: int = Defaults.MAX_PENDING_EVENTS_PER_SESSION
    """Events buffered for a session that is not established yet."""
    max_total_pending_events: int = Defaults.MAX_TOTAL_PENDING_EVENTS
    """Events buffered across all not-yet-established sessions."""
    pending_event_ttl: float = Defaults.PENDING_EVENT_TTL
    """How long buffered events for an unknown session are kept."""
    stream_flow_control_increment_bidi: int = Defaults.STREAM_FLOW_CONTROL_INCREMENT
    """Bidirectional stream credit granted at a time."""
    stream_flow_control_increment_uni: int = Defaults.STREAM_FLOW_CONTROL_INCREMENT
    """Unidirectional stream credit granted at a time."""
    webtransport_flow_control: bool = False
    """Offer WebTransport session flow control (see `ClientConfig.webtransport_flow_control`);
    when both sides use it, a connection may also carry up to `max_sessions` sessions."""

    _POSITIVE: ClassVar[tuple[str, ...]] = (
        "max_connections",
        "max_streams_per_connection",
        "connection_timeout",
        "read_timeout",
        "write_timeout",
        "backlog",
        "stream_buffer_size",
        "max_stream_buffer_size",
        "connection_idle_timeout",
        "flow_control_window_size",
        "max_sessions",
        "max_incoming_streams",
        "max_pending_events_per_session",
        "max_total_pending_events",
        "pending_event_ttl",
        "stream_flow_control_increment_bidi",
        "stream_flow_control_increment_uni",
    )
    _NON_NEGATIVE: ClassVar[tuple[str, ...]] = (
        "initial_max_data",
        "initial_max_stream_data_bidi_local",
        "initial_max_stream_data_bidi_remote",
        "initial_max_stream_data_uni",
        "initial_max_streams_bidi",
        "initial_max_streams_uni",
        "connection_keepalive_timeout",
    )
    _DEFAULT_VERIFY_MODE: ClassVar[ssl.VerifyMode] = ssl.CERT_NONE

    def __post_init__(self) -> None:
        if self.certfile is None:  # tolerate None for "no certificate"
            self.certfile = ""
        if self.keyfile is None:
            self.keyfile = ""
        self._normalize()

    def validate(self) -> None:
        """Check every field; raise `ConfigurationError` naming the first offending one."""
        super().validate()
        if not self.bind_host:
            raise invalid_config("bind_host", self.bind_host, "must not be empty")
        if not 0 <= self.bind_port <= 65535:
            raise invalid_config("bind_port", self.bind_port, "must be between 0 and 65535")
        if self.backlog != Defaults.SERVER_BACKLOG:
            raise invalid_config(
                "backlog",
                self.backlog,
                f"is not supported: msquic accepts QUIC connections without a listen backlog "
                f"(leave it at {Defaults.SERVER_BACKLOG}; max_connections bounds open connections)",
            )

    def get_bind_address(self) -> tuple[str, int]:
        """Return ``(bind_host, bind_port)``."""
        return self.bind_host, self.bind_port

    @classmethod
    def create_for_development(
        cls,
        *,
        host: str = Defaults.SERVER_BIND_HOST,
        port: int = Defaults.SERVER_BIND_PORT,
        certfile: str | None = None,
        keyfile: str | None = None,
        **kwargs: Any,
    ) -> Self:
        """Create a configuration for local development with verbose logging.

        No certificate is generated here; pass `certfile`/`keyfile`, for example from
        `pywebtransport.utils.generate_self_signed_cert`.
        """
        settings: dict[str, Any] = {
            "bind_host": host,
            "bind_port": port,
            "certfile": certfile or "",
            "keyfile": keyfile or "",
            "debug": True,
            "log_level": "DEBUG",
        }
        settings.update(kwargs)
        return cls.create(**settings)

    @classmethod
    def create_for_production(
        cls,
        *,
        host: str,
        port: int,
        certfile: str,
        keyfile: str,
        ca_certs: str | None = None,
        **kwargs: Any,
    ) -> Self:
        """Create a configuration for production; a certificate and key are required.

        Client certificates are requested (``CERT_OPTIONAL``) when `ca_certs` is given.
        """
        if not certfile or not keyfile:
            raise invalid_config(
                "certfile" if not certfile else "keyfile",
                certfile if not certfile else keyfile,
                "a production server needs both certfile and keyfile",
            )
        settings: dict[str, Any] = {
            "bind_host": host,
            "bind_port": port,
            "certfile": certfile,
            "keyfile": keyfile,
            "ca_certs": ca_certs,
            "verify_mode": ssl.CERT_OPTIONAL if ca_certs else ssl.CERT_NONE,
            "debug": False,
            "log_level": "INFO",
            "access_log": True,
        }
        settings.update(kwargs)
        return cls.create(**settings)


ConfigT = TypeVar("ConfigT", ClientConfig, ServerConfig)


class ConfigBuilder(Generic[ConfigT]):
    """Fluent builder of a `ClientConfig` or `ServerConfig`.

    Example::

        config = ConfigBuilder("server").bind("0.0.0.0", 4433).security(
            certfile="cert.pem", keyfile="key.pem"
        ).debug().build()
    """

    @overload
    def __init__(
        self: ConfigBuilder[ClientConfig],
        config_type: Literal["client"] | type[ClientConfig] = "client",
    ) -> None: ...

    @overload
    def __init__(
        self: ConfigBuilder[ServerConfig],
        config_type: Literal["server"] | type[ServerConfig],
    ) -> None: ...

    def __init__(self, config_type: str | type[ClientConfig] | type[ServerConfig] = "client") -> None:
        if config_type in ("client", ClientConfig):
            self._config_class: type[ClientConfig] | type[ServerConfig] = ClientConfig
        elif config_type in ("server", ServerConfig):
            self._config_class = ServerConfig
        else:
            raise ConfigurationError(
                f"config_type must be 'client' or 'server', got {config_type!r}",
                config_key="config_type",
                config_value=config_type,
            )
        self._settings: dict[str, Any] = {}

    def _set(self, **values: Any) -> Self:
        self._settings.update({k: v for k, v in values.items() if v is not None})
        return self

    def bind(self, host: str, port: int) -> Self:
        """Set the listening address (server only)."""
        if self._config_class is not ServerConfig:
            raise ConfigurationError("bind() applies to server configurations only", config_key="bind_host")
        return self._set(bind_host=host, bind_port=port)

    def debug(self, enabled: bool = True, log_level: str = "DEBUG") -> Self:
        """Turn debug mode on or off and set the log level."""
        self._settings["debug"] = enabled
        return self._set(log_level=log_level)

    def performance(
        self,
        *,
        max_streams: int | None = None,
        buffer_size: int | None = None,
        max_connections: int | None = None,
    ) -> Self:
        """Set stream, buffer and connection limits; None leaves a value unchanged."""
        streams_key = "max_streams" if self._config_class is ClientConfig else "max_streams_per_connection"
        return self._set(
            **{streams_key: max_streams},
            stream_buffer_size=buffer_size,
            max_connections=max_connections,
        )

    def security(
        self,
        *,
        certfile: str | None = None,
        keyfile: str | None = None,
        ca_certs: str | None = None,
        verify_mode: ssl.VerifyMode | None = None,
    ) -> Self:
        """Set TLS files and the certificate verification mode."""
        return self._set(certfile=certfile, keyfile=keyfile, ca_certs=ca_certs, verify_mode=verify_mode)

    def timeout(
        self,
        *,
        connect: float | None = None,
        read: float | None = None,
        write: float | None = None,
    ) -> Self:
        """Set timeouts in seconds (the connect timeout applies to clients only)."""
        if connect is not None and self._config_class is not ClientConfig:
            raise ConfigurationError(
                "the connect timeout applies to client configurations only",
                config_key="connect_timeout",
            )
        return self._set(connect_timeout=connect, read_timeout=read, write_timeout=write)

    def set(self, **values: Any) -> Self:
        """Set arbitrary configuration fields by name."""
        self._config_class._check_keys(values)
        self._settings.update(values)
        return self

    def build(self) -> ConfigT:
        """Create and validate the configuration."""
        return self._config_class.create(**self._settings)  # type: ignore[return-value]
