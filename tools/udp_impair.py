#!/usr/bin/env python3
"""A userspace UDP impairment relay: loss, reordering, duplication, delay with jitter, rate limit.

This kernel has no netem, so tests that need a bad network put this relay between a client
and a server on loopback. Clients talk to the relay's port; for each client address the relay
opens its own socket towards the server, so the server sees one peer per client. Every
impairment applies to both directions independently, with a seeded random generator.

Run standalone (prints ``listening HOST PORT`` once bound)::

    python tools/udp_impair.py --target 127.0.0.1:4433 --loss 0.05 --reorder 0.05 \\
        --duplicate 0.01 --delay-ms 5 --jitter-ms 2 --rate-mbit 200

or in-process with :class:`Relay` (it runs its own event loop on a thread, so the relay never
competes with the loop under test).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

Address = tuple[Any, ...]


@dataclass
class Impairment:
    """What happens to each datagram in one direction (probabilities are 0..1)."""

    loss: float = 0.0
    reorder: float = 0.0  # held back and sent after the next one(s)
    duplicate: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_mbit: float = 0.0  # 0 = unlimited; excess beyond queue_bytes is dropped (tail drop)
    queue_bytes: int = 256 * 1024
    blackhole: bool = False  # drop everything (a peer that went silent)


@dataclass
class Counters:
    """What the relay did, per direction."""

    received: int = 0
    forwarded: int = 0
    dropped_loss: int = 0
    dropped_queue: int = 0
    dropped_blackhole: int = 0
    duplicated: int = 0
    reordered: int = 0


@dataclass
class _Direction:
    imp: Impairment
    rng: random.Random
    counters: Counters = field(default_factory=Counters)
    busy_until: float = 0.0  # rate limiter: when the link is free again
    queued_bytes: int = 0


class _Upstream(asyncio.DatagramProtocol):
    """The relay's socket towards the server for one client."""

    def __init__(self, relay: "_RelayCore", client: Address) -> None:
        self.relay = relay
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Address) -> None:
        down = self.relay.downstream
        if down is not None:
            self.relay.impair(self.relay.to_client, data, lambda d: down.sendto(d, self.client))


class _Downstream(asyncio.DatagramProtocol):
    def __init__(self, relay: "_RelayCore") -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.relay.from_client(data, addr)


class _RelayCore:
    def __init__(self, loop: asyncio.AbstractEventLoop, target: Address,
                 to_server: Impairment, to_client: Impairment, seed: int) -> None:
        self.loop = loop
        self.target = target
        self.to_server = _Direction(to_server, random.Random(seed))
        self.to_client = _Direction(to_client, random.Random(seed + 1))
        self.downstream: asyncio.DatagramTransport | None = None
        self.upstreams: dict[Address, _Upstream] = {}
        self.pending: dict[Address, list[bytes]] = {}

    def from_client(self, data: bytes, addr: Address) -> None:
        up = self.upstreams.get(addr)
        if up is not None and up.transport is not None:
            transport = up.transport
            self.impair(self.to_server, data, lambda d: transport.sendto(d))
            return
        if addr in self.pending:
            self.pending[addr].append(data)
            return
        self.pending[addr] = [data]
        self.loop.create_task(self._open_upstream(addr))

    async def _open_upstream(self, addr: Address) -> None:
        family = socket.AF_INET6 if ":" in self.target[0] else socket.AF_INET
        _, proto = await self.loop.create_datagram_endpoint(
            lambda: _Upstream(self, addr), remote_addr=self.target, family=family)
        self.upstreams[addr] = proto
        for data in self.pending.pop(addr, []):
            self.from_client(data, addr)

    def impair(self, d: _Direction, data: bytes, send: Any) -> None:
        imp, c = d.imp, d.counters
        c.received += 1
        if imp.blackhole:
            c.dropped_blackhole += 1
            return
        if imp.loss and d.rng.random() < imp.loss:
            c.dropped_loss += 1
            return
        copies = 1
        if imp.duplicate and d.rng.random() < imp.duplicate:
            copies = 2
            c.duplicated += 1
        for _ in range(copies):
            self._schedule(d, data, send)

    def _schedule(self, d: _Direction, data: bytes, send: Any) -> None:
        imp, c = d.imp, d.counters
        now = self.loop.time()
        delay = imp.delay_ms / 1000.0
        if imp.jitter_ms:
            delay = max(0.0, delay + d.rng.uniform(-imp.jitter_ms, imp.jitter_ms) / 1000.0)
        if imp.reorder and d.rng.random() < imp.reorder:
            # Held back long enough for later packets to overtake it.
            delay += max(0.002, 2 * imp.jitter_ms / 1000.0)
            c.reordered += 1
        if imp.rate_mbit:
            if d.queued_bytes + len(data) > imp.queue_bytes:
                c.dropped_queue += 1
                return
            start = max(now, d.busy_until)
            d.busy_until = start + len(data) * 8 / (imp.rate_mbit * 1e6)
            d.queued_bytes += len(data)
            delay += d.busy_until - now

            def out() -> None:
                d.queued_bytes -= len(data)
                c.forwarded += 1
                send(data)

            self.loop.call_later(delay, out)
            return
        if delay <= 0:
            c.forwarded += 1
            send(data)
            return

        def later() -> None:
            c.forwarded += 1
            send(data)

        self.loop.call_later(delay, later)


