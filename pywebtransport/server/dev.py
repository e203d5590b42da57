"""Ready-made servers and handlers for development, demos and health checks."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..config import ServerConfig
from ..exceptions import ConfigurationError, WebTransportError
from ..session import WebTransportSession
from ..stream import WebTransportReceiveStream, WebTransportStream
from ..utils import generate_self_signed_cert
from .app import ServerApp

IncomingStream = WebTransportStream | WebTransportReceiveStream

__all__ = [
    "create_development_server",
    "create_echo_server_app",
    "echo_handler",
    "health_check_handler",
]


def create_development_server(
    host: str = "127.0.0.1",
    port: int = 4433,
    generate_cert: bool = True,
    *,
    cert_dir: str | os.PathLike[str] | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    **config: Any,
) -> ServerApp:
    """A `ServerApp` for local development bound to ``host:port`` (debug logging).

    With ``generate_cert`` a self-signed certificate for ``localhost`` (also
    valid for 127.0.0.1 and ::1) is written to ``cert_dir`` (a new temporary
    directory by default); otherwise ``certfile``/``keyfile`` are used, or
    ``localhost.crt``/``localhost.key`` found in ``cert_dir`` (default: the
    current directory).  Clients must trust that certificate or disable
    verification.  Routes are left to the caller.
    """
    if certfile is None or keyfile is None:
        if generate_cert:
            directory = os.fspath(cert_dir) if cert_dir is not None else tempfile.mkdtemp(prefix="pywebtransport-")
            certfile, keyfile = generate_self_signed_cert("localhost", output_dir=directory)
        else:
            directory = os.fspath(cert_dir) if cert_dir is not None else "."
            certfile = os.path.join(directory, "localhost.crt")
            keyfile = os.path.join(directory, "localhost.key")
            if not (os.path.exists(certfile) and os.path.exists(keyfile)):
                raise ConfigurationError(
                    f"no certificate found at {certfile}; pass generate_cert=True or certfile/keyfile",
                    config_key="certfile",
                    config_value=certfile,
                )
    server_config = ServerConfig.create_for_development(
        host=host, port=port, certfile=certfile, keyfile=keyfile, **config
    )
    return ServerApp(config=server_config)


async def echo_handler(session: WebTransportSession) -> None:
    """Echo everything back until the session closes.

    Datagrams are sent back as they are; a bidirectional stream gets its own
    data back (then FIN); a unidirectional stream's data is returned on a new
    unidirectional stream.
    """

    async def echo_datagrams() -> None:
        while True:
            data = await session.datagrams.receive()
            await session.datagrams.send(data)

    async def echo_stream(stream: IncomingStream) -> None:
        try:
            if isinstance(stream, WebTransportStream):
                async for chunk in stream.read_iter():
                    await stream.write(chunk)
                await stream.close()
            else:
                data = await stream.read_all()
                out = await session.create_unidirectional_stream()
                await out.write_all(data)
        except WebTransportError:
            pass

    await _serve(session, echo_datagrams, echo_stream)


async def health_check_handler(session: WebTransportSession) -> None:
    """Answer health probes until the session closes.

    Any datagram, and any bidirectional stream (once its request data
    ended), is answered with ``{"status": "healthy", "timestamp": ...}`` JSON.
    """

    def status() -> bytes:
        return json.dumps({"status": "healthy", "timestamp": time.time()}).encode()

    async def answer_datagrams() -> None:
        while True:
            await session.datagrams.receive()
            await session.datagrams.send(status())

    async def answer_stream(stream: IncomingStream) -> None:
        try:
            if isinstance(stream, WebTransportStream):
                await stream.read_all(max_size=65536)
                await stream.write_all(status())
            else:
                await stream.read_all(max_size=65536)
        except WebTransportError:
            pass

    await _serve(session, answer_datagrams, answer_stream)


async def _serve(
    session: WebTransportSession,
    datagrams: Callable[[], Awaitable[None]],
    per_stream: Callable[[IncomingStream], Awaitable[None]],
) -> None:
    tasks: set[asyncio.Task[None]] = set()

    async def accept() -> None:
        async for stream in session.incoming_streams():
            task = asyncio.ensure_future(per_stream(stream))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    background = [asyncio.ensure_future(datagrams()), asyncio.ensure_future(accept())]
    try:
        await session.wait_closed()
    finally:
        pending = background + list(tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def create_echo_server_app(config: ServerConfig | None = None) -> ServerApp:
    """A `ServerApp` with `echo_handler` on ``/`` and ``/echo`` and `health_check_handler` on ``/health``."""
    app = ServerApp(config=config)
    app.add_route("/", echo_handler)
    app.add_route("/echo", echo_handler)
    app.add_route("/health", health_check_handler)
    return app
