"""TLS session resumption and 0-RTT at the QUIC layer (real msquic over loopback)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from certs import CertSet
from pywebtransport.quic import ConfigError, QuicConfiguration, QuicConnection, connect, serve

pytestmark = pytest.mark.timeout(60)
ALPN = ["pwt-resume"]


def configs(certs: CertSet, **kw: Any) -> tuple[QuicConfiguration, QuicConfiguration]:
    server = QuicConfiguration(
        is_client=False, certfile=str(certs.cert), keyfile=str(certs.key), alpn_protocols=ALPN, **kw
    )
    client = QuicConfiguration(is_client=True, alpn_protocols=ALPN, cafile=str(certs.ca_cert), **kw)
    return server, client


async def echo(conn: QuicConnection) -> None:
    try:
        while True:
            stream = await conn.accept_stream()
            await stream.write(await stream.read_all(), fin=True)
    except Exception:
        pass


async def roundtrip(conn: QuicConnection, payload: bytes) -> bytes:
    stream = await conn.open_bidi_stream()
    await stream.write(payload, fin=True)
    return await asyncio.wait_for(stream.read_all(), 10)


async def test_second_connection_resumes(certs: CertSet) -> None:
    server_cfg, client_cfg = configs(certs, session_resumption=True)
    listener = await serve("127.0.0.1", 0, server_cfg, echo)
    resumed = []
    certificates = []
    for i in range(3):
        conn = await connect("127.0.0.1", listener.port, client_cfg, server_name="localhost")
        assert await roundtrip(conn, b"r%d" % i) == b"r%d" % i
        await asyncio.sleep(0.05)  # the ticket arrives after the handshake
        resumed.append(conn.session_resumed)
        certificates.append(conn.peer_certificate)
        await conn.aclose()
    await listener.aclose()
    assert resumed == [False, True, True]
    # The verified certificate is still reported on resumed connections.
    assert certificates[0] is not None and certificates[1:] == [certificates[0]] * 2


async def test_without_resumption_nothing_resumes(certs: CertSet) -> None:
    server_cfg, client_cfg = configs(certs)
    listener = await serve("127.0.0.1", 0, server_cfg, echo)
    for _ in range(2):
        conn = await connect("127.0.0.1", listener.port, client_cfg, server_name="localhost")
        await asyncio.sleep(0.05)
        assert not conn.session_resumed
        await conn.aclose()
    await listener.aclose()


async def test_zero_rtt_data_is_delivered(certs: CertSet) -> None:
    server_cfg, client_cfg = configs(certs, session_resumption=True, early_data=True)
    listener = await serve("127.0.0.1", 0, server_cfg, echo)
    first = await connect("127.0.0.1", listener.port, client_cfg, server_name="localhost")
    assert await roundtrip(first, b"hello") == b"hello"
    await asyncio.sleep(0.05)
    await first.aclose()
    early = await connect(
        "127.0.0.1", listener.port, client_cfg, server_name="localhost", early_data=True
    )
    assert not early.is_connected  # returned before the handshake finished
    assert await roundtrip(early, b"early" * 100) == b"early" * 100
    await early.wait_connected()
    assert early.session_resumed
    await early.aclose()
    await listener.aclose()


def test_early_data_needs_resumption() -> None:
    with pytest.raises(ConfigError):
        QuicConfiguration(is_client=True, early_data=True)


async def test_servers_requesting_client_certificates_issue_no_tickets(certs: CertSet) -> None:
    """A resumed handshake has no client certificate: such servers must not resume."""
    server_cfg, client_cfg = configs(certs, session_resumption=True)
    server_cfg.request_client_certificate = True
    listener = await serve("127.0.0.1", 0, server_cfg, echo)
    for _ in range(2):
        conn = await connect("127.0.0.1", listener.port, client_cfg, server_name="localhost")
        assert await roundtrip(conn, b"m") == b"m"
        await asyncio.sleep(0.05)
        assert not conn.session_resumed
        await conn.aclose()
    await listener.aclose()


async def test_a_client_without_resumption_gets_no_ticket_records(
    certs: CertSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that issues tickets costs a client that keeps none no record (and no
    loop wake-up); a client that resumes gets them."""
    from pywebtransport._native import lib
    from pywebtransport.quic.connection import QuicConnection as Conn

    tickets: list[bool] = []
    on_event = Conn._on_event

    def counting(self: Any, ev: Any) -> None:
        if int(ev.type) == lib.PWT_EV_CONN_RESUMPTION_TICKET:
            tickets.append(self._ticket_key is not None)
        on_event(self, ev)

    monkeypatch.setattr(Conn, "_on_event", counting)
    server_cfg, resuming = configs(certs, session_resumption=True)
    _, plain = configs(certs)
    listener = await serve("127.0.0.1", 0, server_cfg, echo)
    try:
        for client_cfg in (plain, plain, resuming):
            conn = await connect("127.0.0.1", listener.port, client_cfg, server_name="localhost")
            assert await roundtrip(conn, b"t") == b"t"
            await asyncio.sleep(0.05)  # the ticket arrives after the handshake
            await conn.aclose()
    finally:
        await listener.aclose()
    assert tickets and all(tickets)  # only the resuming client's connection got any


async def test_sessions_resume_with_the_public_configs(certs: CertSet) -> None:
    """ServerConfig / ClientConfig(session_resumption=True): a client that asks for it resumes
    from its second session on; one with the default (off) never does, against the same server."""
    from pywebtransport import ClientConfig, ServerApp, ServerConfig, WebTransportClient, WebTransportSession

    async def until_closed(session: WebTransportSession) -> None:
        await session.wait_closed()

    app = ServerApp(config=ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key), session_resumption=True))
    app.route("/")(until_closed)
    async with app:
        await app.server.listen(host="127.0.0.1", port=0)
        assert app.server.local_address is not None
        url = f"https://localhost:{app.server.local_address[1]}/"
        seen: dict[bool, list[bool]] = {}
        for enabled in (True, False):
            config = ClientConfig.create(ca_certs=str(certs.ca_cert), session_resumption=enabled)
            async with WebTransportClient(config) as client:
                for _ in range(3):
                    session = await client.connect(url)
                    seen.setdefault(enabled, []).append(session.connection.quic.session_resumed)
                    await session.close()
        assert seen == {True: [False, True, True], False: [False, False, False]}