class Relay:
    """An impairment relay on its own thread and event loop.

    ``with Relay(("127.0.0.1", server_port), to_server=Impairment(loss=0.05)) as relay:``
    then connect clients to ``relay.port``. Impairments can be changed while it runs
    (``relay.set(blackhole=True)``); ``relay.counters()`` reports what it did.
    """

    def __init__(self, target: Address, *, to_server: Impairment | None = None,
                 to_client: Impairment | None = None, seed: int = 1, host: str = "127.0.0.1") -> None:
        self.target = target
        self.host = host
        self._to_server = to_server or Impairment()
        self._to_client = to_client or Impairment()
        self._seed = seed
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="udp-impair", daemon=True)
        self._core: _RelayCore | None = None
        self.port = 0

    def start(self) -> "Relay":
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self.port = fut.result(10)
        return self

    async def _start(self) -> int:
        self._core = _RelayCore(self._loop, self.target, self._to_server, self._to_client, self._seed)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _Downstream(self._core), local_addr=(self.host, 0), family=family)  # type: ignore[arg-type]
        sock = transport.get_extra_info("socket")
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            sock.setsockopt(socket.SOL_SOCKET, opt, 4 * 1024 * 1024)
        self._core.downstream = transport
        port: int = transport.get_extra_info("sockname")[1]
        return port

    def set(self, **changes: Any) -> None:
        """Change impairments of both directions (thread-safe)."""
        def apply() -> None:
            assert self._core is not None
            for d in (self._core.to_server, self._core.to_client):
                for key, value in changes.items():
                    setattr(d.imp, key, value)
        self._loop.call_soon_threadsafe(apply)

    def counters(self) -> dict[str, Counters]:
        assert self._core is not None
        return {"to_server": self._core.to_server.counters, "to_client": self._core.to_client.counters}

    def close(self) -> None:
        async def stop() -> None:
            if self._core is not None:
                if self._core.downstream is not None:
                    self._core.downstream.close()
                for up in self._core.upstreams.values():
                    if up.transport is not None:
                        up.transport.close()
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> "Relay":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", required=True, help="server HOST:PORT")
    p.add_argument("--listen", default="127.0.0.1", help="address to listen on (an ephemeral port)")
    p.add_argument("--loss", type=float, default=0.0)
    p.add_argument("--reorder", type=float, default=0.0)
    p.add_argument("--duplicate", type=float, default=0.0)
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    p.add_argument("--rate-mbit", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--seconds", type=float, default=0.0, help="exit after this long (0 = until killed)")
    a = p.parse_args()
    host, _, port = a.target.rpartition(":")
    imp = dict(loss=a.loss, reorder=a.reorder, duplicate=a.duplicate, delay_ms=a.delay_ms,
               jitter_ms=a.jitter_ms, rate_mbit=a.rate_mbit)
    with Relay((host.strip("[]"), int(port)), to_server=Impairment(**imp), to_client=Impairment(**imp),
               seed=a.seed, host=a.listen) as relay:
        print(f"listening {a.listen} {relay.port}", flush=True)
        threading.Thread(target=_control, args=(relay,), daemon=True).start()
        deadline = time.monotonic() + a.seconds if a.seconds else None
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        print(json.dumps({k: vars(v) for k, v in relay.counters().items()}), flush=True)


def _control(relay: Relay) -> None:
    """Commands on stdin, one per line: ``set KEY=VALUE ...`` or ``counters`` (answers one JSON line)."""
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "set":
            changes: dict[str, Any] = {}
            for word in words[1:]:
                key, _, value = word.partition("=")
                changes[key] = value.lower() in ("1", "true") if key == "blackhole" else float(value)
            relay.set(**changes)
            print("ok", flush=True)
        elif words[0] == "counters":
            print(json.dumps({k: vars(v) for k, v in relay.counters().items()}), flush=True)


if __name__ == "__main__":
    main()
