"""The asyncio QUIC layer over real msquic on loopback (real UDP, real TLS)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from certs import CertSet
from pywebtransport._native import lib
from pywebtransport.quic import (
    CertificateVerifyError,
    ConfigError,
    ConnectError,
    ConnectionClosed,
    DatagramTooLarge,
    QuicConfiguration,
    QuicConnection,
    QuicListener,
    QuicStream,
    StreamReset,
    StreamStopped,
    connect,
    serve,
)

pytestmark = pytest.mark.timeout(60)
ALPN = ["pwt-test"]


def server_config(certs: CertSet, **kw: Any) -> QuicConfiguration:
    return QuicConfiguration(
        is_client=False, certfile=str(certs.cert), keyfile=str(certs.key), alpn_protocols=ALPN, **kw
    )


def client_config(certs: CertSet, **kw: Any) -> QuicConfiguration:
    kw.setdefault("cafile", str(certs.ca_cert))
    return QuicConfiguration(is_client=True, alpn_protocols=ALPN, **kw)


async def echo_stream(conn: QuicConnection, stream: QuicStream) -> None:
    try:
        data = await stream.read_all()
        if stream.is_unidirectional:
            out = await conn.open_uni_stream()
            await out.write(data, fin=True)
        else:
            await stream.write(data, fin=True)
    except Exception:
        pass


async def echo_handler(conn: QuicConnection) -> None:
    def on_dgram(data: bytes) -> None:
        try:
            conn.send_datagram(data)
        except Exception:
            pass

    conn.on_datagram = on_dgram
    tasks = set()
    while True:
        try:
            stream = await conn.accept_stream()
        except ConnectionClosed:
            return
        t = asyncio.ensure_future(echo_stream(conn, stream))
        tasks.add(t)
        t.add_done_callback(tasks.discard)


@pytest.fixture
async def echo_server(certs: CertSet) -> AsyncIterator[QuicListener]:
    listener = await serve("127.0.0.1", 0, server_config(certs), echo_handler)
    yield listener
    await listener.aclose()


async def test_bidi_echo(certs: CertSet, echo_server: QuicListener) -> None:
    async with await connect("localhost", echo_server.port, client_config(certs)) as conn:
        assert conn.alpn == "pwt-test"
        stream = await conn.open_bidi_stream()
        assert stream.stream_id == 0
        await stream.write(b"hello quic", fin=True)
        assert await stream.read_all() == b"hello quic"


async def test_uni_echo(certs: CertSet, echo_server: QuicListener) -> None:
    async with await connect("127.0.0.1", echo_server.port, client_config(certs)) as conn:
        out = await conn.open_uni_stream()
        assert out.stream_id % 4 == 2
        await out.write(b"one way", fin=True)
        back = await asyncio.wait_for(conn.accept_stream(), 5)
        assert back.is_unidirectional and not back.is_local
        assert back.stream_id % 4 == 3
        assert await back.read_all() == b"one way"


async def test_ipv6_echo(certs: CertSet) -> None:
    listener = await serve("::1", 0, server_config(certs), echo_handler)
    try:
        async with await connect("::1", listener.port, client_config(certs)) as conn:
            assert conn.remote_address is not None and conn.remote_address[0] == "::1"
            stream = await conn.open_bidi_stream()
            await stream.write(b"v6", fin=True)
            assert await stream.read_all() == b"v6"
    finally:
        await listener.aclose()


async def test_datagram_echo_and_oversize(certs: CertSet, echo_server: QuicListener) -> None:
    async with await connect("127.0.0.1", echo_server.port, client_config(certs)) as conn:
        limit = conn.max_datagram_size
        assert 1000 < limit < 1500
        # Datagrams are unreliable: send until the echo arrives (bounded).
        # The peer's limit can differ while PMTUD runs; 1100 bytes fits any QUIC path.
        for payload in (b"ping", b"z" * 1100):
            for _ in range(10):
                conn.send_datagram(payload)
                try:
                    assert await asyncio.wait_for(conn.receive_datagram(), 0.5) == payload
                    break
                except asyncio.TimeoutError:
                    continue
            else:
                pytest.fail(f"no echo for a {len(payload)}-byte datagram after 10 tries")
        with pytest.raises(DatagramTooLarge) as info:
            conn.send_datagram(b"z" * 2000)  # beyond any path MTU msquic allows (<= 1500)
        assert info.value.size == 2000 and limit <= info.value.max_size < 1500
        assert str(info.value.max_size) in str(info.value)


async def test_thousand_sequential_streams(certs: CertSet, echo_server: QuicListener) -> None:
    async with await connect("127.0.0.1", echo_server.port, client_config(certs)) as conn:
        for i in range(1000):
            stream = await conn.open_bidi_stream()
            payload = i.to_bytes(4, "big") * 8
            await stream.write(payload, fin=True)
            assert await stream.read_all() == payload


async def test_hundred_concurrent_streams(certs: CertSet, echo_server: QuicListener) -> None:
    async with await connect("127.0.0.1", echo_server.port, client_config(certs)) as conn:

        async def one(i: int) -> bytes:
            stream = await conn.open_bidi_stream()
            await stream.write(os.urandom(1) * (1000 + i), fin=True)
            return await stream.read_all()

        results = await asyncio.gather(*(one(i) for i in range(100)))
        assert sorted(len(r) for r in results) == [1000 + i for i in range(100)]


async def test_hundred_concurrent_connections(certs: CertSet, echo_server: QuicListener) -> None:
    async def one(i: int) -> bytes:
        async with await connect("127.0.0.1", echo_server.port, client_config(certs)) as conn:
            stream = await conn.open_bidi_stream()
            await stream.write(b"conn %d" % i, fin=True)
            return await stream.read_all()

    results = await asyncio.gather(*(one(i) for i in range(100)))
    assert results == [b"conn %d" % i for i in range(100)]


async def test_256_mib_each_direction_sha256(certs: CertSet, echo_server: QuicListener) -> None:
    size = 256 << 20
    block = os.urandom(1 << 20)
    async with await connect("127.0.0.1", echo_server.port, client_config(certs)) as conn:
        stream = await conn.open_bidi_stream()
        sent = hashlib.sha256()

        async def writer() -> None:
            for _ in range(size // len(block)):
                sent.update(block)
                await stream.write(block)
            stream.finish()

        received = hashlib.sha256()
        total = 0
        wt = asyncio.ensure_future(writer())
        while True:
            chunk = await stream.read()
            if not chunk:
                break
            received.update(chunk)
            total += len(chunk)
        await wt
        assert total == size
        assert received.hexdigest() == sent.hexdigest()


async def test_large_receives_are_buffered_in_64_kib_pieces(certs: CertSet, echo_server: QuicListener) -> None:
    """Bulk bytes come out of msquic in pieces of at most 64 KiB, so that a 64 KiB read
    hands a piece over as it is (no second copy of the ~1 MB chunk msquic indicates)."""
    from pywebtransport.quic.stream import _RECV_PIECE

    block = os.urandom(4 << 20)
    async with await connect("127.0.0.1", echo_server.port, client_config(certs)) as conn:
        stream = await conn.open_bidi_stream()
        await stream.write(block, fin=True)
        got = bytearray()
        largest = 0
        while True:
            chunks = stream._buffer._chunks
            if chunks:
                largest = max(largest, max(len(c) for c in chunks))
            chunk = await stream.read(_RECV_PIECE)
            if not chunk:
                break
            assert len(chunk) <= _RECV_PIECE
            got += chunk
        assert bytes(got) == block
        assert 0 < largest <= _RECV_PIECE


async def test_slow_reader_bounded(certs: CertSet) -> None:
    limit = 256 * 1024
    window = 64 * 1024
    got_stream: asyncio.Future[QuicStream] = asyncio.get_running_loop().create_future()

    async def handler(conn: QuicConnection) -> None:
        got_stream.set_result(await conn.accept_stream())
        await conn.wait_closed()

    listener = await serve(
        "127.0.0.1",
        0,
        server_config(certs, max_stream_buffer=limit, stream_receive_window=window),
        handler,
    )
    try:
        async with await connect("127.0.0.1", listener.port, client_config(certs)) as conn:
            stream = await conn.open_bidi_stream()
            total = 32 << 20
            writer = asyncio.ensure_future(stream.write(b"q" * total, fin=True))
            peer = await asyncio.wait_for(got_stream, 5)
            peak = 0
            for _ in range(20):  # the reader sleeps; the writer must stall
                await asyncio.sleep(0.05)
                peak = max(peak, peer.native_buffered())
            assert not writer.done()
            assert 0 < peak <= limit, peak
            # diagnostics() says why: the reader's receiving is paused, the writer waits for
            # stream credit, and the writer's bytes sit queued.
            held, waiting = peer.diagnostics(), stream.diagnostics()
            assert held["receive_paused"] == 1, held
            assert waiting["stream_flow_control_blocked_us"] > 0, waiting
            assert waiting["send_queued"] > 0, waiting
            received = 0
            while received < total:
                chunk = await peer.read(64 * 1024)
                assert chunk
                received += len(chunk)
                peak = max(peak, peer.native_buffered())
            await writer
            assert peak <= limit
            assert await peer.read() == b""
            assert peer.diagnostics().get("receive_paused", 0) == 0
    finally:
        await listener.aclose()


async def test_reset_and_stop_sending_codes_both_ways(certs: CertSet) -> None:
    peer_streams: asyncio.Queue[QuicStream] = asyncio.Queue()

    async def handler(conn: QuicConnection) -> None:
        while True:
            try:
                await peer_streams.put(await conn.accept_stream())
            except ConnectionClosed:
                return

    listener = await serve("127.0.0.1", 0, server_config(certs), handler)
    try:
        async with await connect("127.0.0.1", listener.port, client_config(certs)) as conn:
            # client resets -> server read raises with the code
            s1 = await conn.open_bidi_stream()
            await s1.write(b"x")
            p1 = await asyncio.wait_for(peer_streams.get(), 5)
            s1.reset(0x1234)
            with pytest.raises(StreamReset) as r1:
                await asyncio.wait_for(p1.read_all(), 5)
            assert r1.value.error_code == 0x1234
            # server resets -> client read raises
            p1.reset(0x55)
            with pytest.raises(StreamReset) as r2:
                await asyncio.wait_for(s1.read_all(), 5)
            assert r2.value.error_code == 0x55
            # client stop-sending -> server write raises StreamStopped
            s2 = await conn.open_bidi_stream()
            await s2.write(b"y")
            p2 = await asyncio.wait_for(peer_streams.get(), 5)
            s2.stop_sending(0x77)
            with pytest.raises(StreamStopped) as r3:
                for _ in range(1000):
                    await p2.write(b"z" * 1024)
                    await asyncio.sleep(0.001)
            assert r3.value.error_code == 0x77
            # server stop-sending -> client write raises
            p2.stop_sending(0x99)
            with pytest.raises(StreamStopped) as r4:
                for _ in range(1000):
                    await s2.write(b"z" * 1024)
                    await asyncio.sleep(0.001)
            assert r4.value.error_code == 0x99
    finally:
        await listener.aclose()


async def test_peer_close_reason(certs: CertSet) -> None:
    async def handler(conn: QuicConnection) -> None:
        conn.close(0x42)

    listener = await serve("127.0.0.1", 0, server_config(certs), handler)
    try:
        conn = await connect("127.0.0.1", listener.port, client_config(certs))
        reason = await asyncio.wait_for(conn.wait_closed(), 5)
        assert reason.initiator == "peer" and reason.error_code == 0x42
        with pytest.raises(ConnectionClosed):
            await conn.open_bidi_stream()
    finally:
        await listener.aclose()


async def test_idle_timeout_reason(certs: CertSet, echo_server: QuicListener) -> None:
    conn = await connect("127.0.0.1", echo_server.port, client_config(certs, idle_timeout=0.5))
    reason = await asyncio.wait_for(conn.wait_closed(), 10)
    assert reason.initiator == "transport"
    assert reason.status == "CONNECTION_IDLE"


async def test_server_stops_with_live_connections(certs: CertSet) -> None:
    listener = await serve("127.0.0.1", 0, server_config(certs), echo_handler)
    conns = [await connect("127.0.0.1", listener.port, client_config(certs)) for _ in range(5)]
    await asyncio.sleep(0.05)
    assert len(listener.connections) == 5
    await asyncio.wait_for(listener.aclose(0x7), 5)
    for conn in conns:
        reason = await asyncio.wait_for(conn.wait_closed(), 5)
        assert reason.initiator == "peer" and reason.error_code == 0x7


async def test_connect_to_closed_port_fails_within_timeout(certs: CertSet) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(ConnectError):
        await connect("127.0.0.1", port, client_config(certs, handshake_timeout=2.0), timeout=3.0)
    assert loop.time() - start < 3.5


def test_missing_cert_file(tmp_path: Any, certs: CertSet) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        QuicConfiguration(is_client=False, certfile=str(tmp_path / "nope.pem"), keyfile=str(certs.key))
    with pytest.raises(ConfigError, match="keyfile"):
        QuicConfiguration(is_client=False, certfile=str(certs.cert), keyfile=str(tmp_path / "nope.key"))


def test_garbage_cert_and_key(tmp_path: Any, certs: CertSet) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"this is not a certificate\n")
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        QuicConfiguration(is_client=False, certfile=str(junk), keyfile=str(certs.key))
    with pytest.raises(ConfigError, match="private key"):
        QuicConfiguration(is_client=False, certfile=str(certs.cert), keyfile=str(junk))


async def test_verification_rejects_self_signed_then_accepts_with_ca(certs: CertSet) -> None:
    cfg = QuicConfiguration(
        is_client=False,
        certfile=str(certs.self_signed_cert),
        keyfile=str(certs.self_signed_key),
        alpn_protocols=ALPN,
    )
    listener = await serve("127.0.0.1", 0, cfg, echo_handler)
    try:
        plain = QuicConfiguration(is_client=True, alpn_protocols=ALPN)
        assert plain.verifies_peer
        with pytest.raises(CertificateVerifyError, match="certificate verification"):
            await connect("localhost", listener.port, plain, timeout=5)
        trusting = QuicConfiguration(
            is_client=True, alpn_protocols=ALPN, cafile=str(certs.self_signed_cert)
        )
        async with await connect("localhost", listener.port, trusting, timeout=5) as conn:
            stream = await conn.open_bidi_stream()
            await stream.write(b"trusted", fin=True)
            assert await stream.read_all() == b"trusted"
        insecure = QuicConfiguration(is_client=True, alpn_protocols=ALPN, verify_peer=False)
        async with await connect("localhost", listener.port, insecure, timeout=5) as conn:
            assert conn.is_connected
    finally:
        await listener.aclose()


async def test_stats_and_addresses(certs: CertSet, echo_server: QuicListener) -> None:
    async with await connect("127.0.0.1", echo_server.port, client_config(certs)) as conn:
        stream = await conn.open_bidi_stream()
        await stream.write(b"s" * 100_000, fin=True)
        assert len(await stream.read_all()) == 100_000
        stats = conn.stats()
        assert stats.rtt > 0 and stats.cwnd > 0
        assert stats.stream_bytes_sent >= 100_000 and stats.stream_bytes_received >= 100_000
        assert conn.remote_address == ("127.0.0.1", echo_server.port)
        assert conn.local_address is not None and conn.local_address[1] > 0


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_connect_close_cycles_do_not_leak(certs: CertSet, echo_server: QuicListener) -> None:
    async def cycle() -> None:
        async with await connect("127.0.0.1", echo_server.port, client_config(certs)) as conn:
            stream = await conn.open_bidi_stream()
            await stream.write(b"c", fin=True)
            await stream.read_all()

    for _ in range(20):  # warm-up: let msquic create its worker pools
        await cycle()
    await asyncio.sleep(0.2)
    fds, threads, objects = _fd_count(), threading.active_count(), lib.pwt_live_objects()
    native_threads = len(os.listdir("/proc/self/task"))
    for _ in range(200):
        await cycle()
    await asyncio.sleep(0.3)
    assert _fd_count() <= fds + 2
    assert threading.active_count() == threads
    assert len(os.listdir("/proc/self/task")) <= native_threads + 1
    assert lib.pwt_live_objects() <= objects


async def test_all_blocked_writers_fail_when_the_connection_closes(certs: CertSet) -> None:
    accepted: asyncio.Future[QuicStream] = asyncio.get_running_loop().create_future()

    async def handler(conn: QuicConnection) -> None:
        accepted.set_result(await conn.accept_stream())  # never read: the writers block
        await conn.wait_closed()

    listener = await serve("127.0.0.1", 0, server_config(certs, max_stream_buffer=65536), handler)
    try:
        conn = await connect("127.0.0.1", listener.port, client_config(certs, send_buffer_high_water=65536))
        stream = await conn.open_bidi_stream()
        writers = [asyncio.ensure_future(stream.write(b"w" * (4 << 20))) for _ in range(2)]
        await asyncio.wait_for(accepted, 5)
        await asyncio.sleep(0.2)
        assert not any(w.done() for w in writers)
        conn.close(0x9)
        done, pending = await asyncio.wait(writers, timeout=5)
        assert not pending
        assert all(w.exception() is not None for w in writers)
    finally:
        await listener.aclose()


async def test_connect_tries_every_resolved_address(
    certs: CertSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A name resolving to both loopback addresses, in either order, while the server
    # listens on only one of them (as "localhost" does on many systems).
    import pywebtransport.quic.connection as quic_connection

    for order in (["::1", "127.0.0.1"], ["127.0.0.1", "::1"]):
        async def fake_resolve(host: str, port: int, order: list[str] = order) -> list[str]:
            return order

        monkeypatch.setattr(quic_connection, "_resolve_all", fake_resolve)
        listener = await serve(order[1], 0, server_config(certs), echo_handler)
        try:
            async with await connect("localhost", listener.port, client_config(certs), timeout=10) as conn:
                stream = await conn.open_bidi_stream()
                await stream.write(b"either address", fin=True)
                assert await stream.read_all() == b"either address"
        finally:
            await listener.aclose()


async def test_cancelled_connect_leaves_nothing_behind(certs: CertSet, echo_server: QuicListener) -> None:
    cfg = client_config(certs)
    async with await connect("127.0.0.1", echo_server.port, cfg):
        pass  # warms the shared native configuration
    await asyncio.sleep(0.1)
    before = lib.pwt_live_objects()
    task = asyncio.ensure_future(connect("127.0.0.1", echo_server.port, cfg))
    await asyncio.sleep(0)  # started, handshake in flight
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if lib.pwt_live_objects() <= before:
            break
        await asyncio.sleep(0.02)
    assert lib.pwt_live_objects() <= before


def test_engines_of_finished_event_loops_are_released(certs: CertSet) -> None:
    from pywebtransport.quic.engine import Engine

    async def once(leave_open: bool) -> None:
        listener = await serve("127.0.0.1", 0, server_config(certs), echo_handler)
        conn = await connect("127.0.0.1", listener.port, client_config(certs))
        if not leave_open:  # otherwise the loop closes with both still open
            await conn.aclose()
            await listener.aclose()

    asyncio.run(once(False))
    fds = _fd_count()
    for i in range(10):
        asyncio.run(once(leave_open=i % 2 == 0))
    assert len(Engine._all) <= 2
    # msquic closes the sockets of reaped connections on its own threads, shortly after.
    import time

    deadline = time.monotonic() + 5
    while _fd_count() > fds + 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _fd_count() <= fds + 4
