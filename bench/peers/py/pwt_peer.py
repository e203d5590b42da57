#!/usr/bin/env python3
"""PyWebTransport benchmark peer for bench/peers_bench.py, public API only.

  pwt_peer.py server --cert PEM --key PEM [--port 0]
  pwt_peer.py client --url https://127.0.0.1:PORT/bench --scenario NAME [options]

bench/peers/README.md describes the protocol and the scenarios; the Go and Rust peers
implement exactly the same behaviour. Only the documented API is used: ServerApp,
ServerConfig, WebTransportClient, ClientConfig, sessions, streams and datagrams.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import ssl
import sys
import threading
import time
from typing import Any

from pywebtransport import (
    ClientConfig,
    ServerApp,
    ServerConfig,
    WebTransportClient,
    WebTransportSession,
    WebTransportStream,
)
from pywebtransport.exceptions import TimeoutError as WTTimeoutError

MSG = 64
READ_BUF = 64 << 10
DGRAM_WAIT = 0.2
RATE_STALL = 0.1


def emit(fields: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class Stdin:
    """Lines from stdin delivered to the loop (a daemon thread does the blocking reads)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()

        def reader() -> None:
            while True:
                line = sys.stdin.readline()
                try:
                    loop.call_soon_threadsafe(self._queue.put_nowait, line)
                except RuntimeError:  # the loop is closed: the program is exiting
                    return
                if not line:
                    return

        threading.Thread(target=reader, daemon=True).start()

    async def line(self) -> str:
        """Next line ("" at EOF; EOF repeats)."""
        line = await self._queue.get()
        if not line:
            self._queue.put_nowait(line)
        return line


# ---------------------------------------------------------------------------- server


async def serve_stream(stream: WebTransportStream) -> None:
    try:
        mode = await stream.readexactly(1)
        if mode == b"U":
            n = 0
            while data := await stream.read(READ_BUF):
                n += len(data)
            await stream.write(n.to_bytes(8, "big"), end_stream=True)
        elif mode == b"D":
            hdr = await stream.readexactly(12)
            total, chunk = int.from_bytes(hdr[:8], "big"), int.from_bytes(hdr[8:], "big")
            data = b"d" * chunk
            sent = 0
            while sent < total:
                w = min(chunk, total - sent)
                sent += w
                await stream.write(data if w == chunk else data[:w], end_stream=sent == total)
            if total == 0:
                await stream.close()
        elif mode == b"E":
            while data := await stream.read(READ_BUF):
                await stream.write(data)
            await stream.close()
        else:
            stream.abort(1)
    except Exception:  # the client went away mid-stream: nothing to report
        pass


async def run_server(args: argparse.Namespace) -> None:
    config = ServerConfig.create(
        certfile=args.cert,
        keyfile=args.key,
        bind_host="127.0.0.1",
        bind_port=args.port,
        # limits raised for the 10,000-session scenario (default: 1,000 connections)
        max_connections=args.max_sessions,
        max_sessions=args.max_sessions,
        connection_idle_timeout=args.idle_timeout,
        connection_keepalive_timeout=args.keepalive,
        access_log=False,
        log_level="WARNING",
    )
    app = ServerApp(config=config)
    tasks: set[asyncio.Task[None]] = set()

    @app.route("/bench")
    async def bench(session: WebTransportSession) -> None:
        async def datagrams() -> None:
            dg = session.datagrams
            with contextlib.suppress(Exception):  # ends when the session closes
                while True:
                    await dg.send(await dg.receive())

        async def streams() -> None:
            with contextlib.suppress(Exception):
                async for stream in session.incoming_streams():
                    if isinstance(stream, WebTransportStream):
                        t = asyncio.ensure_future(serve_stream(stream))
                        tasks.add(t)
                        t.add_done_callback(tasks.discard)

        helpers = [asyncio.ensure_future(datagrams()), asyncio.ensure_future(streams())]
        try:
            await session.wait_closed()
        finally:
            for t in helpers:
                t.cancel()

    loop = asyncio.get_running_loop()
    stdin = Stdin(loop)
    async with app:
        await app.server.listen(host="127.0.0.1", port=args.port)
        address = app.server.local_address
        assert address is not None
        emit({"event": "listening", "port": address[1]})
        while await stdin.line():
            pass
    os._exit(0)  # exit at once, like the other servers (stdin EOF = the driver is done with us)


