"""Helpers: certificates, URLs, logging, timing, formatting and small validators."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import logging
import os
import secrets
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import urlencode, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pywebtransport.constants import WebTransportConstants
from pywebtransport.exceptions import CertificateError, ConfigurationError, TimeoutError
from pywebtransport.types import Address, URLParts

__all__ = [
    "validate_error_code",
    "validate_address",
    "normalize_headers",
    "is_ipv6_address",
    "is_ipv4_address",
    "create_task_with_timeout",
    "Timer",
    "build_webtransport_url",
    "calculate_checksum",
    "cert_sha256",
    "chunked_read",
    "ensure_bytes",
    "ensure_str",
    "format_bytes",
    "format_duration",
    "format_timestamp",
    "generate_browser_cert",
    "generate_connection_id",
    "generate_request_id",
    "generate_self_signed_cert",
    "generate_session_id",
    "get_logger",
    "get_timestamp",
    "load_certificate",
    "merge_configs",
    "parse_webtransport_url",
    "resolve_address",
    "run_with_timeout",
    "setup_logging",
    "validate_port",
    "validate_session_id",
    "validate_stream_id",
    "validate_url",
    "wait_for_condition",
]

T = TypeVar("T")

_ROOT_LOGGER_NAME = "pywebtransport"
_DEFAULT_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Chrome accepts a certificate pinned by hash (serverCertificateHashes) only when its
# whole validity period is at most 14 days.
_BROWSER_CERT_MAX_VALIDITY = datetime.timedelta(days=14)


# --- logging -------------------------------------------------------------------------------


def get_logger(name: str) -> logging.Logger:
    """Return a logger below the ``pywebtransport`` logger hierarchy."""
    if name == _ROOT_LOGGER_NAME or name.startswith(_ROOT_LOGGER_NAME + "."):
        return logging.getLogger(name)
    return logging.getLogger(f"{_ROOT_LOGGER_NAME}.{name}")


def setup_logging(
    level: str | int = "INFO",
    *,
    format_string: str | None = None,
    logger_name: str = _ROOT_LOGGER_NAME,
) -> logging.Logger:
    """Attach one stderr handler to the library logger and set its level.

    Calling it again changes the level and format without adding handlers.
    """
    logger = logging.getLogger(logger_name)
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ConfigurationError(f"Unknown log level: {level!r}", config_key="log_level", config_value=level)
    logger.setLevel(numeric)
    formatter = logging.Formatter(format_string or _DEFAULT_LOG_FORMAT)
    handler = next((h for h in logger.handlers if getattr(h, "_pywebtransport", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler._pywebtransport = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    handler.setFormatter(formatter)
    return logger


# --- time ----------------------------------------------------------------------------------


def get_timestamp() -> float:
    """Return the current wall-clock time in seconds since the epoch."""
    return time.time()


class Timer:
    """Measure elapsed time with a monotonic clock; usable as a (async) context manager."""

    def __init__(self, name: str = "timer") -> None:
        self.name = name
        self.start_time: float | None = None
        self.end_time: float | None = None

    def start(self) -> Self:
        """Start (or restart) the timer."""
        self.start_time = time.perf_counter()
        self.end_time = None
        return self

    def stop(self) -> float:
        """Stop the timer and return the elapsed seconds."""
        if self.start_time is None:
            raise RuntimeError(f"Timer {self.name!r} was never started")
        self.end_time = time.perf_counter()
        return self.end_time - self.start_time

    @property
    def elapsed(self) -> float:
        """Seconds since start, up to stop if stopped; 0.0 if never started."""
        if self.start_time is None:
            return 0.0
        end = self.end_time if self.end_time is not None else time.perf_counter()
        return end - self.start_time

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Timer {self.name!r} elapsed={self.elapsed:.6f}s>"


async def run_with_timeout(
    awaitable: Awaitable[T], timeout: float | None, *, operation: str = "operation"
) -> T:
    """Await `awaitable`, raising the library's `TimeoutError` after `timeout` seconds."""
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        assert timeout is not None
        raise TimeoutError(
            f"Operation '{operation}' timed out after {timeout:g}s",
            timeout_duration=timeout,
            operation=operation,
        ) from None


