#!/usr/bin/env python3
"""PyWebTransport vs. webtransport-go and wtransport: the same scenarios, one table, one run.

  python bench/wt_bench.py --peers [--quick] [--only S1,S2] [--libs py,go,rust] [--json PATH]
  python bench/peers_bench.py      (the same)

Each library has its own benchmark client and server (bench/peers/, protocol and scenarios in
bench/peers/README.md): PyWebTransport through its public API, webtransport-go v0.12.0 with
quic-go v0.61.0, wtransport 0.7.2 with quinn 0.11. The Go and Rust programs are built from the
Go module proxy / crates.io into the interop peer cache (tests/interop/peer_cache.py). For every
scenario the driver starts a fresh server and then the client(s) of the same library, each a
separate process, over 127.0.0.1, with the same self-signed certificate (tests/certs.py).

Fairness: every client does the same warm-up, then prints "ready" and waits for the driver's
go-ahead (the driver samples CPU time and RSS of both processes there and again when the result
arrives), times with the monotonic clock around each operation and reports raw samples; the
driver computes all percentiles with the same code. Libraries take turns scenario by scenario
(upload by py, go, rust, then download by each, ...), and every repetition rotates who goes
first (py, go, rust; then go, rust, py; ...), so a drift in the machine's load over minutes hits
all of them alike; the 1-minute load average is recorded as each library starts a repetition.

CPU seconds come from /proc/PID/task/*/schedstat (time on CPU of every thread, in ns) and RSS
from /proc/PID/status. The 10,000-session scenario spreads the client over --idle-procs
processes (default 4, the same for every library): one Python process cannot open 10,000
connections quickly, so all libraries get the same spread. Every wait is bounded: a scenario
that stalls is killed and reported as a failure, and the run continues.

Use `flock /tmp/bench.lock python bench/wt_bench.py --peers` on shared machines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = HERE / "peers"
for _p in (HERE, ROOT / "tests", ROOT / "tests" / "interop"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from bench_common import median, pct  # noqa: E402
from peer_cache import (  # noqa: E402
    PeerBuildError,
    build_cargo_crate,
    build_go_module,
    cargo_locked_version,
    go_required_version,
)
from render_table import render  # noqa: E402

LIB_ORDER = ("py", "go", "rust")
SCENARIOS = ("upload", "download", "echo", "stream_echo", "dgram", "dgram_rate", "setup", "concurrent", "idle")
MIB = 1 << 20



def metric_defs(params: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The table's rows in order: key, label (with this run's sizes), unit, which way is better.

    ``no_ratio`` rows (error counts, loss) show values but no ratio.
    """
    bulk = params["upload"]
    size, chunk = bulk["size"] / MIB, bulk["chunk"] >> 10
    conc, idle = params["concurrent"], params["idle"]
    n_idle = f"{idle['sessions']:,} idle sessions"
    n_conc = f"{conc['sessions']} concurrent sessions"
    setup = "session setup (new QUIC connection + CONNECT + 200)"

    def m(key: str, label: str, unit: str, better: str, no_ratio: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {"key": key, "label": label, "unit": unit, "better": better}
        if no_ratio:
            d["no_ratio"] = True
        return d

    return [
        m("upload_mb_s", f"upload {size:g} MiB, one stream, {chunk} KiB writes", "MB/s", "higher"),
        m("upload_cpu_client_s_per_mib", "upload CPU per MiB, client", "s", "lower"),
        m("upload_cpu_server_s_per_mib", "upload CPU per MiB, server", "s", "lower"),
        m("download_mb_s", f"download {size:g} MiB, one stream, {chunk} KiB writes", "MB/s", "higher"),
        m("download_cpu_client_s_per_mib", "download CPU per MiB, client", "s", "lower"),
        m("download_cpu_server_s_per_mib", "download CPU per MiB, server", "s", "lower"),
        m("echo_p50_us", "64 B echo, one long-lived stream, p50", "µs", "lower"),
        m("echo_p99_us", "64 B echo, one long-lived stream, p99", "µs", "lower"),
        m("stream_echo_p50_us", "64 B echo, new bidi stream per request, p50", "µs", "lower"),
        m("stream_echo_p99_us", "64 B echo, new bidi stream per request, p99", "µs", "lower"),
        m("dgram_p50_us", "64 B datagram echo, 1 in flight, p50", "µs", "lower"),
        m("dgram_p99_us", "64 B datagram echo, 1 in flight, p99", "µs", "lower"),
        m("dgram_rate_k_s", f"datagram echo rate, {params['dgram_rate']['inflight']} in flight", "k/s", "higher"),
        m("dgram_loss_pct", f"datagram loss, {params['dgram_rate']['inflight']} in flight", "%", "lower", True),
        m("setup_p50_ms", f"{setup}, p50", "ms", "lower"),
        m("setup_p99_ms", f"{setup}, p99", "ms", "lower"),
        m("concurrent_wall_s", f"{n_conc} × {conc['requests']} per-request echoes, wall", "s", "lower"),
        m("concurrent_errors", f"{n_conc}: errors", "errors", "lower", True),
        m("idle_established", f"{n_idle}: established", "sessions", "higher"),
        m("idle_errors", f"{n_idle}: errors", "errors", "lower", True),
        m("idle_connect_rate", f"{n_idle}: connect rate", "/s", "higher"),
        m("idle_server_rss_kb", f"{n_idle}: server RSS per session", "KB", "lower"),
        m("idle_client_rss_kb", f"{n_idle}: client RSS per session", "KB", "lower"),
    ]


def scenario_params(quick: bool) -> dict[str, dict[str, Any]]:
    """Client options per scenario (the same for every library)."""
    if quick:
        bulk = {"size": 8 * MIB, "chunk": 64 << 10, "warmup-size": 1 * MIB}
        return {
            "upload": bulk,
            "download": bulk,
            "echo": {"rounds": 500, "warmup": 100},
            "stream_echo": {"rounds": 200, "warmup": 20},
            "dgram": {"rounds": 200, "warmup": 20},
            "dgram_rate": {"duration": 2.0, "inflight": 32, "warmup": 20},
            "setup": {"rounds": 10, "warmup": 2},
            "concurrent": {"sessions": 20, "requests": 5},
            "idle": {"sessions": 500, "concurrency": 16, "ramp-deadline": 30.0},
        }
    bulk = {"size": 64 * MIB, "chunk": 64 << 10, "warmup-size": 4 * MIB}
    return {
        "upload": bulk,
        "download": bulk,
        "echo": {"rounds": 5000, "warmup": 500},
        "stream_echo": {"rounds": 2000, "warmup": 100},
        "dgram": {"rounds": 2000, "warmup": 200},
        "dgram_rate": {"duration": 8.0, "inflight": 32, "warmup": 200},
        # 30 untimed setups first: a fresh Python server's first ~30 connections are slower
        # while the interpreter specializes the per-connection code (its Python work per
        # connection falls by a third or more from the first 5 to the 31st+;
        # docs/dev/data-path.md).
        # Every library gets the same warm-up; the timed 50 are steady state.
        "setup": {"rounds": 50, "warmup": 30},
        "concurrent": {"sessions": 100, "requests": 20},
        "idle": {"sessions": 10000, "concurrency": 16, "ramp-deadline": 180.0},
    }


def smoke_params() -> dict[str, dict[str, Any]]:
    """Tiny sizes for the protocol smoke test (tests/interop/test_bench_peers.py)."""
    return {
        "upload": {"size": 256 << 10, "chunk": 64 << 10, "warmup-size": 64 << 10},
        "download": {"size": 256 << 10, "chunk": 64 << 10, "warmup-size": 64 << 10},
        "echo": {"rounds": 20, "warmup": 5},
        "stream_echo": {"rounds": 10, "warmup": 2},
        "dgram": {"rounds": 10, "warmup": 2},
        "dgram_rate": {"duration": 0.3, "inflight": 8, "warmup": 2},
        "setup": {"rounds": 3, "warmup": 1},
        "concurrent": {"sessions": 4, "requests": 3},
        "idle": {"sessions": 10, "concurrency": 4, "ramp-deadline": 20.0},
    }


# ---------------------------------------------------------------------------- libraries


@dataclass
class Lib:
    key: str
    label: str
    version: str
    command: list[str]  # + ["server"|"client", ...]
    notes: list[str] = field(default_factory=list)


def prepare_lib(key: str) -> Lib:
    """Locate (Python) or build into the peer cache (Go, Rust) one library's peer program."""
    if key == "py":
        import pywebtransport

        return Lib("py", "PyWebTransport", pywebtransport.__version__,
                   [sys.executable, str(PEERS / "py" / "pwt_peer.py")])
    if key == "go":
        src = PEERS / "go"
        built = build_go_module(src, "bench", "wtbench")
        notes = [f"built in {built.build_seconds:.1f}s"] if not built.cached else []
        return Lib("go", "webtransport-go", f"{built.webtransport_go} + quic-go {built.quic_go}",
                   [str(built.binary)], notes)
    if key == "rust":
        crate = PEERS / "rust"
        t0 = time.monotonic()
        # opt-level 3 release build; a cold one takes several minutes on a loaded 2-core machine
        binary = build_cargo_crate(crate, "wt-bench-peer", prefix="rust-bench", timeout=1800, shared_target=True)
        elapsed = time.monotonic() - t0
        version = f"{cargo_locked_version(crate, 'wtransport')} + quinn {cargo_locked_version(crate, 'quinn')}"
        return Lib("rust", "wtransport", version, [str(binary)],
                   [f"built in {elapsed:.0f}s"] if elapsed > 5 else [])
    raise ValueError(f"unknown library {key!r}")


# ---------------------------------------------------------------------------- /proc


def cpu_ns(pid: int) -> dict[str, int] | None:
    """CPU time per live thread of ``pid`` (schedstat, ns resolution); None if the process is gone."""
    out: dict[str, int] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                out[tid] = int(f.read().split()[0])
    return out


def cpu_delta_s(before: dict[str, int] | None, after: dict[str, int] | None) -> float | None:
    """CPU seconds between two samples: per thread, so a thread that exits in between only
    loses its own share instead of making the sum go down (threads born in between count fully)."""
    if before is None or after is None:
        return None
    return sum(ns - before.get(tid, 0) for tid, ns in after.items()) / 1e9


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def load_1m() -> float:
    return os.getloadavg()[0]


# ---------------------------------------------------------------------------- processes


class PeerError(RuntimeError):
    pass


class PeerProc:
    """A peer process speaking JSON lines on stdout; every wait is bounded."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.stderr = bytearray()
        self._lines: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._tasks = [asyncio.ensure_future(self._pump()), asyncio.ensure_future(self._pump_err())]

    @classmethod
    async def start(cls, name: str, argv: list[str]) -> PeerProc:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=16 << 20,  # result lines carry up to ~100 KB of samples
        )
        return cls(name, proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def _pump(self) -> None:
        assert self.proc.stdout is not None
        while True:
            raw = await self.proc.stdout.readline()
            if not raw:
                break
            line = raw.decode(errors="replace").strip()
            if line.startswith("{"):
                try:
                    ev = json.loads(line)
                except json.JSONDecodeError:
                    continue
                self.events.append(ev)
                self._lines.put_nowait(ev)
        self._lines.put_nowait(None)

    async def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            if len(self.stderr) < 65536:
                self.stderr += chunk

    def _tail(self) -> str:
        return self.stderr.decode(errors="replace")[-1500:]

    async def expect(self, event: str, timeout: float) -> dict[str, Any]:
        """Wait (bounded) for the next ``event``; an error event, exit or timeout raises PeerError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise PeerError(f"{self.name}: no {event!r} within {timeout:.0f}s; stderr: {self._tail()}")
            try:
                ev = await asyncio.wait_for(self._lines.get(), remaining)
            except asyncio.TimeoutError:
                continue
            if ev is None:
                self._lines.put_nowait(None)
                rc = await self.wait(2)
                raise PeerError(f"{self.name}: exited (rc={rc}) before {event!r}; stderr: {self._tail()}")
            if ev.get("event") == event:
                return ev
            if ev.get("event") == "error":
                raise PeerError(f"{self.name}: {ev.get('detail')}")

    def send_line(self, text: str = "go") -> None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                self.proc.stdin.write(text.encode() + b"\n")

    async def wait(self, timeout: float) -> int | None:
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            return None

    async def stop(self, timeout: float = 10.0) -> None:
        """Close stdin (every peer exits on EOF); kill if it does not exit in time."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError, RuntimeError):
                self.proc.stdin.close()
        if await self.wait(timeout) is None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.wait(5)
        for t in self._tasks:
            t.cancel()


def client_argv(lib: Lib, url: str, scenario: str, params: dict[str, Any], timeout: float) -> list[str]:
    argv = [*lib.command, "client", "--url", url, "--scenario", scenario, "--timeout", str(timeout)]
    for k, v in params.items():
        argv += [f"--{k}", str(v)]
    return argv


def result_timeout(scenario: str, params: dict[str, Any]) -> float:
    if scenario == "dgram_rate":
        return float(params.get("duration", 8)) + 60
    if scenario == "idle":
        return float(params.get("ramp-deadline", 90)) + 60
    if scenario in ("upload", "download"):
        return 60 + float(params.get("size", 64 * MIB)) / MIB  # >= 1 MiB/s
    return 180.0


@contextlib.asynccontextmanager
async def server(lib: Lib, cert: str, key: str, start_timeout: float = 60.0):  # type: ignore[no-untyped-def]
    proc = await PeerProc.start(f"{lib.key} server", [*lib.command, "server", "--cert", cert, "--key", key,
                                                       "--port", "0"])
    try:
        ev = await proc.expect("listening", start_timeout)
        yield proc, int(ev["port"])
    finally:
        await proc.stop()


async def run_clients(
    lib: Lib,
    srv: PeerProc,
    port: int,
    scenario: str,
    params: dict[str, Any],
    *,
    procs: int = 1,
    connect_timeout: float = 10.0,
    ready_timeout: float = 120.0,
) -> dict[str, Any]:
    """Run one scenario's client(s) against a running server; returns the combined raw result."""
    url = f"https://127.0.0.1:{port}/bench"
    per_proc = [dict(params) for _ in range(procs)]
    if procs > 1:  # only the idle scenario spreads its sessions
        total = int(params["sessions"])
        for i, p in enumerate(per_proc):
            p["sessions"] = total // procs + (1 if i < total % procs else 0)
    clients: list[PeerProc] = []
    try:
        for i, p in enumerate(per_proc):
            clients.append(await PeerProc.start(f"{lib.key} client {scenario}#{i}",
                                                client_argv(lib, url, scenario, p, connect_timeout)))
        await asyncio.gather(*(c.expect("ready", ready_timeout) for c in clients))
        pids = [srv.pid] + [c.pid for c in clients]
        cpu0 = {pid: cpu_ns(pid) for pid in pids}
        rss0 = {pid: rss_kb(pid) for pid in pids}
        t0 = time.monotonic()
        for c in clients:
            c.send_line()
        results = await asyncio.gather(*(c.expect("result", result_timeout(scenario, p))
                                         for c, p in zip(clients, per_proc)))
        wall = time.monotonic() - t0
        if scenario == "idle":
            await asyncio.sleep(1.0)  # let both sides settle before reading RSS (same for all)
        cpu1 = {pid: cpu_ns(pid) for pid in pids}
        rss1 = {pid: rss_kb(pid) for pid in pids}
        for c in clients:  # every client holds still after its result until released
            c.send_line("release")
        await asyncio.gather(*(c.expect("done", 90.0) for c in clients))

        def delta(d0: dict[int, Any], d1: dict[int, Any], pid_list: list[int]) -> float | None:
            total = 0.0
            for p in pid_list:
                a, b = d0.get(p), d1.get(p)
                if a is None or b is None:
                    return None
                total += b - a
            return total

        def cpu(pid_list: list[int]) -> float | None:
            vals = [cpu_delta_s(cpu0.get(p), cpu1.get(p)) for p in pid_list]
            return None if any(v is None for v in vals) else sum(v for v in vals if v is not None)

        cpids = [c.pid for c in clients]
        combined: dict[str, Any] = {"driver_wall_s": wall, "procs": procs}
        if scenario == "idle":
            combined["sessions_requested"] = int(params["sessions"])
        if scenario == "download":
            combined["expected_bytes"] = int(params["size"])
        combined["cpu_server_s"] = cpu([srv.pid])
        combined["cpu_client_s"] = cpu(cpids)
        combined["rss_server_delta_kb"] = delta(rss0, rss1, [srv.pid])
        combined["rss_client_delta_kb"] = delta(rss0, rss1, cpids)
        combined["rss_server_kb"] = rss1.get(srv.pid)
        if procs == 1:
            combined.update({k: v for k, v in results[0].items() if k != "event"})
        else:
            for k in ("attempted", "established", "errors"):
                combined[k] = sum(int(r.get(k, 0)) for r in results)
            combined["error_samples"] = sorted({s for r in results for s in r.get("error_samples", [])})[:5]
            combined["seconds"] = max(float(r.get("seconds", 0)) for r in results)
        return combined
    finally:
        await asyncio.gather(*(c.stop() for c in clients))


def derive(scenario: str, raw: dict[str, Any]) -> tuple[dict[str, float], str | None]:
    """Metrics (the keys of metric_defs) from one raw result, plus a correctness problem if any."""
    m: dict[str, float] = {}
    problem = None

    def lat(prefix: str, scale: float) -> None:
        samples = sorted(raw.get("samples_ns") or [])
        if samples:
            m[f"{prefix}_p50"] = pct(samples, 0.50) * scale
            m[f"{prefix}_p99"] = pct(samples, 0.99) * scale

    if scenario in ("upload", "download"):
        if scenario == "download" and raw.get("bytes") != raw.get("expected_bytes", raw.get("bytes")):
            problem = f"invalid: received {raw.get('bytes')} bytes of {raw.get('expected_bytes')}"
        nbytes, secs = float(raw["bytes"]), float(raw["seconds"])
        m[f"{scenario}_mb_s"] = nbytes / 1e6 / secs
        mib = nbytes / MIB
        if raw.get("cpu_client_s") is not None:
            m[f"{scenario}_cpu_client_s_per_mib"] = raw["cpu_client_s"] / mib
        if raw.get("cpu_server_s") is not None:
            m[f"{scenario}_cpu_server_s_per_mib"] = raw["cpu_server_s"] / mib
        if scenario == "upload" and raw.get("reply") != raw.get("bytes"):
            problem = f"invalid: server counted {raw.get('reply')} bytes, client sent {raw.get('bytes')}"
    elif scenario in ("echo", "stream_echo"):
        lat(scenario, 1.0)
        m = {f"{k}_us": v for k, v in m.items()}
        if raw.get("mismatches"):
            problem = f"invalid: {raw['mismatches']} echo mismatches"
    elif scenario == "dgram":
        lat("dgram", 1.0)
        m = {f"{k}_us": v for k, v in m.items()}
        m["dgram_retries"] = float(raw.get("retries", 0))
    elif scenario == "dgram_rate":
        m["dgram_rate_k_s"] = raw["received"] / raw["seconds"] / 1e3
        sent = raw["sent"]
        m["dgram_loss_pct"] = 100.0 * max(0, sent - raw["received"] - raw.get("late", 0)) / sent if sent else 0.0
    elif scenario == "setup":
        lat("setup", 1e-3)
        m = {f"{k}_ms": v for k, v in m.items()}
        m["setup_errors"] = float(raw.get("errors", 0))
    elif scenario == "concurrent":
        m["concurrent_wall_s"] = float(raw["seconds"])
        m["concurrent_connect_s"] = float(raw["connect_seconds"])
        m["concurrent_echo_wall_s"] = float(raw["echo_seconds"])
        m["concurrent_errors"] = float(raw.get("errors", 0))
        if raw.get("errors"):
            problem = f"{raw['errors']} errors, first: {raw.get('first_error')}"
    elif scenario == "idle":
        est = int(raw.get("established", 0))
        m["idle_established"] = float(est)
        m["idle_errors"] = float(raw.get("errors", 0))  # failed connects + never attempted (ramp deadline)
        if "attempted" in raw:
            raw["not_attempted"] = max(0, int(raw.get("sessions_requested", 0)) - int(raw["attempted"]))
        wall = float(raw.get("driver_wall_s") or raw.get("seconds") or 0)
        if wall > 0:
            m["idle_connect_rate"] = est / wall
        if est:
            if raw.get("rss_server_delta_kb") is not None:
                m["idle_server_rss_kb"] = raw["rss_server_delta_kb"] / est
            if raw.get("rss_client_delta_kb") is not None:
                m["idle_client_rss_kb"] = raw["rss_client_delta_kb"] / est
        if raw.get("errors"):
            problem = f"{raw['errors']} of {raw.get('attempted')} attempted sessions failed: {raw.get('error_samples')}"
    return m, problem


async def run_scenario(
    lib: Lib, scenario: str, params: dict[str, Any], cert: str, key: str, *, idle_procs: int = 4
) -> dict[str, Any]:
    """Fresh server + client(s) for one scenario; returns raw result, metrics and any failure."""
    t0 = time.monotonic()
    out: dict[str, Any] = {"scenario": scenario}
    try:
        async with server(lib, cert, key) as (srv, port):
            procs = idle_procs if scenario == "idle" else 1
            raw = await run_clients(lib, srv, port, scenario, params, procs=procs)
        metrics, problem = derive(scenario, raw)
        raw.pop("samples_ns", None)  # the JSON keeps summaries, not 5,000 samples per run
        out.update(raw=raw, metrics=metrics)
        if problem:
            out["problem"] = problem
    except (PeerError, KeyError, ValueError, ZeroDivisionError, OSError) as exc:
        out["failure"] = f"{type(exc).__name__}: {exc}"
        out["metrics"] = {}
    out["elapsed_s"] = round(time.monotonic() - t0, 2)
    return out


# ---------------------------------------------------------------------------- main


def parse_list(text: str, allowed: tuple[str, ...], what: str, ap: argparse.ArgumentParser) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in allowed]
    if bad:
        ap.error(f"unknown {what}: {', '.join(bad)} (choose from {', '.join(allowed)})")
    return [s for s in allowed if s in items]  # canonical order


