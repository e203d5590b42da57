"""Connection, session, stream and datagram objects over an in-memory QUIC transport.

The fake transport (``fake_quic.py``) implements the declared interface
``pywebtransport.quic.interface``; nothing here touches msquic.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest

from pywebtransport import ClientConfig, ServerConfig
from pywebtransport.connection import WebTransportConnection
from pywebtransport.exceptions import SessionClosedError, StreamError, StreamResetError
from pywebtransport.h3 import H3Config
from pywebtransport.h3.errors import ErrorCode
from pywebtransport.h3.varint import encode_varint
from pywebtransport.quic.errors import StreamClosedError
from pywebtransport.quic.interface import QuicStreamTransport, QuicTransport
from pywebtransport.session import WebTransportSession
from pywebtransport.stream import WebTransportReceiveStream, WebTransportStream

from fake_quic import FakeQuicConnection, FakeQuicStream, fake_pair, settle

STEP = 2.0  # bound on every wait


class Endpoints:
    def __init__(self, client: WebTransportConnection, server: WebTransportConnection) -> None:
        self.client = client
        self.server = server
        self.requests: list[WebTransportSession] = []
        self.session: WebTransportSession | None = None

    @property
    def cq(self) -> FakeQuicConnection:
        assert isinstance(self.client.quic, FakeQuicConnection)
        return self.client.quic

    @property
    def sq(self) -> FakeQuicConnection:
        assert isinstance(self.server.quic, FakeQuicConnection)
        return self.server.quic


async def connect(
    h3_config: H3Config | None = None,
    *,
    accept: bool = True,
    configs: tuple[ClientConfig, ServerConfig] | None = None,
) -> Endpoints:
    cq, sq = fake_pair()
    if configs is not None:
        server = WebTransportConnection(sq, config=configs[1])
        client = WebTransportConnection(cq, config=configs[0])
    else:
        server = WebTransportConnection(sq, h3_config=h3_config)
        client = WebTransportConnection(cq, h3_config=h3_config)
    ends = Endpoints(client, server)

    def on_request(session: WebTransportSession) -> None:
        ends.requests.append(session)
        if accept:
            session.accept()

    server.on_session_request = on_request
    await asyncio.wait_for(asyncio.gather(client.start(), server.start()), STEP)
    await client.wait_settings(STEP)
    ends.session = await client.open_session("/fake", authority="example.test:443")
    if accept:
        await ends.session.ready(timeout=STEP)
    else:
        await settle()
    return ends


def count_calls(obj: Any, name: str) -> list[tuple[Any, ...]]:
    """Record every call of ``obj.name`` (still calling through)."""
    calls: list[tuple[Any, ...]] = []
    original: Callable[..., Any] = getattr(obj, name)

    def wrapper(*args: Any) -> Any:
        calls.append(args)
        return original(*args)

    setattr(obj, name, wrapper)
    return calls


async def next_incoming(session: WebTransportSession) -> Any:
    async def first() -> Any:
        async for stream in session.incoming_streams():
            return stream
        raise AssertionError("session closed without a stream")

    return await asyncio.wait_for(first(), STEP)


def quic_of(stream: Any) -> FakeQuicStream:
    quic = stream._quic
    assert isinstance(quic, FakeQuicStream)
    return quic


def test_fakes_implement_the_declared_interface() -> None:
    async def main() -> None:
        cq, _sq = fake_pair()
        assert isinstance(cq, QuicTransport)
        stream = await cq.open_stream()
        assert isinstance(stream, QuicStreamTransport)

    asyncio.run(main())


async def test_bound_stream_bytes_bypass_the_h3_core() -> None:
    ends = await connect()
    assert ends.session is not None
    stream = await ends.session.create_bidirectional_stream()
    await stream.write(b"first")
    (server_session,) = ends.requests
    incoming = await next_incoming(server_session)
    assert isinstance(incoming, WebTransportStream)
    assert await asyncio.wait_for(incoming.readexactly(5), STEP) == b"first"

    server_core = count_calls(ends.server.h3, "receive_stream_data")
    client_core = count_calls(ends.client.h3, "receive_stream_data")
    for i in range(20):
        await stream.write(b"msg%02d" % i)
        assert await asyncio.wait_for(incoming.readexactly(5), STEP) == b"msg%02d" % i
        await incoming.write(b"ack%02d" % i)
        assert await asyncio.wait_for(stream.readexactly(5), STEP) == b"ack%02d" % i
    await stream.write(b"", end_stream=True)
    assert await asyncio.wait_for(incoming.read(), STEP) == b""
    # Neither side's HTTP/3 core saw those bytes, nor the FIN.
    assert [c for c in server_core if c[0] == incoming.stream_id] == []
    assert [c for c in client_core if c[0] == stream.stream_id] == []
    info = ends.client.info()
    assert info["rtt"] == ends.cq.rtt and info["datagrams_lost"] == 0


async def test_every_delivered_byte_is_consumed_exactly_once() -> None:
    ends = await connect()
    assert ends.session is not None
    stream = await ends.session.create_bidirectional_stream()
    payload = bytes(range(256)) * 40
    await stream.write(payload, end_stream=True)
    incoming = await next_incoming(ends.requests[0])
    assert await asyncio.wait_for(incoming.read_all(), STEP) == payload
    server_quic = quic_of(incoming)
    # Stream header (framing) and payload: all delivered bytes, each reported once.
    header = len(encode_varint(0x41) + encode_varint(ends.session.id))
    assert server_quic.delivered == len(payload) + header
    assert server_quic.consumed_total == server_quic.delivered


async def test_unread_bytes_count_as_consumed_after_abort_reading() -> None:
    ends = await connect()
    assert ends.session is not None
    stream = await ends.session.create_bidirectional_stream()
    await stream.write(b"x" * 300)
    incoming = await next_incoming(ends.requests[0])
    assert isinstance(incoming, WebTransportReceiveStream)
    await settle()
    incoming.abort_reading(3)
    await settle()
    server_quic = quic_of(incoming)
    assert server_quic.consumed_total == server_quic.delivered
    with pytest.raises(StreamError):
        await incoming.read()


async def test_early_stream_bytes_are_released_on_accept_and_consumed_once() -> None:
    ends = await connect(accept=False)
    (server_session,) = ends.requests
    # A peer may open streams right after its CONNECT, before our answer.
    raw = await ends.cq.open_stream()
    raw.write_nowait(encode_varint(0x41) + encode_varint(server_session.id) + b"early!")
    await settle()
    server_session.accept()
    incoming = await next_incoming(server_session)
    raw.write_nowait(b" and late", fin=True)
    assert await asyncio.wait_for(incoming.read_all(), STEP) == b"early! and late"
    server_quic = quic_of(incoming)
    assert server_quic.consumed_total == server_quic.delivered


async def test_datagrams_are_routed_by_prefix_without_the_core() -> None:
    ends = await connect()
    assert ends.session is not None
    server_session = ends.requests[0]
    core_calls = count_calls(ends.server.h3, "receive_datagram")
    for i in range(5):
        await ends.session.datagrams.send(b"dgram %d" % i)
    got = [await server_session.datagrams.receive(timeout=STEP) for _ in range(5)]
    assert got == [b"dgram %d" % i for i in range(5)]
    assert core_calls == []
    assert server_session.get_session_stats()["datagrams_received"] == 5
    # A datagram for a session that does not exist still goes through the core.
    ends.cq.send_datagram(encode_varint(1000) + b"nobody")
    await settle()
    assert len(core_calls) == 1
    assert server_session.datagrams.try_receive() is None


async def test_early_datagrams_are_released_on_accept() -> None:
    ends = await connect(accept=False)
    (server_session,) = ends.requests
    ends.cq.send_datagram(encode_varint(server_session.id >> 2) + b"early")
    await settle()
    server_session.accept()
    assert await server_session.datagrams.receive(timeout=STEP) == b"early"


async def test_oversize_datagram_reports_the_session_limit() -> None:
    ends = await connect()
    assert ends.session is not None
    limit = ends.session.datagrams.max_datagram_size
    await ends.session.datagrams.send(b"y" * limit)
    with pytest.raises(Exception) as info:
        await ends.session.datagrams.send(b"y" * (limit + 1))
    assert getattr(info.value, "max_size", None) == limit


async def test_peer_reset_reaches_the_bound_stream() -> None:
    ends = await connect()
    assert ends.session is not None
    stream = await ends.session.create_bidirectional_stream()
    await stream.write(b"hello")
    incoming = await next_incoming(ends.requests[0])
    assert await asyncio.wait_for(incoming.readexactly(5), STEP) == b"hello"
    stream.abort_writing(7)
    with pytest.raises(StreamResetError) as info:
        await asyncio.wait_for(incoming.read(), STEP)
    assert info.value.reset_code == 7 and info.value.remote


async def test_session_close_ends_streams_and_datagram_route() -> None:
    ends = await connect()
    assert ends.session is not None
    stream = await ends.session.create_bidirectional_stream()
    await stream.write(b"hi")
    server_session = ends.requests[0]
    incoming = await next_incoming(server_session)
    datagrams = server_session.datagrams
    assert ends.server._datagram_sinks
    await ends.session.close(5, "bye")
    await asyncio.wait_for(server_session.wait_closed(), STEP)
    assert server_session.close_code == 5 and server_session.close_reason == "bye"
    assert server_session.closed_by_peer
    assert ends.server._datagram_sinks == {} and ends.client._datagram_sinks == {}
    assert await asyncio.wait_for(incoming.readexactly(2), STEP) == b"hi"
    with pytest.raises(StreamError):
        await asyncio.wait_for(incoming.read(), STEP)
    with pytest.raises(SessionClosedError):
        await datagrams.receive(timeout=STEP)
    await settle()
    # Every stream of the session was released on both sides.
    assert server_session._streams == {} and ends.session._streams == {}


async def test_unidirectional_streams_both_ways() -> None:
    ends = await connect()
    assert ends.session is not None
    send = await ends.session.create_unidirectional_stream()
    await send.write(b"one-way", end_stream=True)
    incoming = await next_incoming(ends.requests[0])
    assert isinstance(incoming, WebTransportReceiveStream)
    assert await asyncio.wait_for(incoming.read_all(), STEP) == b"one-way"
    back = await ends.requests[0].create_unidirectional_stream()
    await back.write(b"other way", end_stream=True)
    got = await next_incoming(ends.session)
    assert await asyncio.wait_for(got.read_all(), STEP) == b"other way"
    await settle()
    assert ends.session._streams == {} and ends.requests[0]._streams == {}


FC = H3Config(max_sessions=2, initial_max_data=1000, initial_max_streams_bidi=4, initial_max_streams_uni=4)


async def test_flow_control_counts_bound_stream_bytes() -> None:
    ends = await connect(FC)
    assert ends.session is not None and ends.client.flow_control_enabled
    stream = await ends.session.create_bidirectional_stream()
    await stream.write(b"a" * 100)
    await next_incoming(ends.requests[0])  # bound now; nothing read, so no new credit
    # Bypass our own credit check: the server must still see the excess.
    quic_of(stream).write_nowait(b"b" * 1000)
    await asyncio.wait_for(ends.sq.wait_closed(), STEP)
    assert ends.sq.close_reason is not None
    assert ends.sq.close_reason.error_code == ErrorCode.WT_FLOW_CONTROL_ERROR


def fc_configs(window: int) -> tuple[ClientConfig, ServerConfig]:
    common: dict[str, Any] = dict(
        webtransport_flow_control=True,
        initial_max_data=window,
        flow_control_window_size=window,
        initial_max_streams_bidi=4,
        initial_max_streams_uni=4,
        max_sessions=2,
    )
    return ClientConfig.create(**common), ServerConfig.create(**common)


async def test_flow_control_credit_is_extended_as_the_reader_consumes() -> None:
    ends = await connect(configs=fc_configs(1000))
    assert ends.session is not None
    stream = await ends.session.create_bidirectional_stream()
    payload = b"z" * 5000  # five times the initial WT_MAX_DATA
    writer = asyncio.ensure_future(stream.write(payload, end_stream=True))
    incoming = await next_incoming(ends.requests[0])
    assert await asyncio.wait_for(incoming.read_all(), STEP) == payload
    await asyncio.wait_for(writer, STEP)
    # 5000 bytes through a 1000-byte initial limit: WT_MAX_DATA was raised (the
    # window doubles while the reader keeps up, so a few updates suffice).
    assert ends.server.credit_updates_sent >= 2
    assert ends.client.credit_updates_received == ends.server.credit_updates_sent


async def test_connection_loss_closes_sessions_and_streams() -> None:
    ends = await connect()
    assert ends.session is not None
    stream = await ends.session.create_bidirectional_stream()
    await stream.write(b"x")
    incoming = await next_incoming(ends.requests[0])
    ends.cq.close(0x100)
    await asyncio.wait_for(ends.session.wait_closed(), STEP)
    await asyncio.wait_for(ends.requests[0].wait_closed(), STEP)
    assert ends.requests[0].closed_by_peer
    assert await asyncio.wait_for(incoming.readexactly(1), STEP) == b"x"
    with pytest.raises(StreamError):
        await asyncio.wait_for(incoming.read(), STEP)


async def test_finished_streams_leave_no_reference_cycles() -> None:
    """Per-stream objects die by reference counting: no work for the cyclic GC per request."""
    import gc

    ends = await connect()
    assert ends.session is not None
    server_session = ends.requests[0]

    async def serve() -> None:
        async for incoming in server_session.incoming_streams():
            assert isinstance(incoming, WebTransportStream)
            await incoming.write(await incoming.read_all(), end_stream=True)

    server = asyncio.ensure_future(serve())
    gc.collect()
    gc.disable()
    try:
        for i in range(20):
            stream = await ends.session.create_bidirectional_stream()
            await stream.write(b"req %d" % i, end_stream=True)
            assert await asyncio.wait_for(stream.read_all(), STEP) == b"req %d" % i
        del stream
        await settle()
        assert ends.session._streams == {} and server_session._streams == {}
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        leaked = [o for o in gc.garbage if type(o).__name__ in ("WebTransportStream", "_Binding", "ChunkBuffer")]
        assert leaked == []
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        server.cancel()


async def test_drain_survives_a_connect_stream_that_can_no_longer_send() -> None:
    """A server's graceful stop drains every session; one whose stream send fails must not stop it."""
    ends = await connect()
    server_session = ends.requests[0]
    connect_stream = ends.server._streams[server_session.id]

    def refuse(data: object, fin: bool = False) -> None:
        raise StreamClosedError("send failed: ABORTED")

    connect_stream.write_nowait = refuse  # type: ignore[method-assign]
    server_session.drain()  # must not raise
    assert server_session.state.value == "draining"
