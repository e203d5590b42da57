"""Chat server: every line a client sends on a stream is broadcast to all clients.

Each client opens one bidirectional stream and writes newline-terminated
messages on it; the server sends every message to every connected client on
a unidirectional stream of its own.

    python examples/chat_server.py --port 4434
"""

import argparse
import asyncio

from pywebtransport import ServerApp, ServerConfig, WebTransportSession, WebTransportStream
from pywebtransport.exceptions import WebTransportError
from pywebtransport.utils import generate_self_signed_cert

members: set[WebTransportSession] = set()


async def broadcast(line: bytes) -> None:
    async def deliver(member: WebTransportSession) -> None:
        try:
            stream = await member.create_unidirectional_stream()
            await stream.write_all(line)
        except WebTransportError:
            members.discard(member)

    await asyncio.gather(*(deliver(m) for m in list(members)))


def build_app() -> ServerApp:
    cert, key = generate_self_signed_cert("localhost")
    # Chat members may stay quiet for a long time: allow reads to wait an hour
    # (read_timeout bounds every read that waits for data; the default is 60 s).
    app = ServerApp(config=ServerConfig.create(certfile=cert, keyfile=key, read_timeout=3600.0))

    @app.route("/chat")
    async def chat(session: WebTransportSession) -> None:
        members.add(session)
        try:
            async for stream in session.incoming_streams():
                if isinstance(stream, WebTransportStream):
                    while line := await stream.readline():
                        await broadcast(line)
        except WebTransportError:
            pass
        finally:
            members.discard(session)

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4434)
    args = parser.parse_args()
    print(f"chat server on https://{args.host}:{args.port}/chat", flush=True)
    build_app().run(host=args.host, port=args.port)