async def wait_for_condition(
    condition: Callable[[], bool],
    *,
    timeout: float | None = None,
    interval: float = 0.1,
) -> None:
    """Poll `condition` every `interval` seconds until it is true.

    Raises the library's `TimeoutError` if it is still false after `timeout` seconds.
    """

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(interval)

    await run_with_timeout(poll(), timeout, operation="wait_for_condition")


# --- URLs and addresses --------------------------------------------------------------------


def _url_error(url: str, reason: str) -> ConfigurationError:
    return ConfigurationError(
        f"Invalid WebTransport URL {url!r}: {reason}", config_key="url", config_value=url
    )


def parse_webtransport_url(url: str) -> URLParts:
    """Split an ``https://host[:port]/path`` URL into ``(host, port, path)``.

    The port defaults to 443. IPv6 literals are written in brackets and returned without
    them. The path keeps its query string (it is sent as ``:path``); a fragment is dropped.

    Raises:
        ConfigurationError: The scheme is not https, or the host or port is missing or invalid.
    """
    if not isinstance(url, str):
        raise _url_error(repr(url), "URL must be a string")
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:  # e.g. an unbalanced "[" in the host
        raise _url_error(url, str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme != "https":
        shown = f"{scheme}://" if scheme else "no scheme"
        raise _url_error(url, f"WebTransport requires an https:// URL, got {shown}")
    if parts.username is not None or parts.password is not None:
        raise _url_error(url, "credentials in the URL are not supported")
    host = parts.hostname
    if not host:
        raise _url_error(url, "the host is missing")
    try:
        port = parts.port
    except ValueError:
        raise _url_error(url, "the port must be a number between 1 and 65535") from None
    if port is None:
        if parts.netloc.endswith(":"):
            raise _url_error(url, "the port is empty")
        port = WebTransportConstants.DEFAULT_SECURE_PORT
    elif port == 0:
        raise _url_error(url, "the port must be a number between 1 and 65535")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return host, port, path


def validate_url(url: str) -> bool:
    """Tell whether `url` is a valid WebTransport URL (see `parse_webtransport_url`)."""
    try:
        parse_webtransport_url(url)
    except ConfigurationError:
        return False
    return True


def build_webtransport_url(
    host: str,
    port: int = WebTransportConstants.DEFAULT_SECURE_PORT,
    path: str = "/",
    *,
    query_params: Mapping[str, str] | None = None,
) -> str:
    """Build an ``https://`` WebTransport URL; IPv6 hosts are bracketed automatically."""
    validate_port(port)
    if not host:
        raise ConfigurationError("host must not be empty", config_key="host", config_value=host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    if not path.startswith("/"):
        path = "/" + path
    url = f"https://{host}:{port}{path}"
    if query_params:
        url += ("&" if "?" in path else "?") + urlencode(query_params)
    return url


async def resolve_address(host: str, port: int, *, family: int = socket.AF_UNSPEC) -> Address:
    """Resolve `host` to an IP address with the event loop's resolver (UDP)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise ConfigurationError(
            f"Cannot resolve host {host!r}: {exc.strerror}", config_key="host", config_value=host
        ) from exc
    sockaddr = infos[0][4]
    return str(sockaddr[0]), int(sockaddr[1])


# --- conversions and formatting ------------------------------------------------------------


def ensure_bytes(data: bytes | bytearray | memoryview | str, encoding: str = "utf-8") -> bytes:
    """Return `data` as bytes, encoding text with `encoding`."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode(encoding)
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"expected bytes-like or str, got {type(data).__name__}")


def ensure_str(data: bytes | bytearray | memoryview | str, encoding: str = "utf-8") -> str:
    """Return `data` as str, decoding bytes with `encoding`."""
    if isinstance(data, str):
        return data
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data).decode(encoding)
    raise TypeError(f"expected bytes-like or str, got {type(data).__name__}")


