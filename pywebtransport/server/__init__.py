"""Server-side building blocks: routing and session-request middleware."""

from pywebtransport.server.middleware import (
    Middleware,
    MiddlewareManager,
    RateLimiter,
    SessionCheck,
    SessionLike,
    create_auth_middleware,
    create_cors_middleware,
    create_logging_middleware,
    create_rate_limit_middleware,
)
from pywebtransport.server.router import RequestRouter
from pywebtransport.server.server import WebTransportServer
from pywebtransport.server.app import ServerApp

__all__ = [
    "ServerApp",
    "WebTransportServer",
    "Middleware",
    "MiddlewareManager",
    "RateLimiter",
    "RequestRouter",
    "SessionCheck",
    "SessionLike",
    "create_auth_middleware",
    "create_cors_middleware",
    "create_logging_middleware",
    "create_rate_limit_middleware",
]