async def run_all(args: argparse.Namespace, libs: dict[str, Lib], scenarios: list[str], cert: str,
                  key: str) -> dict[str, Any]:
    params = scenario_params(args.quick)
    if args.idle_sessions:
        params["idle"]["sessions"] = args.idle_sessions
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in libs}
    failures: list[str] = []
    errors: list[str] = []
    names = list(libs)
    for rep in range(args.repeat):
        # Scenario by scenario, every library in turn, the order rotated each repetition: the
        # machine's load drifts over minutes, and a library run as a block of 25 s (or always
        # first after a pause) would meet another machine than the others.
        order = names[rep % len(names):] + names[:rep % len(names)]
        reps: dict[str, dict[str, Any]] = {k: {"rep": rep + 1, "scenarios": {}} for k in order}
        print(f"[rep {rep + 1}/{args.repeat}] order {', '.join(libs[k].label for k in order)}",
              file=sys.stderr, flush=True)
        for sc in scenarios:
            for k in order:
                lib = libs[k]
                run = reps[k]
                run.setdefault("load_1m", round(load_1m(), 2))  # as the library starts this repetition
                res = await run_scenario(lib, sc, params[sc], cert, key, idle_procs=args.idle_procs)
                run["scenarios"][sc] = res
                shown = {mk: round(v, 4) for mk, v in res["metrics"].items()}
                print(f"    {sc:<12} {lib.label:<16} {res['elapsed_s']:6.1f}s {json.dumps(shown)}",
                      file=sys.stderr, flush=True)
                for what in ("failure", "problem"):
                    if what in res:
                        msg = f"{lib.label} rep {rep + 1} {sc}: {res[what]}"
                        # session errors of concurrent/idle are results (counted in the table);
                        # a scenario that could not run or gave wrong answers is a failure
                        if what == "failure" or res[what].startswith("invalid:"):
                            failures.append(msg)
                        else:
                            errors.append(msg)
                        print(f"    !! {msg}", file=sys.stderr, flush=True)
        for k in names:
            runs[k].append(reps[k])
    medians: dict[str, dict[str, float]] = {}
    for k in libs:
        # a run whose answers were wrong (echo mismatch, byte count) does not count; errors
        # of the session scenarios are results in their own right and stay in
        flat = [{mk: v for sc in r["scenarios"].values() if not sc.get("problem", "").startswith("invalid:")
                 for mk, v in sc["metrics"].items()} for r in runs[k]]
        keys = {mk for f in flat for mk in f}
        medians[k] = {mk: v for mk in sorted(keys) if (v := median(flat, mk)) is not None}
    return {"runs": runs, "medians": medians, "failures": failures, "errors": errors, "params": params}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peers", action="store_true", help="accepted for `wt_bench.py --peers` compatibility")
    ap.add_argument("--quick", action="store_true", help="small sizes, short durations, 1 repetition (smoke run)")
    ap.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated subset of " + ",".join(SCENARIOS))
    ap.add_argument("--libs", default=",".join(LIB_ORDER), help="comma-separated subset of py,go,rust")
    ap.add_argument("--repeat", type=int, default=None, help="repetitions per library (default 3; 1 with --quick)")
    ap.add_argument("--json", metavar="PATH", help="also write all results as JSON to PATH")
    ap.add_argument("--idle-procs", type=int, default=4, help="client processes for the idle-sessions scenario")
    ap.add_argument("--idle-sessions", type=int, default=None, help="override the idle scenario's session count")
    ap.add_argument("--py-loop", choices=("asyncio", "uvloop"), default="asyncio",
                    help="event loop of the PyWebTransport peer (default asyncio, what the README table uses)")
    args = ap.parse_args(argv)
    if args.py_loop != "asyncio":
        os.environ["PWT_PEER_LOOP"] = args.py_loop  # read by the py peer only
    scenarios = parse_list(args.only, SCENARIOS, "scenarios", ap)
    lib_keys = parse_list(args.libs, LIB_ORDER, "libraries", ap)
    args.repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    command = " ".join(shlex.quote(x) for x in ["python", *[os.path.relpath(sys.argv[0], ROOT)], *sys.argv[1:]])

    started = time.monotonic()
    libs: dict[str, Lib] = {}
    for k in lib_keys:
        try:
            libs[k] = prepare_lib(k)
        except PeerBuildError as exc:
            print(f"cannot build the {k} peer: {exc}", file=sys.stderr)
            return 2
        if k == "py" and args.py_loop != "asyncio":
            libs[k].label += f" ({args.py_loop})"
        print(f"[peers] {libs[k].label} {libs[k].version}: {' '.join(libs[k].command)}", file=sys.stderr, flush=True)

    from certs import make_certs

    with tempfile.TemporaryDirectory(prefix="pwt-peers-bench-") as tmp:
        certs = make_certs(Path(tmp))
        result = asyncio.run(run_all(args, libs, scenarios, str(certs.self_signed_cert), str(certs.self_signed_key)))
    runtime = time.monotonic() - started
    data = {
        "schema": 1,
        "meta": {
            "command": command,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "runtime_s": round(runtime, 1),
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "quick": args.quick,
            "repeat": args.repeat,
            "idle_procs": args.idle_procs,
            "scenarios": scenarios,
        },
        "lib_order": list(libs),
        "libs": {k: {"label": lib.label, "version": lib.version} for k, lib in libs.items()},
        "notes": {k: lib.notes for k, lib in libs.items() if lib.notes},
        "metrics": metric_defs(result["params"]),
        **result,
    }
    print(render(data, details=True))
    print(f"[bench] total {runtime:.0f}s", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1) + "\n")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
