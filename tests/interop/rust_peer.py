"""Build and drive the wtransport (Rust) interop peer in tests/interop/rust/.

The binary is built once per exact source (hash of Cargo.toml + Cargo.lock + src/) into a cache
outside the clone, ``~/.cache/pywebtransport/peers/rust-<hash>/`` (used as CARGO_TARGET_DIR), and
reused by later runs without invoking cargo at all.  A missing cargo is a test *failure*, not a skip:
these interop tests are part of the suite and must not silently stop running.

Environment knobs:
  PYWEBTRANSPORT_PEER_CACHE   cache root (see peer_cache.py)
  CARGO            cargo executable (default: ``cargo`` on PATH, then ~/.cargo/bin/cargo)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peer_cache import CARGO_BUILD_TIMEOUT, PeerBuildError, build_cargo_crate, cargo_source_hash

import pytest

CRATE_DIR = Path(__file__).resolve().parent / "rust"
BIN_NAME = "wt-interop-peer"
BUILD_TIMEOUT = CARGO_BUILD_TIMEOUT  # seconds; a cold build on the 2-core machine takes ~1-2 min
STEP = 15.0  # per-await bound for peer I/O


def _pinned_wtransport() -> str:
    """The wtransport version pinned in rust/Cargo.toml (``wtransport = { version = "=X" ...``)."""
    import re

    text = (CRATE_DIR / "Cargo.toml").read_text()
    match = re.search(r'^wtransport\s*=\s*\{\s*version\s*=\s*"=?([^"]+)"', text, re.M)
    return match.group(1) if match else "unknown"


WTRANSPORT_VERSION = _pinned_wtransport()


def source_hash() -> str:
    return cargo_source_hash(CRATE_DIR)


def ensure_binary() -> Path:
    """Return the peer binary, building it (once per source hash, under a file lock) if needed."""
    try:
        return build_cargo_crate(CRATE_DIR, BIN_NAME, prefix="rust", timeout=BUILD_TIMEOUT)
    except PeerBuildError as exc:
        pytest.fail(f"wtransport interop peer: {exc}", pytrace=False)


def _parse_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
    return out


@dataclass
class ClientRun:
    returncode: int
    events: list[dict[str, Any]]
    stderr: str

    def event(self, name: str) -> dict[str, Any]:
        for ev in self.events:
            if ev.get("event") == name:
                return ev
        raise AssertionError(f"no {name!r} event from the wtransport client: rc={self.returncode} "
                             f"events={self.events} stderr={self.stderr[-3000:]}")


async def run_client(binary: Path, *args: str, timeout: float = 90.0) -> ClientRun:
    """Run ``peer client ARGS`` without blocking the event loop (our server runs in it)."""
    proc = await asyncio.create_subprocess_exec(
        str(binary), "client", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError(
            f"wtransport client timed out after {timeout}s; stdout={out.decode(errors='replace')[-3000:]} "
            f"stderr={err.decode(errors='replace')[-3000:]}"
        ) from None
    return ClientRun(proc.returncode or 0, _parse_lines(out.decode(errors="replace")), err.decode(errors="replace"))


@dataclass
class RustServer:
    proc: asyncio.subprocess.Process
    port: int
    events: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def next_event(self, name: str, timeout: float = STEP, **match: Any) -> dict[str, Any]:
        """First recorded event called ``name`` whose fields equal ``match`` (waits for it)."""

        async def wait() -> dict[str, Any]:
            while True:
                for ev in self.events:
                    if ev.get("event") == name and all(ev.get(k) == v for k, v in match.items()):
                        return ev
                if self.proc.returncode is not None:
                    raise AssertionError(f"wtransport server exited rc={self.proc.returncode}: {self.events}")
                self.changed.clear()
                await self.changed.wait()

        try:
            return await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no {name!r} {match} event from the wtransport server in {timeout}s: "
                                 f"{self.events}") from None


@contextlib.asynccontextmanager
async def rust_server(binary: Path, cert: Path, key: Path) -> AsyncIterator[RustServer]:
    proc = await asyncio.create_subprocess_exec(
        str(binary), "server", "--cert", str(cert), "--key", str(key), "--port", "0",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), STEP)
        first = _parse_lines(line.decode(errors="replace"))
        if not first or first[0].get("event") != "listening":
            err = b""
            with contextlib.suppress(Exception):
                err = await asyncio.wait_for(proc.stderr.read(), 2) if proc.stderr else b""
            raise AssertionError(f"wtransport server did not start: {line!r} {err.decode(errors='replace')[-3000:]}")
        server = RustServer(proc, int(first[0]["port"]))

        async def pump() -> None:
            assert proc.stdout is not None
            while True:
                raw = await proc.stdout.readline()
                if not raw:
                    break
                server.events.extend(_parse_lines(raw.decode(errors="replace")))
                server.changed.set()
            await proc.wait()
            server.changed.set()

        pump_task = asyncio.ensure_future(pump())
        try:
            yield server
        finally:
            pump_task.cancel()
    finally:
        # the server exits on stdin EOF; kill it if it does not within a few seconds
        with contextlib.suppress(Exception):
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