# ---------------------------------------------------------------------------- client


def message(i: int) -> bytes:
    return i.to_bytes(8, "big") + b"e" * (MSG - 8)


def datagram(seq: int) -> bytes:
    return seq.to_bytes(8, "big") + b"x" * (MSG - 8)


class Client:
    def __init__(self, args: argparse.Namespace, stdin: Stdin) -> None:
        self.a = args
        self.stdin = stdin
        self.config = ClientConfig.create(
            verify_mode=ssl.CERT_NONE,
            connect_timeout=args.timeout,
            connection_idle_timeout=args.idle_timeout,
            connection_keepalive_timeout=args.keepalive,
            max_connections=max(args.sessions + 1, 100),
            log_level="WARNING",
        )

    async def ready(self) -> None:
        """Tell the driver the timed part is about to start and wait for its go-ahead."""
        emit({"event": "ready"})
        await self.stdin.line()

    async def report(self, res: dict[str, Any]) -> None:
        """Print the result, then wait (bounded) for the driver's release line before cleaning
        up, so that the driver samples CPU and RSS with nothing else going on."""
        emit({"event": "result", **res})
        try:
            await asyncio.wait_for(self.stdin.line(), self.a.hold_timeout)
        except asyncio.TimeoutError:
            pass

    async def dial(self, client: WebTransportClient) -> WebTransportSession:
        return await client.connect(self.a.url, timeout=self.a.timeout)

    async def one_session(self, body: Any) -> None:
        async with WebTransportClient(self.config) as client:
            try:
                session = await self.dial(client)
            except Exception as exc:
                raise RuntimeError(f"connect: {exc}") from exc
            try:
                await self.report(await body(session))
            finally:
                await session.close()

    # -- bulk

    async def do_upload(self, session: WebTransportSession, size: int) -> int:
        chunk = self.a.chunk
        data = b"u" * chunk
        s = await session.create_bidirectional_stream()
        await s.write(b"U")
        sent = 0
        while sent < size:
            w = min(chunk, size - sent)
            sent += w
            await s.write(data if w == chunk else data[:w], end_stream=sent == size)
        if size == 0:
            await s.close()
        reply = await s.read_all()
        if len(reply) != 8:
            raise RuntimeError(f"upload reply of {len(reply)} bytes")
        return int.from_bytes(reply, "big")

    async def do_download(self, session: WebTransportSession, size: int) -> int:
        s = await session.create_bidirectional_stream()
        await s.write(b"D" + size.to_bytes(8, "big") + self.a.chunk.to_bytes(4, "big"), end_stream=True)
        n = 0
        while data := await s.read(READ_BUF):
            n += len(data)
        return n

    async def upload(self) -> None:
        async def body(session: WebTransportSession) -> dict[str, Any]:
            if self.a.warmup_size:
                await self.do_upload(session, self.a.warmup_size)
            await self.ready()
            t0 = time.perf_counter_ns()
            n = await self.do_upload(session, self.a.size)
            el = time.perf_counter_ns() - t0
            return {"bytes": self.a.size, "seconds": el / 1e9, "reply": n}

        await self.one_session(body)

    async def download(self) -> None:
        async def body(session: WebTransportSession) -> dict[str, Any]:
            if self.a.warmup_size:
                await self.do_download(session, self.a.warmup_size)
            await self.ready()
            t0 = time.perf_counter_ns()
            n = await self.do_download(session, self.a.size)
            el = time.perf_counter_ns() - t0
            return {"bytes": n, "seconds": el / 1e9}

        await self.one_session(body)

    # -- small messages

    async def echo(self) -> None:
        async def body(session: WebTransportSession) -> dict[str, Any]:
            a = self.a
            s = await session.create_bidirectional_stream()
            await s.write(b"E")
            clock = time.perf_counter_ns
            samples: list[int] = []
            mismatches = 0
            for i in range(a.warmup + a.rounds):
                if i == a.warmup:
                    await self.ready()
                msg = message(i)
                t0 = clock()
                await s.write(msg)
                got = await s.readexactly(MSG)
                el = clock() - t0
                if i >= a.warmup:
                    samples.append(el)
                if got != msg:
                    mismatches += 1
            await s.close()
            await s.read_all()
            return {"samples_ns": samples, "mismatches": mismatches}

        await self.one_session(body)

    @staticmethod
    async def request_echo(session: WebTransportSession, msg: bytes) -> bytes:
        s = await session.create_bidirectional_stream()
        await s.write(b"E" + msg, end_stream=True)
        return await s.read_all()

    async def stream_echo(self) -> None:
        async def body(session: WebTransportSession) -> dict[str, Any]:
            a = self.a
            clock = time.perf_counter_ns
            samples: list[int] = []
            mismatches = 0
            for i in range(a.warmup + a.rounds):
                if i == a.warmup:
                    await self.ready()
                msg = message(i)
                t0 = clock()
                got = await self.request_echo(session, msg)
                el = clock() - t0
                if i >= a.warmup:
                    samples.append(el)
                if got != msg:
                    mismatches += 1
            return {"samples_ns": samples, "mismatches": mismatches}

        await self.one_session(body)

    @staticmethod
    async def ping_datagram(session: WebTransportSession, seq: int) -> tuple[int, int]:
        """Send ``seq``, wait for its echo; resend after 200 ms (clock restarted)."""
        dg = session.datagrams
        pkt = datagram(seq)
        retries = 0
        clock = time.perf_counter_ns
        while True:
            t0 = clock()
            await dg.send(pkt)
            deadline = time.monotonic() + DGRAM_WAIT
            try:
                while True:
                    d = await dg.receive(timeout=max(0.0, deadline - time.monotonic()))
                    if len(d) == MSG and int.from_bytes(d[:8], "big") == seq:
                        return clock() - t0, retries
            except WTTimeoutError:
                retries += 1
                if retries > 50:
                    raise RuntimeError(f"datagram {seq}: no echo after {retries} tries") from None

    async def dgram(self) -> None:
        async def body(session: WebTransportSession) -> dict[str, Any]:
            a = self.a
            samples: list[int] = []
            retries = 0
            for i in range(a.warmup + a.rounds):
                if i == a.warmup:
                    await self.ready()
                el, r = await self.ping_datagram(session, i)
                if i >= a.warmup:
                    samples.append(el)
                    retries += r
            return {"samples_ns": samples, "retries": retries}

        await self.one_session(body)

    async def dgram_rate(self) -> None:
        async def body(session: WebTransportSession) -> dict[str, Any]:
            a = self.a
            for i in range(a.warmup):
                await self.ping_datagram(session, i)
            await self.ready()
            dg = session.datagrams
            seq = 1 << 32
            inflight = sent = received = stalls = 0
            t0 = time.monotonic()
            deadline = t0 + a.duration
            while time.monotonic() < deadline:
                while inflight < a.inflight:
                    await dg.send(datagram(seq))
                    seq += 1
                    sent += 1
                    inflight += 1
                try:
                    await dg.receive(timeout=RATE_STALL)
                except WTTimeoutError:
                    stalls += 1
                    inflight = 0
                    continue
                received += 1
                if inflight > 0:
                    inflight -= 1
            el = time.monotonic() - t0
            late = 0
            try:
                while True:
                    await dg.receive(timeout=DGRAM_WAIT)
                    late += 1
            except WTTimeoutError:
                pass
            return {"sent": sent, "received": received, "late": late, "stalls": stalls, "seconds": el}

        await self.one_session(body)

    # -- sessions

    async def setup(self) -> None:
        a = self.a
        clock = time.perf_counter_ns
        samples: list[int] = []
        errors = 0
        first_error = ""
        # one client; every connect opens a new QUIC connection (connection reuse is off by default)
        async with WebTransportClient(self.config) as client:
            for i in range(a.warmup + a.rounds):
                if i == a.warmup:
                    await self.ready()
                t0 = clock()
                try:
                    session = await self.dial(client)
                except Exception as exc:
                    errors += 1
                    first_error = first_error or f"{type(exc).__name__}: {exc}"
                    continue
                el = clock() - t0
                if i >= a.warmup:
                    samples.append(el)
                await session.close()  # its connection is then closed by the client
            await self.report({"samples_ns": samples, "errors": errors, "first_error": first_error})

    async def concurrent(self) -> None:
        a = self.a
        async with WebTransportClient(self.config) as client:
            session = await self.dial(client)  # warm-up: one session doing the per-session work
            for j in range(a.requests):
                await self.request_echo(session, message(j))
            await session.close()
            await self.ready()
            errors = 0
            first_error = ""

            def note(exc: BaseException) -> None:
                nonlocal errors, first_error
                errors += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"

            t0 = time.perf_counter_ns()
            results = await asyncio.gather(*(self.dial(client) for _ in range(a.sessions)), return_exceptions=True)
            t1 = time.perf_counter_ns()
            sessions = []
            for r in results:
                if isinstance(r, BaseException):
                    note(r)
                else:
                    sessions.append(r)

            async def work(k: int, session: WebTransportSession) -> int:
                done = 0
                for j in range(a.requests):
                    msg = message(k * a.requests + j)
                    if await self.request_echo(session, msg) != msg:
                        raise RuntimeError("echo mismatch")
                    done += 1
                return done

            done = 0
            for w in await asyncio.gather(*(work(k, s) for k, s in enumerate(sessions)), return_exceptions=True):
                if isinstance(w, BaseException):
                    note(w)
                else:
                    done += w
            t2 = time.perf_counter_ns()
            await self.report(
                {
                    "sessions": a.sessions,
                    "requests": done,
                    "errors": errors,
                    "first_error": first_error,
                    "connect_seconds": (t1 - t0) / 1e9,
                    "echo_seconds": (t2 - t1) / 1e9,
                    "seconds": (t2 - t0) / 1e9,
                }
            )
            await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)

    async def idle(self) -> None:
        a = self.a
        client = WebTransportClient(self.config)
        await self.ready()
        sem = asyncio.Semaphore(max(1, a.concurrency))
        sessions: list[WebTransportSession] = []
        errors = 0
        samples: set[str] = set()

        async def one() -> None:
            nonlocal errors
            try:
                sessions.append(await self.dial(client))
            except Exception as exc:
                errors += 1
                if len(samples) < 3:
                    samples.add(f"{type(exc).__name__}: {exc}")
            finally:
                sem.release()

        t0 = time.monotonic()
        ramp_end = t0 + a.ramp_deadline
        tasks = []
        attempted = 0
        while attempted < a.sessions and time.monotonic() < ramp_end:
            await sem.acquire()
            attempted += 1
            tasks.append(asyncio.ensure_future(one()))
        await asyncio.gather(*tasks)
        el = time.monotonic() - t0
        await self.report(
            {
                "attempted": attempted,
                "established": len(sessions),
                "errors": errors + (a.sessions - attempted),
                "error_samples": sorted(samples),
                "seconds": el,
            }
        )
        try:
            async with asyncio.timeout(30):
                await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
                await client.close()
        except TimeoutError:
            pass


