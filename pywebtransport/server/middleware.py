"""Session-request middleware: a chain of checks run before a session is accepted.

A middleware is a callable ``m(session)`` (usually ``async``) that inspects the session
request. Returning None or True lets the request continue; returning False rejects it
with HTTP 403; raising `MiddlewareRejected` rejects it with the given status and
headers. Middleware only uses the attributes described by `SessionLike`.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Generic, Protocol, Self, TypeAlias, TypeVar

from pywebtransport.config import certificate_hash_bytes
from pywebtransport.exceptions import AuthenticationError, ConfigurationError, MiddlewareRejected
from pywebtransport.quic import PeerCertificate
from pywebtransport.utils import get_logger

__all__ = [
    "Middleware",
    "MiddlewareManager",
    "RateLimiter",
    "SessionCheck",
    "SessionLike",
    "create_auth_middleware",
    "create_client_certificate_middleware",
    "create_cors_middleware",
    "create_logging_middleware",
    "create_rate_limit_middleware",
]

logger = get_logger("server.middleware")


class SessionLike(Protocol):
    """What middleware may read from a session request."""

    @property
    def headers(self) -> Mapping[str, str]:
        """Request headers; names are lower-case as in HTTP/3."""
        ...

    @property
    def path(self) -> str:
        """Request path, including any query string."""
        ...

    @property
    def remote_address(self) -> tuple[str, int] | None:
        """Peer address, if known."""
        ...


S = TypeVar("S", bound=SessionLike)

Middleware: TypeAlias = Callable[[S], Awaitable[bool | None] | bool | None]
"""``m(session)`` returning (or resolving to) None/True to continue or False to reject."""

SessionCheck: TypeAlias = Callable[[SessionLike], Awaitable[None]]
"""An async middleware that accepts by returning and rejects by raising `MiddlewareRejected`."""

AuthHandler: TypeAlias = Callable[[Mapping[str, str]], Awaitable[bool] | bool]

CertificateCheck: TypeAlias = Callable[[PeerCertificate], Awaitable[bool] | bool]
"""``check(certificate)`` returning (or resolving to) whether the client may proceed."""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


class MiddlewareManager(Generic[S]):
    """Run middleware in order and stop at the first rejection.

    A middleware that raises anything other than `MiddlewareRejected` is logged and the
    request is rejected with 500, so a bug never lets a request through unchecked.
    """

    def __init__(self, middleware: Iterable[Middleware[S]] = ()) -> None:
        self._middleware: list[Middleware[S]] = list(middleware)

    def add_middleware(self, middleware: Middleware[S]) -> None:
        """Append `middleware` to the chain."""
        if not callable(middleware):
            raise TypeError(f"middleware must be callable, got {type(middleware).__name__}")
        self._middleware.append(middleware)

    def remove_middleware(self, middleware: Middleware[S]) -> None:
        """Remove `middleware` from the chain; missing entries are ignored."""
        self._middleware = [m for m in self._middleware if m is not middleware]

    def get_middleware_count(self) -> int:
        """Return the number of middleware in the chain."""
        return len(self._middleware)

    @property
    def middleware(self) -> list[Middleware[S]]:
        """A copy of the chain, in execution order."""
        return list(self._middleware)

    async def check(self, session: S) -> None:
        """Run the chain; raise `MiddlewareRejected` if the request must be refused."""
        for middleware in self._middleware:
            try:
                result = middleware(session)
                if inspect.isawaitable(result):
                    result = await result
            except MiddlewareRejected:
                raise
            except Exception as exc:
                logger.exception("Middleware %r failed for path %s", middleware, session.path)
                raise MiddlewareRejected(500, message=f"Middleware error: {exc}") from exc
            if result is False:
                raise MiddlewareRejected(403)

    async def process_request(self, session: S) -> bool:
        """Run the chain and return whether the request may proceed."""
        try:
            await self.check(session)
        except MiddlewareRejected as rejection:
            logger.debug("Session request for %s rejected with %d", session.path, rejection.status)
            return False
        return True


def create_auth_middleware(auth_handler: AuthHandler, *, status: int = 401) -> SessionCheck:
    """Create middleware that asks `auth_handler(headers)` whether to accept the request.

    `auth_handler` may be sync or async. A false result, or an `AuthenticationError`,
    rejects the request with `status` (401 by default). The handler can also raise
    ``MiddlewareRejected(403)`` itself to refuse an authenticated but unauthorized peer.
    """

    async def auth_middleware(session: SessionLike) -> None:
        try:
            allowed = auth_handler(session.headers)
            if inspect.isawaitable(allowed):
                allowed = await allowed
        except AuthenticationError as exc:
            raise MiddlewareRejected(status, message=f"Authentication failed: {exc}") from exc
        if not allowed:
            raise MiddlewareRejected(status, message="Authentication failed")

    return auth_middleware


def create_client_certificate_middleware(
    authorize: CertificateCheck | None = None,
    *,
    allowed_subjects: Iterable[str] | None = None,
    allowed_names: Iterable[str] | None = None,
    allowed_fingerprints: Iterable[bytes | str] | None = None,
    status: int = 403,
) -> SessionCheck:
    """Create middleware that authorizes a session by the client's TLS certificate.

    The server must ask for client certificates (`ServerConfig.verify_mode` ``CERT_OPTIONAL``
    or ``CERT_REQUIRED``, with `ServerConfig.ca_certs` naming the trusted CAs); by the time
    middleware runs, TLS has verified the certificate's chain. A client that sent no
    certificate is rejected with `status`, and so is one that fails any check given:

    * `allowed_subjects`: the subject distinguished name, as an RFC 4514 string such as
      ``"CN=alice,O=Example"``, must be one of these (exact match);
    * `allowed_names`: one of the certificate's DNS names, IP addresses or its common
      name must be one of these (DNS names compare case-insensitively);
    * `allowed_fingerprints`: the SHA-256 digest of the DER certificate (32 bytes or hex)
      must be one of these;
    * `authorize(certificate)`: a sync or async predicate on the `PeerCertificate`.
    """
    subjects = None if allowed_subjects is None else set(allowed_subjects)
    names = None if allowed_names is None else {n.lower() for n in allowed_names}
    fingerprints: set[bytes] | None = None
    if allowed_fingerprints is not None:
        fingerprints = set()
        for value in allowed_fingerprints:
            digest = certificate_hash_bytes(value)
            if digest is None:
                raise ConfigurationError(
                    f"not a SHA-256 digest: {value!r}",
                    config_key="allowed_fingerprints",
                    config_value=value,
                )
            fingerprints.add(digest)

    async def client_certificate_middleware(session: SessionLike) -> None:
        certificate = getattr(session, "peer_certificate", None)
        if not isinstance(certificate, PeerCertificate):
            raise MiddlewareRejected(status, message="A client certificate is required")
        if subjects is not None and certificate.subject not in subjects:
            raise MiddlewareRejected(status, message=f"Client certificate {certificate.subject} not allowed")
        if names is not None:
            own = {n.lower() for n in certificate.dns_names} | set(certificate.ip_addresses)
            if certificate.common_name:
                own.add(certificate.common_name.lower())
            if not own & names:
                raise MiddlewareRejected(status, message=f"Client certificate {certificate.subject} not allowed")
        if fingerprints is not None and certificate.sha256 not in fingerprints:
            raise MiddlewareRejected(status, message=f"Client certificate {certificate.fingerprint} not allowed")
        if authorize is not None:
            allowed = authorize(certificate)
            if inspect.isawaitable(allowed):
                allowed = await allowed
            if not allowed:
                raise MiddlewareRejected(status, message=f"Client certificate {certificate.subject} not authorized")

    return client_certificate_middleware


def _normalize_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def create_cors_middleware(*, allowed_origins: Iterable[str]) -> SessionCheck:
    """Create middleware that accepts only requests whose ``origin`` header is allowed.

    ``"*"`` allows every origin, including requests without the header. Otherwise a
    missing or unlisted origin is rejected with 403. Origins compare case-insensitively.
    Note that non-browser clients usually send no ``origin`` header.
    """
    origins = {_normalize_origin(o) for o in allowed_origins}
    allow_all = "*" in origins

    async def cors_middleware(session: SessionLike) -> None:
        if allow_all:
            return
        origin = _header(session.headers, "origin")
        if origin is None or _normalize_origin(origin) not in origins:
            raise MiddlewareRejected(403, message=f"Origin not allowed: {origin!r}")

    return cors_middleware


def create_logging_middleware(
    *, logger: logging.Logger | None = None, level: int = logging.INFO
) -> SessionCheck:
    """Create middleware that logs each session request and lets it through."""
    log = logger or get_logger("server.access")

    async def logging_middleware(session: SessionLike) -> None:
        address = session.remote_address
        peer = f"{address[0]}:{address[1]}" if address else "unknown"
        user_agent = _header(session.headers, "user-agent") or "-"
        origin = _header(session.headers, "origin") or "-"
        log.log(
            level,
            "Session request %s from %s origin=%s user-agent=%s",
            session.path,
            peer,
            origin,
            user_agent,
        )

    return logging_middleware


class RateLimiter:
    """Middleware limiting session requests per remote IP with a sliding window.

    A peer that made `max_requests` requests in the last `window_seconds` is rejected
    with 429 and a ``retry-after`` header. At most `max_tracked_ips` addresses are
    remembered; the least recently seen is forgotten first. Requests without a remote
    address share one bucket.

    Args:
        max_requests: Requests allowed per IP within the window.
        window_seconds: Length of the sliding window in seconds.
        cleanup_interval: Seconds between sweeps that drop idle addresses.
        max_tracked_ips: Upper bound on the number of addresses remembered.
        clock: Monotonic time source (for tests).
    """

    def __init__(
        self,
        *,
        max_requests: int = 100,
        window_seconds: float = 60,
        cleanup_interval: float = 300,
        max_tracked_ips: int = 10000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_requests <= 0:
            raise ValueError("max_requests must be positive")
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        if max_tracked_ips <= 0:
            raise ValueError("max_tracked_ips must be positive")
        self.max_requests = max_requests
        self.window_seconds = window_seconds
        self.cleanup_interval = cleanup_interval
        self.max_tracked_ips = max_tracked_ips
        self._clock = clock
        self._requests: OrderedDict[str, deque[float]] = OrderedDict()
        self._last_cleanup = clock()

    async def __call__(self, session: SessionLike) -> None:
        """Count the request and raise `MiddlewareRejected(429)` if over the limit."""
        address = session.remote_address
        self.check(address[0] if address else "")

    def check(self, ip: str) -> None:
        """Count a request from `ip`; raise `MiddlewareRejected(429)` if over the limit."""
        now = self._clock()
        if now - self._last_cleanup >= self.cleanup_interval:
            self.cleanup(now)
        timestamps = self._requests.get(ip)
        if timestamps is None:
            timestamps = self._requests[ip] = deque()
            while len(self._requests) > self.max_tracked_ips:
                self._requests.popitem(last=False)
        else:
            self._requests.move_to_end(ip)
        cutoff = now - self.window_seconds
        while timestamps and timestamps[0] <= cutoff:
            timestamps.popleft()
        if len(timestamps) >= self.max_requests:
            retry_after = max(1, int(timestamps[0] + self.window_seconds - now + 0.999))
            raise MiddlewareRejected(
                429,
                {"retry-after": str(retry_after)},
                message=f"Rate limit exceeded for {ip or 'unknown address'}",
            )
        timestamps.append(now)

    def cleanup(self, now: float | None = None) -> None:
        """Forget addresses with no requests inside the window."""
        now = self._clock() if now is None else now
        cutoff = now - self.window_seconds
        for ip in [ip for ip, ts in self._requests.items() if not ts or ts[-1] <= cutoff]:
            del self._requests[ip]
        self._last_cleanup = now

    @property
    def tracked_ips(self) -> int:
        """Number of addresses currently remembered."""
        return len(self._requests)

    def reset(self) -> None:
        """Forget all recorded requests."""
        self._requests.clear()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.reset()


def create_rate_limit_middleware(
    *,
    max_requests: int = 100,
    window_seconds: float = 60,
    cleanup_interval: float = 300,
    max_tracked_ips: int = 10000,
) -> RateLimiter:
    """Create a `RateLimiter` (it is itself the middleware)."""
    return RateLimiter(
        max_requests=max_requests,
        window_seconds=window_seconds,
        cleanup_interval=cleanup_interval,
        max_tracked_ips=max_tracked_ips,
    )