def format_bytes(num_bytes: int | float, precision: int = 1) -> str:
    """Format a byte count with binary units: ``format_bytes(1536) == "1.5 KiB"``."""
    value = float(num_bytes)
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value < 1024:
        return f"{sign}{int(value)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{sign}{value:.{precision}f} {unit}"
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    """Format a duration: ``"250.0us"``, ``"12.5ms"``, ``"3.20s"``, ``"2m 5s"``, ``"1h 2m 3s"``."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f}us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    return f"{minutes}m {secs}s"


def format_timestamp(timestamp: float) -> str:
    """Format a Unix timestamp as an ISO 8601 UTC string."""
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC).isoformat()


def calculate_checksum(data: bytes | str, algorithm: str = "sha256") -> str:
    """Return the hex digest of `data` (text is UTF-8 encoded)."""
    try:
        digest = hashlib.new(algorithm)
    except ValueError:
        raise ConfigurationError(
            f"Unsupported hash algorithm: {algorithm!r}", config_key="algorithm", config_value=algorithm
        ) from None
    digest.update(ensure_bytes(data))
    return digest.hexdigest()


def chunked_read(data: bytes, chunk_size: int = WebTransportConstants.DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
    """Yield `data` in pieces of at most `chunk_size` bytes."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    for offset in range(0, len(data), chunk_size):
        yield data[offset : offset + chunk_size]


