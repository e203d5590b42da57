"""The stack on uvloop's event loop (what many production asyncio servers run on).

The QUIC engine wakes the loop through ``loop.add_reader`` on the native queue's
eventfd, which uvloop implements itself; these tests drive sessions, streams,
datagrams, many concurrent sessions and shutdown over the real stack on it.
"""

from __future__ import annotations

import asyncio
import ssl
import sys

import pytest

from certs import CertSet
from pywebtransport import ClientConfig, ServerApp, ServerConfig, WebTransportClient
from pywebtransport.server import create_echo_server_app

if sys.platform == "win32":  # platform guard: uvloop does not support Windows
    pytest.skip("uvloop does not support Windows", allow_module_level=True)

import uvloop  # noqa: E402  (a test dependency on every other platform: a missing one fails here)

pytestmark = pytest.mark.timeout(60)


def _app(certs: CertSet) -> ServerApp:
    """The library's echo app: datagrams and bidi streams back as they are, uni streams on a new one."""
    return create_echo_server_app(ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))


def test_sessions_streams_and_datagrams_on_uvloop(certs: CertSet) -> None:
    async def main() -> list[bytes]:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        got: list[bytes] = []
        app = _app(certs)
        async with app:
            await app.server.listen(host="127.0.0.1", port=0)
            assert app.server.local_address is not None
            url = f"https://127.0.0.1:{app.server.local_address[1]}/echo"
            config = ClientConfig.create(ca_certs=str(certs.ca_cert))
            async with WebTransportClient(config) as client:
                async with await client.connect(url) as session:
                    stream = await session.create_bidirectional_stream()
                    await stream.write_all(b"over uvloop")
                    got.append(await stream.read_all())
                    await session.datagrams.send(b"dgram")
                    got.append(await session.datagrams.receive(timeout=5))
                    incoming = session.incoming_streams()
                    out = await session.create_unidirectional_stream()
                    await out.write_all(b"one way")
                    back = await asyncio.wait_for(incoming.__anext__(), 5)
                    got.append(await back.read_all())
                    # A large payload crosses many receive events and flow-control updates.
                    big = bytes(range(256)) * 4096
                    stream = await session.create_bidirectional_stream()
                    await stream.write_all(big)
                    echoed = await stream.read_all()
                    got.append(b"big ok" if echoed == big else b"big mismatch")
        return got

    got = uvloop.run(asyncio.wait_for(main(), 30))
    assert got == [b"over uvloop", b"dgram", b"one way", b"big ok"]


def test_many_concurrent_sessions_on_uvloop(certs: CertSet) -> None:
    async def main() -> list[bytes]:
        app = _app(certs)
        async with app:
            await app.server.listen(host="127.0.0.1", port=0)
            assert app.server.local_address is not None
            url = f"https://127.0.0.1:{app.server.local_address[1]}/echo"
            async with WebTransportClient(ClientConfig.create(verify_mode=ssl.CERT_NONE)) as client:

                async def one(i: int) -> bytes:
                    async with await client.connect(url) as session:
                        stream = await session.create_bidirectional_stream()
                        await stream.write_all(b"%d" % i)
                        return await stream.read_all()

                return list(await asyncio.gather(*(one(i) for i in range(40))))

    got = uvloop.run(asyncio.wait_for(main(), 30))
    assert got == [b"%d" % i for i in range(40)]


def test_no_wait_before_sleeping_on_uvloop() -> None:
    """The engine's wait for records needs to see the loop's ready queue, which uvloop keeps to itself."""
    from pywebtransport.quic.engine import Engine

    async def main() -> tuple[int, int]:
        engine = Engine.current()
        return engine._spin_us, engine.spins

    assert uvloop.run(main()) == (0, 0)
