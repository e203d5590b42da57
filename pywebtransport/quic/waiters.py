"""A set of tasks waiting for the same condition, woken together."""

from __future__ import annotations

import asyncio


class Waiters:
    """Futures of every task waiting on one condition (data, room, close).

    Keeping all of them (rather than the last one) means a second reader or
    writer can never be left behind when the condition changes or the
    object closes.
    """

    __slots__ = ("_futures",)

    def __init__(self) -> None:
        self._futures: list[asyncio.Future[None]] = []

    async def wait(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._futures.append(fut)
        try:
            await fut
        finally:
            if not fut.done():
                try:
                    self._futures.remove(fut)
                except ValueError:
                    pass

    def wake_all(self) -> None:
        futures, self._futures = self._futures, []
        for fut in futures:
            if not fut.done():
                fut.set_result(None)

    def __bool__(self) -> bool:
        return bool(self._futures)
