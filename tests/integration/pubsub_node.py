"""One pub/sub server process for the multi-process tests: a hub on a Redis backplane.

Usage: python pubsub_node.py CERT KEY REDIS_URL. Prints ``PORT <n>`` once listening; stops when
stdin closes. Routes: ``/pubsub`` (the hub) and ``/stats`` (RPC method ``stats``).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from pywebtransport import ServerApp, ServerConfig, WebTransportSession
from pywebtransport.backplane import RedisBackplane
from pywebtransport.pubsub import PubSubHub
from pywebtransport.rpc import RpcManager


async def main(cert: str, key: str, redis_url: str) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
    backplane = RedisBackplane(redis_url, reconnect_delay=0.05, max_reconnect_delay=0.5)
    hub = PubSubHub(backplane=backplane, queue_size=10000)
    app = ServerApp(config=ServerConfig.create(certfile=cert, keyfile=key))

    @app.route("/pubsub")
    async def pubsub(session: WebTransportSession) -> None:
        await hub.serve(session)

    @app.route("/stats")
    async def stats(session: WebTransportSession) -> None:
        rpc = RpcManager(session)
        rpc.register(lambda: {"hub": hub.stats, "backplane": backplane.stats, "connected": backplane.connected},
                     name="stats")
        await rpc.serve()

    app.on_startup(hub.start)
    app.on_shutdown(hub.close)
    async with app:
        await app.server.listen(host="127.0.0.1", port=0)
        assert app.server.local_address is not None
        print(f"PORT {app.server.local_address[1]}", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
