#!/usr/bin/env python3
"""Soak: minutes of churn against one server, watching that its resources stay flat.

The server runs in this process; client workers run in child processes and loop over
opening sessions, echoing streams of several sizes, sending datagrams and closing. Every few
seconds one worker is killed (SIGKILL) mid-transfer and replaced, so the server also sees
peers vanish without a word (their connections end by idle timeout). Every two seconds the
server's open file descriptors, RSS and live native msquic objects are sampled.

After the churn the workers stop, the server waits for the vanished peers' idle timeouts,
and the run passes when: descriptors and live native objects are back at the baseline, RSS
grew less than ``--rss-slack-mib`` between the end of warm-up and the end, and the clients saw
no unexpected errors beyond the sessions they lost by being killed.

    python bench/soak.py                      # 10 minutes
    python bench/soak.py --seconds 60 --json soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

IDLE_TIMEOUT = 4.0


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


# -- client worker ---------------------------------------------------------------------------

async def client_worker(url: str, seconds: float, seed: int) -> dict[str, int]:
    from pywebtransport import ClientConfig, WebTransportClient

    rng = random.Random(seed)
    counts = {"sessions": 0, "streams": 0, "datagrams": 0, "errors": 0}
    config = ClientConfig.create(verify_mode=ssl.CERT_NONE, connect_timeout=10, read_timeout=10)
    deadline = time.monotonic() + seconds
    async with WebTransportClient.create(config=config) as client:
        while time.monotonic() < deadline:
            try:
                async with await client.connect(url) as session:
                    counts["sessions"] += 1
                    for _ in range(rng.randint(1, 6)):
                        size = rng.choice((0, 10, 1000, 64 * 1024, 512 * 1024))
                        stream = await session.create_bidirectional_stream()
                        payload = os.urandom(size)
                        await stream.write_all(payload)
                        if await stream.read_all() != payload:
                            raise AssertionError("echo mismatch")
                        counts["streams"] += 1
                    for _ in range(rng.randint(0, 20)):
                        await session.datagrams.send(os.urandom(rng.randint(1, 1000)))
                        counts["datagrams"] += 1
                    if rng.random() < 0.2:  # leave a stream half-used behind
                        stream = await session.create_bidirectional_stream()
                        await stream.write(b"abandoned")
            except AssertionError:
                raise
            except Exception:
                counts["errors"] += 1
                await asyncio.sleep(0.1)
    return counts


# -- server and supervisor -------------------------------------------------------------------

async def run(seconds: float, workers: int, kill_every: float, rss_slack: float) -> dict[str, Any]:
    from pywebtransport import ServerApp, ServerConfig, WebTransportSession, WebTransportStream
    from pywebtransport._native import lib
    from pywebtransport.utils import generate_self_signed_cert

    certdir = tempfile.mkdtemp(prefix="soak-")
    cert, key = generate_self_signed_cert("localhost", output_dir=certdir)
    app = ServerApp(config=ServerConfig.create(
        certfile=cert, keyfile=key, connection_idle_timeout=IDLE_TIMEOUT, keep_alive=False,
        max_connections=10_000, max_sessions=10_000,
    ))
    served = {"sessions": 0}

    @app.route("/churn")
    async def churn(session: WebTransportSession) -> None:
        served["sessions"] += 1

        async def datagrams() -> None:
            while True:
                await session.datagrams.receive()

        task = asyncio.ensure_future(datagrams())
        try:
            async for stream in session.incoming_streams():
                if isinstance(stream, WebTransportStream):
                    asyncio.ensure_future(echo(stream))
        finally:
            task.cancel()

    async def echo(stream: WebTransportStream) -> None:
        try:
            await stream.write_all(await stream.read_all())
        except Exception:
            pass  # the client went away mid-stream: that is the point of the soak

    samples: list[dict[str, float]] = []

    def sample(phase: str) -> dict[str, float]:
        s = {"t": round(time.monotonic() - t0, 1), "fds": fd_count(), "rss_mib": round(rss_mib(), 1),
             "native_objects": int(lib.pwt_live_objects()), "phase": phase}  # type: ignore[dict-item]
        samples.append(s)
        return s

    t0 = time.monotonic()
    async with app:
        await app.server.listen(host="127.0.0.1", port=0)
        assert app.server.local_address is not None
        url = f"https://127.0.0.1:{app.server.local_address[1]}/churn"
        await asyncio.sleep(0.5)
        baseline = sample("baseline")
        procs: list[subprocess.Popen[bytes]] = []
        spawned = killed = 0
        results: list[dict[str, int]] = []
        out_dir = Path(certdir)

        def spawn() -> subprocess.Popen[bytes]:
            nonlocal spawned
            spawned += 1
            out = out_dir / f"worker-{spawned}.json"
            remaining = max(1.0, seconds - (time.monotonic() - t0))
            return subprocess.Popen([sys.executable, __file__, "--worker", url, "--seconds", str(remaining),
                                     "--seed", str(spawned), "--out", str(out)])

        procs = [spawn() for _ in range(workers)]
        warm_until = t0 + min(30.0, seconds / 4)
        warm_rss: float | None = None
        next_kill = time.monotonic() + kill_every
        rng = random.Random(0)
        while time.monotonic() - t0 < seconds:
            await asyncio.sleep(2.0)
            s = sample("churn")
            if warm_rss is None and time.monotonic() >= warm_until:
                warm_rss = s["rss_mib"]
            if time.monotonic() >= next_kill:
                next_kill += kill_every
                victim = rng.randrange(len(procs))
                if procs[victim].poll() is None:
                    procs[victim].send_signal(signal.SIGKILL)
                    procs[victim].wait()
                    killed += 1
                procs[victim] = spawn()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in out_dir.glob("worker-*.json"):
            results.append(json.loads(f.read_text()))
        # Vanished peers end by idle timeout; give it a few periods.
        settle_deadline = time.monotonic() + 6 * IDLE_TIMEOUT
        while time.monotonic() < settle_deadline:
            await asyncio.sleep(1.0)
            s = sample("settle")
            if s["fds"] <= baseline["fds"] and s["native_objects"] <= baseline["native_objects"]:
                break
        final = sample("final")

    totals = {k: sum(r.get(k, 0) for r in results) for k in ("sessions", "streams", "datagrams", "errors")}
    warm_rss = warm_rss if warm_rss is not None else baseline["rss_mib"]
    checks = {
        "fds_back_to_baseline": final["fds"] <= baseline["fds"],
        "native_objects_back_to_baseline": final["native_objects"] <= baseline["native_objects"],
        "rss_flat": final["rss_mib"] - warm_rss <= rss_slack,
        "work_done": totals["sessions"] > 0 and totals["streams"] > 0,
        # Errors only from sessions cut short by killed workers or their server-side timeouts.
        "few_client_errors": totals["errors"] <= max(5, 0.05 * totals["sessions"]),
    }
    return {
        "seconds": seconds, "workers": workers, "workers_spawned": spawned, "workers_killed": killed,
        "server_sessions": served["sessions"], "client_totals": totals, "baseline": baseline,
        "rss_after_warmup_mib": warm_rss, "final": final, "peak_rss_mib": max(x["rss_mib"] for x in samples),
        "peak_fds": max(x["fds"] for x in samples), "peak_native_objects": max(x["native_objects"] for x in samples),
        "checks": checks, "passed": all(checks.values()), "samples": samples,
    }


def main() -> int:
    p = argparse.ArgumentParser(description="Churn a server for a while and check that fds, RSS and native objects stay flat.")
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--workers", type=int, default=3, help="client processes at once")
    p.add_argument("--kill-every", type=float, default=5.0, help="seconds between killing one client worker")
    p.add_argument("--rss-slack-mib", type=float, default=24.0)
    p.add_argument("--json", help="write the result here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        counts = asyncio.run(client_worker(a.worker, a.seconds, a.seed))
        Path(a.out).write_text(json.dumps(counts))
        return 0
    result = asyncio.run(run(a.seconds, a.workers, a.kill_every, a.rss_slack_mib))
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(summary, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
