"""An application written the way a 0.1.x user writes one, over the real stack on loopback.

Server: ``/``, ``/echo``, ``/stats`` (server stats as JSON on a server-opened stream),
``/health`` (answers datagrams with ``session.datagrams.send_json``) and ``/abort``
(closes the session from the server side), with connection and session events registered.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest

from certs import CertSet
from pywebtransport import (
    ClientConfig,
    ClientError,
    Event,
    EventType,
    ServerApp,
    ServerConfig,
    StreamError,
    TimeoutError,
    WebTransportClient,
    WebTransportReceiveStream,
    WebTransportSession,
    WebTransportStream,
)
from pywebtransport.server import WebTransportServer

pytestmark = pytest.mark.timeout(90)


class App:
    def __init__(self, certs: CertSet) -> None:
        self.app = ServerApp(config=ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))
        self.events: list[Event] = []
        self.closed: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.url = ""
        app = self.app

        async def on_connection(event: Event) -> None:  # async handler
            self.events.append(event)

        def on_session_request(event: Event) -> None:  # plain handler
            self.events.append(event)
            session: WebTransportSession = event.data["session"]
            session.on(EventType.SESSION_CLOSED, lambda e: self.closed.put_nowait(e.data))

        app.server.on(EventType.CONNECTION_ESTABLISHED, on_connection)
        app.server.on(EventType.SESSION_REQUEST, on_session_request)

        @app.route("/")
        async def index(session: WebTransportSession) -> None:
            await session.wait_closed()

        @app.route("/echo")
        async def echo(session: WebTransportSession) -> None:
            async def datagrams() -> None:
                while True:
                    await session.datagrams.send(await session.datagrams.receive())

            async def one(stream: WebTransportStream) -> None:
                await stream.write_all(await stream.read_all())

            async def streams() -> None:
                async for stream in session.incoming_streams():
                    if isinstance(stream, WebTransportStream):
                        asyncio.ensure_future(one(stream))

            tasks = [asyncio.ensure_future(datagrams()), asyncio.ensure_future(streams())]
            try:
                await session.wait_closed()
            finally:
                for task in tasks:
                    task.cancel()

        @app.route("/stats")
        async def stats(session: WebTransportSession) -> None:
            stream = await session.create_unidirectional_stream()
            await stream.write_all(json.dumps(app.server.get_server_stats()).encode())
            await session.wait_closed()

        @app.route("/health")
        async def health(session: WebTransportSession) -> None:
            while True:
                await session.datagrams.receive()
                await session.datagrams.send_json({"status": "healthy", "session": session.session_id})

        @app.route("/abort")
        async def abort(session: WebTransportSession) -> None:
            await asyncio.sleep(0.3)  # let the client register its listener
            await session.close(code=4000, reason="server abort")


@pytest.fixture
async def server(certs: CertSet) -> AsyncIterator[App]:
    wrapper = App(certs)
    async with wrapper.app:
        await wrapper.app.server.listen(host="127.0.0.1", port=0)
        address = wrapper.app.server.local_address
        assert address is not None
        wrapper.url = f"https://127.0.0.1:{address[1]}"
        yield wrapper


def config() -> ClientConfig:
    return ClientConfig.create(verify_mode=ssl.CERT_NONE, connect_timeout=10.0)


async def test_basic_connect_and_events(server: App) -> None:
    client_events: list[Event] = []
    async with WebTransportClient.create(config=config()) as client:
        client.on(EventType.CONNECTION_ESTABLISHED, client_events.append)
        client.on(EventType.SESSION_READY, client_events.append)
        session = await client.connect(server.url + "/")
        assert session.is_ready and session.path == "/"
        assert [e.type for e in client_events] == [EventType.CONNECTION_ESTABLISHED, EventType.SESSION_READY]
        assert client_events[1].data["session_id"] == session.session_id
        await session.close()
    kinds = [e.type for e in server.events]
    assert EventType.CONNECTION_ESTABLISHED in kinds and EventType.SESSION_REQUEST in kinds
    request = next(e for e in server.events if e.type == EventType.SESSION_REQUEST)
    assert request.data["path"] == "/" and isinstance(request.data["headers"], dict)
    assert {"session_id", "stream_id", "state", "created_at", "connection"} <= set(request.data)
    closed = await asyncio.wait_for(server.closed.get(), 10)
    assert closed["session_id"] == request.data["session_id"]


async def test_stream_echo_and_session_events(server: App) -> None:
    async with WebTransportClient.create(config=config()) as client:
        async with await client.connect(server.url + "/echo") as session:
            opened: list[Event] = []
            session.on(EventType.STREAM_OPENED, opened.append)
            stream = await session.create_bidirectional_stream()
            received: list[bytes] = []
            stream.on(EventType.STREAM_DATA_RECEIVED, lambda e: received.append(e.data["data"]))
            await stream.write_all(b"Hello, Stream!")
            assert await stream.read_all() == b"Hello, Stream!"
            assert b"".join(received) == b"Hello, Stream!"
            assert opened and opened[0].data["stream_id"] == stream.stream_id


async def test_ten_concurrent_streams(server: App) -> None:
    async with WebTransportClient.create(config=config()) as client:
        async with await client.connect(server.url + "/echo") as session:

            async def one(i: int) -> bytes:
                stream = await session.create_bidirectional_stream()
                await stream.write_all(f"stream {i}".encode() * 100)
                return await stream.read_all()

            results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(10))), 30)
            assert results == [f"stream {i}".encode() * 100 for i in range(10)]


@pytest.mark.parametrize("size", [1024, 16 * 1024, 256 * 1024, 1024 * 1024])
async def test_transfers(server: App, size: int) -> None:
    payload = bytes(range(256)) * (size // 256)
    async with WebTransportClient.create(config=config()) as client:
        async with await client.connect(server.url + "/echo") as session:
            stream = await session.create_bidirectional_stream()
            write = asyncio.ensure_future(stream.write_all(payload))
            data = await asyncio.wait_for(stream.read_all(), 30)
            await write
            assert data == payload


async def test_datagram_burst(server: App) -> None:
    async with WebTransportClient.create(config=config()) as client:
        async with await client.connect(server.url + "/echo") as session:
            sent: list[Event] = []
            on_session: list[Event] = []
            on_channel: list[Event] = []
            session.datagrams.on(EventType.DATAGRAM_SENT, sent.append)
            session.on(EventType.DATAGRAM_RECEIVED, on_session.append)
            session.datagrams.on(EventType.DATAGRAM_RECEIVED, on_channel.append)
            burst = [f"dgram {i}".encode() for i in range(50)]
            for data in burst:
                await session.datagrams.send(data)
            echoed: set[bytes] = set()
            try:
                while len(echoed) < len(burst):
                    echoed.add(await session.datagrams.receive(timeout=2))
            except TimeoutError:
                pass
            assert len(sent) == 50 and sent[-1].data["sequence"] == 50
            assert echoed <= set(burst)
            assert len(echoed) >= 40, f"only {len(echoed)} of 50 datagrams came back on loopback"
            assert len(on_session) == len(on_channel) >= len(echoed)
            assert on_session[0].data["session_id"] == session.session_id and on_session[0].data["data"] in burst
            assert {"size", "sequence", "age"} <= set(on_channel[-1].data)


async def test_stats_over_server_opened_stream(server: App) -> None:
    async with WebTransportClient.create(config=config()) as client:
        async with await client.connect(server.url + "/stats") as session:
            async for stream in session.incoming_streams():
                assert isinstance(stream, WebTransportReceiveStream)
                stats = json.loads(await stream.read_all())
                break
    assert stats["connections_accepted"] >= 1 and stats["sessions_requested"] >= 1
    assert "uptime" in stats and "active_connections" in stats


async def test_health_answers_with_send_json(server: App) -> None:
    async with WebTransportClient.create(config=config()) as client:
        async with await client.connect(server.url + "/health") as session:
            for _ in range(20):  # datagrams may be lost: ask until answered
                await session.datagrams.send(b"ping")
                try:
                    answer = await session.datagrams.receive_json(timeout=0.5)
                    break
                except TimeoutError:
                    continue
            assert answer == {"status": "healthy", "session": answer["session"]}


async def test_bad_path_raises_client_error(server: App) -> None:
    async with WebTransportClient.create(config=config()) as client:
        failed: list[Event] = []
        client.on(EventType.CONNECTION_FAILED, failed.append)
        with pytest.raises(ClientError):
            await client.connect(server.url + "/no-such-path")
        assert failed and failed[0].data["url"].endswith("/no-such-path")
        assert client.stats["connections"]["failed"] == 1


async def test_server_side_abort(server: App) -> None:
    async with WebTransportClient.create(config=config()) as client:
        session = await client.connect(server.url + "/abort")
        closed: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        session.once(EventType.SESSION_CLOSED, closed.set_result)
        await asyncio.wait_for(session.wait_closed(), 10)
        event = await asyncio.wait_for(closed, 5)
        assert event.data == {"session_id": session.session_id, "code": 4000, "reason": "server abort"}
        assert session.close_code == 4000 and session.closed_by_peer


async def test_early_close_by_client(server: App) -> None:
    async with WebTransportClient.create(config=config()) as client:
        session = await client.connect(server.url + "/echo")
        stream = await session.create_bidirectional_stream()
        await stream.write(b"partial")
        await session.close(code=7, reason="bye early")
    closed = await asyncio.wait_for(server.closed.get(), 10)
    assert closed["code"] == 7 and closed["reason"] == "bye early"


async def test_session_not_ready_in_time_is_client_error(certs: CertSet) -> None:
    server = WebTransportServer(ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))
    requests: list[Event] = []
    server.on(EventType.SESSION_REQUEST, requests.append)  # listens, never accepts
    await server.listen(host="127.0.0.1", port=0)
    try:
        assert server.local_address is not None
        async with WebTransportClient.create(config=config()) as client:
            with pytest.raises(ClientError, match="not ready"):
                await client.connect(f"https://127.0.0.1:{server.local_address[1]}/", timeout=1.0)
        assert requests
    finally:
        await server.close()


async def test_connection_timeout_is_timeout_error() -> None:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # swallows the handshake
    sink.bind(("127.0.0.1", 0))
    try:
        async with WebTransportClient.create(config=config()) as client:
            timeouts: list[Event] = []
            client.on(EventType.TIMEOUT_ERROR, timeouts.append)
            with pytest.raises(TimeoutError):
                await client.connect(f"https://127.0.0.1:{sink.getsockname()[1]}/", timeout=0.5)
            assert timeouts and timeouts[0].data["operation"] == "connect"
    finally:
        sink.close()


async def test_nothing_is_built_while_nobody_listens(server: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """Emit sites check a flag first: without listeners no Event (and no emitter state) exists."""
    import pywebtransport.events as events_module

    built: list[Any] = []
    original = events_module.Event.__init__

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        built.append(kwargs.get("type", args[0] if args else None))
        original(self, *args, **kwargs)

    async with WebTransportClient.create(config=config()) as client:
        session = await client.connect(server.url + "/echo")
        monkeypatch.setattr(events_module.Event, "__init__", counting_init)
        streams = [await session.create_bidirectional_stream() for _ in range(3)]
        for stream in streams:
            await stream.write_all(b"x" * 200_000)
            assert len(await stream.read_all()) == 200_000
        for _ in range(10):
            await session.datagrams.send(b"d")
        await asyncio.sleep(0.2)
        assert built == []
        for obj in (session, session.datagrams, *streams):  # per-connection objects carry no emitter state
            assert "_ee_handlers" not in obj.__dict__, type(obj).__name__
        await session.close()


async def test_structured_datagrams_and_heartbeat(server: App) -> None:
    async with WebTransportClient.create(config=config()) as client:
        async with await client.connect(server.url + "/echo") as session:
            datagrams = session.datagrams
            answer = None
            for _ in range(20):  # datagrams may be lost: retry
                await datagrams.send_structured("chat", b"hi there")
                try:
                    answer = await datagrams.receive_structured(timeout=0.5)
                    break
                except TimeoutError:
                    continue
            assert answer == ("chat", b"hi there")
            datagrams.clear_receive_buffer()
            beat = datagrams.start_heartbeat(interval=0.05)
            try:
                echoed = await datagrams.receive(timeout=5)
            finally:
                beat.cancel()
            assert echoed.startswith(b"HEARTBEAT:") and float(echoed.split(b":", 1)[1]) > 0
            assert datagrams.send_sequence == datagrams.datagrams_sent >= 2
            assert datagrams.get_queue_stats()["incoming"]["max_size"] == datagrams.high_water_mark


async def test_diagnostics_of_client_server_and_session(server: App) -> None:
    async with WebTransportClient.create(config=config()) as client:
        session = await client.connect(server.url + "/")
        state = client.debug_state()
        assert state["statistics"]["connections"]["successful"] == 1 and len(state["connections"]) == 1
        assert client.diagnose_issues() == [] and session.diagnose_issues() == []
        health = await session.monitor_health()
        assert health["healthy"] and health["streams_created"] == 0
        server_state = server.app.server.debug_state()
        assert server_state["server"]["serving"] and server_state["statistics"]["sessions_requested"] >= 1
        assert server.app.server.diagnose_issues() == []
        await session.close()
        assert session.diagnose_issues()[0].startswith("session is closed")


async def test_protocol_error_is_counted_and_emitted(server: App, certs: CertSet) -> None:
    from pywebtransport.quic import QuicConfiguration, connect

    errors: list[Event] = []
    server.app.server.on(EventType.PROTOCOL_ERROR, errors.append)
    port = int(server.url.rsplit(":", 1)[1])
    raw = await connect(
        "127.0.0.1", port, QuicConfiguration(is_client=True, alpn_protocols=["h3"], cafile=str(certs.ca_cert)),
        server_name="localhost",
    )
    control = await raw.open_uni_stream()
    await control.write(b"\x00\x04\x00" + b"\x00\x03abc")  # DATA on the control stream
    await asyncio.wait_for(raw.wait_closed(), 10)
    for _ in range(100):
        if errors:
            break
        await asyncio.sleep(0.02)
    assert errors and errors[0].data["error_code"] == 0x105  # H3_FRAME_UNEXPECTED
    assert server.app.server.get_server_stats()["protocol_errors"] == 1


async def test_stream_close_reset_drain_and_capsule_events(certs: CertSet) -> None:
    app = ServerApp(config=ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))

    @app.route("/reset")
    async def reset(session: WebTransportSession) -> None:
        async for stream in session.incoming_streams():
            if isinstance(stream, WebTransportStream):
                await stream.read(5)
                stream.abort(9)
        await session.wait_closed()

    events: list[Event] = []
    async with app:
        await app.server.listen(host="127.0.0.1", port=0)
        assert app.server.local_address is not None
        url = f"https://127.0.0.1:{app.server.local_address[1]}/reset"
        async with WebTransportClient.create(config=config()) as client:
            session = await client.connect(url)
            session.on_any(events.append)
            stream = await session.create_bidirectional_stream()
            stream.on(EventType.STREAM_ERROR, events.append)
            stream.on(EventType.STREAM_CLOSED, events.append)
            await stream.write(b"hello")
            with pytest.raises(StreamError):
                await asyncio.wait_for(stream.read_all(), 10)
            for _ in range(100):
                if EventType.STREAM_CLOSED in [e.type for e in events]:
                    break
                await asyncio.sleep(0.02)
            drain = asyncio.ensure_future(app.shutdown(timeout=1.0))  # GOAWAY + DRAIN, then close
            await asyncio.wait_for(session.wait_closed(), 10)
            await drain
    kinds = [e.type for e in events]
    assert EventType.STREAM_OPENED in kinds and EventType.STREAM_ERROR in kinds and EventType.STREAM_CLOSED in kinds
    assert EventType.SESSION_DRAINING in kinds and EventType.SESSION_CLOSED in kinds
    capsules = [e.data["capsule_type"] for e in events if e.type == EventType.CAPSULE_RECEIVED]
    assert "drain_webtransport_session" in capsules and "close_webtransport_session" in capsules
    error = next(e for e in events if e.type == EventType.STREAM_ERROR)
    assert error.data["stream_id"] == stream.stream_id


async def test_session_credit_events_with_flow_control(certs: CertSet) -> None:
    limits: dict[str, Any] = {
        "webtransport_flow_control": True,
        "initial_max_data": 64 * 1024,
        "initial_max_streams_bidi": 2,
        "initial_max_streams_uni": 2,
        "flow_control_window_size": 64 * 1024,
    }
    app = ServerApp(config=ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key), **limits))

    @app.route("/sink")
    async def sink(session: WebTransportSession) -> None:
        async for stream in session.incoming_streams():
            if isinstance(stream, WebTransportStream):
                await stream.write_all(str(len(await stream.read_all())).encode())

    events: list[Event] = []
    async with app:
        await app.server.listen(host="127.0.0.1", port=0)
        assert app.server.local_address is not None
        url = f"https://127.0.0.1:{app.server.local_address[1]}/sink"
        async with WebTransportClient.create(config=ClientConfig.create(verify_mode=ssl.CERT_NONE, **limits)) as client:
            session = await client.connect(url)
            session.on(EventType.SESSION_MAX_DATA_UPDATED, events.append)
            session.on(EventType.SESSION_MAX_STREAMS_BIDI_UPDATED, events.append)
            for _ in range(4):  # more streams than the initial limit of 2, more data than 64 KiB
                stream = await session.create_bidirectional_stream(timeout=10)
                await stream.write_all(b"z" * 100_000)
                assert await asyncio.wait_for(stream.read_all(), 10) == b"100000"
            await session.close()
    data_updates = [e.data["max_data"] for e in events if e.type == EventType.SESSION_MAX_DATA_UPDATED]
    assert data_updates and data_updates == sorted(data_updates) and data_updates[-1] > 64 * 1024
    assert any(e.type == EventType.SESSION_MAX_STREAMS_BIDI_UPDATED for e in events)


async def test_connection_closed_and_lost_events(server: App) -> None:
    server_side: list[Event] = []
    server.app.server.on(EventType.CONNECTION_LOST, server_side.append)
    server.app.server.on(EventType.CONNECTION_CLOSED, server_side.append)
    client_side: list[Event] = []
    async with WebTransportClient.create(config=config()) as client:
        client.on(EventType.CONNECTION_CLOSED, client_side.append)
        client.on(EventType.CONNECTION_LOST, client_side.append)
        session = await client.connect(server.url + "/")
        await session.close()  # the client then closes its connection gracefully
        for _ in range(200):
            if client_side and len(server_side) >= 2:
                break
            await asyncio.sleep(0.02)
    assert [e.type for e in client_side] == [EventType.CONNECTION_CLOSED]  # closed by us: not "lost"
    assert [e.type for e in server_side] == [EventType.CONNECTION_LOST, EventType.CONNECTION_CLOSED]
    assert server_side[0].data["connection_id"] == server_side[1].data["connection_id"]
