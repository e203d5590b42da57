"""ServerApp.run(workers=N) and ``pywebtransport serve --workers N``: one UDP port, N processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from certs import CertSet
from pywebtransport import ClientConfig, WebTransportClient, WebTransportSession
from pywebtransport.exceptions import WebTransportError

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers need Linux"),
]

APP = Path(__file__).with_name("workers_app.py")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def connect_retrying(client: WebTransportClient, url: str, deadline: float) -> WebTransportSession:
    loop = asyncio.get_running_loop()
    while True:
        try:
            return await client.connect(url, timeout=5)
        except WebTransportError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def wait_for_text(path: Path, text: str, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while text not in path.read_text(errors="replace"):
        assert loop.time() < deadline, f"{text!r} not in {path}: {path.read_text(errors='replace')}"
        await asyncio.sleep(0.1)


async def test_two_workers_share_the_port_and_keep_connections_pinned(certs: CertSet, tmp_path: Path) -> None:
    port = free_udp_port()
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, str(APP), str(certs.cert), str(certs.key), str(port), "2"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        # A worker joining the SO_REUSEPORT group re-hashes 4-tuples, so connections made before
        # every worker listens could move to another worker: wait for the parent's "serving".
        await wait_for_text(tmp_path / "server.log", "worker(s) serving", 60)
        url = f"https://127.0.0.1:{port}/who"
        # Each connection gets its own source port (real clients come from many addresses).
        config = ClientConfig.create(ca_certs=str(certs.ca_cert), share_udp_binding=False)
        async with WebTransportClient(config) as client:
            loop = asyncio.get_running_loop()
            first = await connect_retrying(client, url, loop.time() + 30)
            await first.close()

            gate = asyncio.Semaphore(8)  # bounded concurrent handshakes (the machine may be loaded)

            async def one(i: int) -> str:
                # A fresh client per session: its own connection, its own UDP 4-tuple.
                async with gate, WebTransportClient(config) as own:
                    session = await own.connect(url, timeout=30)
                    async for stream in session.incoming_streams():
                        pid = (await stream.read_all()).decode()
                        break
                    # Several round trips spread over time: each must reach the same worker.
                    for j in range(4):
                        bidi = await session.create_bidirectional_stream()
                        await bidi.write_all(f"{i}/{j}".encode())
                        assert await bidi.read_all() == f"{i}/{j}".encode()
                        await asyncio.sleep(0.05)
                    await session.close()
                    return pid

            pids = Counter(await asyncio.gather(*(one(i) for i in range(24))))
        assert len(pids) == 2, pids  # both workers served sessions ...
        assert sum(pids.values()) == 24  # ... and every session completed on its worker
        assert min(pids.values()) >= 3, pids  # 4-tuple hashing spreads them (not all on one worker)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    output = (tmp_path / "server.log").read_text()
    assert proc.returncode == 0, output
    assert "stopped" in output and "Traceback" not in output, output


async def test_cli_serve_workers(tmp_path: Path) -> None:
    port = free_udp_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pywebtransport.cli", "serve", "--workers", "2", "--port", str(port),
        "--duration", "60", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        banner = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert b"2 worker processes" in banner
        config = ClientConfig.create(verify_mode=ssl.CERT_NONE)
        async with WebTransportClient(config) as client:
            loop = asyncio.get_running_loop()
            session = await connect_retrying(client, f"https://127.0.0.1:{port}/echo", loop.time() + 30)
            stream = await session.create_bidirectional_stream()
            await stream.write_all(b"hi")
            assert await stream.read_all() == b"ECHO: hi"
            await session.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out


def test_workers_refuse_a_single_msquic_worker() -> None:
    """One msquic partition gives sockets without SO_REUSEPORT: say so instead of ADDRESS_IN_USE."""
    env = dict(os.environ)
    env["PYWEBTRANSPORT_MSQUIC_WORKERS"] = "1"
    out = subprocess.run(
        [sys.executable, "-m", "pywebtransport.cli", "serve", "--workers", "2", "--port", str(free_udp_port()),
         "--duration", "5"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode != 0
    assert "PYWEBTRANSPORT_MSQUIC_WORKERS=1" in out.stdout + out.stderr
    assert "ADDRESS_IN_USE" not in out.stdout + out.stderr
