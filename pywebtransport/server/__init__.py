"""Server-side building blocks: routing and session-request middleware."""

from pywebtransport.server.middleware import (
    Middleware,
    MiddlewareManager,
    RateLimiter,
    SessionCheck,
    SessionLike,
    create_auth_middleware,
    create_client_certificate_middleware,
    create_cors_middleware,
    create_logging_middleware,
    create_rate_limit_middleware,
)
from pywebtransport.server.router import RequestRouter
from pywebtransport.server.server import WebTransportServer
from pywebtransport.server.app import ServerApp
from pywebtransport.monitor import ServerMonitor
from pywebtransport.compat.stats import ServerStats
from pywebtransport.compat.server import ServerCluster, create_simple_app
from pywebtransport.server.dev import (
    create_development_server,
    create_echo_server_app,
    echo_handler,
    health_check_handler,
)

__all__ = [
    "ServerApp",
    "ServerCluster",
    "ServerMonitor",
    "ServerStats",
    "WebTransportServer",
    "Middleware",
    "MiddlewareManager",
    "RateLimiter",
    "RequestRouter",
    "SessionCheck",
    "SessionLike",
    "create_auth_middleware",
    "create_client_certificate_middleware",
    "create_cors_middleware",
    "create_logging_middleware",
    "create_rate_limit_middleware",
    "create_development_server",
    "create_echo_server_app",
    "create_simple_app",
    "echo_handler",
    "health_check_handler",
]
