"""Many-session throughput of ``pywebtransport serve --workers N`` (N = 1 and 2) in one run.

The server is the CLI echo app (each bidirectional stream is echoed with an ``ECHO: `` prefix).
``--clients`` load processes each open ``--sessions`` sessions (one connection each) and, on every
session, loop for ``--seconds``: open a bidirectional stream, write ``--size`` bytes, read the
echo. Reported per worker count: completed echoes per second (all clients), p50/p99 echo time,
and the 2-worker/1-worker ratio. Client and server processes share the machine's cores, so on
a 2-core box the ratio is bounded by the load generators too.

    flock /tmp/bench.lock python bench/workers_bench.py --clients 2 --sessions 50 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import pct  # noqa: E402


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def load(port: int, sessions: int, seconds: float, size: int) -> None:
    from pywebtransport import ClientConfig, WebTransportClient

    config = ClientConfig.create(verify_mode=ssl.CERT_NONE, connect_timeout=60)
    payload = b"x" * size
    expected = b"ECHO: " + payload
    samples: list[int] = []
    done = 0
    errors = 0
    clients = []
    opened = []
    for _ in range(sessions):
        client = WebTransportClient(config)
        await client.__aenter__()
        clients.append(client)
        for attempt in range(50):
            try:
                opened.append(await client.connect(f"https://127.0.0.1:{port}/echo", timeout=10))
                break
            except Exception:
                await asyncio.sleep(0.2)
    print("READY", flush=True)
    start_at = float(sys.stdin.readline())
    await asyncio.sleep(max(0.0, start_at - time.time()))
    end = time.monotonic() + seconds

    async def worker(session: object) -> None:
        nonlocal done, errors
        while time.monotonic() < end:
            t0 = time.monotonic_ns()
            try:
                stream = await session.create_bidirectional_stream()  # type: ignore[attr-defined]
                await stream.write_all(payload)
                reply = await stream.read_all()
            except Exception:
                errors += 1
                continue
            if reply == expected:
                done += 1
                samples.append(time.monotonic_ns() - t0)
            else:
                errors += 1

    await asyncio.gather(*(worker(s) for s in opened))
    samples.sort()
    print(json.dumps({"done": done, "errors": errors, "sessions": len(opened),
                      "samples": samples[:: max(1, len(samples) // 5000)]}), flush=True)
    for client in clients:
        await client.close()


def run(workers: int, opts: argparse.Namespace) -> dict[str, object]:
    port = free_udp_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pywebtransport.cli", "serve", "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    loaders: list[subprocess.Popen[str]] = []
    try:
        time.sleep(2.0)
        loaders = [
            subprocess.Popen(
                [sys.executable, __file__, "--role", "load", str(port), str(opts.sessions), str(opts.seconds), str(opts.size)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )
            for _ in range(opts.clients)
        ]
        for p in loaders:
            assert p.stdout is not None
            if p.stdout.readline().strip() != "READY":
                raise RuntimeError("load process failed to connect")
        start_at = time.time() + 0.5
        for p in loaders:
            assert p.stdin is not None
            p.stdin.write(f"{start_at}\n")
            p.stdin.flush()
        results = []
        for p in loaders:
            assert p.stdout is not None
            results.append(json.loads(p.stdout.readline()))
        samples = sorted(x for r in results for x in r["samples"])
        done = sum(r["done"] for r in results)
        return {
            "workers": workers,
            "sessions": sum(r["sessions"] for r in results),
            "echoes_per_s": done / opts.seconds,
            "errors": sum(r["errors"] for r in results),
            "p50_ms": pct(samples, 0.5) / 1000,
            "p99_ms": pct(samples, 0.99) / 1000,
        }
    finally:
        for p in loaders:
            p.wait(60)
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", default="orchestrate")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("rest", nargs="*")
    opts = parser.parse_args()
    if opts.role == "load":
        r = opts.rest
        asyncio.run(load(int(r[0]), int(r[1]), float(r[2]), int(r[3])))
        os._exit(0)
    out = []
    for workers in (1, 2):
        res = run(workers, opts)
        out.append(res)
        print(
            f"workers={workers}: {res['sessions']} sessions, {res['echoes_per_s']:,.0f} echoes/s, "
            f"p50 {res['p50_ms']:.2f} ms, p99 {res['p99_ms']:.2f} ms, errors {res['errors']}",
            flush=True,
        )
    print(f"ratio 2 workers / 1 worker: {out[1]['echoes_per_s'] / out[0]['echoes_per_s']:.2f}x")  # type: ignore[operator]
    if opts.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
