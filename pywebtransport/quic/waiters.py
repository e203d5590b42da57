"""A set of tasks waiting for the same condition, woken together."""

from __future__ import annotations

import asyncio
from typing import TypeVar

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


async def wait_with_timeout(fut: "asyncio.Future[None]", timeout: float | None) -> bool:
    """Await a `Waiters.wait` future for at most `timeout` seconds (None: no limit).

    Returns False when the time ran out first. One timer per wait that actually
    blocks; nothing is scheduled when `timeout` is None.
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

    handle = fut.get_loop().call_later(timeout, expire)
    try:
        await fut
    finally:
        handle.cancel()
    return not expired
