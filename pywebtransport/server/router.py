"""Map request paths to session handlers."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

from pywebtransport.types import SessionHandler
from pywebtransport.utils import get_logger

__all__ = ["RequestRouter", "RouteMatch"]

logger = get_logger("server.router")

RouteMatch = tuple[SessionHandler, dict[str, str]]
"""A handler and the path parameters captured for it."""


class _HasPath(Protocol):
    @property
    def path(self) -> str: ...


def _strip_query(path: str) -> str:
    # The request path may carry a query string; routes match the path part only.
    return path.split("?", 1)[0].split("#", 1)[0]


class RequestRouter:
    """Route session requests by path.

    Lookup order: exact routes, then pattern routes in the order they were added (each
    regular expression must match the whole path), then the default handler. Named
    groups of a pattern become path parameters under their names; unnamed groups under
    their group number (``"1"``, ``"2"``, ...). The query string is ignored for routing.
    """

    def __init__(self) -> None:
        self._routes: dict[str, SessionHandler] = {}
        self._patterns: list[tuple[re.Pattern[str], SessionHandler]] = []
        self._default_handler: SessionHandler | None = None

    def add_route(self, path: str, handler: SessionHandler) -> None:
        """Route requests for exactly `path` to `handler` (replacing an existing route)."""
        if not path.startswith("/"):
            raise ValueError(f"route path must start with '/', got {path!r}")
        if path in self._routes:
            logger.debug("Replacing handler for route %s", path)
        self._routes[path] = handler

    def remove_route(self, path: str) -> None:
        """Remove the exact route for `path`; missing routes are ignored."""
        self._routes.pop(path, None)

    def add_pattern_route(self, pattern: str | re.Pattern[str], handler: SessionHandler) -> None:
        """Route requests whose whole path matches the regular expression `pattern`."""
        compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
        self._patterns = [(p, h) for p, h in self._patterns if p.pattern != compiled.pattern]
        self._patterns.append((compiled, handler))

    def remove_pattern_route(self, pattern: str | re.Pattern[str]) -> None:
        """Remove the pattern route with this pattern; missing routes are ignored."""
        text = pattern if isinstance(pattern, str) else pattern.pattern
        self._patterns = [(p, h) for p, h in self._patterns if p.pattern != text]

    def set_default_handler(self, handler: SessionHandler | None) -> None:
        """Use `handler` for requests no route matches (None to remove it)."""
        self._default_handler = handler

    def route(self, path: str) -> Callable[[SessionHandler], SessionHandler]:
        """Decorator form of `add_route`."""

        def decorator(handler: SessionHandler) -> SessionHandler:
            self.add_route(path, handler)
            return handler

        return decorator

    def pattern_route(self, pattern: str) -> Callable[[SessionHandler], SessionHandler]:
        """Decorator form of `add_pattern_route`."""

        def decorator(handler: SessionHandler) -> SessionHandler:
            self.add_pattern_route(pattern, handler)
            return handler

        return decorator

    def lookup(self, path: str) -> RouteMatch | None:
        """Find the handler for `path` and the captured path parameters, or None."""
        path = _strip_query(path)
        handler = self._routes.get(path)
        if handler is not None:
            return handler, {}
        for pattern, pattern_handler in self._patterns:
            match = pattern.fullmatch(path)
            if match is not None:
                return pattern_handler, self._params(pattern, match)
        if self._default_handler is not None:
            return self._default_handler, {}
        return None

    @staticmethod
    def _params(pattern: re.Pattern[str], match: re.Match[str]) -> dict[str, str]:
        named_indexes = set(pattern.groupindex.values())
        params = {name: value for name, value in match.groupdict().items() if value is not None}
        for index in range(1, pattern.groups + 1):
            value = match.group(index)
            if index not in named_indexes and value is not None:
                params[str(index)] = value
        return params

    def route_request(self, session: _HasPath) -> SessionHandler | None:
        """Return the handler for ``session.path`` (see `lookup` for the parameters)."""
        found = self.lookup(session.path)
        return None if found is None else found[0]

    def get_all_routes(self) -> dict[str, SessionHandler]:
        """Return a copy of the exact routes."""
        return dict(self._routes)

    def get_all_pattern_routes(self) -> list[str]:
        """Return the pattern strings in lookup order."""
        return [p.pattern for p, _ in self._patterns]

    @property
    def default_handler(self) -> SessionHandler | None:
        """The handler used when no route matches."""
        return self._default_handler

    def get_route_stats(self) -> dict[str, Any]:
        """Return counts of the registered routes."""
        return {
            "exact_routes": len(self._routes),
            "pattern_routes": len(self._patterns),
            "has_default_handler": self._default_handler is not None,
        }

    def __len__(self) -> int:
        return len(self._routes) + len(self._patterns)

    def __repr__(self) -> str:
        return f"<RequestRouter exact={len(self._routes)} patterns={len(self._patterns)}>"
