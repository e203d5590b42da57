"""Interop with a real wtransport 0.7 (Rust, quinn) peer on loopback UDP, both directions.

The peer is tests/interop/rust (one binary, ``client`` and ``server`` modes, JSON lines on stdout),
built once per source hash by rust_peer.ensure_binary() into ~/.cache/pywebtransport/peers/.

wtransport facts that shape the assertions (see shared/docs/protocol-interop.md §3.4):

* Its client has no API to send CLOSE_WEBTRANSPORT_SESSION: ``Connection::close(code, reason)`` is a
  QUIC CONNECTION_CLOSE (application) carrying that code and reason phrase.  So the close our server
  can see from a wtransport client is a *connection* close, not a session close capsule.
* Its server does parse our CLOSE capsule and reports ``ApplicationClosed(code, reason)`` to the
  application, then closes the whole QUIC connection with H3_NO_ERROR.
* Its CONNECT request has no ``origin`` and no ``sec-webtransport-http3-draft02`` header.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import rust_peer
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

# the first test in a fresh cache pays for the cold cargo build
pytestmark = pytest.mark.timeout(600)

STEP = 15.0


@pytest.fixture(scope="module")
def wt_binary() -> Path:
    return rust_peer.ensure_binary()


# --------------------------------------------------------------------------------------------
# 1. wtransport CLIENT -> our ServerApp
# --------------------------------------------------------------------------------------------


class OurServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.events: asyncio.Queue[Any] = asyncio.Queue()

    async def next_of(self, kind: str, timeout: float = STEP) -> Any:
        async def wait() -> Any:
            while True:
                item = await self.events.get()
                if item[0] == kind:
                    return item

        return await asyncio.wait_for(wait(), timeout)


@pytest.fixture
async def our_server(certs: CertSet) -> AsyncIterator[OurServer]:
    app = ServerApp(config=ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))
    holder: dict[str, OurServer] = {}

    @app.route("/echo")
    async def echo(session: WebTransportSession) -> None:
        server = holder["s"]
        await server.events.put(("session", dict(session.headers)))

        async def datagrams() -> None:
            while True:
                data = await session.datagrams.receive()
                await server.events.put(("datagram", data))
                await session.datagrams.send(data)

        async def streams() -> None:
            async for stream in session.incoming_streams():
                if isinstance(stream, WebTransportStream):
                    data = await stream.read_all()
                    await server.events.put(("bidi", len(data)))
                    await stream.write_all(data)  # verbatim echo (write_all ends the stream)
                else:
                    data = await stream.read_all()
                    await server.events.put(("uni", data))
                    out = await session.create_unidirectional_stream()
                    await out.write_all(b"UNI: " + data)

        tasks = [asyncio.ensure_future(datagrams()), asyncio.ensure_future(streams())]
        try:
            await session.wait_closed()
            quic_reason = session.connection.quic.close_reason
            await server.events.put(
                (
                    "closed",
                    session.close_code,
                    session.close_reason,
                    session.closed_by_peer,
                    None if quic_reason is None else (quic_reason.initiator, quic_reason.error_code),
                )
            )
        finally:
            for t in tasks:
                t.cancel()

    async with app:
        await app.server.listen(host="127.0.0.1", port=0)
        assert app.server.local_address is not None
        holder["s"] = OurServer(app.server.local_address[1])
        yield holder["s"]


@pytest.mark.interop("wtransport", "Rust client → our server", "session", "bidi", "uni", "datagrams", "close")
@pytest.mark.parametrize("verify", ["ca", "insecure"])
async def test_wtransport_client_against_our_server(
    wt_binary: Path, certs: CertSet, our_server: OurServer, verify: str, interop: InteropHandle
) -> None:
    interop.version(rust_peer.WTRANSPORT_VERSION)
    url = f"https://127.0.0.1:{our_server.port}/echo"
    tls = ["--ca", str(certs.ca_cert)] if verify == "ca" else ["--insecure"]
    run = await rust_peer.run_client(
        wt_binary, "--url", url, *tls, "--close-code", "4242", "--close-reason", "wtransport done", timeout=60
    )
    res = run.event("result")
    assert run.returncode == 0, (run.events, run.stderr[-3000:])

    # the CONNECT reached our route; wtransport sends neither origin nor a draft header
    _, headers = await our_server.next_of("session")
    assert headers[":method"] == "CONNECT" and headers[":protocol"] == "webtransport", headers
    assert headers[":path"] == "/echo" and headers[":authority"] == f"127.0.0.1:{our_server.port}", headers
    assert "origin" not in headers and "sec-webtransport-http3-draft02" not in headers, headers

    # bidi echo, small and 200 kB (flow control in both directions)
    assert res["bidi_received"] == res["bidi_sent"] == "Hello from wtransport"
    assert res["bidi_large_equal"] is True, (res["bidi_large_sent_len"], res["bidi_large_received_len"])

    # uni stream to us, and our server-initiated uni stream back to wtransport
    assert await our_server.next_of("uni") == ("uni", b"wtransport one-way")
    assert res["uni_received"] == "UNI: wtransport one-way"

    # datagram echo (quarter-stream-id framing both ways)
    assert res["datagram_received"] == res["datagram_sent"], res
    assert await our_server.next_of("datagram") == ("datagram", b"wtransport datagram")

    # wtransport's close: QUIC CONNECTION_CLOSE(app 4242, "wtransport done"); our session ends and the
    # QUIC layer records the peer's application error code.  (No CLOSE capsule exists on this path, so
    # the *session* close code stays unset, closed_by_peer is False, and the reason phrase is not
    # surfaced by our QUIC layer.)
    assert run.event("done")
    _, code, reason, by_peer, quic = await our_server.next_of("closed")
    assert quic == ("peer", 4242), (code, reason, by_peer, quic)
    assert (code, reason) == (None, ""), (code, reason, by_peer, quic)


# --------------------------------------------------------------------------------------------
# 2. our WebTransportClient -> wtransport SERVER
# --------------------------------------------------------------------------------------------


@pytest.fixture
async def wt_server(wt_binary: Path, certs: CertSet) -> AsyncIterator[rust_peer.RustServer]:
    async with rust_peer.rust_server(wt_binary, certs.cert, certs.key) as server:
        yield server


def client_config(certs: CertSet, verified: bool) -> ClientConfig:
    if verified:
        return ClientConfig.create(ca_certs=str(certs.ca_cert))
    return ClientConfig.create(verify_mode=ssl.CERT_NONE)


async def datagram_echo(session: WebTransportSession, payload: bytes, tries: int = 10) -> bytes:
    for _ in range(tries):
        await session.datagrams.send(payload)
        try:
            return await session.datagrams.receive(timeout=1.0)
        except (asyncio.TimeoutError, TimeoutError):
            continue
    raise AssertionError(f"no datagram echo after {tries} tries")


@pytest.mark.interop("wtransport", "our client → Rust server", "session", "bidi", "uni", "datagrams", "close")
@pytest.mark.parametrize("verified", [True, False], ids=["ca_certs", "cert_none"])
async def test_our_client_against_wtransport_server(
    certs: CertSet, wt_server: rust_peer.RustServer, verified: bool, interop: InteropHandle
) -> None:
    interop.version(rust_peer.WTRANSPORT_VERSION)
    host = "localhost" if verified else "127.0.0.1"

    async def body() -> None:
        async with WebTransportClient(client_config(certs, verified)) as client:
            session = await client.connect(f"https://{host}:{wt_server.port}/wt")
            req = await wt_server.next_event("session")
            assert req["path"] == "/wt"
            assert req["authority"] == f"{host}:{wt_server.port}"

            # bidi echo, small and large
            stream = await session.create_bidirectional_stream()
            await stream.write_all(b"Hello, wtransport!")
            assert await asyncio.wait_for(stream.read_all(), STEP) == b"Hello, wtransport!"
            big = bytes(i % 251 for i in range(300_000))
            stream = await session.create_bidirectional_stream()
            await stream.write_all(big)
            assert await asyncio.wait_for(stream.read_all(), STEP) == big
            await wt_server.next_event("bidi", len=300_000)

            # uni stream seen by the server
            uni = await session.create_unidirectional_stream()
            await uni.write_all(b"one-way to wtransport")
            await wt_server.next_event("uni", data="one-way to wtransport")

            # datagram echo
            assert await datagram_echo(session, b"Hello, Datagram!") == b"Hello, Datagram!"
            await wt_server.next_event("datagram", data="Hello, Datagram!")

            # our CLOSE capsule, parsed by wtransport into ApplicationClosed(code, reason)
            await asyncio.wait_for(session.close(code=7, reason="done here"), STEP)
            closed = await wt_server.next_event("closed")
            assert closed == {"event": "closed", "id": closed["id"], "kind": "application",
                              "code": 7, "reason": "done here"}, wt_server.events

    await asyncio.wait_for(body(), 60)


@pytest.mark.interop("wtransport", "our client → Rust server", "bidi", "uni")
async def test_our_client_accepts_wtransport_server_streams(
    certs: CertSet, wt_server: rust_peer.RustServer, interop: InteropHandle
) -> None:
    interop.version(rust_peer.WTRANSPORT_VERSION)
    async def body() -> None:
        async with WebTransportClient(client_config(certs, True)) as client:
            session = await client.connect(f"https://localhost:{wt_server.port}/push")
            incoming = session.incoming_streams()
            trigger = await session.create_bidirectional_stream()
            await trigger.write_all(b"push")
            assert await asyncio.wait_for(trigger.read_all(), STEP) == b"push"
            got: dict[str, bytes] = {}
            bidi = None
            for _ in range(2):
                stream = await asyncio.wait_for(incoming.__anext__(), STEP)
                data = await asyncio.wait_for(stream.read_all(), STEP)
                if isinstance(stream, WebTransportStream):
                    got["bidi"] = data
                    bidi = stream
                else:
                    got["uni"] = data
            assert got == {"bidi": b"wtransport bidi", "uni": b"wtransport uni"}
            assert bidi is not None
            await bidi.write_all(b"client answer")
            await wt_server.next_event("push-answer", data="client answer")
            await asyncio.wait_for(session.close(), STEP)
            closed = await wt_server.next_event("closed")
            assert (closed["kind"], closed["code"], closed["reason"]) == ("application", 0, "")

    await asyncio.wait_for(body(), 60)
