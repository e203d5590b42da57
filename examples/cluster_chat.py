"""Chat across server processes: pub/sub hubs sharing topics through Redis.

Start Redis, then two chat servers on different ports (on one machine or several):

    redis-server --port 6379 &
    python examples/cluster_chat.py server --port 4433 --redis redis://127.0.0.1:6379
    python examples/cluster_chat.py server --port 4434 --redis redis://127.0.0.1:6379

Clients may connect to either server; everyone in a room sees every message:

    python examples/cluster_chat.py client https://127.0.0.1:4433/chat alice "hi from alice"
    python examples/cluster_chat.py client https://127.0.0.1:4434/chat bob "hi from bob"

A client subscribes to ``room:<name>`` (``--room``, default ``lobby``), publishes its message
(``-``: every line of stdin), prints ``<user>: <text>`` for every message it receives and leaves
after ``--expect`` messages (or ``--wait`` seconds without one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys

from pywebtransport import ClientConfig, ServerApp, ServerConfig, WebTransportClient, WebTransportSession
from pywebtransport.backplane import RedisBackplane
from pywebtransport.exceptions import TimeoutError
from pywebtransport.pubsub import PubSubHub, PubSubManager
from pywebtransport.utils import generate_self_signed_cert


def build_app(redis_url: str | None) -> ServerApp:
    cert, key = generate_self_signed_cert("localhost")
    app = ServerApp(config=ServerConfig.create(certfile=cert, keyfile=key))
    hub = PubSubHub(
        backplane=RedisBackplane(redis_url) if redis_url else None,
        queue_size=1000,
        slow_consumer_policy="drop_oldest",
        # Clients may only use chat rooms.
        authorize=lambda session, topic, action: topic.startswith("room:"),
    )
    app.on_startup(hub.start)
    app.on_shutdown(hub.close)

    @app.route("/chat")
    async def chat(session: WebTransportSession) -> None:
        await hub.serve(session)

    return app


async def client(url: str, user: str, text: str, room: str, expect: int, wait: float) -> None:
    config = ClientConfig.create(verify_mode=ssl.CERT_NONE)  # the example's self-signed certificate
    topic = f"room:{room}"
    async with WebTransportClient.create(config=config) as wt:
        async with await wt.connect(url) as session:
            pubsub = PubSubManager(session)
            async with await pubsub.subscribe(topic) as subscription:
                print(f"{user} joined {topic}", file=sys.stderr, flush=True)

                async def say() -> None:
                    if text != "-":
                        await pubsub.publish(topic, json.dumps({"user": user, "text": text}))
                        return
                    loop = asyncio.get_running_loop()
                    while line := await loop.run_in_executor(None, sys.stdin.readline):
                        await pubsub.publish(topic, json.dumps({"user": user, "text": line.rstrip("\n")}))

                speaker = asyncio.ensure_future(say())
                for _ in range(expect):
                    try:
                        message = json.loads(await subscription.get(timeout=wait))
                    except TimeoutError:
                        break
                    print(f"{message['user']}: {message['text']}", flush=True)
                await speaker
            await pubsub.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    srv = sub.add_parser("server")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=4433)
    srv.add_argument("--redis", default=None, help="Redis URL shared by all servers (omit for one server)")
    cli = sub.add_parser("client")
    cli.add_argument("url")
    cli.add_argument("user")
    cli.add_argument("text")
    cli.add_argument("--room", default="lobby")
    cli.add_argument("--expect", type=int, default=1)
    cli.add_argument("--wait", type=float, default=10.0)
    args = parser.parse_args()
    if args.command == "server":
        print(f"chat server on https://{args.host}:{args.port}/chat (redis: {args.redis})", flush=True)
        build_app(args.redis).run(host=args.host, port=args.port)
    else:
        asyncio.run(client(args.url, args.user, args.text, args.room, args.expect, args.wait))
    sys.exit(0)


if __name__ == "__main__":
    main()
