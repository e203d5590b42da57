"""Waiting with a timeout: own timers for short ones, shared per-tick timers for long ones."""

from __future__ import annotations

import asyncio

import pytest

from pywebtransport.quic import waiters
from pywebtransport.quic.waiters import Waiters, wait_with_timeout


@pytest.fixture
def shared_from_50ms(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lets the tests use shared timers with short timeouts."""
    monkeypatch.setattr(waiters, "_SHARED_FROM", 0.05)


def pending_ticks(loop: asyncio.AbstractEventLoop) -> dict[int, set[object]]:
    timers = waiters._shared_timers.get(loop)
    return {} if timers is None else {t: set(d) for t, d in timers._ticks.items() if d}


@pytest.mark.parametrize("timeout", [0.02, 0.06])
async def test_a_wait_woken_in_time_returns_true_and_leaves_no_deadline(
    shared_from_50ms: None, timeout: float
) -> None:
    loop = asyncio.get_running_loop()
    w = Waiters()
    loop.call_soon(w.wake_all)
    assert await wait_with_timeout(w.wait(), timeout) is True
    assert pending_ticks(loop) == {}


@pytest.mark.parametrize("timeout", [0.02, 0.06, 0.1])
async def test_a_wait_that_times_out_never_ends_early_and_at_most_a_tick_late(
    shared_from_50ms: None, timeout: float
) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await wait_with_timeout(Waiters().wait(), timeout) is False
    elapsed = loop.time() - start
    assert elapsed >= timeout
    assert elapsed < timeout + waiters._TICK + 0.5  # one tick plus scheduling slack
    assert pending_ticks(loop) == {}


async def test_waits_due_in_the_same_tick_share_one_loop_timer(shared_from_50ms: None) -> None:
    loop = asyncio.get_running_loop()
    before = len(loop._scheduled)  # type: ignore[attr-defined]
    ws = [Waiters() for _ in range(50)]
    tasks = [asyncio.ensure_future(wait_with_timeout(w.wait(), 10.0)) for w in ws]
    await asyncio.sleep(0)
    added = len(loop._scheduled) - before  # type: ignore[attr-defined]
    assert 1 <= added <= 2  # one per tick the 50 deadlines fell into
    ws[0].wake_all()
    for w in ws[1:]:
        w.wake_all()
    assert await asyncio.gather(*tasks) == [True] * 50
    assert pending_ticks(loop) == {}


async def test_a_cancelled_wait_leaves_no_deadline_and_others_still_expire(shared_from_50ms: None) -> None:
    loop = asyncio.get_running_loop()
    cancelled = asyncio.ensure_future(wait_with_timeout(Waiters().wait(), 0.08))
    kept = asyncio.ensure_future(wait_with_timeout(Waiters().wait(), 0.08))
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await kept is False
    assert pending_ticks(loop) == {}
