"""A bounded registry of closable objects, shared by the 0.1.x managers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

log = logging.getLogger("pywebtransport.compat")


class Registry(Generic[K, T]):
    """Objects by key, at most `limit` of them, forgotten when `is_closed(obj)` turns true.

    A background task sweeps closed objects every `cleanup_interval` seconds while the
    registry is entered (``async with``); `cleanup` sweeps on demand.
    """

    def __init__(
        self,
        *,
        limit: int,
        cleanup_interval: float,
        is_closed: Callable[[T], bool],
        close: Callable[[T], Awaitable[Any]],
        kind: str,
    ) -> None:
        if limit <= 0:
            raise ValueError(f"the maximum number of {kind}s must be positive")
        if cleanup_interval <= 0:
            raise ValueError("cleanup_interval must be positive")
        self._items: dict[K, T] = {}
        self._limit = limit
        self._interval = cleanup_interval
        self._is_closed = is_closed
        self._close = close
        self._kind = kind
        self._task: asyncio.Task[None] | None = None
        self.total_added = 0
        self.total_removed = 0
        self.peak = 0

    @property
    def limit(self) -> int:
        return self._limit

    def __len__(self) -> int:
        self.cleanup()
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        self.cleanup()
        return key in self._items

    def is_full(self) -> bool:
        self.cleanup()
        return len(self._items) >= self._limit

    def add(self, key: K, item: T) -> None:
        if key in self._items:
            return
        self._items[key] = item
        self.total_added += 1
        self.peak = max(self.peak, len(self._items))

    def remove(self, key: K) -> T | None:
        item = self._items.pop(key, None)
        if item is not None:
            self.total_removed += 1
        return item

    def get(self, key: K) -> T | None:
        self.cleanup()
        return self._items.get(key)

    def values(self) -> list[T]:
        self.cleanup()
        return list(self._items.values())

    def cleanup(self) -> int:
        """Forget closed objects now (queries do this first, so they never see closed ones)."""
        closed = [k for k, v in self._items.items() if self._is_closed(v)]
        for key in closed:
            self.remove(key)
        return len(closed)

    async def close_all(self) -> int:
        items = list(self._items.items())
        if items:
            results = await asyncio.gather(*(self._close(v) for _, v in items), return_exceptions=True)
            for result in results:
                if isinstance(result, Exception):
                    log.debug("closing a %s failed: %s", self._kind, result)
        for key, _ in items:
            self.remove(key)
        return len(items)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.cleanup()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def stats(self) -> dict[str, Any]:
        self.cleanup()
        return {
            f"active_{self._kind}s": len(self._items),
            f"max_{self._kind}s": self._limit,
            "total_added": self.total_added,
            "total_removed": self.total_removed,
            "peak": self.peak,
        }
