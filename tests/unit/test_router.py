"""Tests for pywebtransport.server.router."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from pywebtransport.server import RequestRouter


async def chat(session: Any) -> None: ...


async def echo(session: Any) -> None: ...


async def fallback(session: Any) -> None: ...


@dataclass
class FakeSession:
    path: str


def test_exact_route() -> None:
    router = RequestRouter()
    router.add_route("/chat", chat)
    assert router.lookup("/chat") == (chat, {})
    assert router.lookup("/chat/") is None
    assert router.lookup("/other") is None


def test_query_string_is_ignored_for_routing() -> None:
    router = RequestRouter()
    router.add_route("/chat", chat)
    assert router.lookup("/chat?room=1") == (chat, {})


def test_pattern_route_uses_fullmatch_and_exposes_groups() -> None:
    router = RequestRouter()
    router.add_pattern_route(r"/rooms/(?P<room>\w+)/(\d+)", chat)
    assert router.lookup("/rooms/lobby/42") == (chat, {"room": "lobby", "2": "42"})
    assert router.lookup("/rooms/lobby/42/extra") is None  # no prefix matching
    assert router.lookup("/x/rooms/lobby/42") is None


def test_optional_groups_that_did_not_match_are_omitted() -> None:
    router = RequestRouter()
    router.add_pattern_route(r"/items(?:/(?P<id>\d+))?", chat)
    assert router.lookup("/items") == (chat, {})
    assert router.lookup("/items/7") == (chat, {"id": "7"})


def test_precedence_exact_then_patterns_in_order_then_default() -> None:
    router = RequestRouter()
    router.add_pattern_route(r"/echo.*", echo)
    router.add_pattern_route(r"/e.*", chat)
    router.add_route("/echo", fallback)
    assert router.lookup("/echo")[0] is fallback  # type: ignore[index]
    assert router.lookup("/echo2")[0] is echo  # type: ignore[index]
    assert router.lookup("/else")[0] is chat  # type: ignore[index]
    assert router.lookup("/nothing") is None
    router.set_default_handler(fallback)
    assert router.lookup("/nothing") == (fallback, {})
    assert router.default_handler is fallback
    router.set_default_handler(None)
    assert router.lookup("/nothing") is None


def test_compiled_patterns_and_replacement() -> None:
    router = RequestRouter()
    router.add_pattern_route(re.compile(r"/a"), chat)
    router.add_pattern_route(r"/a", echo)  # same pattern replaces the previous handler
    assert router.get_all_pattern_routes() == ["/a"]
    assert router.lookup("/a") == (echo, {})
    router.remove_pattern_route("/a")
    assert router.lookup("/a") is None


def test_route_replacement_and_removal() -> None:
    router = RequestRouter()
    router.add_route("/x", chat)
    router.add_route("/x", echo)
    assert router.get_all_routes() == {"/x": echo}
    router.remove_route("/x")
    router.remove_route("/missing")
    assert router.lookup("/x") is None
    with pytest.raises(ValueError):
        router.add_route("no-slash", chat)


def test_decorators() -> None:
    router = RequestRouter()

    @router.route("/deco")
    async def handler(session: Any) -> None: ...

    @router.pattern_route(r"/p/(?P<n>\d+)")
    async def pattern_handler(session: Any) -> None: ...

    assert router.lookup("/deco") == (handler, {})
    assert router.lookup("/p/5") == (pattern_handler, {"n": "5"})


def test_route_request_uses_session_path() -> None:
    router = RequestRouter()
    router.add_route("/chat", chat)
    assert router.route_request(FakeSession(path="/chat?x=1")) is chat
    assert router.route_request(FakeSession(path="/none")) is None


def test_stats_len_repr() -> None:
    router = RequestRouter()
    router.add_route("/a", chat)
    router.add_pattern_route("/b.*", chat)
    assert router.get_route_stats() == {"exact_routes": 1, "pattern_routes": 1, "has_default_handler": False}
    assert len(router) == 2
    assert "exact=1" in repr(router)
