#!/usr/bin/env python3
"""PyWebTransport vs. aioquic 1.7.2 at the WebTransport level: the same four scenarios, one table.

Setup (identical for both sides): ONE process; server and client run on the
same asyncio loop over 127.0.0.1 (one Python thread handles both sides).
Both sides use their library's default transport settings, the same
self-signed ECDSA P-256 certificate (tests/certs.py make_certs) and a client
that skips certificate validation.  pywebtransport runs first, then aioquic,
each on a fresh event loop.

  (A) pywebtransport: ServerApp + WebTransportClient, public API only
      (session.create_bidirectional_stream, stream.write/read/read_all,
      session.datagrams.send/receive).  The server handler reads/writes with
      coroutines, as a user application would.
  (B) aioquic: QuicConnectionProtocol + H3Connection(enable_webtransport=True)
      on both ends (aioquic only frames WT streams; the application drives
      the rest).  The server reacts inside its event callback, the idiomatic
      aioquic style.  The client's bulk writer keeps at most --aq-window-kib
      of unacknowledged data in aioquic's send buffer (aioquic itself has no
      back-pressure and would otherwise buffer the whole payload).

Scenarios:
  upload     one WT bidi stream; client writes --size MiB in --chunk-kib
             writes + FIN, the server counts and answers the byte count then
             FIN; timed from first write until the client has the count.
  echo       64-byte messages on ONE long-lived WT bidi stream: client writes
             64 B, server echoes, client waits for 64 B; --rounds timed
             rounds after --warmup discarded rounds; p50/p99 in microseconds.
  datagram   send one 64-byte datagram (sequence number), wait <= 200 ms for
             its echo, retry count reported; round trips per second.
  setup      sequential: new QUIC connection + CONNECT + 200 + session close
             (CLOSE_WEBTRANSPORT_SESSION capsule + FIN) + connection close,
             awaited with each library's own "closed" wait.

Usage:
  /tmp/venv1/bin/python bench/wt_bench.py                   # default (~30-60 s)
  /tmp/venv1/bin/python bench/wt_bench.py --quick           # ~10 s
  /tmp/venv1/bin/python bench/wt_bench.py --only echo --profile pywebtransport

With --peers it runs bench/peers_bench.py instead (PyWebTransport against webtransport-go and
wtransport, each library's own client and server as separate processes); see that file.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shlex
import ssl
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))  # certs.py (read-only use)
sys.path.insert(0, str(HERE))

from bench_common import fmt, median, pct, run_profiled  # noqa: E402

SCENARIOS = ("upload", "echo", "datagram", "setup")
MSG = 64
DGRAM_TIMEOUT = 0.2
CLOSE_WEBTRANSPORT_SESSION = 0x2843
PACK = struct.Struct("<Q")


def _prof(profiler: Any, on: bool) -> None:
    if profiler is not None:
        profiler.enable() if on else profiler.disable()


# ===========================================================================
# (A) pywebtransport


class PwtBench:
    name = "pywebtransport"

    def __init__(self, args: argparse.Namespace, certfile: str, keyfile: str) -> None:
        self.args = args
        self.certfile = certfile
        self.keyfile = keyfile
        self.mode = "upload"

    async def _server_stream(self, stream: Any) -> None:
        if self.mode == "upload":
            n = 0
            while True:
                data = await stream.read(1 << 20)
                if not data:
                    break
                n += len(data)
            await stream.write_all(b"%d" % n)
        else:  # echo
            while True:
                data = await stream.read()
                if not data:
                    break
                await stream.write(data)
            await stream.close()

    async def run(self, only: set[str], profiler: Any = None) -> dict[str, Any]:
        from pywebtransport import ClientConfig, ServerApp, ServerConfig, WebTransportClient, WebTransportStream

        a = self.args
        out: dict[str, Any] = {"impl": self.name}
        app = ServerApp(config=ServerConfig.create(certfile=self.certfile, keyfile=self.keyfile))
        tasks: set[asyncio.Task[Any]] = set()

        def spawn(coro: Any) -> None:
            t = asyncio.get_running_loop().create_task(coro)
            tasks.add(t)
            t.add_done_callback(tasks.discard)

        @app.route("/bench")
        async def bench(session: Any) -> None:
            async def datagrams() -> None:
                while True:
                    await session.datagrams.send(await session.datagrams.receive())

            async def streams() -> None:
                async for stream in session.incoming_streams():
                    if isinstance(stream, WebTransportStream):
                        spawn(self._server_stream(stream))

            ts = [asyncio.ensure_future(datagrams()), asyncio.ensure_future(streams())]
            try:
                await session.wait_closed()
            finally:
                for t in ts:
                    t.cancel()

        @app.route("/setup")
        async def setup(session: Any) -> None:
            await session.wait_closed()

        config = ClientConfig.create(verify_mode=ssl.CERT_NONE)
        async with app:
            await app.server.listen(host="127.0.0.1", port=0)
            port = app.server.local_address[1]
            url = f"https://127.0.0.1:{port}"
            if only & {"upload", "echo", "datagram"}:
                async with WebTransportClient(config) as client:
                    session = await client.connect(url + "/bench")
                    if "upload" in only:
                        if a.warmup_mib:
                            await self.upload(session, a.warmup_mib << 20)
                        _prof(profiler, True)
                        out["upload_mib_s"] = round(await self.upload(session, a.size << 20), 1)
                        _prof(profiler, False)
                        out["upload_cpu_pct"] = round(self.cpu_pct)
                    if "echo" in only:
                        p50, p99 = await self.echo(session, a.rounds, a.warmup, profiler)
                        out.update(echo_rounds=a.rounds, echo_p50_us=round(p50, 1), echo_p99_us=round(p99, 1))
                        out["echo_cpu_us"] = round(self.cpu_us, 1)
                    if "datagram" in only:
                        _prof(profiler, True)
                        rate, retries = await self.datagrams(session, a.dgram_rounds)
                        _prof(profiler, False)
                        out.update(dgram_rounds=a.dgram_rounds, dgram_rt_per_s=round(rate), dgram_retries=retries)
                        out["dgram_cpu_us"] = round(self.cpu_us, 1)
                    await session.close()
            if "setup" in only:
                _prof(profiler, True)
                rate = await self.setups(config, url + "/setup", a.setups)
                _prof(profiler, False)
                out.update(setups=a.setups, setups_per_s=round(rate, 1))
                out["setup_open_us"], out["setup_close_us"] = (round(x) for x in self.split)
        for t in list(tasks):
            t.cancel()
        return out

    async def upload(self, session: Any, nbytes: int) -> float:
        self.mode = "upload"
        chunk = b"u" * (self.args.chunk_kib << 10)
        size = len(chunk)
        s = await session.create_bidirectional_stream()
        c0 = time.thread_time()
        t0 = time.perf_counter_ns()
        sent = 0
        while sent < nbytes:
            n = min(size, nbytes - sent)
            sent += n
            await s.write(chunk if n == size else chunk[:n], end_stream=sent == nbytes)
        reply = await s.read_all()
        t1 = time.perf_counter_ns()
        self.cpu_pct = 100 * (time.thread_time() - c0) / ((t1 - t0) / 1e9)
        if int(reply) != nbytes:
            raise RuntimeError(f"server counted {reply!r}, sent {nbytes}")
        return nbytes / (1 << 20) / ((t1 - t0) / 1e9)

    async def echo(self, session: Any, rounds: int, warmup: int, profiler: Any) -> tuple[float, float]:
        self.mode = "echo"
        s = await session.create_bidirectional_stream()
        msg = b"e" * MSG
        clock = time.perf_counter_ns
        samples = []
        for i in range(rounds + warmup):
            if i == warmup:
                c0 = time.thread_time()
                _prof(profiler, True)
            t0 = clock()
            await s.write(msg)
            got = await s.readexactly(MSG)
            samples.append(clock() - t0)
        _prof(profiler, False)
        self.cpu_us = 1e6 * (time.thread_time() - c0) / rounds
        assert got == msg
        await s.close()
        await s.read_all()
        v = sorted(samples[warmup:])
        return pct(v, 0.50), pct(v, 0.99)

    async def datagrams(self, session: Any, rounds: int) -> tuple[float, int]:
        dg = session.datagrams
        pad = b"x" * (MSG - 8)
        unpack = PACK.unpack_from
        retries = 0
        c0 = time.thread_time()
        t0 = time.perf_counter_ns()
        for seq in range(rounds):
            pkt = PACK.pack(seq) + pad
            while True:
                await dg.send(pkt)
                try:
                    async with asyncio.timeout(DGRAM_TIMEOUT):
                        while unpack(await dg.receive())[0] != seq:
                            pass
                    break
                except TimeoutError:
                    retries += 1
        secs = (time.perf_counter_ns() - t0) / 1e9
        self.cpu_us = 1e6 * (time.thread_time() - c0) / rounds
        return rounds / secs, retries

    async def setups(self, config: Any, url: str, n: int) -> float:
        from pywebtransport import WebTransportClient

        clock = time.perf_counter_ns
        t_open = t_close = 0
        t0 = clock()
        for _ in range(n):
            ta = clock()
            client = WebTransportClient(config)
            session = await client.connect(url)
            tb = clock()
            await session.close()
            await client.close()  # waits for the QUIC connection to close
            t_open += tb - ta
            t_close += clock() - tb
        rate = n / ((clock() - t0) / 1e9)
        self.split = (t_open / n / 1e3, t_close / n / 1e3)
        return rate


# ===========================================================================
# (B) aioquic


def _aioquic_classes() -> tuple[type, type]:
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3Connection
    from aioquic.h3.events import DatagramReceived, DataReceived, HeadersReceived, WebTransportStreamDataReceived
    from aioquic.quic.events import StreamDataReceived

    class AqServer(QuicConnectionProtocol):
        """Accepts CONNECT webtransport; counts (upload) or echoes (echo) bidi streams; echoes datagrams."""

        mode = "upload"  # set by the bench on the class

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.h3 = H3Connection(self._quic, enable_webtransport=True)
            self.sessions: set[int] = set()
            self.counts: dict[int, int] = {}

        def quic_event_received(self, event: Any) -> None:
            quic = self._quic
            for ev in self.h3.handle_event(event):
                if isinstance(ev, WebTransportStreamDataReceived):
                    if self.mode == "upload":
                        n = self.counts.get(ev.stream_id, 0) + len(ev.data)
                        self.counts[ev.stream_id] = n
                        if ev.stream_ended:
                            del self.counts[ev.stream_id]
                            quic.send_stream_data(ev.stream_id, b"%d" % n, end_stream=True)
                    else:
                        quic.send_stream_data(ev.stream_id, ev.data, end_stream=ev.stream_ended)
                elif isinstance(ev, DatagramReceived):
                    self.h3.send_datagram(ev.stream_id, ev.data)
                elif isinstance(ev, HeadersReceived):
                    h = dict(ev.headers)
                    if h.get(b":method") == b"CONNECT" and h.get(b":protocol") == b"webtransport":
                        self.sessions.add(ev.stream_id)
                        self.h3.send_headers(
                            ev.stream_id, [(b":status", b"200"), (b"sec-webtransport-http3-draft", b"draft02")]
                        )
                    else:
                        self.h3.send_headers(ev.stream_id, [(b":status", b"404")], end_stream=True)
                elif isinstance(ev, DataReceived) and ev.stream_id in self.sessions and ev.stream_ended:
                    self.h3.send_data(ev.stream_id, b"", end_stream=True)  # answer the CLOSE capsule's FIN
            # datagram_received() transmits after processing events

    class AqClient(QuicConnectionProtocol):
        """WT client: raw reads on locally opened bidi streams, datagram queue, ack-driven send wake-ups."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.h3 = H3Connection(self._quic, enable_webtransport=True)
            self.raw: dict[int, bytearray] = {}
            self.raw_fin: set[int] = set()
            self.waiter: asyncio.Future[None] | None = None
            self.need: tuple[int, int] | None = None  # (stream_id, bytes) the waiter wants; (sid, -1) = FIN
            self.headers: dict[int, list] = {}
            self.dgrams: asyncio.Queue[bytes] = asyncio.Queue()
            self.ack_waiter: asyncio.Future[None] | None = None

        def _wake(self) -> None:
            w = self.waiter
            if w is not None and not w.done():
                w.set_result(None)

        def datagram_received(self, data: Any, addr: Any) -> None:
            super().datagram_received(data, addr)
            w = self.ack_waiter
            if w is not None and not w.done():
                w.set_result(None)

        def quic_event_received(self, event: Any) -> None:
            if isinstance(event, StreamDataReceived) and event.stream_id in self.raw:
                buf = self.raw[event.stream_id]
                buf += event.data
                if event.end_stream:
                    self.raw_fin.add(event.stream_id)
                need = self.need
                if need is not None and need[0] == event.stream_id:
                    if (need[1] < 0 and event.end_stream) or (need[1] >= 0 and len(buf) >= need[1]):
                        self._wake()
                return
            for ev in self.h3.handle_event(event):
                if isinstance(ev, DatagramReceived):
                    self.dgrams.put_nowait(ev.data)
                elif isinstance(ev, HeadersReceived):
                    self.headers[ev.stream_id] = ev.headers
                    self._wake()
            if self.h3.received_settings is not None:
                self._wake()

        async def _wait(self) -> None:
            self.waiter = self._loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None

        async def open_session(self, authority: str, path: str) -> int:
            while self.h3.received_settings is None:
                await self._wait()
            sid = self._quic.get_next_available_stream_id()
            self.h3.send_headers(
                sid,
                [
                    (b":method", b"CONNECT"),
                    (b":protocol", b"webtransport"),
                    (b":scheme", b"https"),
                    (b":authority", authority.encode()),
                    (b":path", path.encode()),
                    (b"sec-webtransport-http3-draft02", b"1"),
                    (b"origin", f"https://{authority}".encode()),
                ],
                end_stream=False,
            )
            self.transmit()
            while sid not in self.headers:
                await self._wait()
            status = dict(self.headers[sid]).get(b":status")
            if status != b"200":
                raise RuntimeError(f"CONNECT answered {status!r}")
            return sid

        def close_session(self, sid: int, code: int = 0, reason: bytes = b"") -> None:
            from aioquic._buffer import Buffer

            cap = Buffer(capacity=64 + len(reason))
            cap.push_uint_var(CLOSE_WEBTRANSPORT_SESSION)
            cap.push_uint_var(4 + len(reason))
            cap.push_bytes(struct.pack("!I", code) + reason)
            self.h3.send_data(sid, cap.data, end_stream=True)
            self.transmit()

        def open_bidi(self, session_id: int) -> int:
            sid = self.h3.create_webtransport_stream(session_id)
            self.raw[sid] = bytearray()
            return sid

        async def read_exactly(self, sid: int, n: int) -> bytes:
            buf = self.raw[sid]
            if len(buf) < n:
                self.need = (sid, n)
                await self._wait()
                self.need = None
            data = bytes(buf[:n])
            del buf[:n]
            return data

        async def read_all(self, sid: int) -> bytes:
            if sid not in self.raw_fin:
                self.need = (sid, -1)
                await self._wait()
                self.need = None
            return bytes(self.raw.pop(sid))

        def unacked(self, sid: int) -> int:
            sender = self._quic._streams[sid].sender
            return sender._buffer_stop - sender._buffer_start

        async def wait_acked(self, sid: int, limit: int) -> None:
            while self.unacked(sid) > limit:
                self.ack_waiter = self._loop.create_future()
                try:
                    await self.ack_waiter
                finally:
                    self.ack_waiter = None

    return AqServer, AqClient


