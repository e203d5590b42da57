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
import os
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
from test_stream_open_path import each_stream

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def records(monkeypatch: pytest.MonkeyPatch) -> Counter[Any]:
    """Counts the record types delivered to connections and streams: by type (both
    sides together) and by ``("client" | "server", type)``."""
    seen: Counter[Any] = Counter()
    conn_event, stream_event = _Conn._on_event, _Stream._on_event

    def on_conn(self: Any, ev: Any) -> None:
        seen[int(ev.type)] += 1
        seen["client" if self.is_client else "server", int(ev.type)] += 1
        conn_event(self, ev)

    def on_stream(self: Any, ev: Any) -> None:
        if int(ev.type) == lib.PWT_EV_STREAM_SHUTDOWN_COMPLETE:
            seen["client" if self._conn.is_client else "server", "completed", self.stream_id] += 1
        seen[int(ev.type)] += 1
        seen["client" if self._conn.is_client else "server", int(ev.type)] += 1
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


async def test_a_connection_costs_python_only_the_records_it_uses(certs: CertSet, records: Counter[Any]) -> None:
    """Datagram state, RESET_STREAM_AT negotiation and the shutdown of streams that the
    connection's close ends are not queued; a peer stream's start comes with its bytes."""
    served: list[QuicStream] = []

    async def serve_one(stream: QuicStream) -> None:
        served.append(stream)
        data = await stream.read(1)
        if data == b"e":  # echo and finish; "h" streams stay open
            await stream.write(data + await stream.read_all(), fin=True)

    listener = await serve("127.0.0.1", 0, server_config(certs, reliable_reset=True), each_stream(serve_one))
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
    accepted: asyncio.Queue[QuicStream] = asyncio.Queue()

    async def take(stream: QuicStream) -> None:
        accepted.put_nowait(stream)

    listener = await serve("127.0.0.1", 0, server_config(certs), each_stream(take))
    try:
        async with await connect("127.0.0.1", listener.port, client_config(certs), server_name="localhost") as conn:
            stream = await conn.open_bidi_stream()
            if abort == "reset":
                stream.reset(7)
            else:
                stream.stop_sending(9)
            peer = await asyncio.wait_for(accepted.get(), 10)
            server_conn = next(iter(listener.connections))
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


async def test_a_stream_that_asks_to_be_released_when_done_is_closed_by_the_shim(certs: CertSet) -> None:
    """release_when_done: once both directions are finished here the stream is released at once
    and the shim closes the handle when msquic completes it (the peer gets its credit back)."""

    async def echo(stream: QuicStream) -> None:
        stream.release_when_done = True
        await stream.write(await stream.read_all(), fin=True)

    server_cfg = server_config(certs, max_peer_bidi_streams=4)
    listener = await serve("127.0.0.1", 0, server_cfg, each_stream(echo))
    base = lib.pwt_live_objects()
    try:
        async with await connect("127.0.0.1", listener.port, client_config(certs), server_name="localhost") as conn:
            for i in range(40):  # ten times the peer's stream limit: credit must come back
                stream = await conn.open_bidi_stream()
                stream.release_when_done = True
                await stream.write(b"%d" % i, fin=True)
                assert await asyncio.wait_for(stream.read_all(), 10) == b"%d" % i
                assert stream.is_closed  # released on the spot, not a record later
                await stream.wait_closed()
            server_conn = next(iter(listener.connections))
            await wait_until(lambda: conn.counters().live_streams == 0)
            await wait_until(lambda: server_conn.counters().live_streams == 0)
    finally:
        await listener.aclose()
    await wait_until(lambda: lib.pwt_live_objects() <= base)


async def test_finished_webtransport_streams_cost_the_server_no_shutdown_record(
    certs: CertSet, records: Counter[Any]
) -> None:
    """Per request the server gets one record (the stream's start with its bytes and FIN):
    the stream is released when the handler has read everything and sent its FIN, and the
    shim closes it when msquic completes it, without a SHUTDOWN_COMPLETE record."""
    from pywebtransport import ClientConfig, ServerApp, ServerConfig, WebTransportClient, WebTransportSession
    from pywebtransport import WebTransportStream

    app = ServerApp(config=ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))
    sessions: list[WebTransportSession] = []

    @app.route("/echo")
    async def echo(session: WebTransportSession) -> None:
        sessions.append(session)
        async for stream in session.incoming_streams():
            if isinstance(stream, WebTransportStream):
                await stream.write(await stream.read_all(), end_stream=True)
            else:
                out = await session.create_unidirectional_stream()
                await out.write(await stream.read_all(), end_stream=True)

    async with app:
        await app.server.listen(host="127.0.0.1", port=0)
        address = app.server.local_address
        assert address is not None
        config = ClientConfig.create(ca_certs=str(certs.ca_cert))
        async with WebTransportClient(config) as client:
            session = await client.connect(f"https://localhost:{address[1]}/echo")
            records.clear()
            for i in range(30):
                stream = await session.create_bidirectional_stream()
                await stream.write(b"r%d" % i, end_stream=True)
                assert await stream.read_all() == b"r%d" % i
            for i in range(5):
                out = await session.create_unidirectional_stream()
                await out.write(b"u%d" % i, end_stream=True)
                back = await asyncio.wait_for(session.incoming_streams().__anext__(), 10)
                assert await back.read_all() == b"u%d" % i
            server_session = sessions[0]
            await wait_until(lambda: not server_session._streams)
            server_quic = server_session.connection.quic
            # The two HTTP/3 control streams (no QPACK streams: their dynamic tables have
            # capacity 0) and the CONNECT stream: nothing else is left.
            await wait_until(lambda: server_quic.counters().live_streams == 3)
            await session.close()
    # The bidirectional request streams were released by the handler before msquic completed
    # them; peer unidirectional streams complete in msquic as soon as their FIN arrives (there
    # is no send side), so theirs still comes, in the same batch as the FIN.
    completed = {key[2] for key in records if isinstance(key, tuple) and key[:2] == ("server", "completed")}
    assert not {sid for sid in completed if sid % 4 == 0 and sid != 0}
    assert records["server", lib.PWT_EV_CONN_PEER_STREAM_STARTED] == 35


async def test_a_client_sets_up_its_connection_without_waiting_for_a_worker(certs: CertSet) -> None:
    """The settings a client applies before ConnectionStart (shared UDP socket, the
    remote address for a server name that is not an IP literal) run inline on the
    loop's thread with our msquic build; a stock msquic falls back to blocking calls."""
    listener = await serve("127.0.0.1", 0, server_config(certs), each_stream(lambda s: asyncio.sleep(0)))
    try:
        conns = [
            await connect("127.0.0.1", listener.port, client_config(certs, share_udp_binding=True), server_name=name)
            for name in ("localhost", "127.0.0.1")
        ]
        for conn in conns:
            stream = await conn.open_bidi_stream()
            await stream.write(b"x", fin=True)
            await conn.aclose()
    finally:
        await listener.aclose()
    if os.environ.get("PYWEBTRANSPORT_MSQUIC_LIB"):  # another build: either way, but decided
        assert lib.pwt_setup_params_inline() in (0, 1)
    else:
        assert lib.pwt_setup_params_inline() == 1