async def run_client(args: argparse.Namespace) -> None:
    client = Client(args, Stdin(asyncio.get_running_loop()))
    scenarios = {
        "upload": client.upload,
        "download": client.download,
        "echo": client.echo,
        "stream_echo": client.stream_echo,
        "dgram": client.dgram,
        "dgram_rate": client.dgram_rate,
        "setup": client.setup,
        "concurrent": client.concurrent,
        "idle": client.idle,
    }
    if args.scenario not in scenarios:
        raise ValueError(f"unknown scenario {args.scenario!r}")
    await scenarios[args.scenario]()
    emit({"event": "done"})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("server", "client"))
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--max-sessions", type=int, default=20000)
    ap.add_argument("--url")
    ap.add_argument("--scenario")
    ap.add_argument("--size", type=int, default=64 << 20)
    ap.add_argument("--chunk", type=int, default=64 << 10)
    ap.add_argument("--warmup-size", type=int, default=4 << 20)
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--inflight", type=int, default=32)
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--ramp-deadline", type=float, default=120.0)
    ap.add_argument("--hold-timeout", type=float, default=300.0)
    ap.add_argument("--idle-timeout", type=float, default=120.0)
    ap.add_argument("--keepalive", type=float, default=20.0)
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default=os.environ.get("PWT_PEER_LOOP", "asyncio"),
                    help="event loop (default asyncio; env PWT_PEER_LOOP)")
    args = ap.parse_args()
    main_coro = run_server(args) if args.mode == "server" else run_client(args)
    try:
        if args.loop == "uvloop":
            import uvloop

            uvloop.run(main_coro)
        else:
            asyncio.run(main_coro)
    except Exception as exc:
        emit({"event": "error", "detail": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
