"""How the engine waits for the shim's wake-up fd: add_reader, or a sock_recv task.

Windows' ProactorEventLoop has no add_reader; there the shim's wake-up is a
loopback socket pair and the engine awaits ``loop.sock_recv`` instead.  That
waiter is platform independent, so it is exercised here with a real socket
pair on whatever loop the platform runs, standing in for the shim's queue.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import pytest

from pywebtransport.quic.engine import _BATCH, _ReaderWakeup, _SocketWakeup, _wakeup_for


class NoReaderLoop(asyncio.SelectorEventLoop):
    """A loop that, like ProactorEventLoop, does not implement add_reader."""

    def add_reader(self, fd, callback, *args):  # type: ignore[no-untyped-def]
        raise NotImplementedError


class FakeQueue:
    """The shim's queue semantics: one wake-up byte per empty -> non-empty
    transition, the socket cleared when a poll empties the queue."""

    def __init__(self) -> None:
        self.rsock, self.wsock = socket.socketpair()
        self.rsock.setblocking(False)
        self.records: list[int] = []
        self.handled: list[int] = []
        self.polls: list[int] = []
        self.wake_pending = False
        self.fail_next = False
        self.on_first_poll: list[object] = []

    def push(self, values: range) -> None:
        self.records.extend(values)
        if not self.wake_pending:
            self.wake_pending = True
            self.wsock.send(b"\x01")

    def drain(self) -> int:
        if self.fail_next:
            self.fail_next = False
            raise ValueError("handler bug")
        if not self.polls:
            for hook in self.on_first_poll:
                hook()  # type: ignore[operator]
        batch, self.records = self.records[:_BATCH], self.records[_BATCH:]
        self.handled.extend(batch)
        self.polls.append(len(batch))
        if not self.records:
            self.wake_pending = False
            try:
                while self.rsock.recv(64):
                    pass
            except BlockingIOError:
                pass
        return len(batch)

    def close(self) -> None:
        self.rsock.close()
        self.wsock.close()


async def wait_until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


def test_selector_loop_uses_add_reader() -> None:
    loop = asyncio.SelectorEventLoop()
    q = FakeQueue()
    try:
        wake = _wakeup_for(loop, q.rsock.fileno(), q.drain)
        assert isinstance(wake, _ReaderWakeup)
        wake.stop()
    finally:
        loop.close()
        q.close()


def test_loop_without_add_reader_uses_sock_recv_task() -> None:
    loop = NoReaderLoop()
    q = FakeQueue()
    try:
        wake = _wakeup_for(loop, q.rsock.fileno(), q.drain)
        assert isinstance(wake, _SocketWakeup)
        wake.stop()
        loop.run_until_complete(asyncio.sleep(0))  # let the cancelled task finish
        assert wake.task.cancelled()
    finally:
        loop.close()
        q.close()


@pytest.mark.skipif(sys.platform != "win32", reason="ProactorEventLoop exists only on Windows")
def test_proactor_loop_uses_sock_recv_task() -> None:  # pragma: no cover - Windows only
    loop = asyncio.ProactorEventLoop()  # type: ignore[attr-defined]
    q = FakeQueue()
    try:
        wake = _wakeup_for(loop, q.rsock.fileno(), q.drain)
        assert isinstance(wake, _SocketWakeup)
        wake.stop()
    finally:
        loop.close()
        q.close()


def test_sock_recv_waiter_drains_in_batches_and_yields_between() -> None:
    loop = NoReaderLoop()
    q = FakeQueue()

    async def main() -> None:
        wake = _wakeup_for(loop, q.rsock.fileno(), q.drain)
        assert isinstance(wake, _SocketWakeup)
        ran_between: list[int] = []
        # A callback made ready during the first drain runs before the next
        # batch: the waiter yields to the loop between batches.
        q.on_first_poll.append(
            lambda: loop.call_soon(lambda: ran_between.append(len(q.handled)))
        )
        q.push(range(2 * _BATCH + 10))
        await wait_until(lambda: len(q.handled) == 2 * _BATCH + 10)
        assert q.handled == list(range(2 * _BATCH + 10))
        assert q.polls == [_BATCH, _BATCH, 10]
        assert ran_between == [_BATCH]
        # The queue emptied and the socket was cleared: a new record wakes it again.
        q.push(range(1000, 1003))
        await wait_until(lambda: len(q.handled) == 2 * _BATCH + 13)
        assert q.handled[-3:] == [1000, 1001, 1002]
        assert not wake.task.done()
        wake.stop()

    try:
        loop.run_until_complete(asyncio.wait_for(main(), 20))
    finally:
        loop.close()
        q.close()


def test_sock_recv_waiter_survives_a_failing_drain() -> None:
    loop = NoReaderLoop()
    q = FakeQueue()
    errors: list[dict] = []  # type: ignore[type-arg]
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))

    async def main() -> None:
        wake = _wakeup_for(loop, q.rsock.fileno(), q.drain)
        q.fail_next = True
        q.push(range(3))
        await wait_until(lambda: bool(errors))
        assert isinstance(errors[0]["exception"], ValueError)
        # The failed drain left the records queued (and wake_pending set, as
        # in the shim); a further byte, as a later signal would send, finishes them.
        q.wsock.send(b"\x01")
        await wait_until(lambda: q.handled == [0, 1, 2])
        assert not wake.task.done()
        wake.stop()

    try:
        loop.run_until_complete(asyncio.wait_for(main(), 20))
    finally:
        loop.close()
        q.close()


def test_sock_recv_waiter_stop_leaves_the_socket_to_its_owner() -> None:
    loop = NoReaderLoop()
    q = FakeQueue()
    fd = q.rsock.fileno()
    try:
        wake = _wakeup_for(loop, fd, q.drain)
        assert isinstance(wake, _SocketWakeup)
        wake.stop()
        loop.run_until_complete(asyncio.sleep(0))
        os.fstat(fd)  # still open: the shim, not the waiter, closes it
        q.wsock.send(b"x")
        assert q.rsock.recv(1) == b"x"
    finally:
        loop.close()
        q.close()


def test_sock_recv_waiter_ends_when_the_write_end_closes() -> None:
    loop = NoReaderLoop()
    q = FakeQueue()

    async def main() -> None:
        wake = _wakeup_for(loop, q.rsock.fileno(), q.drain)
        assert isinstance(wake, _SocketWakeup)
        await asyncio.sleep(0)
        q.wsock.close()
        await asyncio.wait_for(wake.task, 10)
        assert wake.task.exception() is None
        wake.stop()

    try:
        loop.run_until_complete(asyncio.wait_for(main(), 20))
    finally:
        loop.close()
        q.close()
