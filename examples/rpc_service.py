"""An RPC service over WebTransport (JSON-RPC 2.0 on one stream per session).

    python examples/rpc_service.py server --port 4433
    python examples/rpc_service.py client https://127.0.0.1:4433/rpc

The server offers ``add``, ``divide`` (a JSON-RPC error for division by zero), ``stats`` (returns a
dataclass) and ``slow``; while serving a call to ``greet`` it calls back into the client's own
``whoami`` method - both sides serve. The client makes 100 calls at once on its one session,
shows each error kind, and a call that times out (and is cancelled at the server).
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import time
from dataclasses import dataclass

from pywebtransport import ClientConfig, ServerApp, ServerConfig, WebTransportClient, WebTransportSession
from pywebtransport.rpc import InvalidParamsError, MethodNotFoundError, RpcError, RpcManager, RpcTimeoutError
from pywebtransport.utils import generate_self_signed_cert

STARTED = time.monotonic()
served = 0


@dataclass
class Stats:
    calls_served: int
    uptime_s: float


def build_app() -> ServerApp:
    cert, key = generate_self_signed_cert("localhost")
    app = ServerApp(config=ServerConfig.create(certfile=cert, keyfile=key))

    @app.route("/rpc")
    async def rpc_endpoint(session: WebTransportSession) -> None:
        rpc = RpcManager(session, concurrency_limit=32, max_pending=256)

        def add(a: float, b: float) -> float:
            global served
            served += 1
            return a + b

        def divide(a: float, b: float) -> float:
            if b == 0:
                raise RpcError("division by zero", code=-32010, data={"dividend": a})
            return a / b

        async def slow(seconds: float) -> str:
            await asyncio.sleep(seconds)
            return "finally"

        async def greet() -> str:
            name = await rpc.call("whoami", timeout=5)  # a call from the server to the client
            return f"hello, {name}"

        rpc.register(add)
        rpc.register(divide)
        rpc.register(slow)
        rpc.register(greet)
        rpc.register(lambda: Stats(served, round(time.monotonic() - STARTED, 1)), name="stats")
        await rpc.serve()

    return app


async def client(url: str) -> None:
    config = ClientConfig.create(verify_mode=ssl.CERT_NONE)  # the example's self-signed certificate
    async with WebTransportClient.create(config=config) as wt:
        async with await wt.connect(url) as session:
            async with RpcManager(session) as rpc:
                rpc.register(lambda: "rpc example client", name="whoami")
                sums = await asyncio.gather(*(rpc.call("add", i, i) for i in range(100)))
                print(f"100 concurrent calls: sum of results = {sum(sums)}")
                print(f"divide(1, 4) = {await rpc.call('divide', 1, 4)}")
                print(f"greet() = {await rpc.call('greet')!r}")
                print(f"stats() = {await rpc.call('stats')}")
                try:
                    await rpc.call("divide", 1, 0)
                except RpcError as exc:
                    print(f"divide(1, 0) -> RpcError {exc.code}: {exc.message} {exc.data}")
                try:
                    await rpc.call("add", 1)
                except InvalidParamsError as exc:
                    print(f"add(1) -> InvalidParamsError {exc.code}")
                try:
                    await rpc.call("nope")
                except MethodNotFoundError as exc:
                    print(f"nope() -> MethodNotFoundError {exc.code}")
                try:
                    await rpc.call("slow", 10, timeout=0.5)
                except RpcTimeoutError:
                    print("slow(10) -> RpcTimeoutError after 0.5 s (cancelled at the server)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    srv = sub.add_parser("server")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=4433)
    cli = sub.add_parser("client")
    cli.add_argument("url")
    args = parser.parse_args()
    if args.command == "server":
        print(f"RPC server on https://{args.host}:{args.port}/rpc", flush=True)
        build_app().run(host=args.host, port=args.port)
    else:
        asyncio.run(client(args.url))


if __name__ == "__main__":
    main()
