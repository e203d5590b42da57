"""ConnectionLoadBalancer: spreads sessions over several WebTransport servers."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .config import ClientConfig
from .exceptions import ClientError
from .utils import parse_webtransport_url

if TYPE_CHECKING:
    from .client import WebTransportClient
    from .session import WebTransportSession

__all__ = ["ConnectionLoadBalancer", "Strategy"]

log = logging.getLogger("pywebtransport.balancer")

Strategy = Literal["round_robin", "weighted", "least_latency"]
_LATENCY_SMOOTHING = 0.5


@dataclass
class _Target:
    url: str
    weight: float = 1.0
    healthy: bool = True
    latency: float | None = None
    sessions: int = 0
    failures: int = 0
    health_checks: int = 0
    last_check: float | None = None
    last_error: str | None = None

    def record_latency(self, seconds: float) -> None:
        if self.latency is None:
            self.latency = seconds
        else:
            self.latency = _LATENCY_SMOOTHING * seconds + (1 - _LATENCY_SMOOTHING) * self.latency


class ConnectionLoadBalancer:
    """Opens sessions to one of several target URLs.

    Strategies: ``"round_robin"``, ``"weighted"`` (random, proportional to
    each target's weight) and ``"least_latency"`` (lowest measured connect
    time; unmeasured targets are tried first).  A target whose connection
    fails is marked unhealthy and skipped until a health check succeeds
    again.  Health checks open (and close) a session to every target each
    ``health_check_interval`` seconds, giving up after ``health_check_timeout``.
    """

    def __init__(
        self,
        targets: Sequence[str],
        health_check_interval: float = 30,
        health_check_timeout: float = 5,
        *,
        config: ClientConfig | None = None,
    ) -> None:
        if not targets:
            raise ValueError("at least one target URL is required")
        if health_check_interval <= 0 or health_check_timeout <= 0:
            raise ValueError("health check interval and timeout must be positive")
        self._targets: dict[str, _Target] = {}
        for url in targets:
            parse_webtransport_url(url)  # validate early
            self._targets.setdefault(url, _Target(url))
        # Imported here: pywebtransport.connection re-exports this class and the client
        # module imports pywebtransport.connection.
        from .client import WebTransportClient

        self._client: WebTransportClient = WebTransportClient(config=config)
        self._interval = health_check_interval
        self._check_timeout = health_check_timeout
        self._rr = 0
        self._health_task: asyncio.Task[None] | None = None
        self._closed = False
        self._sessions: weakref.WeakSet[WebTransportSession] = weakref.WeakSet()

    @property
    def targets(self) -> list[str]:
        """Every target URL, healthy or not, in the order given."""
        return list(self._targets)

    def healthy_targets(self) -> list[str]:
        """The target URLs currently considered healthy."""
        return [t.url for t in self._targets.values() if t.healthy]

    def update_target_weight(self, url: str, weight: float) -> None:
        """Set a target's weight for the ``"weighted"`` strategy (0 excludes it)."""
        if weight < 0:
            raise ValueError("weight must not be negative")
        try:
            self._targets[url].weight = float(weight)
        except KeyError:
            raise ValueError(f"unknown target {url!r}") from None

    def mark_unhealthy(self, url: str, reason: str = "marked unhealthy") -> None:
        """Exclude ``url`` from selection until a health check succeeds again.

        Args:
            url: One of the configured targets.
            reason: Recorded as the target's last error.

        Raises:
            KeyError: ``url`` is not a configured target.
        """
        target = self._targets[url]
        target.healthy = False
        target.last_error = reason

    def start_health_checks(self) -> None:
        """Run health checks in the background (started by the first get_session)."""
        if not self._closed and (self._health_task is None or self._health_task.done()):
            self._health_task = asyncio.get_running_loop().create_task(self._health_loop())

    async def _health_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self._interval)
            try:
                await self.check_health()
            except Exception:
                log.exception("health check round failed")

    async def _check_one(self, target: _Target) -> bool:
        start = time.monotonic()
        try:
            session = await self._client.connect(target.url, timeout=self._check_timeout)
        except Exception as exc:
            target.healthy = False
            target.last_error = str(exc)
            ok = False
        else:
            target.record_latency(time.monotonic() - start)
            await session.close()
            if not target.healthy:
                log.info("target %s is healthy again", target.url)
            target.healthy = True
            target.last_error = None
            ok = True
        target.health_checks += 1
        target.last_check = time.time()
        return ok

    async def check_health(self) -> dict[str, bool]:
        """Check every target now; returns ``{url: healthy}``."""
        targets = list(self._targets.values())
        results = await asyncio.gather(*(self._check_one(t) for t in targets))
        return {t.url: ok for t, ok in zip(targets, results)}

    def _choose(self, candidates: list[_Target], strategy: str) -> _Target:
        if strategy == "round_robin":
            ordered = list(self._targets.values())
            for _ in range(len(ordered)):
                target = ordered[self._rr % len(ordered)]
                self._rr = (self._rr + 1) % len(ordered)
                if target in candidates:
                    return target
            return candidates[0]
        if strategy == "weighted":
            weighted = [t for t in candidates if t.weight > 0]
            if not weighted:
                raise ClientError("no healthy target has a positive weight")
            return random.choices(weighted, weights=[t.weight for t in weighted])[0]
        if strategy == "least_latency":
            unmeasured = [t for t in candidates if t.latency is None]
            if unmeasured:
                return unmeasured[0]
            return min(candidates, key=lambda t: t.latency if t.latency is not None else 0.0)
        raise ValueError(f"unknown load-balancing strategy {strategy!r}")

    async def get_session(self, strategy: str = "round_robin", timeout: float | None = None) -> WebTransportSession:
        """Open a session to a healthy target chosen by ``strategy``.

        A target that fails is marked unhealthy and the next one is tried.

        Args:
            strategy: ``"round_robin"``, ``"weighted"`` (by `update_target_weight`) or
                ``"least_latency"`` (by the last measured connect time).
            timeout: Connect timeout per attempt, in seconds (the client's default if None).

        Raises:
            ValueError: Unknown ``strategy``.
            ClientError: The balancer is closed, or no healthy target is left.
        """
        if strategy not in ("round_robin", "weighted", "least_latency"):
            raise ValueError(f"unknown load-balancing strategy {strategy!r}")
        if self._closed:
            raise ClientError("load balancer is closed")
        self.start_health_checks()
        tried: set[str] = set()
        last_error: Exception | None = None
        while True:
            candidates = [t for t in self._targets.values() if t.healthy and t.url not in tried]
            if not candidates:
                detail = f": {last_error}" if last_error is not None else ""
                raise ClientError(f"no healthy target available{detail}")
            target = self._choose(candidates, strategy)
            tried.add(target.url)
            start = time.monotonic()
            try:
                session = await self._client.connect(target.url, timeout=timeout)
            except Exception as exc:
                last_error = exc
                target.failures += 1
                target.healthy = False
                target.last_error = str(exc)
                log.warning("target %s failed, marked unhealthy: %s", target.url, exc)
                continue
            target.record_latency(time.monotonic() - start)
            target.sessions += 1
            self._sessions.add(session)
            return session

    def get_target_stats(self) -> dict[str, dict[str, Any]]:
        """Per-target weight, health, latency and counters."""
        return {
            t.url: {
                "weight": t.weight,
                "healthy": t.healthy,
                "latency": t.latency,
                "sessions": t.sessions,
                "failures": t.failures,
                "health_checks": t.health_checks,
                "last_check": t.last_check,
                "last_error": t.last_error,
            }
            for t in self._targets.values()
        }

    async def close(self) -> None:
        """Stop health checks and close every session opened through the balancer."""
        self._closed = True
        if self._health_task is not None:
            self._health_task.cancel()
            await asyncio.gather(self._health_task, return_exceptions=True)
        for session in list(self._sessions):
            await session.close()
        await self._client.close()

    async def __aenter__(self) -> "ConnectionLoadBalancer":
        self.start_health_checks()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
