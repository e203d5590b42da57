"""Interop with real aioquic 1.7.2 peers (draft-02 WebTransport over HTTP/3) on loopback UDP.

aioquic's H3Connection only frames WebTransport streams; the application drives everything else.
Notes on aioquic's API that shape these helpers:

* Replies on a *locally* opened WT bidi stream carry no 0x41 prefix, but aioquic's H3 layer would
  parse them as HTTP/3 frames, so QUIC ``StreamDataReceived`` for such streams bypasses H3 here.
* Capsules on the CONNECT stream arrive as raw ``DataReceived`` (aioquic neither sends nor parses
  CLOSE_WEBTRANSPORT_SESSION), so the tests parse them.
* ``H3Connection.send_datagram(stream_id, data)`` takes the session (CONNECT stream) id and adds the
  quarter-stream-id prefix itself; received datagrams come back as ``DatagramReceived(stream_id=session_id)``.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import aioquic
import pytest
from aioquic._buffer import Buffer
from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import (
    DatagramReceived,
    DataReceived,
    H3Event,
    HeadersReceived,
    WebTransportStreamDataReceived,
)
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamDataReceived

from interop_matrix import InteropHandle
from certs import CertSet
from pywebtransport import (
    ClientConfig,
    ServerApp,
    ServerConfig,
    WebTransportClient,
    WebTransportSession,
    WebTransportStream,
)

pytestmark = pytest.mark.timeout(30)

STEP = 10.0  # per-await bound (the whole test is bounded by the 30 s pytest timeout)
CLOSE_WEBTRANSPORT_SESSION = 0x2843


def parse_capsules(data: bytes) -> list[tuple[int, bytes]]:
    buf = Buffer(data=data)
    out = []
    while not buf.eof():
        ctype = buf.pull_uint_var()
        length = buf.pull_uint_var()
        out.append((ctype, buf.pull_bytes(length)))
    return out


def parse_close(value: bytes) -> tuple[int, str]:
    (code,) = struct.unpack("!I", value[:4])
    return code, value[4:].decode("utf-8")


class H3Peer(QuicConnectionProtocol):
    """An aioquic QUIC connection driving H3Connection(enable_webtransport=True); records every event."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic, enable_webtransport=True)
        self.events: list[Any] = []
        self.changed = asyncio.Event()
        self.raw_streams: set[int] = set()  # locally opened WT bidi streams: bypass H3 parsing
        self.raw_data: dict[int, bytearray] = {}
        self.raw_ended: set[int] = set()
        self.terminated: ConnectionTerminated | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
        if isinstance(event, StreamDataReceived) and event.stream_id in self.raw_streams:
            self.raw_data.setdefault(event.stream_id, bytearray()).extend(event.data)
            if event.end_stream:
                self.raw_ended.add(event.stream_id)
        else:
            for h3_event in self.h3.handle_event(event):
                self.events.append(h3_event)
                self.h3_event_received(h3_event)
        self.changed.set()

    def h3_event_received(self, event: H3Event) -> None:
        pass

    async def until(self, predicate: Callable[[], Any], timeout: float = STEP) -> Any:
        async def loop() -> Any:
            while True:
                result = predicate()
                if result:
                    return result
                if self.terminated is not None:
                    raise AssertionError(f"QUIC connection terminated: {self.terminated}")
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(loop(), timeout)

    def stream_bytes(self, stream_id: int) -> tuple[bytes, bool]:
        """Concatenated payload of WT / DATA events seen on stream_id, and whether it ended."""
        data = b""
        ended = False
        for ev in self.events:
            if isinstance(ev, (WebTransportStreamDataReceived, DataReceived)) and ev.stream_id == stream_id:
                data += ev.data
                ended = ended or ev.stream_ended
        return data, ended

    async def read_all(self, stream_id: int) -> bytes:
        if stream_id in self.raw_streams:
            await self.until(lambda: stream_id in self.raw_ended)
            return bytes(self.raw_data.get(stream_id, b""))
        await self.until(lambda: self.stream_bytes(stream_id)[1])
        return self.stream_bytes(stream_id)[0]