class AioquicBench:
    name = "aioquic"

    def __init__(self, args: argparse.Namespace, certfile: str, keyfile: str) -> None:
        self.args = args
        self.certfile = certfile
        self.keyfile = keyfile

    def client_config(self) -> Any:
        from aioquic.h3.connection import H3_ALPN
        from aioquic.quic.configuration import QuicConfiguration

        cfg = QuicConfiguration(alpn_protocols=H3_ALPN, is_client=True, max_datagram_frame_size=65536)
        cfg.verify_mode = ssl.CERT_NONE
        return cfg

    async def run(self, only: set[str], profiler: Any = None) -> dict[str, Any]:
        from aioquic.asyncio.client import connect
        from aioquic.asyncio.server import serve
        from aioquic.h3.connection import H3_ALPN
        from aioquic.quic.configuration import QuicConfiguration

        a = self.args
        out: dict[str, Any] = {"impl": self.name}
        AqServer, AqClient = _aioquic_classes()
        self.server_cls = type("BenchAqServer", (AqServer,), {"mode": "upload"})
        scfg = QuicConfiguration(alpn_protocols=H3_ALPN, is_client=False, max_datagram_frame_size=65536)
        scfg.load_cert_chain(self.certfile, self.keyfile)
        server = await serve("127.0.0.1", 0, configuration=scfg, create_protocol=self.server_cls)
        port = server._transport.get_extra_info("sockname")[1]
        authority = f"127.0.0.1:{port}"
        self.AqClient = AqClient
        try:
            if only & {"upload", "echo", "datagram"}:
                async with connect("127.0.0.1", port, configuration=self.client_config(), create_protocol=AqClient) as c:
                    session = await c.open_session(authority, "/bench")
                    if "upload" in only:
                        if a.warmup_mib:
                            await self.upload(c, session, a.warmup_mib << 20)
                        _prof(profiler, True)
                        out["upload_mib_s"] = round(await self.upload(c, session, a.size << 20), 1)
                        _prof(profiler, False)
                        out["upload_cpu_pct"] = round(self.cpu_pct)
                    if "echo" in only:
                        p50, p99 = await self.echo(c, session, a.rounds, a.warmup, profiler)
                        out.update(echo_rounds=a.rounds, echo_p50_us=round(p50, 1), echo_p99_us=round(p99, 1))
                        out["echo_cpu_us"] = round(self.cpu_us, 1)
                    if "datagram" in only:
                        _prof(profiler, True)
                        rate, retries = await self.datagrams(c, session, a.dgram_rounds)
                        _prof(profiler, False)
                        out.update(dgram_rounds=a.dgram_rounds, dgram_rt_per_s=round(rate), dgram_retries=retries)
                        out["dgram_cpu_us"] = round(self.cpu_us, 1)
                    c.close_session(session)
            if "setup" in only:
                _prof(profiler, True)
                rate = await self.setups(port, authority, a.setups)
                _prof(profiler, False)
                out.update(setups=a.setups, setups_per_s=round(rate, 1))
                out["setup_open_us"], out["setup_close_us"] = (round(x) for x in self.split)
        finally:
            server.close()
        return out

    async def upload(self, c: Any, session: int, nbytes: int) -> float:
        self.server_cls.mode = "upload"
        chunk = b"u" * (self.args.chunk_kib << 10)
        size = len(chunk)
        window = self.args.aq_window_kib << 10
        sid = c.open_bidi(session)
        quic = c._quic
        c0 = time.thread_time()
        t0 = time.perf_counter_ns()
        sent = 0
        while sent < nbytes:
            n = min(size, nbytes - sent)
            sent += n
            quic.send_stream_data(sid, chunk if n == size else chunk[:n], end_stream=sent == nbytes)
            c.transmit()
            await c.wait_acked(sid, window)
        reply = await c.read_all(sid)
        t1 = time.perf_counter_ns()
        self.cpu_pct = 100 * (time.thread_time() - c0) / ((t1 - t0) / 1e9)
        if int(reply) != nbytes:
            raise RuntimeError(f"server counted {reply!r}, sent {nbytes}")
        return nbytes / (1 << 20) / ((t1 - t0) / 1e9)

    async def echo(self, c: Any, session: int, rounds: int, warmup: int, profiler: Any) -> tuple[float, float]:
        self.server_cls.mode = "echo"
        sid = c.open_bidi(session)
        quic = c._quic
        msg = b"e" * MSG
        clock = time.perf_counter_ns
        samples = []
        for i in range(rounds + warmup):
            if i == warmup:
                c0 = time.thread_time()
                _prof(profiler, True)
            t0 = clock()
            quic.send_stream_data(sid, msg)
            c.transmit()
            got = await c.read_exactly(sid, MSG)
            samples.append(clock() - t0)
        _prof(profiler, False)
        self.cpu_us = 1e6 * (time.thread_time() - c0) / rounds
        assert got == msg
        quic.send_stream_data(sid, b"", end_stream=True)
        c.transmit()
        await c.read_all(sid)
        v = sorted(samples[warmup:])
        return pct(v, 0.50), pct(v, 0.99)

    async def datagrams(self, c: Any, session: int, rounds: int) -> tuple[float, int]:
        pad = b"x" * (MSG - 8)
        unpack = PACK.unpack_from
        q = c.dgrams
        retries = 0
        c0 = time.thread_time()
        t0 = time.perf_counter_ns()
        for seq in range(rounds):
            pkt = PACK.pack(seq) + pad
            while True:
                c.h3.send_datagram(session, pkt)
                c.transmit()
                try:
                    async with asyncio.timeout(DGRAM_TIMEOUT):
                        while unpack(await q.get())[0] != seq:
                            pass
                    break
                except TimeoutError:
                    retries += 1
        secs = (time.perf_counter_ns() - t0) / 1e9
        self.cpu_us = 1e6 * (time.thread_time() - c0) / rounds
        return rounds / secs, retries

    async def setups(self, port: int, authority: str, n: int) -> float:
        from aioquic.asyncio.client import connect

        cfg = self.client_config()
        clock = time.perf_counter_ns
        t_open = t_close = 0
        t0 = clock()
        for _ in range(n):
            ta = clock()
            async with connect("127.0.0.1", port, configuration=cfg, create_protocol=self.AqClient) as c:
                sid = await c.open_session(authority, "/setup")
                tb = clock()
                c.close_session(sid)
            # leaving connect() = protocol.close() + await protocol.wait_closed()
            t_open += tb - ta
            t_close += clock() - tb
        rate = n / ((clock() - t0) / 1e9)
        self.split = (t_open / n / 1e3, t_close / n / 1e3)
        return rate


