"""Stream and datagram round trips through an installed pywebtransport (run inside a fresh venv).

Prints ``smoke: ok`` and exits 0 when a bidirectional stream, a unidirectional stream and a
datagram all come back from a server in the same process.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
import tempfile

from pywebtransport import (
    ClientConfig,
    ServerApp,
    ServerConfig,
    WebTransportClient,
    WebTransportReceiveStream,
    WebTransportSession,
    WebTransportStream,
)
from pywebtransport.utils import generate_self_signed_cert


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def main() -> None:
    certdir = tempfile.mkdtemp()
    cert, key = generate_self_signed_cert("localhost", output_dir=certdir)
    app = ServerApp(config=ServerConfig.create(certfile=cert, keyfile=key, bind_host="127.0.0.1", bind_port=0))

    @app.route("/smoke")
    async def smoke(session: WebTransportSession) -> None:
        async def datagrams() -> None:
            while True:
                await session.datagrams.send(b"dg:" + await session.datagrams.receive())

        task = asyncio.create_task(datagrams())
        try:
            async for stream in session.incoming_streams():
                if isinstance(stream, WebTransportStream):
                    await stream.write_all(b"bidi:" + await stream.read_all())
                elif isinstance(stream, WebTransportReceiveStream):
                    reply = await session.create_unidirectional_stream()
                    await reply.write_all(b"uni:" + await stream.read_all())
        finally:
            task.cancel()

    port = free_udp_port()
    async with app:
        serve = asyncio.create_task(app.serve(host="127.0.0.1", port=port))
        await asyncio.sleep(0.2)
        config = ClientConfig.create(verify_mode=ssl.CERT_NONE, connect_timeout=10)
        async with WebTransportClient.create(config=config) as client:
            async with await client.connect(f"https://127.0.0.1:{port}/smoke") as session:
                stream = await session.create_bidirectional_stream()
                await stream.write_all(b"x" * 100_000)
                assert await stream.read_all() == b"bidi:" + b"x" * 100_000

                uni = await session.create_unidirectional_stream()
                await uni.write_all(b"hello")
                incoming = await asyncio.wait_for(anext(session.incoming_streams()), 10)
                assert isinstance(incoming, WebTransportReceiveStream)
                assert await incoming.read_all() == b"uni:hello"

                for attempt in range(20):  # datagrams may be lost, even on loopback
                    await session.datagrams.send(b"ping")
                    try:
                        reply = await asyncio.wait_for(session.datagrams.receive(), 0.5)
                    except asyncio.TimeoutError:
                        continue
                    assert reply == b"dg:ping", reply
                    break
                else:
                    raise AssertionError("no datagram came back in 20 tries")
        serve.cancel()


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(), 60))
    print("smoke: ok")
    sys.exit(0)
