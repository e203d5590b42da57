"""The ``pywebtransport`` command: ``demo``, ``serve``, ``connect``, ``cert``, ``bench`` and ``info``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import ssl
import sys
import tempfile
from collections.abc import AsyncIterator
from importlib import resources

from .client import WebTransportClient
from .config import ClientConfig, ServerConfig
from .exceptions import WebTransportError
from .loadgen import DOWNLOAD_REQUEST, SCENARIOS, progress_line, run_bench
from .server import ServerApp
from .session import WebTransportSession
from .stream import WebTransportStream
from .utils import generate_browser_cert

__all__ = ["main", "echo_app"]

_CHUNK = 64 * 1024
_MAX_DOWNLOAD = 1 << 30


def echo_app(certfile: str, keyfile: str) -> ServerApp:
    """An app that echoes streams and datagrams on every path, prefixed with ``ECHO: ``.

    A bidirectional stream that starts with ``PWT-DOWNLOAD <size>\\n`` is answered with
    `size` bytes instead (the ``download`` scenario of ``pywebtransport bench``).
    """
    app = ServerApp(config=ServerConfig.create(certfile=certfile, keyfile=keyfile))

    async def echo(session: WebTransportSession) -> None:
        async def one(stream: WebTransportStream) -> None:
            with contextlib.suppress(WebTransportError, ValueError):
                first = await stream.read(_CHUNK)
                if first.startswith(DOWNLOAD_REQUEST) and first.endswith(b"\n"):
                    remaining = min(int(first[len(DOWNLOAD_REQUEST):-1]), _MAX_DOWNLOAD)
                    block = bytes(_CHUNK)
                    while remaining > 0:
                        await stream.write(block[:remaining])
                        remaining -= min(remaining, _CHUNK)
                    await stream.write_all(b"")
                    return
                await stream.write(b"ECHO: " + first)
                while chunk := await stream.read(_CHUNK):
                    await stream.write(chunk)
                await stream.write_all(b"")

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


def _serve_workers(host: str, port: int, workers: int, duration: float | None) -> int:
    from .server.workers import run_workers

    with tempfile.TemporaryDirectory() as tmp:
        cert, key, digest = generate_browser_cert("localhost", output_dir=tmp)
        print(
            f"WebTransport echo server on https://{host}:{port}/ with {workers} worker processes "
            f"(certificate sha256 {digest.hex()})",
            flush=True,
        )
        return run_workers(echo_app(cert, key), host, port, workers, duration=duration)


async def _serve(host: str, port: int, browser_demo: bool, http_port: int, duration: float | None,
                 metrics_port: int | None = None) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        cert, key, digest = generate_browser_cert("localhost", output_dir=tmp)
        app = echo_app(cert, key)
        metrics = None
        if metrics_port is not None:
            from .metrics import PrometheusMetrics

            metrics = PrometheusMetrics()
            metrics.instrument(app)
        async with _running(app, host, port) as bound:
            print(f"WebTransport echo server on https://{host}:{bound}/ (certificate sha256 {digest.hex()})")
            if metrics is not None and metrics_port is not None:
                mport = await metrics.serve(port=metrics_port, host=host)
                print(f"Prometheus metrics on http://{host}:{mport}/metrics")
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
                if metrics is not None:
                    await metrics.close()
    return 0


async def _bench(args: argparse.Namespace) -> int:
    config = (
        ClientConfig.create(verify_mode=ssl.CERT_NONE, connect_timeout=args.timeout)
        if args.insecure
        else ClientConfig.create(ca_certs=args.cafile, connect_timeout=args.timeout)
    )
    result = await run_bench(args.url, args.scenario, sessions=args.sessions, streams=args.streams,
                             duration=args.duration, size=args.size, config=config,
                             progress=None if args.json else progress_line)
    if sys.stderr.isatty() and not args.json:
        sys.stderr.write("\n")
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.summary())
    return 0 if result.operations > 0 else 1


def _info() -> int:
    from .quic.observe import library_info, udp_offloads
    from ._version import __version__

    lib = library_info()
    offloads = udp_offloads()
    facts = {
        "pywebtransport": __version__,
        "msquic": lib.version,
        "tls_provider": lib.tls_provider,
        "msquic_library": lib.path,
        "execution_profile": lib.execution_profile,
        "worker_polling_us": lib.polling_idle_us,
        "worker_threads": lib.worker_threads or f"one per CPU ({os.cpu_count()})",
        "loop_spin_us": lib.loop_spin_us,
        "udp_gso_available": offloads["gso"],
        "udp_gro_available": offloads["gro"],
    }
    facts.update(asyncio.run(_probe_connection()))
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        print(f"{key:<{width}}  {value}")
    return 0


async def _probe_connection() -> dict[str, object]:
    """Open one loopback session to see what msquic negotiates on a live connection."""
    from .quic import QuicConnection
    from .quic.observe import connection_flags

    with tempfile.TemporaryDirectory() as tmp:
        cert, key, digest = generate_browser_cert("localhost", output_dir=tmp)
        async with _running(echo_app(cert, key), "127.0.0.1", 0) as port:
            config = ClientConfig.create(server_certificate_hashes=[digest])
            async with WebTransportClient(config) as client:
                session = await client.connect(f"https://127.0.0.1:{port}/")
                # A datagram starts msquic's path MTU search at once (our build searches
                # once a connection sends one, or 64 packets); the transfer gives it time.
                await session.datagrams.send(b"probe")
                await session.datagrams.receive(timeout=5)
                stream = await session.create_bidirectional_stream()
                await stream.write_all(b"x" * 100_000)
                await stream.read_all()
                quic = session.connection.quic
                assert isinstance(quic, QuicConnection)
                flags = connection_flags(quic)
                stats = quic.stats()
                await session.close()
    return {
        "loopback_ecn_capable": flags["ecn_capable"],
        "loopback_path_mtu": stats.path_mtu,
        "loopback_rtt_us": round(stats.rtt * 1e6),
    }


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
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the UDP port (Linux)")
    serve.add_argument("--metrics-port", type=int, default=None,
                       help="serve Prometheus metrics on this port (needs pywebtransport[metrics])")
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
    bench = sub.add_parser("bench", help="load a WebTransport server and report rates and latencies")
    bench.add_argument("url")
    bench.add_argument("--scenario", "-s", choices=SCENARIOS, default="echo")
    bench.add_argument("--sessions", "-c", type=int, default=1, help="concurrent sessions")
    bench.add_argument("--streams", "-m", type=int, default=1, help="concurrent workers per session")
    bench.add_argument("--duration", "-D", type=float, default=5.0, help="seconds of load")
    bench.add_argument("--size", type=int, default=64, help="bytes per request / upload / download")
    bench.add_argument("--insecure", "-k", action="store_true", help="do not verify the certificate")
    bench.add_argument("--cafile")
    bench.add_argument("--timeout", type=float, default=10.0, help="connect timeout")
    bench.add_argument("--json", action="store_true", help="print the result as JSON")
    sub.add_parser("info", help="print msquic's version, TLS provider, polling mode and UDP offloads")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return asyncio.run(_demo())
        if args.command == "serve" and args.workers > 1:
            if args.browser_demo:
                parser.error("--browser-demo runs with one worker")
            return _serve_workers(args.host, args.port, args.workers, args.duration)
        if args.command == "serve":
            return asyncio.run(
                _serve(args.host, args.port, args.browser_demo, args.http_port, args.duration, args.metrics_port)
            )
        if args.command == "bench":
            return asyncio.run(_bench(args))
        if args.command == "info":
            return _info()
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
