"""`pywebtransport bench` (the load generator) and `pywebtransport info` against real servers."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import tempfile

import pytest

from pywebtransport.cli import echo_app
from pywebtransport.loadgen import SCENARIOS, run_bench
from pywebtransport.utils import generate_browser_cert

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_every_scenario_against_our_server(scenario: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cert, key, _ = generate_browser_cert("localhost", output_dir=tmp)
        app = echo_app(cert, key)
        async with app:
            await app.server.listen(host="127.0.0.1", port=0)
            assert app.server.local_address is not None
            url = f"https://127.0.0.1:{app.server.local_address[1]}/"
            size = 200_000 if scenario in ("upload", "download") else 64
            result = await run_bench(url, scenario, sessions=2, streams=2, duration=1.0, size=size)
    assert result.errors == 0 and result.lost == 0, result.to_dict()
    assert result.operations > 0 and len(result.latencies) == result.operations
    assert 0 < result.percentile(50) <= result.percentile(99)
    if scenario in ("upload", "download"):
        assert result.bytes == result.operations * size
    summary = result.to_dict()
    assert summary["scenario"] == scenario and summary["rate_per_s"] > 0


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_cli_bench_json_against_pywebtransport_serve() -> None:
    port = _free_udp_port()
    server = subprocess.Popen([sys.executable, "-m", "pywebtransport.cli", "serve", "--port", str(port),
                               "--duration", "60"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert "echo server on" in server.stdout.readline()
        out = subprocess.run([sys.executable, "-m", "pywebtransport.cli", "bench", f"https://127.0.0.1:{port}/",
                              "-k", "--scenario", "datagram", "--sessions", "2", "--duration", "1", "--json"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert data["scenario"] == "datagram" and data["operations"] > 0 and data["errors"] == 0
        assert set(data["latency_ms"]) == {"p50", "p90", "p99"}
    finally:
        server.kill()
        server.wait(10)


def test_cli_info_reports_msquic_and_a_live_connection() -> None:
    out = subprocess.run([sys.executable, "-m", "pywebtransport.cli", "info"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    facts = dict(line.split(None, 1) for line in out.stdout.strip().splitlines())
    assert facts["msquic"].startswith("2.5.")
    assert facts["tls_provider"].startswith("openssl")
    assert facts["udp_gso_available"] in ("True", "False") and facts["udp_gro_available"] in ("True", "False")
    assert facts["loopback_ecn_capable"] in ("True", "False")
    assert int(facts["loopback_path_mtu"]) >= 1200
    from pywebtransport import _native

    workers = _native.worker_count()
    assert facts["worker_threads"] == str(workers) if workers else facts["worker_threads"].startswith("one per CPU")
    assert facts["loop_spin_us"] == str(_native.loop_spin_us())
