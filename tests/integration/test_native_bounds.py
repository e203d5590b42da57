"""Bounds of the native data path, proven while the server's event loop is blocked.

The server runs on the test's loop; its connection handler blocks that loop
with ``time.sleep`` (a stalled application).  The client runs on its own loop
in another thread, so msquic and the peer keep going meanwhile.  Everything
here is real msquic over loopback.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from certs import CertSet
from pywebtransport.quic import QuicConfiguration, QuicConnection, connect, serve

pytestmark = pytest.mark.timeout(60)
ALPN = ["pwt-bounds"]
BLOCK = 2.0  # seconds the server loop is blocked


def server_config(certs: CertSet, **kw: Any) -> QuicConfiguration:
    return QuicConfiguration(
        is_client=False, certfile=str(certs.cert), keyfile=str(certs.key), alpn_protocols=ALPN, **kw
    )


def client_config(certs: CertSet, **kw: Any) -> QuicConfiguration:
    return QuicConfiguration(
        is_client=True, alpn_protocols=ALPN, cafile=str(certs.ca_cert), **kw
    )


def run_client(coro_fn: Callable[[], Awaitable[Any]]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``coro_fn()`` on a fresh loop in a thread; its result or error lands in the dict."""
    out: dict[str, Any] = {}

    def main() -> None:
        try:
            out["result"] = asyncio.run(coro_fn())
        except BaseException as exc:  # reported by the test
            out["error"] = exc

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    return thread, out


async def join(thread: threading.Thread, out: dict[str, Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while thread.is_alive() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert not thread.is_alive(), "client thread did not finish"
    if "error" in out:
        raise out["error"]
    return out["result"]


async def test_peer_stream_credit_is_held_until_python_releases(certs: CertSet) -> None:
    """Finding 3: with the loop blocked, a peer cannot complete more streams than the limit."""
    limit = 20
    total = 200
    window: dict[str, float] = {}
    received: list[int] = []
    done = asyncio.Event()
    server_conns: list[QuicConnection] = []

    async def handler(conn: QuicConnection) -> None:
        server_conns.append(conn)
        window["start"] = time.monotonic()
        time.sleep(BLOCK)  # the application stalls the loop
        window["end"] = time.monotonic()
        window["peak_live"] = conn.counters().peak_live_streams
        while len(received) < total:
            stream = await conn.accept_stream()
            received.append(len(await stream.read_all()))
        done.set()

    listener = await serve("127.0.0.1", 0, server_config(certs, max_peer_uni_streams=limit), handler)
    port = listener.port

    async def client() -> list[float]:
        conn = await connect("127.0.0.1", port, client_config(certs), server_name="localhost")
        await asyncio.sleep(0.2)  # the server loop is blocked by now
        closed_at: list[float] = []

        async def one(i: int) -> None:
            stream = await conn.open_uni_stream()
            await stream.write(b"%d" % i * 50, fin=True)
            await stream.wait_closed()
            closed_at.append(time.monotonic())

        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(total))), 30)
        await conn.aclose()
        return closed_at

    thread, out = run_client(client)
    closed_at = await join(thread, out)
    during_block = sum(1 for t in closed_at if t < window["end"] - 0.05)
    # Each accepted stream needs credit from Python; the loop was blocked.
    assert during_block <= limit, (during_block, limit)
    await asyncio.wait_for(done.wait(), 20)
    await listener.aclose()
    assert window["peak_live"] <= limit, window
    assert len(received) == total and all(received)  # nothing lost once the loop runs


