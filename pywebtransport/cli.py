"""The ``pywebtransport`` command: ``demo`` and ``cert`` (``serve``/``connect`` are not written yet)."""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
import tempfile

from .client import WebTransportClient
from .config import ClientConfig, ServerConfig
from .server import ServerApp
from .session import WebTransportSession
from .stream import WebTransportStream
from .utils import generate_browser_cert, generate_self_signed_cert


async def _demo() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = generate_self_signed_cert("localhost", output_dir=tmp)
        app = ServerApp(config=ServerConfig.create(certfile=cert, keyfile=key))

        @app.route("/echo")
        async def echo(session: WebTransportSession) -> None:
            async def streams() -> None:
                async for stream in session.incoming_streams():
                    if isinstance(stream, WebTransportStream):
                        await stream.write_all(b"ECHO: " + await stream.read_all())

            async def datagrams() -> None:
                while True:
                    await session.datagrams.send(b"ECHO: " + await session.datagrams.receive())

            tasks = [asyncio.ensure_future(streams()), asyncio.ensure_future(datagrams())]
            await session.wait_closed()
            for task in tasks:
                task.cancel()

        async with app:
            await app.server.listen(host="127.0.0.1", port=0)
            assert app.server.local_address is not None
            url = f"https://127.0.0.1:{app.server.local_address[1]}/echo"
            print(f"echo server listening at {url}")
            config = ClientConfig.create(verify_mode=ssl.CERT_NONE)
            async with WebTransportClient.create(config=config) as client:
                async with await client.connect(url) as session:
                    print(f"session {session.session_id} established")
                    stream = await session.create_bidirectional_stream()
                    await stream.write_all(b"Hello, Stream!")
                    print(f"stream echo:   {await stream.read_all()!r}")
                    await session.datagrams.send(b"Hello, Datagram!")
                    print(f"datagram echo: {await session.datagrams.receive(timeout=5)!r}")
            print("closed cleanly")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pywebtransport")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run an echo server and a client against it")
    cert = sub.add_parser("cert", help="make a browser-acceptable certificate and print its SHA-256")
    cert.add_argument("hostname", nargs="?", default="localhost")
    cert.add_argument("--output-dir", default=".")
    cert.add_argument("--days", type=int, default=10)
    args = parser.parse_args(argv)
    if args.command == "demo":
        return asyncio.run(_demo())
    crt, key, digest = generate_browser_cert(args.hostname, output_dir=args.output_dir, days_valid=args.days)
    print(f"certificate: {crt}\nkey:         {key}\nsha256:      {digest.hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
