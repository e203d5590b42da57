"""The engine waits briefly for the next record before the loop sleeps (PYWEBTRANSPORT_LOOP_SPIN_US).

Real msquic over loopback; what is checked is behaviour (the wait catches replies, never
runs ahead of ready callbacks, can be turned off), not timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from certs import CertSet
from pywebtransport import _native
from pywebtransport.quic import QuicConfiguration, QuicConnection, QuicListener, QuicStream, connect, serve
from pywebtransport.quic.engine import Engine

pytestmark = pytest.mark.timeout(60)

ALPN = ["pwt-spin"]
ROUNDS = 200


async def _echo(conn: QuicConnection) -> None:
    async def one(stream: QuicStream) -> None:
        while data := await stream.read(65536):
            await stream.write(data)
        await stream.write(b"", fin=True)

    tasks: set[asyncio.Task[None]] = set()
    while True:
        try:
            stream = await conn.accept_stream()
        except Exception:
            return
        task = asyncio.ensure_future(one(stream))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


@pytest.fixture
async def listener(certs: CertSet) -> AsyncIterator[QuicListener]:
    config = QuicConfiguration(is_client=False, certfile=str(certs.cert), keyfile=str(certs.key), alpn_protocols=ALPN)
    server = await serve("127.0.0.1", 0, config, _echo)
    yield server
    await server.aclose()


async def _round_trips(certs: CertSet, port: int) -> None:
    config = QuicConfiguration(is_client=True, alpn_protocols=ALPN, cafile=str(certs.ca_cert))
    async with await connect("127.0.0.1", port, config) as conn:
        stream = await conn.open_bidi_stream()
        for i in range(ROUNDS):
            message = i.to_bytes(4, "big") * 16
            await stream.write(message)
            got = b""
            while len(got) < len(message):
                chunk = await stream.read(len(message) - len(got))
                assert chunk, "stream ended early"
                got += chunk
            assert got == message
        await stream.write(b"", fin=True)
        assert await stream.read_all() == b""


async def test_replies_are_caught_by_the_wait(certs: CertSet, listener: QuicListener) -> None:
    engine = Engine.current()
    assert engine._spin_us == _native.DEFAULT_LOOP_SPIN_US
    spins, hits = engine.spins, engine.spin_hits
    await _round_trips(certs, listener.port)
    # Client and server share this loop: each message and each echo is a record the
    # loop would otherwise have slept for. Most waits end with a record, not a timeout.
    assert engine.spins - spins >= ROUNDS
    assert engine.spin_hits - hits >= ROUNDS // 2


async def test_the_wait_can_be_turned_off(
    certs: CertSet, listener: QuicListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Engines read the setting when they are made: one per loop, so run a fresh loop.
    monkeypatch.setenv("PYWEBTRANSPORT_LOOP_SPIN_US", "0")
    port = listener.port

    def in_new_loop() -> tuple[int, int, int]:
        async def main() -> tuple[int, int, int]:
            engine = Engine.current()
            await _round_trips(certs, port)
            return engine._spin_us, engine.spins, engine.spin_hits

        return asyncio.run(main())

    assert await asyncio.get_running_loop().run_in_executor(None, in_new_loop) == (0, 0, 0)


async def test_the_wait_never_runs_ahead_of_ready_callbacks() -> None:
    engine = Engine.current()
    ran: list[str] = []
    waits: list[int] = []
    real_spin = _native.lib.pwt_queue_spin

    class Lib:
        def __getattr__(self, name: str) -> Any:
            return getattr(_native.lib, name)

        def pwt_queue_spin(self, queue: Any, max_us: int) -> int:
            waits.append(len(ran))
            return int(real_spin(queue, 0))

    loop = asyncio.get_running_loop()
    import pywebtransport.quic.engine as engine_module

    original = engine_module.lib
    engine_module.lib = Lib()  # type: ignore[assignment]
    try:
        spins = engine.spins
        # Three callbacks become ready one after another: the wait goes behind each.
        def a() -> None:
            ran.append("a")
            loop.call_soon(b)

        def b() -> None:
            ran.append("b")
            loop.call_soon(ran.append, "c")

        loop.call_soon(a)
        engine.sent = True
        engine._spin_scheduled = True
        loop.call_soon(engine._spin, 4)
        await asyncio.sleep(0.05)  # a timer: this task is not among the ready callbacks
        assert ran == ["a", "b", "c"]
        assert waits and waits[0] == 3  # it waited only once all three had run
        assert engine.spins == spins + 1
        # Behind a callback that keeps rescheduling itself it gives up after four iterations.
        ticks = 0

        def busy() -> None:
            nonlocal ticks
            ticks += 1
            if ticks < 20:
                loop.call_soon(busy)

        waits.clear()
        loop.call_soon(busy)
        engine.sent = True
        engine._spin_scheduled = True
        loop.call_soon(engine._spin, 4)
        await asyncio.sleep(0.05)
        assert ticks == 20
        assert waits == [] and engine._spin_scheduled is False
        # Nothing sent since the last drain (a loop that only receives): no wait at all.
        engine.sent = False
        engine._spin_scheduled = True
        loop.call_soon(engine._spin, 4)
        await asyncio.sleep(0.05)
        assert waits == []
    finally:
        engine_module.lib = original  # type: ignore[assignment]


async def test_sparse_traffic_waits_only_now_and_then(monkeypatch: pytest.MonkeyPatch) -> None:
    import collections

    import pywebtransport.quic.engine as engine_module

    engine = Engine.current()
    waits: list[int] = []

    class Lib:
        def __getattr__(self, name: str) -> Any:
            return getattr(_native.lib, name)

        def pwt_queue_spin(self, queue: Any, max_us: int) -> int:
            waits.append(max_us)
            return 0  # nothing ever arrives

    monkeypatch.setattr(engine_module, "lib", Lib())
    monkeypatch.setattr(engine, "_ready", collections.deque())
    monkeypatch.setattr(engine, "_spin_misses", 0)
    monkeypatch.setattr(engine, "sent", True)
    for _ in range(8 + 7 * 8):
        engine._spin(0)
    # Eight waits in a row see nothing; then only every eighth opportunity waits.
    assert len(waits) == 8 + 7
    assert set(waits) == {engine._spin_us}


async def test_sessions_use_the_wait(certs: CertSet) -> None:
    """Through the public API: a server and a client on this loop, a new stream per request."""
    from pywebtransport import ClientConfig, ServerConfig, WebTransportClient
    from pywebtransport.server import create_echo_server_app

    engine = Engine.current()
    app = create_echo_server_app(ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))
    async with app:
        await app.server.listen(host="127.0.0.1", port=0)
        assert app.server.local_address is not None
        url = f"https://127.0.0.1:{app.server.local_address[1]}/echo"
        async with WebTransportClient(ClientConfig.create(ca_certs=str(certs.ca_cert))) as client:
            async with await client.connect(url) as session:
                hits = engine.spin_hits
                for i in range(50):
                    stream = await session.create_bidirectional_stream()
                    await stream.write_all(b"request %d" % i)
                    assert await stream.read_all() == b"request %d" % i
                assert engine.spin_hits - hits >= 25
