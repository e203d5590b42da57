"""Echo server: echoes every bidirectional stream and datagram of every session.

    python examples/echo_server.py --port 4433
"""

import argparse
import asyncio

from pywebtransport import ServerApp, ServerConfig, WebTransportSession, WebTransportStream
from pywebtransport.exceptions import ConnectionError, SessionError
from pywebtransport.utils import generate_self_signed_cert


def build_app() -> ServerApp:
    cert, key = generate_self_signed_cert("localhost")
    app = ServerApp(config=ServerConfig.create(certfile=cert, keyfile=key))

    @app.route("/echo")
    async def echo(session: WebTransportSession) -> None:
        async def datagrams() -> None:
            while True:
                data = await session.datagrams.receive()
                await session.datagrams.send(b"ECHO: " + data)

        async def streams() -> None:
            async for stream in session.incoming_streams():
                if isinstance(stream, WebTransportStream):
                    await stream.write_all(b"ECHO: " + await stream.read_all())

        tasks = [asyncio.create_task(datagrams()), asyncio.create_task(streams())]
        try:
            await session.wait_closed()
        except (ConnectionError, SessionError):
            pass
        finally:
            for task in tasks:
                task.cancel()

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4433)
    args = parser.parse_args()
    print(f"echo server on https://{args.host}:{args.port}/echo", flush=True)
    build_app().run(host=args.host, port=args.port)
