"""The ``pywebtransport`` command: ``demo``, ``serve``, ``connect`` and ``cert``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import ssl
import sys
import tempfile
from collections.abc import AsyncIterator
from importlib import resources

from .client import WebTransportClient
from .config import ClientConfig, ServerConfig
from .exceptions import WebTransportError
from .server import ServerApp
from .session import WebTransportSession
from .stream import WebTransportStream
from .utils import generate_browser_cert

__all__ = ["main", "echo_app"]


def echo_app(certfile: str, keyfile: str) -> ServerApp:
    """An app that echoes streams and datagrams on every path, prefixed with ``ECHO: ``."""
    app = ServerApp(config=ServerConfig.create(certfile=certfile, keyfile=keyfile))

    async def echo(session: WebTransportSession) -> None:
        async def one(stream: WebTransportStream) -> None:
            with contextlib.suppress(WebTransportError):
                await stream.write_all(b"ECHO: " + await stream.read_all())

        async def streams() -> None:
            async for stream in session.incoming_streams():
                if isinstance(stream, WebTransportStream):
                    asyncio.ensure_future(one(stream))
                else:
                    data = await stream.read_all()
                    out = await session.create_unidirectional_stream()
                    await out.write_all(b"ECHO: " + data)

        async def datagrams() -> None:
            while True:
                await session.datagrams.send(b"ECHO: " + await session.datagrams.receive())

        tasks = [asyncio.ensure_future(streams()), asyncio.ensure_future(datagrams())]
        try:
            await session.wait_closed()
        finally:
            for task in tasks:
                task.cancel()

    app.set_default_handler(echo)
    return app


@contextlib.asynccontextmanager
async def _running(app: ServerApp, host: str, port: int) -> AsyncIterator[int]:
    async with app:
        await app.server.listen(host=host, port=port)
        assert app.server.local_address is not None
        yield app.server.local_address[1]


async def _demo() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        cert, key, digest = generate_browser_cert("localhost", output_dir=tmp)
        async with _running(echo_app(cert, key), "127.0.0.1", 0) as port:
            url = f"https://127.0.0.1:{port}/echo"
            print(f"echo server listening at {url}")
            # The demo server's certificate is self-signed: pin it by its hash.
            config = ClientConfig.create(server_certificate_hashes=[digest])
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


def browser_page(port: int, cert_hash: bytes) -> str:
    """The demo page: a WebTransport client pinned to our certificate's hash."""
    template = resources.files("pywebtransport").joinpath("browser_demo.html").read_text()
    return template.replace("__PORT__", str(port)).replace("__HASH__", json.dumps(list(cert_hash)))


async def _serve_http(page: str, host: str, port: int) -> asyncio.Server:
    body = page.encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n"
                + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, host, port)


async def _serve(host: str, port: int, browser_demo: bool, http_port: int, duration: float | None) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        cert, key, digest = generate_browser_cert("localhost", output_dir=tmp)
        async with _running(echo_app(cert, key), host, port) as bound:
            print(f"WebTransport echo server on https://{host}:{bound}/ (certificate sha256 {digest.hex()})")
            http = None
            if browser_demo:
                http = await _serve_http(browser_page(bound, digest), host, http_port)
                http_bound = http.sockets[0].getsockname()[1]
                print(f"browser demo page on http://{host}:{http_bound}/")
            sys.stdout.flush()
            try:
                if duration is None:
                    await asyncio.Event().wait()
                else:
                    await asyncio.sleep(duration)
            finally:
                if http is not None:
                    http.close()
    return 0


async def _connect(
    url: str, insecure: bool, cafile: str | None, datagram: bool, cert_hashes: list[str] | None = None
) -> int:
    if cert_hashes:
        config = ClientConfig.create(server_certificate_hashes=list(cert_hashes))
    elif insecure:
        config = ClientConfig.create(verify_mode=ssl.CERT_NONE)
    else:
        config = ClientConfig.create(ca_certs=cafile)
    async with WebTransportClient.create(config=config) as client:
        async with await client.connect(url) as session:
            print(f"connected to {url} (session {session.session_id}); one line = one message", file=sys.stderr)
            loop = asyncio.get_running_loop()
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    break
                data = line.rstrip("\n").encode()
                if datagram:
                    await session.datagrams.send(data)
                    reply = await session.datagrams.receive(timeout=5)
                else:
                    stream = await session.create_bidirectional_stream()
                    await stream.write_all(data)
                    reply = await stream.read_all()
                print(reply.decode(errors="replace"), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pywebtransport`` command.

    Args:
        argv: Arguments without the program name (``sys.argv[1:]`` if None).

    Returns:
        The process exit status.
    """
    parser = argparse.ArgumentParser(prog="pywebtransport", description="WebTransport over HTTP/3")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run an echo server and a client against it, and print what happened")
    serve = sub.add_parser("serve", help="run an echo server with an auto-generated certificate")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4433)
    serve.add_argument("--browser-demo", action="store_true", help="also serve a browser client page")
    serve.add_argument("--http-port", type=int, default=8080)
    serve.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    connect = sub.add_parser("connect", help="send stdin lines to a WebTransport URL and print replies")
    connect.add_argument("url")
    connect.add_argument("--insecure", action="store_true", help="do not verify the certificate")
    connect.add_argument("--cafile", help="trust only the CAs in this PEM file")
    connect.add_argument(
        "--cert-hash",
        action="append",
        metavar="SHA256",
        help="accept the server whose certificate has this SHA-256 (hex; as printed by 'serve')",
    )
    connect.add_argument("--datagram", action="store_true", help="send datagrams instead of streams")
    cert = sub.add_parser("cert", help="make a browser-acceptable certificate and print its SHA-256")
    cert.add_argument("hostname", nargs="?", default="localhost")
    cert.add_argument("--output-dir", default=".")
    cert.add_argument("--days", type=int, default=10)
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return asyncio.run(_demo())
        if args.command == "serve":
            return asyncio.run(
                _serve(args.host, args.port, args.browser_demo, args.http_port, args.duration)
            )
        if args.command == "connect":
            return asyncio.run(
                _connect(args.url, args.insecure, args.cafile, args.datagram, args.cert_hash)
            )
    except KeyboardInterrupt:
        return 130
    except WebTransportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    crt, key, digest = generate_browser_cert(args.hostname, output_dir=args.output_dir, days_valid=args.days)
    print(f"certificate: {crt}\nkey:         {key}\nsha256:      {digest.hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
