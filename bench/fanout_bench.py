"""Fan-out benchmark: 1 publisher -> N subscribers spread over 2 server processes sharing Redis.

The same topology runs twice in one invocation, once per transport:

* ``webtransport`` - PyWebTransport sessions; each server process runs a `PubSubHub` on a
  `RedisBackplane`; each subscriber is a `PubSubManager` on its own session (own connection).
* ``websocket`` - the `websockets` library (TLS, same certificate); each server process runs the
  *same* `PubSubHub` + `RedisBackplane`, fed through a small stream adapter over the WebSocket,
  and each subscriber the same `PubSubManager`. Only the transport differs.

Processes: redis-server (own port, temp dir), 2 server processes, 2 subscriber processes (one per
server, N/2 sessions each) and the publisher (connected to server A, so half of the subscribers
are reached through Redis). The publisher sends ``--messages`` messages at ``--rate`` per second;
each carries its send time (CLOCK_MONOTONIC, shared by all processes on the machine).

Reported per transport: deliveries per second (messages received by all subscribers / time from
the first publish to the last delivery), p50/p99 publish-to-delivery latency, loss; then the
WebTransport/WebSocket ratios. Run under ``flock /tmp/bench.lock`` on a shared machine:

    flock /tmp/bench.lock python bench/fanout_bench.py --subscribers 1000 --messages 300 --rate 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_common import pct  # noqa: E402

TOPIC = "fanout"
HEADER = struct.Struct("!QQ")  # seq, send time (ns, CLOCK_MONOTONIC)


# -- WebSocket adapter: the hub and the client read/write byte streams -------------------------


class WsStream:
    """Byte-stream view of a WebSocket (binary messages), as PubSubHub / PubSubManager expect."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.buf = bytearray()
        self.eof = False

    async def read(self, size: int = 65536) -> bytes:
        from websockets.exceptions import ConnectionClosed

        while not self.buf and not self.eof:
            try:
                msg = await self.ws.recv()
            except ConnectionClosed:
                self.eof = True
                break
            self.buf += msg if isinstance(msg, bytes) else msg.encode()
        out = bytes(self.buf[:size])
        del self.buf[:size]
        return out

    async def write(self, data: bytes, end_stream: bool = False) -> None:
        from websockets.exceptions import ConnectionClosed

        from pywebtransport.exceptions import StreamError

        try:
            await self.ws.send(data)
        except ConnectionClosed as exc:
            raise StreamError(f"websocket closed: {exc}") from None

    async def close(self) -> None:
        await self.ws.close()


# -- roles --------------------------------------------------------------------------------------


