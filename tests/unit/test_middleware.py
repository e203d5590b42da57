"""Tests for pywebtransport.server.middleware."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from pywebtransport.exceptions import AuthenticationError, MiddlewareRejected
from pywebtransport.server import (
    MiddlewareManager,
    RateLimiter,
    SessionLike,
    create_auth_middleware,
    create_cors_middleware,
    create_logging_middleware,
    create_rate_limit_middleware,
)


@dataclass
class FakeSession:
    headers: dict[str, str] = field(default_factory=dict)
    path: str = "/"
    remote_address: tuple[str, int] | None = ("192.0.2.1", 50000)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _satisfies_protocol(session: SessionLike) -> None: ...


def test_fake_session_satisfies_protocol() -> None:
    _satisfies_protocol(FakeSession())


async def test_manager_runs_chain_in_order() -> None:
    calls: list[str] = []

    async def first(session: FakeSession) -> None:
        calls.append("first")

    def second(session: FakeSession) -> bool:  # sync middleware is accepted too
        calls.append("second")
        return True

    manager: MiddlewareManager[FakeSession] = MiddlewareManager([first])
    manager.add_middleware(second)
    await manager.check(FakeSession())
    assert calls == ["first", "second"]
    assert await manager.process_request(FakeSession()) is True
    assert manager.get_middleware_count() == 2


async def test_false_rejects_with_403_and_stops_chain() -> None:
    calls: list[str] = []

    async def deny(session: FakeSession) -> bool:
        return False

    async def after(session: FakeSession) -> None:
        calls.append("after")

    manager: MiddlewareManager[FakeSession] = MiddlewareManager([deny, after])
    with pytest.raises(MiddlewareRejected) as info:
        await manager.check(FakeSession())
    assert info.value.status == 403
    assert calls == []
    assert await manager.process_request(FakeSession()) is False


async def test_middleware_rejected_status_and_headers_propagate() -> None:
    async def teapot(session: FakeSession) -> None:
        raise MiddlewareRejected(418, {"x-reason": "tea"})

    manager: MiddlewareManager[FakeSession] = MiddlewareManager([teapot])
    with pytest.raises(MiddlewareRejected) as info:
        await manager.check(FakeSession())
    assert (info.value.status, info.value.headers) == (418, {"x-reason": "tea"})


async def test_crashing_middleware_fails_closed(caplog: pytest.LogCaptureFixture) -> None:
    async def buggy(session: FakeSession) -> None:
        raise KeyError("oops")

    manager: MiddlewareManager[FakeSession] = MiddlewareManager([buggy])
    with caplog.at_level(logging.ERROR), pytest.raises(MiddlewareRejected) as info:
        await manager.check(FakeSession())
    assert info.value.status == 500
    assert isinstance(info.value.__cause__, KeyError)
    assert "buggy" in caplog.text


async def test_remove_middleware() -> None:
    async def deny(session: FakeSession) -> bool:
        return False

    manager: MiddlewareManager[FakeSession] = MiddlewareManager()
    manager.add_middleware(deny)
    manager.remove_middleware(deny)
    assert manager.middleware == []
    await manager.check(FakeSession())
    with pytest.raises(TypeError):
        manager.add_middleware("nope")  # type: ignore[arg-type]


async def test_auth_middleware_sync_and_async_handlers() -> None:
    def sync_auth(headers: Mapping[str, str]) -> bool:
        return headers.get("authorization") == "Bearer good"

    async def async_auth(headers: Mapping[str, str]) -> bool:
        return headers.get("authorization") == "Bearer good"

    for handler in (sync_auth, async_auth):
        middleware = create_auth_middleware(handler)
        await middleware(FakeSession(headers={"authorization": "Bearer good"}))
        with pytest.raises(MiddlewareRejected) as info:
            await middleware(FakeSession(headers={"authorization": "Bearer bad"}))
        assert info.value.status == 401


async def test_auth_middleware_errors_and_custom_status() -> None:
    def raising(headers: Mapping[str, str]) -> bool:
        raise AuthenticationError("expired token")

    with pytest.raises(MiddlewareRejected) as info:
        await create_auth_middleware(raising)(FakeSession())
    assert info.value.status == 401 and "expired token" in str(info.value)

    def forbid(headers: Mapping[str, str]) -> bool:
        raise MiddlewareRejected(403)

    with pytest.raises(MiddlewareRejected) as info:
        await create_auth_middleware(forbid)(FakeSession())
    assert info.value.status == 403

    with pytest.raises(MiddlewareRejected) as info:
        await create_auth_middleware(lambda headers: False, status=403)(FakeSession())
    assert info.value.status == 403


async def test_cors_middleware() -> None:
    middleware = create_cors_middleware(allowed_origins=["https://app.example", "https://other.example/"])
    await middleware(FakeSession(headers={"origin": "https://app.example"}))
    await middleware(FakeSession(headers={"origin": "HTTPS://OTHER.example"}))
    await middleware(FakeSession(headers={"Origin": "https://app.example"}))  # header name case
    for headers in ({"origin": "https://evil.example"}, {}):
        with pytest.raises(MiddlewareRejected) as info:
            await middleware(FakeSession(headers=headers))
        assert info.value.status == 403


async def test_cors_wildcard_allows_everything() -> None:
    middleware = create_cors_middleware(allowed_origins=["*"])
    await middleware(FakeSession(headers={"origin": "https://any.example"}))
    await middleware(FakeSession())


async def test_logging_middleware(caplog: pytest.LogCaptureFixture) -> None:
    middleware = create_logging_middleware()
    with caplog.at_level(logging.INFO, logger="pywebtransport.server.access"):
        await middleware(FakeSession(path="/chat", headers={"user-agent": "ua/1"}))
        await middleware(FakeSession(remote_address=None))
    assert "/chat" in caplog.text and "192.0.2.1:50000" in caplog.text and "ua/1" in caplog.text
    assert "unknown" in caplog.text


async def test_rate_limiter_per_ip_sliding_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(max_requests=2, window_seconds=10, clock=clock)
    a = FakeSession(remote_address=("10.0.0.1", 1))
    b = FakeSession(remote_address=("10.0.0.2", 1))
    await limiter(a)
    clock.now += 4
    await limiter(a)
    with pytest.raises(MiddlewareRejected) as info:
        await limiter(a)
    assert info.value.status == 429
    assert info.value.headers["retry-after"] == "6"
    await limiter(b)  # other IPs are unaffected
    clock.now += 6  # the first request leaves the window
    await limiter(a)
    with pytest.raises(MiddlewareRejected):
        await limiter(a)


async def test_rate_limiter_bounds_tracked_ips() -> None:
    clock = FakeClock()
    limiter = RateLimiter(max_requests=1, window_seconds=60, max_tracked_ips=2, clock=clock)
    for ip in ("1.1.1.1", "2.2.2.2", "3.3.3.3"):
        await limiter(FakeSession(remote_address=(ip, 1)))
    assert limiter.tracked_ips == 2
    await limiter(FakeSession(remote_address=("1.1.1.1", 1)))  # forgotten, so allowed again
    with pytest.raises(MiddlewareRejected):
        await limiter(FakeSession(remote_address=("3.3.3.3", 1)))


async def test_rate_limiter_cleanup_and_unknown_address() -> None:
    clock = FakeClock()
    limiter = RateLimiter(max_requests=1, window_seconds=5, cleanup_interval=10, clock=clock)
    await limiter(FakeSession(remote_address=None))
    with pytest.raises(MiddlewareRejected):
        await limiter(FakeSession(remote_address=None))  # address-less requests share a bucket
    await limiter(FakeSession(remote_address=("9.9.9.9", 1)))
    clock.now += 11
    await limiter(FakeSession(remote_address=("8.8.8.8", 1)))  # triggers a sweep
    assert limiter.tracked_ips == 1
    async with limiter:
        pass
    assert limiter.tracked_ips == 0


def test_rate_limiter_argument_validation() -> None:
    with pytest.raises(ValueError):
        RateLimiter(max_requests=0)
    with pytest.raises(ValueError):
        RateLimiter(window_seconds=0)
    with pytest.raises(ValueError):
        RateLimiter(max_tracked_ips=0)


async def test_create_rate_limit_middleware_in_manager() -> None:
    limiter = create_rate_limit_middleware(max_requests=1, window_seconds=60)
    assert isinstance(limiter, RateLimiter)
    manager: MiddlewareManager[FakeSession] = MiddlewareManager([limiter])
    assert await manager.process_request(FakeSession()) is True
    with pytest.raises(MiddlewareRejected) as info:
        await manager.check(FakeSession())
    assert info.value.status == 429
