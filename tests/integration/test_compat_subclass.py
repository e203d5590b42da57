"""Applications may subclass ServerApp, WebTransportServer and WebTransportClient with
methods named like our internals used to be, and everything still routes."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest

from certs import CertSet
from pywebtransport import (
    ClientConfig,
    Event,
    EventType,
    ServerApp,
    ServerConfig,
    WebTransportClient,
    WebTransportSession,
    WebTransportStream,
)
from pywebtransport.server import WebTransportServer

pytestmark = pytest.mark.timeout(60)


class MyApp(ServerApp):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen: list[str] = []
        self._config = "app's own"  # names our internals used to have
        self._server = "app's own"
        self._tasks: list[str] = []
        self.server.on(EventType.SESSION_REQUEST, self._on_session_request)
        self.server.on(EventType.CONNECTION_ESTABLISHED, self._on_connection_established)

    async def _on_session_request(self, event: Event) -> None:
        self.seen.append("request " + event.data["path"])

    def _on_connection_established(self, event: Event) -> None:
        self.seen.append("connection")

    async def _handle(self, session: WebTransportSession) -> None:
        raise AssertionError("the library must not call the app's _handle")

    def _answer(self, *args: Any) -> None:
        raise AssertionError("the library must not call the app's _answer")


class MyServer(WebTransportServer):
    def on_session_request(self, session: WebTransportSession) -> None:
        raise AssertionError("the library must not call the server subclass's on_session_request")

    def _on_session_request(self, session: WebTransportSession) -> None:
        raise AssertionError("the library must not call the server subclass's _on_session_request")

    async def _on_connection(self, quic: Any) -> None:
        raise AssertionError("the library must not call the server subclass's _on_connection")

    def _handle_connection(self, *args: Any) -> None:
        raise AssertionError("not ours")


class MyClient(WebTransportClient):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._stats = "client's own"
        self._connections = "client's own"

    async def _connect(self, *args: Any) -> None:
        raise AssertionError("the library must not call the client subclass's _connect")

    def _on_connection_established(self, event: Event) -> None:
        raise AssertionError("not ours")

    def _handle_error(self, *args: Any) -> None:
        raise AssertionError("not ours")


def client() -> MyClient:
    return MyClient(config=ClientConfig.create(verify_mode=ssl.CERT_NONE, connect_timeout=10.0))


async def test_server_app_subclass_still_routes(certs: CertSet) -> None:
    app = MyApp(config=ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))

    @app.route("/echo")
    async def echo(session: WebTransportSession) -> None:
        async for stream in session.incoming_streams():
            if isinstance(stream, WebTransportStream):
                await stream.write_all(await stream.read_all())

    async with app:
        await app.server.listen(host="127.0.0.1", port=0)
        assert app.server.local_address is not None
        async with client() as c:
            session = await c.connect(f"https://127.0.0.1:{app.server.local_address[1]}/echo")
            stream = await session.create_bidirectional_stream()
            await stream.write_all(b"routed")
            assert await stream.read_all() == b"routed"
            assert c.stats["connections"]["successful"] == 1
        for _ in range(50):
            if len(app.seen) >= 2:
                break
            await asyncio.sleep(0.02)
        assert sorted(app.seen) == ["connection", "request /echo"]


async def test_server_subclass_with_event_listener_accepts(certs: CertSet) -> None:
    server = MyServer(ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))

    def accept(event: Event) -> None:
        event.data["session"].accept()

    server.on(EventType.SESSION_REQUEST, accept)
    await server.listen(host="127.0.0.1", port=0)
    try:
        assert server.local_address is not None
        async with client() as c:
            session = await c.connect(f"https://127.0.0.1:{server.local_address[1]}/any")
            assert session.is_ready
            await session.close()
        assert server.get_server_stats()["sessions_requested"] == 1
    finally:
        await server.close()
