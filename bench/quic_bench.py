#!/usr/bin/env python3
"""PyWebTransport QUIC layer vs. native msquic: the same five scenarios, one table.

Setup (identical for both sides): ONE process is both server and client over
127.0.0.1.  Python: server and client run on the same asyncio loop (so one
Python thread handles both sides' events, as an in-process test would);
C (bench/baseline.c): both sides in one process, driven by msquic's callbacks.
Both use the Python layer's default QUIC settings (config.py native_settings),
the LOW_LATENCY execution profile, the same self-signed ECDSA P-256
certificate (generated here with ``cryptography``), ALPN "bench" and a client
that skips certificate validation.

Scenarios (same method on both sides):
  upload     client writes N MiB on one bidi stream in --chunk-kib writes
             (default 256 KiB = the layer's WRITE_CHUNK), server discards;
             timed from the first write until the server sees FIN.
             C keeps --window-kib (1 MiB = send_buffer_high_water) in flight.
  download   1-byte request + FIN, server answers N MiB + FIN, timed until
             the client sees FIN.
  echo       64-byte messages on ONE stream, sequential round trips, after
             --warmup discarded rounds; p50/p99 in microseconds.  C reports two
             drivers: "cb" (next send from the RECEIVE callback: the native
             floor) and "thread" (an app thread blocks on a condvar per round
             trip, like an event loop waking on an fd).
  datagram   send-one-wait-echo (NOT windowed): one 64-byte datagram carrying a
             sequence number, wait <= 200 ms for its echo, repeat.  Reported
             as round trips per second (+ lost count).
  handshake  sequential connect -> wait connected -> close -> wait closed.

Usage:
  /tmp/venv1/bin/python bench/quic_bench.py                 # full (~1-2 min)
  /tmp/venv1/bin/python bench/quic_bench.py --quick         # ~15 s
  /tmp/venv1/bin/python bench/quic_bench.py --profile cprofile --only upload
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import json
import os
import shlex
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_common import fmt, median, pct, run_profiled  # noqa: E402

SCENARIOS = ("upload", "download", "echo", "datagram", "handshake")
ALPN = "bench"
MSG = 64
DGRAM_TIMEOUT = 0.2


# ---------------------------------------------------------------------------
# certificate


def make_cert(directory: Path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(certfile), str(keyfile)


# ---------------------------------------------------------------------------
# Python side


class PyBench:
    def __init__(self, args: argparse.Namespace, certfile: str, keyfile: str) -> None:
        self.args = args
        self.certfile = certfile
        self.keyfile = keyfile
        self.mode = "upload"
        self.upload_done: asyncio.Future[int] | None = None
        self.chunk = b"b" * (args.chunk_kib * 1024)

    # -- server --------------------------------------------------------------
    async def _server_conn(self, conn: Any) -> None:
        from pywebtransport.quic import ConnectionClosed

        conn.on_datagram = conn.send_datagram  # echo inline, like the C server
        try:
            while True:
                stream = await conn.accept_stream()
                asyncio.get_running_loop().create_task(self._server_stream(stream, self.mode))
        except ConnectionClosed:
            pass

    async def _server_stream(self, s: Any, mode: str) -> None:
        if mode == "upload":
            n = 0
            while True:
                data = await s.read()
                if not data:
                    break
                n += len(data)
            end = time.perf_counter_ns()
            if self.upload_done is not None and not self.upload_done.done():
                self.upload_done.set_result(end)
            s.finish()
        elif mode == "download":
            await s.read_all()
            await self._send_bulk(s, self.download_bytes)
        elif mode == "echo":
            while True:
                data = await s.read()
                if not data:
                    break
                await s.write(data)
            s.finish()

    async def _send_bulk(self, s: Any, nbytes: int) -> None:
        chunk = self.chunk
        size = len(chunk)
        sent = 0
        while sent < nbytes:
            n = min(size, nbytes - sent)
            sent += n
            await s.write(chunk if n == size else chunk[:n], fin=sent == nbytes)

    # -- client scenarios ----------------------------------------------------
    async def upload(self, conn: Any, nbytes: int) -> float:
        self.mode = "upload"
        self.upload_done = asyncio.get_running_loop().create_future()
        s = await conn.open_bidi_stream()
        c0 = time.thread_time()
        t0 = time.perf_counter_ns()
        await self._send_bulk(s, nbytes)
        t1 = await self.upload_done
        self.cpu_pct = 100 * (time.thread_time() - c0) / ((time.perf_counter_ns() - t0) / 1e9)
        while await s.read():
            pass
        return nbytes / (1 << 20) / ((t1 - t0) / 1e9)

    async def download(self, conn: Any, nbytes: int) -> float:
        self.mode = "download"
        self.download_bytes = nbytes
        s = await conn.open_bidi_stream()
        c0 = time.thread_time()
        t0 = time.perf_counter_ns()
        await s.write(b"D", fin=True)
        got = 0
        while True:
            data = await s.read()
            if not data:
                break
            got += len(data)
        t1 = time.perf_counter_ns()
        self.cpu_pct = 100 * (time.thread_time() - c0) / ((t1 - t0) / 1e9)
        if got != nbytes:
            raise RuntimeError(f"download got {got} of {nbytes} bytes")
        return nbytes / (1 << 20) / ((t1 - t0) / 1e9)

    async def echo(self, conn: Any, rounds: int, warmup: int) -> tuple[float, float]:
        self.mode = "echo"
        s = await conn.open_bidi_stream()
        msg = b"e" * MSG
        samples = []
        clock = time.perf_counter_ns
        c0 = time.thread_time()
        for _ in range(rounds + warmup):
            t0 = clock()
            await s.write(msg)
            await s.readexactly(MSG)
            samples.append(clock() - t0)
        self.cpu_us = 1e6 * (time.thread_time() - c0) / (rounds + warmup)
        s.finish()
        while await s.read():
            pass
        v = sorted(samples[warmup:])
        return pct(v, 0.50), pct(v, 0.99)

    async def datagrams(self, conn: Any, rounds: int) -> tuple[float, int]:
        for _ in range(1000):
            if conn.max_datagram_size:
                break
            await asyncio.sleep(0.001)
        pad = b"x" * (MSG - 8)
        pack = struct.Struct("<Q").pack
        unpack = struct.Struct("<Q").unpack_from
        lost = 0
        c0 = time.thread_time()
        t0 = time.perf_counter_ns()
        for seq in range(rounds):
            conn.send_datagram(pack(seq) + pad)
            try:
                async with asyncio.timeout(DGRAM_TIMEOUT):
                    while unpack(await conn.receive_datagram())[0] != seq:
                        pass
            except TimeoutError:
                lost += 1
        secs = (time.perf_counter_ns() - t0) / 1e9
        self.cpu_us = 1e6 * (time.thread_time() - c0) / rounds
        return rounds / secs, lost

    async def handshakes(self, n: int, port: int) -> float:
        from pywebtransport.quic import connect

        cfg = self.client_config()
        clock = time.perf_counter_ns
        t_conn = t_close = 0
        t0 = clock()
        for _ in range(n):
            ta = clock()
            c = await connect("127.0.0.1", port, cfg)
            tb = clock()
            await c.aclose()
            t_conn += tb - ta
            t_close += clock() - tb
        rate = n / ((clock() - t0) / 1e9)
        self.hs_split = (t_conn / n / 1e3, t_close / n / 1e3)
        return rate

    def client_config(self) -> Any:
        from pywebtransport.quic import QuicConfiguration

        return QuicConfiguration(is_client=True, alpn_protocols=[ALPN], verify_peer=False)

    # -- driver --------------------------------------------------------------
    async def run(self, only: set[str], profiler: Any = None) -> dict[str, Any]:
        from pywebtransport.quic import QuicConfiguration, connect, serve

        a = self.args
        out: dict[str, Any] = {"impl": "python", "size_mib": a.size}
        server_cfg = QuicConfiguration(
            is_client=False, certfile=self.certfile, keyfile=self.keyfile, alpn_protocols=[ALPN]
        )
        listener = await serve("127.0.0.1", 0, server_cfg, self._server_conn)
        conn = await connect("127.0.0.1", listener.port, self.client_config())

        def prof(on: bool) -> None:
            if profiler is not None:
                profiler.enable() if on else profiler.disable()

        nbytes = a.size << 20
        if a.warmup_mib and only & {"upload", "download"}:
            await self.upload(conn, a.warmup_mib << 20)
            await self.download(conn, a.warmup_mib << 20)
        if "upload" in only:
            prof(True)
            out["upload_mib_s"] = round(await self.upload(conn, nbytes), 1)
            prof(False)
            out["upload_loop_cpu_pct"] = round(self.cpu_pct)
        if "download" in only:
            prof(True)
            out["download_mib_s"] = round(await self.download(conn, nbytes), 1)
            prof(False)
            out["download_loop_cpu_pct"] = round(self.cpu_pct)
        if "echo" in only:
            prof(True)
            p50, p99 = await self.echo(conn, a.rounds, a.warmup)
            prof(False)
            out.update(echo_rounds=a.rounds, echo_p50_us=round(p50, 1), echo_p99_us=round(p99, 1))
            out["echo_loop_cpu_us"] = round(self.cpu_us, 1)
        if "datagram" in only:
            prof(True)
            rate, lost = await self.datagrams(conn, a.dgram_rounds)
            prof(False)
            out.update(dgram_rounds=a.dgram_rounds, dgram_rt_per_s=round(rate), dgram_lost=lost)
            out["dgram_loop_cpu_us"] = round(self.cpu_us, 1)
        await conn.aclose()
        if "handshake" in only and a.handshakes:
            prof(True)
            out.update(
                handshakes=a.handshakes,
                handshakes_per_s=round(await self.handshakes(a.handshakes, listener.port), 1),
            )
            out["hs_connect_us"], out["hs_close_us"] = (round(x) for x in self.hs_split)
            prof(False)
        await listener.aclose()
        return out


def run_python(args: argparse.Namespace, certfile: str, keyfile: str, only: set[str]) -> dict:
    gc.collect()
    return asyncio.run(PyBench(args, certfile, keyfile).run(only))


# ---------------------------------------------------------------------------
# C side


def run_c(args: argparse.Namespace, certfile: str, keyfile: str, only: set[str]) -> dict:
    from build_baseline import build

    binary = build()
    cmd = [
        str(binary),
        "--cert", certfile,
        "--key", keyfile,
        "--alpn", ALPN,
        "--size-mib", str(args.size),
        "--warmup-mib", str(args.warmup_mib),
        "--rounds", str(args.rounds),
        "--warmup", str(args.warmup),
        "--dgram-rounds", str(args.dgram_rounds),
        "--handshakes", str(args.handshakes),
        "--chunk-kib", str(args.chunk_kib),
        "--window-kib", str(args.window_kib),
        "--only", ",".join(sorted(only)),
    ]  # fmt: skip
    from pywebtransport import _native

    env = {**os.environ, "PWT_BASELINE_POLL_US": str(_native.polling_idle_us())}
    res = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600, env=env)
    return json.loads(res.stdout)


# ---------------------------------------------------------------------------
# report


def report(py: list[dict], c: list[dict], repro: str) -> str:
    rows: list[tuple[str, str, str, str, str]] = []

    def add(label: str, pk: str, ck: str, unit: str, better: str, target: float | None) -> None:
        p, cv = median(py, pk), median(c, ck)
        if p is None or cv is None:
            return
        if better == "higher":
            ratio = p / cv
            rtxt = f"{ratio:.2f} (py/C, higher=better)"
            verdict = "" if target is None else ("PASS" if ratio >= target else "MISS") + f" (>= {target:.2f})"
        else:
            ratio = p / cv
            rtxt = f"{ratio:.2f}x (py/C, lower=better)"
            verdict = "" if target is None else ("PASS" if ratio <= target else "MISS") + f" (<= {target:.2f}x)"
        rows.append((label, fmt(p, unit), fmt(cv, unit), rtxt, verdict))

    add("upload (1 stream)", "upload_mib_s", "upload_mib_s", "MiB/s", "higher", 0.70)
    add("download (1 stream)", "download_mib_s", "download_mib_s", "MiB/s", "higher", 0.70)
    add("echo 64B p50 vs C-callback", "echo_p50_us", "echo_cb_p50_us", "us", "lower", 1.5)
    add("echo 64B p99 vs C-callback", "echo_p99_us", "echo_cb_p99_us", "us", "lower", None)
    add("echo 64B p50 vs C-app-thread", "echo_p50_us", "echo_thread_p50_us", "us", "lower", 1.5)
    add("echo 64B p99 vs C-app-thread", "echo_p99_us", "echo_thread_p99_us", "us", "lower", None)
    add("echo 64B p50 vs C-one-loop", "echo_p50_us", "echo_loop_p50_us", "us", "lower", 1.5)
    add("echo 64B p99 vs C-one-loop", "echo_p99_us", "echo_loop_p99_us", "us", "lower", None)
    add("datagram ping-pong", "dgram_rt_per_s", "dgram_rt_per_s", "rt/s", "higher", None)
    add("handshakes (sequential)", "handshakes_per_s", "handshakes_per_s", "/s", "higher", None)
    add("handshakes vs C new-config/conn", "handshakes_per_s", "handshakes_newcfg_per_s", "/s", "higher", None)

    head = ("scenario", "python", "C baseline", "ratio", "target")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
    line = lambda r: "| " + " | ".join(x.ljust(w) for x, w in zip(r, widths)) + " |"  # noqa: E731
    out = [f"command: {repro}", ""]
    out.append(line(head))
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out.extend(line(r) for r in rows)
    lost_py = sum(r.get("dgram_lost", 0) for r in py)
    lost_c = sum(r.get("dgram_lost", 0) for r in c)
    out.append("")
    out.append(
        f"runs: python={len(py)} C={len(c)} (median shown); datagrams lost: python={lost_py} C={lost_c}"
    )
    diag = []
    for key, label in (
        ("upload_loop_cpu_pct", "python loop-thread CPU during upload: {:.0f}%"),
        ("download_loop_cpu_pct", "python loop-thread CPU during download: {:.0f}%"),
        ("echo_loop_cpu_us", "python loop-thread CPU per echo round trip: {:.1f} us"),
        ("dgram_loop_cpu_us", "python loop-thread CPU per datagram round trip: {:.1f} us"),
        ("hs_connect_us", "python connect(): {:.0f} us"),
        ("hs_close_us", "python aclose(): {:.0f} us"),
    ):
        v = median(py, key)
        if v is not None:
            diag.append(label.format(v))
    for key, label in (
        ("hs_connect_us", "C connect (shared config): {:.0f} us"),
        ("hs_close_us", "C close: {:.0f} us"),
    ):
        v = median(c, key)
        if v is not None:
            diag.append(label.format(v))
    if diag:
        out.append("diagnostics (medians): " + "; ".join(diag))
    return "\n".join(out)


# ---------------------------------------------------------------------------
# profiling


def profile_python(args: argparse.Namespace, certfile: str, keyfile: str, only: set[str]) -> None:
    """Run the Python scenarios with the profiler enabled only while measuring."""
    run_profiled(lambda prof: PyBench(args, certfile, keyfile).run(only, prof), args.profile_top)


# ---------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=None, help="MiB per throughput run (default 256; 32 with --quick)")
    ap.add_argument("--rounds", type=int, default=None, help="echo round trips (default 5000; 1000 with --quick)")
    ap.add_argument("--warmup", type=int, default=200, help="echo rounds discarded first")
    ap.add_argument("--dgram-rounds", type=int, default=None, help="datagram round trips (default = --rounds)")
    ap.add_argument("--handshakes", type=int, default=None, help="sequential handshakes (default 200; 50 with --quick)")
    ap.add_argument("--repeat", type=int, default=None, help="runs per implementation, median reported (default 3; 1 with --quick)")
    ap.add_argument("--warmup-mib", type=int, default=8, help="untimed upload+download before throughput runs")
    ap.add_argument("--chunk-kib", type=int, default=256, help="application write size (both sides)")
    ap.add_argument("--window-kib", type=int, default=1024, help="C sender's in-flight limit (Python: send_buffer_high_water)")
    ap.add_argument("--quick", action="store_true", help="small sizes for a fast run")
    ap.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated subset of " + ",".join(SCENARIOS))
    ap.add_argument("--skip-c", action="store_true", help="run only the Python side")
    ap.add_argument("--json", action="store_true", help="also print the raw results as JSON")
    ap.add_argument("--profile", choices=("cprofile",), help="profile the Python side only (no table)")
    ap.add_argument("--profile-top", type=int, default=30)
    args = ap.parse_args()

    q = args.quick
    args.size = args.size if args.size is not None else (32 if q else 256)
    args.rounds = args.rounds if args.rounds is not None else (1000 if q else 5000)
    args.dgram_rounds = args.dgram_rounds if args.dgram_rounds is not None else args.rounds
    args.handshakes = args.handshakes if args.handshakes is not None else (50 if q else 200)
    args.repeat = args.repeat if args.repeat is not None else (1 if q else 3)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    bad = only - set(SCENARIOS)
    if bad:
        ap.error(f"unknown scenarios: {', '.join(sorted(bad))}")

    repro = " ".join(shlex.quote(x) for x in [sys.executable, *sys.argv])
    with tempfile.TemporaryDirectory(prefix="pwt-bench-") as tmp:
        certfile, keyfile = make_cert(Path(tmp))
        if args.profile:
            profile_python(args, certfile, keyfile, only)
            return 0
        py: list[dict] = []
        c: list[dict] = []
        t0 = time.monotonic()
        for i in range(args.repeat):
            py.append(run_python(args, certfile, keyfile, only))
            print(f"[run {i + 1}/{args.repeat}] python: {json.dumps(py[-1])}", file=sys.stderr, flush=True)
            if not args.skip_c:
                c.append(run_c(args, certfile, keyfile, only))
                print(f"[run {i + 1}/{args.repeat}] C:      {json.dumps(c[-1])}", file=sys.stderr, flush=True)
        print(f"[bench] total {time.monotonic() - t0:.1f}s", file=sys.stderr)
        if args.json:
            print(json.dumps({"python": py, "c": c}, indent=2))
        if args.skip_c:
            print(f"command: {repro}")
            for r in py:
                print(json.dumps(r))
            return 0
        print(report(py, c, repro))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