# --------------------------------------------------------------------------------------------
# 1. aioquic as the WebTransport CLIENT, our ServerApp as the server
# --------------------------------------------------------------------------------------------


class AioquicWTClient(H3Peer):
    async def open_session(self, authority: str, path: str) -> tuple[int, list[tuple[bytes, bytes]]]:
        # Clients must not send the CONNECT before the server's SETTINGS arrived.
        await self.until(lambda: self.h3.received_settings is not None)
        session_id = self._quic.get_next_available_stream_id()
        self.h3.send_headers(
            session_id,
            [
                (b":method", b"CONNECT"),
                (b":protocol", b"webtransport"),
                (b":scheme", b"https"),
                (b":authority", authority.encode()),
                (b":path", path.encode()),
                (b"sec-webtransport-http3-draft02", b"1"),
                (b"origin", f"https://{authority}".encode()),
            ],
            end_stream=False,
        )
        self.transmit()
        headers = await self.until(
            lambda: next(
                (e.headers for e in self.events if isinstance(e, HeadersReceived) and e.stream_id == session_id),
                None,
            )
        )
        return session_id, headers

    def open_bidi(self, session_id: int) -> int:
        stream_id = self.h3.create_webtransport_stream(session_id)
        self.raw_streams.add(stream_id)
        return stream_id

    def open_uni(self, session_id: int) -> int:
        return self.h3.create_webtransport_stream(session_id, is_unidirectional=True)

    def send(self, stream_id: int, data: bytes, end_stream: bool = True) -> None:
        self._quic.send_stream_data(stream_id, data, end_stream=end_stream)
        self.transmit()


class OurServer:
    def __init__(self, app: ServerApp, port: int) -> None:
        self.app = app
        self.port = port
        self.events: asyncio.Queue[Any] = asyncio.Queue()


@pytest.fixture
async def our_server(certs: CertSet) -> AsyncIterator[OurServer]:
    app = ServerApp(config=ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))
    holder: dict[str, OurServer] = {}

    @app.route("/echo")
    async def echo(session: WebTransportSession) -> None:
        async def datagrams() -> None:
            while True:
                data = await session.datagrams.receive()
                await session.datagrams.send(b"ECHO: " + data)

        async def streams() -> None:
            async for stream in session.incoming_streams():
                if isinstance(stream, WebTransportStream):
                    data = await stream.read_all()
                    await stream.write_all(b"ECHO: " + data)
                else:
                    data = await stream.read_all()
                    await holder["s"].events.put(("uni", data))
                    out = await session.create_unidirectional_stream()
                    await out.write_all(b"UNI: " + data)

        tasks = [asyncio.ensure_future(datagrams()), asyncio.ensure_future(streams())]
        try:
            await session.wait_closed()
            await holder["s"].events.put(("closed", session.close_code, session.close_reason, session.closed_by_peer))
        finally:
            for t in tasks:
                t.cancel()

    @app.route("/push")
    async def push(session: WebTransportSession) -> None:
        stream = await session.create_bidirectional_stream()
        await stream.write_all(b"server-initiated")
        await holder["s"].events.put(("push-answer", await stream.read_all()))
        await session.wait_closed()

    @app.route("/bye")
    async def bye(session: WebTransportSession) -> None:
        await session.close(4242, "server says bye")

    async with app:
        await app.server.listen(host="127.0.0.1", port=0)
        assert app.server.local_address is not None
        holder["s"] = OurServer(app, app.server.local_address[1])
        yield holder["s"]


def aioquic_client_config(certs: CertSet, verify: bool = True) -> QuicConfiguration:
    config = QuicConfiguration(alpn_protocols=H3_ALPN, is_client=True, max_datagram_frame_size=65536)
    if verify:
        config.load_verify_locations(cafile=str(certs.ca_cert))
        config.server_name = "localhost"
    else:
        config.verify_mode = ssl.CERT_NONE
    return config


