"""Server-side building blocks: routing and session-request middleware."""

from pywebtransport.server.middleware import (
    MiddlewareManager,
    RateLimiter,
    SessionLike,
    create_auth_middleware,
    create_cors_middleware,
    create_logging_middleware,
    create_rate_limit_middleware,
)
from pywebtransport.server.router import RequestRouter

__all__ = [
    "MiddlewareManager",
    "RateLimiter",
    "RequestRouter",
    "SessionLike",
    "create_auth_middleware",
    "create_cors_middleware",
    "create_logging_middleware",
    "create_rate_limit_middleware",
]