async def role_server(transport: str, cert: str, key: str, redis_url: str) -> None:
    from pywebtransport.backplane import RedisBackplane
    from pywebtransport.pubsub import PubSubHub

    hub = PubSubHub(backplane=RedisBackplane(redis_url), queue_size=10000)
    await hub.start()
    if transport == "webtransport":
        from pywebtransport import ServerApp, ServerConfig, WebTransportSession

        app = ServerApp(config=ServerConfig.create(certfile=cert, keyfile=key, max_connections=5000))

        @app.route("/pubsub")
        async def pubsub(session: WebTransportSession) -> None:
            await hub.serve(session)

        async with app:
            await app.server.listen(host="127.0.0.1", port=0)
            assert app.server.local_address is not None
            print(f"PORT {app.server.local_address[1]}", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    else:
        import websockets.asyncio.server as wss

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)

        async def handler(ws: Any) -> None:
            await hub.serve(None, stream=WsStream(ws))  # type: ignore[arg-type]

        async with wss.serve(handler, "127.0.0.1", 0, ssl=ctx, max_size=1 << 20, compression=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            print(f"PORT {port}", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    if os.environ.get("FANOUT_DEBUG"):
        print(f"server {transport}: hub {hub.stats} backplane {hub.backplane.stats if hub.backplane else None}",
              file=sys.stderr, flush=True)
    await hub.close()


async def _connect(transport: str, port: int, cafile: str) -> tuple[Any, Any]:
    """(PubSubManager, closer) for one subscriber/publisher connection."""
    from pywebtransport.pubsub import PubSubManager

    if transport == "webtransport":
        from pywebtransport import ClientConfig, WebTransportClient

        client = WebTransportClient(ClientConfig.create(ca_certs=cafile, connect_timeout=60))
        await client.__aenter__()
        session = await client.connect(f"https://127.0.0.1:{port}/pubsub", timeout=60)
        return PubSubManager(session, queue_size=100000), client.close
    import websockets.asyncio.client as wsc

    ctx = ssl.create_default_context(cafile=cafile)
    ws = await wsc.connect(f"wss://127.0.0.1:{port}/", ssl=ctx, max_size=1 << 20, compression=None, open_timeout=60)
    return PubSubManager(stream=WsStream(ws), queue_size=100000), ws.close


async def role_subscribers(transport: str, port: int, cafile: str, count: int, messages: int, idle: float) -> None:
    conns: list[tuple[Any, Any]] = []
    sem = asyncio.Semaphore(20)  # bounded concurrent handshakes

    async def one() -> None:
        async with sem:
            conns.append(await _connect(transport, port, cafile))

    await asyncio.gather(*(one() for _ in range(count)))
    subs = [await m.subscribe(TOPIC) for m, _ in conns]
    print("READY", flush=True)
    lat = array("q")
    received = 0
    last_time = 0
    first_send = None

    async def drain(sub: Any) -> None:
        nonlocal received, last_time, first_send
        got = 0
        while got < messages:
            try:
                data = await sub.get(timeout=idle)
            except Exception:
                return
            now = time.monotonic_ns()
            _seq, sent = HEADER.unpack_from(data)
            lat.append(now - sent)
            got += 1
            received += 1
            last_time = max(last_time, now)
            first_send = sent if first_send is None else min(first_send, sent)

    await asyncio.gather(*(drain(s) for s in subs))
    lat_sorted = sorted(lat)
    sample = lat_sorted[:: max(1, len(lat_sorted) // 20000)]
    print(json.dumps({"received": received, "last": last_time, "lat_sample": sample}), flush=True)
    for manager, closer in conns:
        await manager.close()
        try:
            await closer()
        except Exception:
            pass


async def role_publisher(transport: str, port: int, cafile: str, messages: int, rate: float, size: int) -> None:
    manager, closer = await _connect(transport, port, cafile)
    await manager.start()
    pad = b"\x00" * max(0, size - HEADER.size)
    interval = 1.0 / rate
    start = time.monotonic()
    first = time.monotonic_ns()
    for seq in range(messages):
        target = start + seq * interval
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await manager.publish(TOPIC, HEADER.pack(seq, time.monotonic_ns()) + pad)
    print(json.dumps({"first": first, "elapsed": time.monotonic() - start}), flush=True)
    await asyncio.sleep(0.5)
    await manager.close()
    await closer()


# -- orchestration ---------------------------------------------------------------------------------


def _spawn(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def _expect(proc: subprocess.Popen[str], prefix: str, timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"process exited before printing {prefix!r}")
        if line.startswith(prefix):
            return line.strip()
    raise RuntimeError(f"no {prefix!r} within {timeout}s")


def run_transport(transport: str, opts: argparse.Namespace, cert: str, key: str, cafile: str, redis_url: str) -> dict[str, Any]:
    servers = [_spawn(["--role", "server", "--transport", transport, cert, key, redis_url]) for _ in range(2)]
    procs = list(servers)
    try:
        ports = [int(_expect(s, "PORT", 60).split()[1]) for s in servers]
        half = opts.subscribers // 2
        subs = [
            _spawn(["--role", "subscribers", "--transport", transport, str(ports[i]), cafile,
                    str(half if i == 0 else opts.subscribers - half), str(opts.messages), str(opts.idle)])
            for i in range(2)
        ]
        procs += subs
        for s in subs:
            _expect(s, "READY", 300)
        pub = _spawn(["--role", "publisher", "--transport", transport, str(ports[0]), cafile,
                      str(opts.messages), str(opts.rate), str(opts.size)])
        procs.append(pub)
        pub_info = json.loads(_expect(pub, "{", 300))
        results = [json.loads(_expect(s, "{", 300)) for s in subs]
        if opts.verbose:
            for i, r in enumerate(results):
                ls = r["lat_sample"]
                print(f"  subscribers on server {'AB'[i]}: {r['received']:,} received, "
                      f"p50 {pct(ls, 0.5) / 1000 if ls else 0:.1f} ms", file=sys.stderr)
        received = sum(r["received"] for r in results)
        last = max(r["last"] for r in results)
        lat = sorted(x for r in results for x in r["lat_sample"])
        expected = opts.messages * opts.subscribers
        span = (last - pub_info["first"]) / 1e9
        return {
            "transport": transport,
            "subscribers": opts.subscribers,
            "messages": opts.messages,
            "rate": opts.rate,
            "delivered": received,
            "expected": expected,
            "loss": 1 - received / expected,
            "deliveries_per_s": received / span if span > 0 else 0.0,
            "p50_ms": pct(lat, 0.5) / 1000 if lat else None,
            "p99_ms": pct(lat, 0.99) / 1000 if lat else None,
            "publish_s": pub_info["elapsed"],
        }
    finally:
        for p in procs:
            if p.poll() is None and p.stdin is not None:
                try:
                    p.stdin.close()
                except OSError:
                    pass
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def orchestrate(opts: argparse.Namespace) -> None:
    from certs import make_certs
    from redis_server import RedisServer

    with tempfile.TemporaryDirectory() as tmp:
        certs = make_certs(Path(tmp))
        redis = RedisServer(Path(tmp))
        redis.start()
        try:
            out = []
            for transport in opts.transports.split(","):
                res = run_transport(transport, opts, str(certs.cert), str(certs.key), str(certs.ca_cert), redis.url)
                out.append(res)
                print(
                    f"{transport:13s} delivered {res['delivered']:,}/{res['expected']:,} "
                    f"loss {res['loss']:.2%}  {res['deliveries_per_s']:,.0f} deliveries/s  "
                    f"p50 {res['p50_ms']:.1f} ms  p99 {res['p99_ms']:.1f} ms",
                    flush=True,
                )
        finally:
            redis.stop()
    if len(out) == 2:
        wt, ws = out
        print(
            f"ratio WebTransport/WebSocket: throughput {wt['deliveries_per_s'] / ws['deliveries_per_s']:.2f}x, "
            f"p50 {wt['p50_ms'] / ws['p50_ms']:.2f}x, p99 {wt['p99_ms'] / ws['p99_ms']:.2f}x"
        )
    if opts.json:
        print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", default="orchestrate")
    parser.add_argument("--transport", default="webtransport")
    parser.add_argument("--transports", default="webtransport,websocket")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rate", type=float, default=100.0, help="messages per second published")
    parser.add_argument("--size", type=int, default=64, help="payload bytes")
    parser.add_argument("--idle", type=float, default=15.0, help="subscriber gives up after this long without a message")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="per-server breakdown on stderr")
    parser.add_argument("rest", nargs="*")
    opts = parser.parse_args()
    r = opts.rest
    if opts.role == "orchestrate":
        orchestrate(opts)
    elif opts.role == "server":
        asyncio.run(role_server(opts.transport, r[0], r[1], r[2]))
    elif opts.role == "subscribers":
        asyncio.run(role_subscribers(opts.transport, int(r[0]), r[1], int(r[2]), int(r[3]), float(r[4])))
    elif opts.role == "publisher":
        asyncio.run(role_publisher(opts.transport, int(r[0]), r[1], int(r[2]), float(r[3]), int(r[4])))
    os._exit(0) if opts.role != "orchestrate" else None


if __name__ == "__main__":
    main()