# ===========================================================================
# report

IMPLS = {"pywebtransport": PwtBench, "aioquic": AioquicBench}


def report(pw: list[dict], aq: list[dict], repro: str) -> str:
    rows: list[tuple[str, str, str, str, str]] = []

    def add(label: str, key: str, unit: str, better: str) -> None:
        p, q = median(pw, key), median(aq, key)
        if p is None or q is None:
            return
        ratio = p / q
        if better == "higher":
            rtxt = f"{ratio:.2f}x (pwt/aioquic, higher = pwt better)"
            win = "pywebtransport" if ratio > 1 else "aioquic"
        else:
            rtxt = f"{ratio:.2f}x (pwt/aioquic, lower = pwt better)"
            win = "pywebtransport" if ratio < 1 else "aioquic"
        rows.append((label, fmt(p, unit), fmt(q, unit), rtxt, win))

    add("1. bulk upload, 1 WT bidi stream", "upload_mib_s", "MiB/s", "higher")
    add("2. echo 64 B, 1 stream, p50", "echo_p50_us", "us", "lower")
    add("2. echo 64 B, 1 stream, p99", "echo_p99_us", "us", "lower")
    add("3. datagram ping-pong", "dgram_rt_per_s", "rt/s", "higher")
    add("4. session setups (sequential)", "setups_per_s", "/s", "higher")
    add("4a. setup: open part (QUIC+CONNECT+200)", "setup_open_us", "us", "lower")
    add("4b. setup: close part (until closed)", "setup_close_us", "us", "lower")

    head = ("scenario", "pywebtransport", "aioquic", "ratio", "winner")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
    line = lambda r: "| " + " | ".join(x.ljust(w) for x, w in zip(r, widths)) + " |"  # noqa: E731
    out = [f"command: {repro}", ""]
    out.append(line(head))
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out.extend(line(r) for r in rows)
    out.append("")
    out.append(
        f"runs: {len(pw)} per implementation (median shown); datagram retries: "
        f"pywebtransport={sum(r.get('dgram_retries', 0) for r in pw)} "
        f"aioquic={sum(r.get('dgram_retries', 0) for r in aq)}"
    )
    for name, res in (("pywebtransport", pw), ("aioquic", aq)):
        diag = []
        for key, label in (
            ("upload_cpu_pct", "upload loop CPU {:.0f}%"),
            ("echo_cpu_us", "echo CPU/round {:.1f} us"),
            ("dgram_cpu_us", "datagram CPU/round {:.1f} us"),
            ("setup_open_us", "setup open {:.0f} us"),
            ("setup_close_us", "setup close {:.0f} us"),
        ):
            v = median(res, key)
            if v is not None:
                diag.append(label.format(v))
        if diag:
            out.append(f"diagnostics {name}: " + "; ".join(diag))
    return "\n".join(out)