async def test_native_event_queue_drops_and_counts_datagrams(certs: CertSet) -> None:
    """Finding 4: received datagrams beyond the per-connection event bound are dropped and counted."""
    bound = 64
    sent_total = 2000
    got: list[bytes] = []
    result: dict[str, Any] = {}
    finished = asyncio.Event()
    server_done = threading.Event()

    async def handler(conn: QuicConnection) -> None:
        time.sleep(BLOCK)
        result["queued_after_block"] = conn.counters().queued_events
        while True:
            try:
                got.append(await asyncio.wait_for(conn.receive_datagram(), 0.5))
            except asyncio.TimeoutError:
                break
        result["counters"] = conn.counters()
        result["stats"] = conn.stats()
        server_done.set()
        finished.set()

    listener = await serve(
        "127.0.0.1", 0, server_config(certs, max_queued_events=bound), handler
    )
    port = listener.port

    async def client() -> int:
        conn = await connect("127.0.0.1", port, client_config(certs), server_name="localhost")
        for _ in range(500):
            if conn.max_datagram_size:
                break
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.2)
        for i in range(sent_total):
            conn.send_datagram(b"%06d" % i + b"d" * 58)
            if i % 50 == 49:
                await asyncio.sleep(0.005)
        for _ in range(2000):  # keep the connection until the server read its queue
            if server_done.is_set():
                break
            await asyncio.sleep(0.01)
        await conn.aclose()
        return sent_total

    thread, out = run_client(client)
    await asyncio.wait_for(finished.wait(), 30)
    await join(thread, out)
    await listener.aclose()
    counters = result["counters"]
    assert result["queued_after_block"] <= bound
    assert len(got) <= bound, len(got)
    assert counters.native_datagrams_dropped >= sent_total // 2, counters
    assert result["stats"].native_datagrams_dropped == counters.native_datagrams_dropped
    assert counters.peak_queued_events <= bound + 8, counters  # + connection/stream events


async def test_drain_yields_to_the_loop(certs: CertSet) -> None:
    """Finding 4: a backlog is handled in bounded batches with the loop running in between."""
    sent_total = 3000
    ticks = {"n": 0}
    runs: list[int] = []  # tick value seen by each delivered datagram
    finished = asyncio.Event()

    async def ticker() -> None:
        while not finished.is_set():
            ticks["n"] += 1
            await asyncio.sleep(0)

    async def handler(conn: QuicConnection) -> None:
        conn.on_datagram = lambda data: runs.append(ticks["n"])
        time.sleep(BLOCK)
        last = -1
        while len(runs) != last:
            last = len(runs)
            await asyncio.sleep(0.3)
        finished.set()

    tick_task = asyncio.get_running_loop().create_task(ticker())
    listener = await serve(
        "127.0.0.1", 0, server_config(certs, max_queued_events=100_000), handler
    )
    port = listener.port

    async def client() -> None:
        conn = await connect("127.0.0.1", port, client_config(certs), server_name="localhost")
        for _ in range(500):
            if conn.max_datagram_size:
                break
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.2)
        for i in range(sent_total):
            conn.send_datagram(b"%06d" % i + b"d" * 58)
            if i % 50 == 49:
                await asyncio.sleep(0.005)
        await asyncio.sleep(BLOCK)
        await conn.aclose()

    thread, out = run_client(client)
    await asyncio.wait_for(finished.wait(), 30)
    await join(thread, out)
    await listener.aclose()
    tick_task.cancel()
    longest = max((runs.count(t) for t in set(runs)), default=0)
    assert len(runs) >= 600, len(runs)  # a real backlog built up during the block
    assert longest <= 256, longest  # one batch per loop iteration


CONNECTION_WALL = textwrap.dedent(
    """
    import asyncio, resource, sys
    sys.path.insert(0, {tests!r})
    from pywebtransport.quic import QuicConfiguration, connect, serve

    N = {n}
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, ({fds}, hard))

    async def main():
        server = QuicConfiguration(is_client=False, certfile={cert!r}, keyfile={key!r},
                                   alpn_protocols=["wall"])
        client = QuicConfiguration(is_client=True, alpn_protocols=["wall"], cafile={ca!r})
        listener = await serve("127.0.0.1", 0, server)
        conns = []
        for i in range(N):
            conns.append(await connect("127.0.0.1", listener.port, client,
                                       server_name="localhost", timeout=10))
        ports = {{c.local_address[1] for c in conns}}
        print("OK", len(conns), len(ports))
        for c in conns:
            c.close()
        await asyncio.gather(*(c.wait_closed() for c in conns))
        await listener.aclose()

    asyncio.run(main())
    """
)


def test_client_connections_are_not_bounded_by_file_descriptors(certs: CertSet) -> None:
    """The ~5,000-connection wall: each client connection used to take 4 fds (socket + 3 eventfds).

    With 256 fds, 150 connections needed ~600 fds before; with shared UDP
    bindings they need a handful.
    """
    script = CONNECTION_WALL.format(
        tests=os.path.dirname(os.path.dirname(__file__)),
        n=150,
        fds=256,
        cert=str(certs.cert),
        key=str(certs.key),
        ca=str(certs.ca_cert),
    )
    res = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-2000:]
    line = [x for x in res.stdout.splitlines() if x.startswith("OK")][-1]
    _, count, ports = line.split()
    assert int(count) == 150
    assert int(ports) < 150  # connections share local sockets
