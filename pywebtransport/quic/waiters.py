"""A set of tasks waiting for the same condition, woken together."""

from __future__ import annotations

import asyncio
import math
import weakref
from typing import Callable, TypeVar

T = TypeVar("T")


class Waiters:
    """Futures of every task waiting on one condition (data, room, close).

    Keeping all of them (rather than the last one) means a second reader or
    writer can never be left behind when the condition changes or the
    object closes.
    """

    __slots__ = ("_futures",)

    def __init__(self) -> None:
        # The list is made by the first wait: most conditions are never waited for.
        self._futures: list[asyncio.Future[None]] | None = None

    def wait(self) -> "asyncio.Future[None]":
        """A future resolved by the next :meth:`wake_all`.

        It is registered before this returns, so a wake-up between the
        caller's condition check and its ``await`` cannot be missed.
        """
        futures = self._futures
        if futures is None:
            futures = self._futures = []
        elif len(futures) > 16:  # drop futures of waits that were cancelled
            futures = self._futures = [f for f in futures if not f.done()]
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        futures.append(fut)
        return fut

    def wake_all(self) -> None:
        futures, self._futures = self._futures, None
        if futures is None:
            return
        for fut in futures:
            if not fut.done():
                fut.set_result(None)

    def __bool__(self) -> bool:
        futures = self._futures
        return futures is not None and any(not f.done() for f in futures)


async def wait_future(fut: "asyncio.Future[T]", timeout: float | None) -> T:
    """The result of a future others may wait for too, within `timeout` seconds.

    Like ``asyncio.wait_for(asyncio.shield(fut), timeout)`` (cancelling the
    waiter leaves `fut` alone; ``asyncio.TimeoutError`` when the time runs out),
    without its extra future and loop iterations; no wait at all when `fut` is
    already done.
    """
    if fut.done():
        return fut.result()
    if timeout is None:
        return await asyncio.shield(fut)
    async with asyncio.timeout(timeout):
        return await asyncio.shield(fut)


# Waits of a second or more share timers: their deadlines are rounded up to the next
# tick of 1/64 s, and one loop timer per tick serves every wait due then.  Most reads and
# writes are answered long before their timeout, and a timer per wait (a heap push, a
# cancel, the cancelled handle's later pop) was ~10 % of a client's CPU with 100 sessions
# doing small requests.  A shared deadline never fires early and at most 1/64 s late.
_SHARED_FROM = 1.0
_TICK = 1 / 64


class _SharedTimers:
    """Deadlines of one event loop, grouped by tick; each tick is one loop timer."""

    __slots__ = ("_ticks",)

    def __init__(self) -> None:
        # No reference to the loop: the loop keys these in a WeakKeyDictionary.
        self._ticks: dict[int, set[Callable[[], None]]] = {}

    def add(self, loop: asyncio.AbstractEventLoop, timeout: float, callback: Callable[[], None]) -> int:
        """Run `callback` once `timeout` seconds have passed (up to one tick later)."""
        tick = math.ceil((loop.time() + timeout) / _TICK)
        due = self._ticks.get(tick)
        if due is None:
            due = self._ticks[tick] = set()
            loop.call_at(tick * _TICK, self._fire, tick)
        due.add(callback)
        return tick

    def remove(self, tick: int, callback: Callable[[], None]) -> None:
        due = self._ticks.get(tick)
        if due is not None:
            due.discard(callback)

    def _fire(self, tick: int) -> None:
        for callback in self._ticks.pop(tick, ()):
            callback()


_shared_timers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _SharedTimers]" = (
    weakref.WeakKeyDictionary()
)


def _timers_of(loop: asyncio.AbstractEventLoop) -> _SharedTimers | None:
    try:
        timers = _shared_timers.get(loop)
        if timers is None:
            timers = _shared_timers[loop] = _SharedTimers()
    except TypeError:  # a loop type without weak references: a timer per wait
        return None
    return timers


async def wait_with_timeout(fut: "asyncio.Future[None]", timeout: float | None) -> bool:
    """Await a `Waiters.wait` future for at most `timeout` seconds (None: no limit).

    Returns False when the time ran out first. Nothing is scheduled when `timeout`
    is None; timeouts of a second or more share a loop timer per 1/64 s tick
    (at most that much late), shorter ones get a timer of their own.
    """
    if timeout is None:
        await fut
        return True
    expired = False

    def expire() -> None:
        nonlocal expired
        if not fut.done():
            expired = True
            fut.set_result(None)

    loop = fut.get_loop()
    timers = _timers_of(loop) if timeout >= _SHARED_FROM else None
    if timers is not None:
        tick = timers.add(loop, timeout, expire)
        try:
            await fut
        finally:
            timers.remove(tick, expire)
        return not expired
    handle = loop.call_later(timeout, expire)
    try:
        await fut
    finally:
        handle.cancel()
    return not expired
