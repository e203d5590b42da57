"""Which records the shim queues for Python (real msquic, loopback).

Every record can cost the event loop a wake-up, so the shim leaves out what
Python can learn otherwise: datagram limits and RESET_STREAM_AT negotiation are
read on demand, a peer stream's start travels with its first bytes, and streams
that end because their connection shuts down are finalized when the
connection's own SHUTDOWN_COMPLETE arrives.  These tests pin that down and check
that nothing is lost on the way: data, FIN, resets, stop-sending, waiting
readers and native handles.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest

from certs import CertSet
from pywebtransport._native import lib
from pywebtransport.quic import (
    ConnectionClosed,
    QuicConnection,
    QuicStream,
    StreamReset,
    StreamStopped,
    connect,
    serve,
)
from pywebtransport.quic.connection import QuicConnection as _Conn
from pywebtransport.quic.stream import QuicStream as _Stream
from test_quic import client_config, server_config

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def records(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """Counts the record types delivered to connections and streams (both sides)."""
    seen: Counter[int] = Counter()
    conn_event, stream_event = _Conn._on_event, _Stream._on_event

    def on_conn(self: Any, ev: Any) -> None:
        seen[int(ev.type)] += 1
        conn_event(self, ev)

    def on_stream(self: Any, ev: Any) -> None:
        seen[int(ev.type)] += 1
        stream_event(self, ev)

    monkeypatch.setattr(_Conn, "_on_event", on_conn)
    monkeypatch.setattr(_Stream, "_on_event", on_stream)
    return seen


async def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_a_connection_costs_python_only_the_records_it_uses(certs: CertSet, records: Counter[int]) -> None:
    """Datagram state, RESET_STREAM_AT negotiation and the shutdown of streams that the
    connection's close ends are not queued; a peer stream's start comes with its bytes."""
    served: list[QuicStream] = []

    async def handler(conn: QuicConnection) -> None:
        while True:
            try:
                stream = await conn.accept_stream()
            except ConnectionClosed:
                return
            served.append(stream)
            data = await stream.read(1)
            if data == b"e":  # echo and finish; "h" streams stay open
                await stream.write(data + await stream.read_all(), fin=True)

    listener = await serve("127.0.0.1", 0, server_config(certs, reliable_reset=True), handler)
    try:
        conn = await connect(
            "127.0.0.1", listener.port, client_config(certs, reliable_reset=True), server_name="localhost"
        )
        assert conn.max_datagram_size > 0  # read from the shim, no record needed
        assert conn.reliable_reset
        done = await conn.open_bidi_stream()
        await done.write(b"echo", fin=True)
        assert await done.read_all() == b"echo"
        held = [await conn.open_bidi_stream() for _ in range(2)]
        for stream in held:
            await stream.write(b"h")
        await wait_until(lambda: len(served) == 3)
        await wait_until(lambda: records[lib.PWT_EV_STREAM_SHUTDOWN_COMPLETE] >= 2)  # "done", both sides
        await conn.aclose()
        for stream in held:
            with pytest.raises(ConnectionClosed):
                await stream.read()
            assert stream.is_closed
        await wait_until(lambda: all(s.is_closed for s in served))
    finally:
        await listener.aclose()
    assert records[lib.PWT_EV_CONN_DATAGRAM_STATE] == 0
    assert records[lib.PWT_EV_CONN_RELIABLE_RESET] == 0
    # Only the finished stream completed on its own (once per side); the held ones
    # ended with the connection and were finalized without a record each.
    assert records[lib.PWT_EV_STREAM_SHUTDOWN_COMPLETE] == 2
    # Each of the three peer streams: one start record that carried its first bytes.
    assert records[lib.PWT_EV_CONN_PEER_STREAM_STARTED] == 3


async def test_local_close_fails_a_waiting_reader_at_once(certs: CertSet) -> None:
    """The shim no longer reports each stream's shutdown; close() itself wakes its waiters."""

    async def idle(conn: QuicConnection) -> None:
        await conn.wait_closed()

    listener = await serve("127.0.0.1", 0, server_config(certs), idle)
    try:
        conn = await connect("127.0.0.1", listener.port, client_config(certs), server_name="localhost")
        stream = await conn.open_bidi_stream()
        await stream.write(b"x")
        reader = asyncio.ensure_future(stream.read())
        await asyncio.sleep(0)
        assert not reader.done()
        conn.close()
        for _ in range(3):  # the wake-up is immediate, not a round trip to the peer
            await asyncio.sleep(0)
        assert reader.done()
        with pytest.raises(ConnectionClosed):
            reader.result()
        with pytest.raises(ConnectionClosed):
            await stream.write(b"y")
        await conn.wait_closed()
    finally:
        await listener.aclose()


@pytest.mark.parametrize("abort", ["reset", "stop_sending"])
async def test_a_peer_stream_aborted_before_any_byte_is_still_delivered(certs: CertSet, abort: str) -> None:
    """A stream whose first record is not data: its start is queued with that record."""
    accepted: asyncio.Queue[tuple[QuicConnection, QuicStream]] = asyncio.Queue()

    async def handler(conn: QuicConnection) -> None:
        while True:
            try:
                stream = await conn.accept_stream()
            except ConnectionClosed:
                return
            accepted.put_nowait((conn, stream))

    listener = await serve("127.0.0.1", 0, server_config(certs), handler)
    try:
        async with await connect("127.0.0.1", listener.port, client_config(certs), server_name="localhost") as conn:
            stream = await conn.open_bidi_stream()
            if abort == "reset":
                stream.reset(7)
            else:
                stream.stop_sending(9)
            server_conn, peer = await asyncio.wait_for(accepted.get(), 10)
            assert peer.stream_id == stream.stream_id
            if abort == "reset":
                with pytest.raises(StreamReset) as reset:
                    await asyncio.wait_for(peer.read(), 10)
                assert reset.value.error_code == 7
                peer.finish()  # our side ends too, so the stream completes
            else:
                await wait_until(lambda: isinstance(peer.write_error, StreamStopped))
                error = peer.write_error
                assert isinstance(error, StreamStopped) and error.error_code == 9
                stream.finish()  # our side ends too, so the stream completes
                assert await asyncio.wait_for(peer.read(), 10) == b""
            await wait_until(lambda: server_conn.counters().live_streams == 0)
    finally:
        await listener.aclose()