def merge_configs(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge two dictionaries recursively; values from `override` win."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_configs(current, value)
        else:
            merged[key] = value
    return merged


# --- identifiers and validators ------------------------------------------------------------


def generate_session_id() -> str:
    """Return a random, URL-safe session identifier."""
    return secrets.token_urlsafe(16)


def generate_connection_id() -> str:
    """Return a random hexadecimal connection identifier."""
    return secrets.token_hex(8)


def generate_request_id() -> str:
    """Return a random request identifier (a UUID4 string)."""
    return str(uuid.uuid4())


def validate_address(address: Any) -> None:
    """Raise `ConfigurationError` unless `address` is a ``(host, port)`` pair with a valid port."""
    if (
        not isinstance(address, tuple)
        or len(address) != 2
        or not isinstance(address[0], str)
        or not address[0]
    ):
        raise ConfigurationError(
            f"Address must be a (host, port) tuple, got {address!r}", config_key="address", config_value=address
        )
    validate_port(address[1])


def validate_error_code(error_code: int) -> None:
    """Raise `ConfigurationError` unless `error_code` fits a QUIC varint (0..2**62-1)."""
    if not isinstance(error_code, int) or isinstance(error_code, bool) or not 0 <= error_code < 1 << 62:
        raise ConfigurationError(
            f"Error code must be an integer between 0 and 2**62-1, got {error_code!r}",
            config_key="error_code",
            config_value=error_code,
        )


def is_ipv4_address(address: str) -> bool:
    """Whether `address` is a literal IPv4 address."""
    try:
        return isinstance(ipaddress.ip_address(address), ipaddress.IPv4Address)
    except ValueError:
        return False


def is_ipv6_address(address: str) -> bool:
    """Whether `address` is a literal IPv6 address (brackets allowed)."""
    try:
        return isinstance(ipaddress.ip_address(address.strip("[]")), ipaddress.IPv6Address)
    except ValueError:
        return False


def normalize_headers(headers: Mapping[Any, Any]) -> dict[str, str]:
    """Headers with lower-case ``str`` names and ``str`` values (bytes are decoded as UTF-8)."""
    result: dict[str, str] = {}
    for name, value in headers.items():
        key = name.decode() if isinstance(name, bytes | bytearray) else str(name)
        result[key.lower()] = value.decode() if isinstance(value, bytes | bytearray) else str(value)
    return result


def create_task_with_timeout(
    coro: Coroutine[Any, Any, T], timeout: float | None = None, name: str | None = None
) -> asyncio.Task[T]:
    """Run `coro` as a task that is cancelled (raising `asyncio.TimeoutError`) after `timeout` seconds."""
    if timeout is None:
        return asyncio.get_running_loop().create_task(coro, name=name)
    return asyncio.get_running_loop().create_task(asyncio.wait_for(coro, timeout), name=name)


def validate_port(port: int) -> None:
    """Raise `ConfigurationError` unless `port` is an int in 1..65535."""
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ConfigurationError(
            f"Port must be an integer between 1 and 65535, got {port!r}", config_key="port", config_value=port
        )


def validate_stream_id(stream_id: int) -> None:
    """Raise `ValueError` unless `stream_id` is a valid QUIC stream ID (0..2**62-1)."""
    if not isinstance(stream_id, int) or isinstance(stream_id, bool):
        raise TypeError(f"stream ID must be an int, got {type(stream_id).__name__}")
    if not 0 <= stream_id <= WebTransportConstants.MAX_STREAM_ID:
        raise ValueError(f"stream ID out of range: {stream_id}")


def validate_session_id(session_id: str) -> None:
    """Raise `ValueError` unless `session_id` is a non-empty string."""
    if not isinstance(session_id, str):
        raise TypeError(f"session ID must be a str, got {type(session_id).__name__}")
    if not session_id:
        raise ValueError("session ID must not be empty")


# --- certificates --------------------------------------------------------------------------


def _parse_ip(hostname: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(hostname.strip("[]"))
    except ValueError:
        return None


def _subject_alt_names(hostname: str) -> list[x509.GeneralName]:
    ip = _parse_ip(hostname)
    if ip is not None:
        return [x509.IPAddress(ip)]
    names: list[x509.GeneralName] = [x509.DNSName(hostname)]
    if hostname.lower() == "localhost":
        # Clients commonly connect to the loopback address rather than the name.
        names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        names.append(x509.IPAddress(ipaddress.ip_address("::1")))
    return names


def _build_certificate(
    hostname: str,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname.strip("[]"))])
    key_usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(key, rsa.RSAPrivateKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(_subject_alt_names(hostname.strip("[]"))), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _write_pair(
    hostname: str,
    output_dir: str | os.PathLike[str],
    certificate: x509.Certificate,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
) -> tuple[str, str]:
    if not hostname or any(c in hostname for c in "/\\\0"):
        raise ConfigurationError(
            f"Invalid hostname for a certificate: {hostname!r}", config_key="hostname", config_value=hostname
        )
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    # Colons (IPv6 literals) are not portable in file names.
    stem = hostname.strip("[]").replace(":", "_")
    cert_path = directory / f"{stem}.crt"
    key_path = directory / f"{stem}.key"
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _replace_file(key_path, key_bytes, 0o600)
    _replace_file(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    return str(cert_path), str(key_path)


def _replace_file(path: Path, data: bytes, mode: int) -> None:
    """Atomically replace `path` with a new file of `data` and `mode`.

    The data goes to a fresh file (created exclusively, so never through a symlink,
    and with `mode` before any byte is written) that is then renamed over `path`:
    an existing file keeps neither its old mode nor its inode, a symlink at `path`
    is replaced rather than followed, and readers never see a partial file.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def generate_self_signed_cert(
    hostname: str,
    *,
    output_dir: str | os.PathLike[str] = ".",
    key_size: int = 2048,
    days_valid: int = 365,
) -> tuple[str, str]:
    """Create a self-signed RSA certificate and key for `hostname`.

    Writes ``{hostname}.crt`` and ``{hostname}.key`` (PEM; the key unencrypted PKCS#8) into
    `output_dir` and returns their paths. The certificate names `hostname` in its common
    name and subjectAltName (as an IP address when it is one; ``localhost`` also covers
    127.0.0.1 and ::1). Colons of IPv6 literals become ``_`` in the file names.

    Raises:
        ConfigurationError: `key_size` is below 2048 or `days_valid` below 1.
    """
    if key_size < 2048:
        raise ConfigurationError(
            "key_size must be at least 2048", config_key="key_size", config_value=key_size
        )
    if days_valid < 1:
        raise ConfigurationError(
            "days_valid must be at least 1", config_key="days_valid", config_value=days_valid
        )
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    now = datetime.datetime.now(datetime.UTC)
    # Backdate a little so that peers with a slightly slow clock accept it.
    certificate = _build_certificate(
        hostname, key, now - datetime.timedelta(hours=1), now + datetime.timedelta(days=days_valid)
    )
    return _write_pair(hostname, output_dir, certificate, key)


def generate_browser_cert(
    hostname: str,
    *,
    output_dir: str | os.PathLike[str] = ".",
    days_valid: int = 10,
) -> tuple[str, str, bytes]:
    """Create an ECDSA P-256 certificate usable with browsers' ``serverCertificateHashes``.

    Browsers accept a self-signed certificate pinned by its SHA-256 hash only if it uses
    ECDSA P-256 and is valid for at most 14 days in total. Returns
    ``(cert_path, key_path, sha256)``, where `sha256` is the digest of the DER certificate
    to pass to ``new WebTransport(url, {serverCertificateHashes: [{algorithm: "sha-256",
    value}]})``.

    Raises:
        ConfigurationError: `days_valid` is not between 1 and 14.
    """
    if not 1 <= days_valid <= _BROWSER_CERT_MAX_VALIDITY.days:
        raise ConfigurationError(
            "days_valid must be between 1 and 14 for serverCertificateHashes",
            config_key="days_valid",
            config_value=days_valid,
        )
    lifetime = datetime.timedelta(days=days_valid)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    backdate = min(datetime.timedelta(hours=1), _BROWSER_CERT_MAX_VALIDITY - lifetime)
    certificate = _build_certificate(hostname, key, now - backdate, now + lifetime)
    cert_path, key_path = _write_pair(hostname, output_dir, certificate, key)
    return cert_path, key_path, certificate.fingerprint(hashes.SHA256())


def _read_certificate(certfile: str | os.PathLike[str]) -> x509.Certificate:
    path = os.fspath(certfile)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CertificateError(
            f"Certificate file not found: {path}", certificate_path=path, certificate_error="file_not_found"
        ) from None
    except OSError as exc:
        raise CertificateError(
            f"Cannot read certificate {path}: {exc.strerror}",
            certificate_path=path,
            certificate_error="unreadable",
        ) from exc
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise CertificateError(
            f"Not a valid certificate: {path}", certificate_path=path, certificate_error="invalid_format"
        ) from exc


def load_certificate(
    certfile: str | os.PathLike[str], keyfile: str | os.PathLike[str] | None = None
) -> x509.Certificate:
    """Load a PEM or DER certificate, and check that `keyfile` (if given) matches it.

    Raises:
        CertificateError: A file is missing or unreadable, a file is not a certificate or
            unencrypted private key, or the key does not belong to the certificate.
    """
    certificate = _read_certificate(certfile)
    if keyfile is None:
        return certificate
    key_path = os.fspath(keyfile)
    try:
        key_data = Path(key_path).read_bytes()
    except FileNotFoundError:
        raise CertificateError(
            f"Key file not found: {key_path}", certificate_path=key_path, certificate_error="file_not_found"
        ) from None
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(
            f"Not a valid unencrypted PEM private key: {key_path}",
            certificate_path=key_path,
            certificate_error="invalid_key",
        ) from exc
    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(der, spki) != certificate.public_key().public_bytes(der, spki):
        raise CertificateError(
            f"Private key {key_path} does not match certificate {os.fspath(certfile)}",
            certificate_path=os.fspath(certfile),
            certificate_error="key_mismatch",
        )
    return certificate


def cert_sha256(cert_path: str | os.PathLike[str]) -> bytes:
    """Return the SHA-256 digest of a certificate's DER encoding (PEM or DER file)."""
    return _read_certificate(cert_path).fingerprint(hashes.SHA256())