# ===========================================================================


def profile(args: argparse.Namespace, certfile: str, keyfile: str, only: set[str]) -> None:
    """Profile one implementation; the profiler is enabled only while measuring."""
    run_profiled(lambda prof: IMPLS[args.profile](args, certfile, keyfile).run(only, prof), args.profile_top)


def main() -> int:
    if "--peers" in sys.argv[1:]:  # the three-library benchmark: bench/peers_bench.py
        from peers_bench import main as peers_main

        return peers_main([a for a in sys.argv[1:] if a != "--peers"])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=None, help="MiB uploaded (default 64; 16 with --quick)")
    ap.add_argument("--rounds", type=int, default=None, help="echo rounds (default 3000; 1000 with --quick)")
    ap.add_argument("--warmup", type=int, default=200, help="echo rounds discarded first")
    ap.add_argument("--dgram-rounds", type=int, default=None, help="datagram round trips (default = --rounds)")
    ap.add_argument("--setups", type=int, default=None, help="sequential session setups (default 50; 20 with --quick)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per implementation, median reported")
    ap.add_argument("--warmup-mib", type=int, default=4, help="untimed upload before the timed one")
    ap.add_argument("--chunk-kib", type=int, default=256, help="client write size for the upload (both sides)")
    ap.add_argument("--aq-window-kib", type=int, default=1024, help="aioquic writer's unacked-data limit")
    ap.add_argument("--quick", action="store_true", help="small sizes for a fast run")
    ap.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated subset of " + ",".join(SCENARIOS))
    ap.add_argument("--json", action="store_true", help="also print the raw results as JSON")
    ap.add_argument("--profile", choices=tuple(IMPLS), help="cProfile one implementation (no table)")
    ap.add_argument("--profile-top", type=int, default=30)
    args = ap.parse_args()

    q = args.quick
    args.size = args.size if args.size is not None else (16 if q else 64)
    args.rounds = args.rounds if args.rounds is not None else (1000 if q else 3000)
    args.dgram_rounds = args.dgram_rounds if args.dgram_rounds is not None else args.rounds
    args.setups = args.setups if args.setups is not None else (20 if q else 50)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    bad = only - set(SCENARIOS)
    if bad:
        ap.error(f"unknown scenarios: {', '.join(sorted(bad))}")

    from certs import make_certs

    repro = " ".join(shlex.quote(x) for x in [sys.executable, *sys.argv])
    with tempfile.TemporaryDirectory(prefix="pwt-wtbench-") as tmp:
        certs = make_certs(Path(tmp))
        certfile, keyfile = str(certs.self_signed_cert), str(certs.self_signed_key)
        if args.profile:
            profile(args, certfile, keyfile, only)
            return 0
        results: dict[str, list[dict]] = {"pywebtransport": [], "aioquic": []}
        t0 = time.monotonic()
        for i in range(args.repeat):
            for name, cls in IMPLS.items():
                gc.collect()
                results[name].append(asyncio.run(cls(args, certfile, keyfile).run(only)))
                print(f"[run {i + 1}/{args.repeat}] {name}: {json.dumps(results[name][-1])}", file=sys.stderr, flush=True)
        print(f"[bench] total {time.monotonic() - t0:.1f}s", file=sys.stderr)
        if args.json:
            print(json.dumps(results, indent=2))
        print(report(results["pywebtransport"], results["aioquic"], repro))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