def status_of(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    return dict(headers).get(b":status")


@pytest.mark.interop("aioquic", "aioquic client → our server", "session", "bidi", "uni", "datagrams")
async def test_aioquic_client_session_streams_and_datagrams(certs: CertSet, our_server: OurServer, interop: InteropHandle) -> None:
    interop.version(aioquic.__version__)
    async def body() -> None:
        async with connect(
            "127.0.0.1",
            our_server.port,
            configuration=aioquic_client_config(certs),
            create_protocol=AioquicWTClient,
        ) as client:
            assert isinstance(client, AioquicWTClient)
            authority = f"localhost:{our_server.port}"
            session_id, headers = await client.open_session(authority, "/echo")
            assert status_of(headers) == b"200", headers

            # our SETTINGS as aioquic parsed them (draft-02 requirements)
            settings = client.h3.received_settings
            assert settings is not None
            assert settings.get(0x2B603742) == 1, settings  # SETTINGS_ENABLE_WEBTRANSPORT
            assert settings.get(0x33) == 1, settings  # SETTINGS_H3_DATAGRAM

            # bidi stream echo
            bidi = client.open_bidi(session_id)
            client.send(bidi, b"Hello from aioquic")
            assert await client.read_all(bidi) == b"ECHO: Hello from aioquic"

            # several bidi streams concurrently, one large
            ids = [client.open_bidi(session_id) for _ in range(5)]
            for i, sid in enumerate(ids):
                client.send(sid, bytes([65 + i]) * (1000 * (i + 1)))
            big = client.open_bidi(session_id)
            client.send(big, b"x" * 300_000)
            for i, sid in enumerate(ids):
                assert await client.read_all(sid) == b"ECHO: " + bytes([65 + i]) * (1000 * (i + 1))
            assert await client.read_all(big) == b"ECHO: " + b"x" * 300_000

            # uni stream to server; server answers on its own uni stream (0x54 + session id)
            uni = client.open_uni(session_id)
            client.send(uni, b"one-way")
            assert await asyncio.wait_for(our_server.events.get(), STEP) == ("uni", b"one-way")

            def server_uni() -> bytes | None:
                for ev in client.events:
                    if (
                        isinstance(ev, WebTransportStreamDataReceived)
                        and ev.session_id == session_id
                        and ev.stream_id % 4 == 3  # server-initiated unidirectional
                    ):
                        data, ended = client.stream_bytes(ev.stream_id)
                        if ended:
                            return data
                return None

            assert await client.until(server_uni) == b"UNI: one-way"

            # datagram echo (quarter stream id prefix handled by aioquic)
            client.h3.send_datagram(session_id, b"dgram-1")
            client.transmit()
            dgram = await client.until(
                lambda: next((e for e in client.events if isinstance(e, DatagramReceived)), None)
            )
            assert dgram.stream_id == session_id
            assert dgram.data == b"ECHO: dgram-1"

            # aioquic closes the session: CLOSE capsule in a DATA frame + FIN on the CONNECT stream
            capsule = Buffer(capacity=64)
            capsule.push_uint_var(CLOSE_WEBTRANSPORT_SESSION)
            reason = "aioquic done".encode()
            capsule.push_uint_var(4 + len(reason))
            capsule.push_bytes(struct.pack("!I", 99) + reason)
            client.h3.send_data(session_id, capsule.data, end_stream=True)
            client.transmit()
            assert await asyncio.wait_for(our_server.events.get(), STEP) == ("closed", 99, "aioquic done", True)
            # our side answers by finishing its half of the CONNECT stream
            await client.read_all(session_id)
            assert client.terminated is None, client.terminated

    await asyncio.wait_for(body(), 25)


@pytest.mark.interop("aioquic", "aioquic client → our server", "close")
async def test_aioquic_client_sees_server_close_capsule(certs: CertSet, our_server: OurServer, interop: InteropHandle) -> None:
    interop.version(aioquic.__version__)
    async def body() -> None:
        async with connect(
            "127.0.0.1",
            our_server.port,
            configuration=aioquic_client_config(certs, verify=False),
            create_protocol=AioquicWTClient,
        ) as client:
            assert isinstance(client, AioquicWTClient)
            session_id, headers = await client.open_session(f"127.0.0.1:{our_server.port}", "/bye")
            assert status_of(headers) == b"200", headers
            data = await client.read_all(session_id)  # waits for FIN on the CONNECT stream
            capsules = parse_capsules(data)
            closes = [v for t, v in capsules if t == CLOSE_WEBTRANSPORT_SESSION]
            assert len(closes) == 1, capsules
            assert parse_close(closes[0]) == (4242, "server says bye")
            assert capsules[-1][0] == CLOSE_WEBTRANSPORT_SESSION, "nothing may follow the CLOSE capsule"
            assert client.terminated is None, client.terminated

    await asyncio.wait_for(body(), 25)


@pytest.mark.interop("aioquic", "aioquic client → our server", "session")
async def test_aioquic_client_unknown_path_gets_404(certs: CertSet, our_server: OurServer, interop: InteropHandle) -> None:
    interop.version(aioquic.__version__)
    async def body() -> None:
        async with connect(
            "127.0.0.1",
            our_server.port,
            configuration=aioquic_client_config(certs),
            create_protocol=AioquicWTClient,
        ) as client:
            assert isinstance(client, AioquicWTClient)
            session_id, headers = await client.open_session(f"localhost:{our_server.port}", "/nowhere")
            assert status_of(headers) == b"404", headers
            # the connection stays usable: a second CONNECT on the same connection succeeds
            session2, headers2 = await client.open_session(f"localhost:{our_server.port}", "/echo")
            assert status_of(headers2) == b"200", headers2
            assert session2 != session_id

    await asyncio.wait_for(body(), 25)


@pytest.mark.interop("aioquic", "aioquic client → our server", "session")
async def test_aioquic_plain_get_is_answered_404(certs: CertSet, our_server: OurServer, interop: InteropHandle) -> None:
    interop.version(aioquic.__version__)
    async def body() -> None:
        async with connect(
            "127.0.0.1",
            our_server.port,
            configuration=aioquic_client_config(certs),
            create_protocol=AioquicWTClient,
        ) as client:
            assert isinstance(client, AioquicWTClient)
            stream_id = client._quic.get_next_available_stream_id()
            client.h3.send_headers(
                stream_id,
                [(b":method", b"GET"), (b":scheme", b"https"),
                 (b":authority", f"localhost:{our_server.port}".encode()), (b":path", b"/index.html")],
                end_stream=True,
            )
            client.transmit()

            def response() -> list[tuple[bytes, bytes]] | None:
                for ev in client.events:
                    if isinstance(ev, HeadersReceived) and ev.stream_id == stream_id:
                        return list(ev.headers)
                return None

            headers = await client.until(response)
            assert status_of(headers) == b"404", headers

    await asyncio.wait_for(body(), 25)


# --------------------------------------------------------------------------------------------
# 2. aioquic as the WebTransport SERVER, our WebTransportClient as the client
# --------------------------------------------------------------------------------------------


class AioquicWTServer(H3Peer):
    """Accepts CONNECT :protocol webtransport with 200 (+ draft02 header); echoes bidi streams and datagrams."""

    log: asyncio.Queue[Any]  # set per test on the subclass

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: set[int] = set()
        self.bidi_buffers: dict[int, bytearray] = {}
        self.connect_stream_data: dict[int, bytearray] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        super().quic_event_received(event)
        if isinstance(event, StreamDataReceived) and event.stream_id in self.raw_streams and event.end_stream:
            self.log.put_nowait(("raw-stream", event.stream_id, bytes(self.raw_data.get(event.stream_id, b""))))

    def h3_event_received(self, event: H3Event) -> None:
        if isinstance(event, HeadersReceived):
            headers = dict(event.headers)
            self.log.put_nowait(("headers", event.stream_id, event.headers))
            if headers.get(b":method") == b"CONNECT" and headers.get(b":protocol") == b"webtransport":
                self.sessions.add(event.stream_id)
                self.h3.send_headers(
                    event.stream_id,
                    [(b":status", b"200"), (b"sec-webtransport-http3-draft", b"draft02")],
                )
            else:
                self.h3.send_headers(event.stream_id, [(b":status", b"400")], end_stream=True)
        elif isinstance(event, WebTransportStreamDataReceived):
            buf = self.bidi_buffers.setdefault(event.stream_id, bytearray())
            buf.extend(event.data)
            if event.stream_ended:
                self.log.put_nowait(("stream", event.session_id, event.stream_id, bytes(buf)))
                if event.stream_id % 4 == 0:  # client-initiated bidi: echo on the same stream, raw
                    self._quic.send_stream_data(event.stream_id, b"ECHO: " + bytes(buf), end_stream=True)
                if bytes(buf) == b"push please":  # open server-initiated bidi + uni streams
                    bidi = self.h3.create_webtransport_stream(event.session_id)
                    self.raw_streams.add(bidi)
                    self._quic.send_stream_data(bidi, b"aioquic bidi", end_stream=True)
                    uni = self.h3.create_webtransport_stream(event.session_id, is_unidirectional=True)
                    self._quic.send_stream_data(uni, b"aioquic uni", end_stream=True)
                    self.log.put_nowait(("pushed", bidi, uni))
        elif isinstance(event, DatagramReceived):
            self.log.put_nowait(("datagram", event.stream_id, event.data))
            self.h3.send_datagram(event.stream_id, b"ECHO: " + event.data)
        elif isinstance(event, DataReceived) and event.stream_id in self.sessions:
            buf = self.connect_stream_data.setdefault(event.stream_id, bytearray())
            buf.extend(event.data)
            if event.stream_ended:
                self.log.put_nowait(("connect-stream-end", event.stream_id, bytes(buf)))
                # answer with our own FIN, as a peer should after a CLOSE capsule
                self.h3.send_data(event.stream_id, b"", end_stream=True)
        self.transmit()


@pytest.fixture
async def aioquic_server(certs: CertSet) -> AsyncIterator[tuple[int, asyncio.Queue[Any]]]:
    log: asyncio.Queue[Any] = asyncio.Queue()
    protocol = type("BoundAioquicWTServer", (AioquicWTServer,), {"log": log})
    config = QuicConfiguration(alpn_protocols=H3_ALPN, is_client=False, max_datagram_frame_size=65536)
    config.load_cert_chain(str(certs.cert), str(certs.key))
    server = await serve("127.0.0.1", 0, configuration=config, create_protocol=protocol)
    try:
        port = server._transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
        yield port, log
    finally:
        server.close()


async def next_of(log: asyncio.Queue[Any], kind: str) -> Any:
    while True:
        item = await asyncio.wait_for(log.get(), STEP)
        if item[0] == kind:
            return item


@pytest.mark.interop("aioquic", "our client → aioquic server", "session", "bidi", "uni", "datagrams", "close")
@pytest.mark.parametrize("verified", [True, False], ids=["ca_certs", "cert_none"])
async def test_our_client_against_aioquic_server(
    certs: CertSet, aioquic_server: tuple[int, asyncio.Queue[Any]], verified: bool, interop: InteropHandle
) -> None:
    interop.version(aioquic.__version__)
    port, log = aioquic_server
    config = (
        ClientConfig.create(ca_certs=str(certs.ca_cert))
        if verified
        else ClientConfig.create(verify_mode=ssl.CERT_NONE)
    )

    async def body() -> None:
        async with WebTransportClient(config) as client:
            session = await client.connect(f"https://localhost:{port}/wt" if verified else f"https://127.0.0.1:{port}/wt")
            _, session_id, req = await next_of(log, "headers")
            req_headers = dict(req)
            assert req_headers[b":method"] == b"CONNECT"
            assert req_headers[b":protocol"] == b"webtransport"
            assert req_headers[b":scheme"] == b"https"
            assert req_headers[b":path"] == b"/wt"
            assert session_id % 4 == 0

            stream = await session.create_bidirectional_stream()
            await stream.write_all(b"Hello, aioquic!")
            assert await asyncio.wait_for(stream.read_all(), STEP) == b"ECHO: Hello, aioquic!"
            item = await next_of(log, "stream")
            assert item[1] == session_id and item[3] == b"Hello, aioquic!"

            await session.datagrams.send(b"Hello, Datagram!")
            assert await session.datagrams.receive(timeout=STEP) == b"ECHO: Hello, Datagram!"
            item = await next_of(log, "datagram")
            assert item[1:] == (session_id, b"Hello, Datagram!")

            await asyncio.wait_for(session.close(code=7, reason="done here"), STEP)
            _, sid, data = await next_of(log, "connect-stream-end")
            assert sid == session_id
            capsules = parse_capsules(data)
            closes = [v for t, v in capsules if t == CLOSE_WEBTRANSPORT_SESSION]
            assert len(closes) == 1, capsules
            assert parse_close(closes[0]) == (7, "done here")
            assert capsules[-1][0] == CLOSE_WEBTRANSPORT_SESSION, "nothing may follow the CLOSE capsule"

    await asyncio.wait_for(body(), 25)


@pytest.mark.interop("aioquic", "aioquic client → our server", "bidi")
async def test_aioquic_client_accepts_server_initiated_bidi(certs: CertSet, our_server: OurServer, interop: InteropHandle) -> None:
    interop.version(aioquic.__version__)
    async def body() -> None:
        async with connect(
            "127.0.0.1",
            our_server.port,
            configuration=aioquic_client_config(certs),
            create_protocol=AioquicWTClient,
        ) as client:
            assert isinstance(client, AioquicWTClient)
            session_id, headers = await client.open_session(f"localhost:{our_server.port}", "/push")
            assert status_of(headers) == b"200", headers

            def pushed() -> int | None:
                for ev in client.events:
                    if isinstance(ev, WebTransportStreamDataReceived) and ev.stream_id % 4 == 1:
                        assert ev.session_id == session_id
                        if client.stream_bytes(ev.stream_id)[1]:
                            return ev.stream_id
                return None

            sid = await client.until(pushed)
            assert client.stream_bytes(sid)[0] == b"server-initiated"
            client.send(sid, b"aioquic answer")
            assert await asyncio.wait_for(our_server.events.get(), STEP) == ("push-answer", b"aioquic answer")

    await asyncio.wait_for(body(), 25)


@pytest.mark.interop("aioquic", "our client → aioquic server", "bidi", "uni")
async def test_our_client_accepts_aioquic_server_streams(
    certs: CertSet, aioquic_server: tuple[int, asyncio.Queue[Any]], interop: InteropHandle
) -> None:
    interop.version(aioquic.__version__)
    port, log = aioquic_server

    async def body() -> None:
        async with WebTransportClient(ClientConfig.create(ca_certs=str(certs.ca_cert))) as client:
            session = await client.connect(f"https://localhost:{port}/wt")
            incoming = session.incoming_streams()
            trigger = await session.create_bidirectional_stream()
            await trigger.write_all(b"push please")
            assert await asyncio.wait_for(trigger.read_all(), STEP) == b"ECHO: push please"
            _, bidi_id, _uni_id = await next_of(log, "pushed")
            got: dict[str, bytes] = {}
            bidi_stream = None
            for _ in range(2):
                stream = await asyncio.wait_for(incoming.__anext__(), STEP)
                data = await asyncio.wait_for(stream.read_all(), STEP)
                if isinstance(stream, WebTransportStream):
                    got["bidi"] = data
                    bidi_stream = stream
                else:
                    got["uni"] = data
            assert got == {"bidi": b"aioquic bidi", "uni": b"aioquic uni"}
            assert bidi_stream is not None
            await bidi_stream.write_all(b"client answer")
            item = await next_of(log, "raw-stream")
            assert item[1:] == (bidi_id, b"client answer")
            await asyncio.wait_for(session.close(), STEP)

    await asyncio.wait_for(body(), 25)


async def test_aioquic_client_certificates_against_our_mtls_server(certs: CertSet, tmp_path: Any) -> None:
    """mTLS with a third-party TLS stack: aioquic presents (or omits) a client certificate."""
    from certs import make_ca

    client_ca, other_ca = make_ca(tmp_path, "client"), make_ca(tmp_path, "other")
    alice = client_ca.issue(tmp_path, "alice", common_name="alice", client=True)
    mallory = other_ca.issue(tmp_path, "mallory", common_name="alice", client=True)
    app = ServerApp(
        config=ServerConfig.create(
            certfile=str(certs.cert),
            keyfile=str(certs.key),
            verify_mode=ssl.CERT_REQUIRED,
            ca_certs=str(client_ca.path),
        )
    )
    seen: list[str | None] = []

    @app.route("/who")
    async def who(session: WebTransportSession) -> None:
        cert = session.peer_certificate
        seen.append(cert.subject if cert else None)
        await session.wait_closed()

    async with app:
        await app.server.listen(host="127.0.0.1", port=0)
        assert app.server.local_address is not None
        port = app.server.local_address[1]

        async def attempt(chain: tuple[Any, Any] | None) -> str:
            config = aioquic_client_config(certs)
            if chain is not None:
                config.load_cert_chain(str(chain[0]), str(chain[1]))
            try:
                async with connect(
                    "127.0.0.1", port, configuration=config, create_protocol=AioquicWTClient
                ) as client:
                    assert isinstance(client, AioquicWTClient)
                    _, headers = await client.open_session(f"localhost:{port}", "/who")
                    return (status_of(headers) or b"").decode()
            except (AssertionError, ConnectionError, asyncio.TimeoutError) as exc:
                return f"failed: {exc}"

        assert await asyncio.wait_for(attempt(alice), 2 * STEP) == "200"
        # CRYPTO_ERROR carrying the TLS alert: unknown_ca (48) and certificate_required (116).
        for chain, code in ((mallory, 0x100 + 48), (None, 0x100 + 116)):
            result = await asyncio.wait_for(attempt(chain), 2 * STEP)
            assert f"ConnectionTerminated(error_code={code}," in result, result
    assert seen == ["CN=alice"]


async def test_our_key_log_holds_the_secrets_aioquic_derived(
    certs: CertSet, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ClientConfig.keylog_file / SSLKEYLOGFILE write the connection's TLS secrets in the NSS
    key log format; aioquic, as the server, logs its own: every line we wrote must be one of
    its lines (same client random, same secrets), so Wireshark can decrypt with ours."""
    log: asyncio.Queue[Any] = asyncio.Queue()
    protocol = type("KeylogAioquicWTServer", (AioquicWTServer,), {"log": log})
    config = QuicConfiguration(alpn_protocols=H3_ALPN, is_client=False, max_datagram_frame_size=65536)
    config.load_cert_chain(str(certs.cert), str(certs.key))
    theirs = tmp_path / "aioquic.keys"
    ours = tmp_path / "ours.keys"
    from_env = tmp_path / "env.keys"
    with open(theirs, "w") as theirs_file:
        config.secrets_log_file = theirs_file
        server = await serve("127.0.0.1", 0, configuration=config, create_protocol=protocol)
        try:
            port = server._transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
            configs = [
                ClientConfig.create(verify_mode=ssl.CERT_NONE, keylog_file=str(ours)),
                ClientConfig.create(verify_mode=ssl.CERT_NONE),
            ]
            monkeypatch.setenv("SSLKEYLOGFILE", str(from_env))
            for client_config in configs:
                async with WebTransportClient(client_config) as client:
                    session = await asyncio.wait_for(client.connect(f"https://127.0.0.1:{port}/wt"), STEP)
                    await asyncio.wait_for(session.close(), STEP)
        finally:
            server.close()
    their_lines = set(theirs.read_text().splitlines())
    for path in (ours, from_env):
        lines = path.read_text().splitlines()
        labels = sorted(line.split()[0] for line in lines)
        assert labels == sorted(
            ["CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
             "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"]
        ), lines
        assert len({line.split()[1] for line in lines}) == 1  # one connection's client random
        assert set(lines) <= their_lines
