"""The benchmark peers (bench/peers/: PyWebTransport, webtransport-go, wtransport) build and speak the
benchmark protocol (bench/peers/README.md).

Not a timed test: tiny sizes (bench/peers_bench.py smoke_params), assertions only on correctness:
byte counts, echo content (each program compares every echo with what it sent and reports
mismatches), sample and session counts. Every scenario runs with each library's own client against
its own server, as the benchmark does; a few scenarios also run across libraries, which checks that
the three programs implement the same protocol rather than three private ones.

The Go and Rust programs are built once into the peer cache (tests/interop/peer_cache.py); a missing
toolchain fails these tests, as it does for the other interop tests. Bounds: 180 s per test body
(a cold build in the module fixture is bounded by the build timeouts), every peer wait is bounded
inside peers_bench (PeerProc.expect).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from certs import CertSet

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import peers_bench as pb  # noqa: E402

pytestmark = pytest.mark.timeout(180, func_only=True)

PARAMS = pb.smoke_params()


@pytest.fixture(scope="module")
def libs() -> dict[str, pb.Lib]:
    out = {}
    for key in pb.LIB_ORDER:
        try:
            out[key] = pb.prepare_lib(key)
        except pb.PeerBuildError as exc:
            pytest.fail(f"benchmark peer {key}: {exc}", pytrace=False)
    return out


def check(scenario: str, raw: dict[str, Any], who: str) -> None:
    """Correctness of one scenario's result, as reported by the client program."""
    p = PARAMS[scenario]
    if scenario == "upload":
        assert raw["bytes"] == p["size"] and raw["reply"] == p["size"], f"{who}: {raw}"
    elif scenario == "download":
        assert raw["bytes"] == p["size"], f"{who}: {raw}"
    elif scenario in ("echo", "stream_echo"):
        assert raw["mismatches"] == 0, f"{who}: {raw}"
        assert len(raw["samples_ns"]) == p["rounds"], f"{who}: {raw}"
        assert all(s > 0 for s in raw["samples_ns"]), f"{who}: {raw}"
    elif scenario == "dgram":
        # each sample is a round trip whose echo carried the sequence number that was sent
        assert len(raw["samples_ns"]) == p["rounds"], f"{who}: {raw}"
    elif scenario == "dgram_rate":
        assert raw["received"] > 0, f"{who}: {raw}"
        assert raw["received"] + raw["late"] <= raw["sent"], f"{who}: {raw}"
    elif scenario == "setup":
        assert raw["errors"] == 0 and len(raw["samples_ns"]) == p["rounds"], f"{who}: {raw}"
    elif scenario == "concurrent":
        assert raw["errors"] == 0, f"{who}: {raw}"
        assert raw["requests"] == p["sessions"] * p["requests"], f"{who}: {raw}"
    elif scenario == "idle":
        assert raw["errors"] == 0, f"{who}: {raw}"
        assert raw["attempted"] == raw["established"] == p["sessions"], f"{who}: {raw}"
        assert raw["rss_server_delta_kb"] is not None and raw["rss_client_delta_kb"] is not None, f"{who}: {raw}"
    else:  # pragma: no cover - a new scenario needs a check here
        raise AssertionError(f"no correctness check for {scenario}")


# wtransport 0.7.2's server now and then closes a connection that is being set up, while
# others connect at the same time, with H3_FRAME_UNEXPECTED (0x105 = 261) or H3_EXCESSIVE_LOAD
# (0x107 = 263): wtransport client against wtransport server, no code of ours involved. Every full
# benchmark run shows a few per 10,000 sessions in its idle scenario, and the 4-session concurrent
# smoke run met one in CI. Only this exact failure of the wtransport pair earns one rerun.
_WTRANSPORT_REFUSALS = ("connection closed by peer: 261", "connection closed by peer: 263")


def wtransport_refused_a_connect(raw: dict[str, Any]) -> bool:
    """The client's errors are all wtransport's own server refusing a connection (see above)."""
    if not raw.get("errors"):
        return False
    seen = [e for e in [raw.get("first_error"), *raw.get("error_samples", [])] if e]
    return bool(seen) and all(e in _WTRANSPORT_REFUSALS for e in seen)


@pytest.mark.parametrize("key", pb.LIB_ORDER)
async def test_own_client_and_server(libs: dict[str, pb.Lib], certs: CertSet, key: str) -> None:
    """Every scenario, each library's own client against its own server (one server for all)."""
    lib = libs[key]
    async with pb.server(lib, str(certs.self_signed_cert), str(certs.self_signed_key)) as (srv, port):
        for scenario in pb.SCENARIOS:
            procs = 2 if scenario == "idle" else 1
            raw = await pb.run_clients(lib, srv, port, scenario, PARAMS[scenario], procs=procs)
            if key == "rust" and wtransport_refused_a_connect(raw):
                # Not our stack: run the scenario once more, and that run must be clean.
                raw = await pb.run_clients(lib, srv, port, scenario, PARAMS[scenario], procs=procs)
            check(scenario, raw, f"{key} {scenario}")
            assert raw["cpu_client_s"] is not None and raw["cpu_client_s"] >= 0
            assert raw["cpu_server_s"] is not None and raw["cpu_server_s"] >= 0
            metrics, problem = pb.derive(scenario, raw)
            assert problem is None, f"{key} {scenario}: {problem}"
            assert metrics, f"{key} {scenario}: no metrics from {raw}"
        assert srv.proc.returncode is None, f"{key} server died: {srv.stderr.decode(errors='replace')[-2000:]}"


# webtransport-go v0.12 clients require the QUIC reliable-reset extension (RESET_STREAM_AT,
# "stream reset partial delivery") from the server. Our server offers it (msquic built with the
# current codepoints, see vendor/build_msquic.py); wtransport 0.7.2 does not, so go client ->
# wtransport server is left out (not our stack).
CROSS = [
    pytest.param(c, s, id=f"{c}-client-{s}-server")
    for c in pb.LIB_ORDER
    for s in pb.LIB_ORDER
    if c != s and (c, s) != ("go", "rust")
]


@pytest.mark.parametrize(("client_key", "server_key"), CROSS)
async def test_cross_library(libs: dict[str, pb.Lib], certs: CertSet, client_key: str, server_key: str) -> None:
    """One library's client against another's server: the protocol is the same everywhere."""
    async with pb.server(libs[server_key], str(certs.self_signed_cert), str(certs.self_signed_key)) as (srv, port):
        for scenario in ("upload", "download", "echo", "stream_echo", "dgram"):
            raw = await pb.run_clients(libs[client_key], srv, port, scenario, PARAMS[scenario])
            check(scenario, raw, f"{client_key} client, {server_key} server, {scenario}")


def test_render_table_from_json() -> None:
    """render_table turns the benchmark JSON into a markdown table with the ratio to the best peer."""
    from render_table import render

    data = {
        "lib_order": ["py", "go", "rust"],
        "libs": {k: {"label": k.upper(), "version": "1"} for k in ("py", "go", "rust")},
        "metrics": [
            {"key": "echo_p50_us", "label": "echo p50", "unit": "µs", "better": "lower"},
            {"key": "upload_mb_s", "label": "upload", "unit": "MB/s", "better": "higher"},
        ],
        "medians": {
            "py": {"echo_p50_us": 300.0, "upload_mb_s": 300.0},
            "go": {"echo_p50_us": 200.0, "upload_mb_s": 100.0},
            "rust": {"echo_p50_us": 150.0, "upload_mb_s": 200.0},
        },
        "runs": {k: [{"load_1m": 1.0}] for k in ("py", "go", "rust")},
        "meta": {"command": "python bench/wt_bench.py --peers", "runtime_s": 10, "nproc": 2},
    }
    table = render(data)
    lines = table.splitlines()
    assert lines[0] == "| scenario | PY | GO | RUST | PyWebTransport / best peer |"
    assert lines[2] == "| echo p50 | 300 µs | 200 µs | 150 µs | 2.00 (behind) |"
    assert lines[3] == "| upload | 300 MB/s | 100 MB/s | 200 MB/s | 1.50 (ahead) |"
    assert "python bench/wt_bench.py --peers" in table


def test_only_wtransports_own_refusals_earn_a_rerun() -> None:
    refused = {"errors": 1, "first_error": "connection closed by peer: 261"}
    assert wtransport_refused_a_connect(refused)
    assert wtransport_refused_a_connect({"errors": 2, "error_samples": ["connection closed by peer: 261",
                                                                         "connection closed by peer: 263"]})
    assert not wtransport_refused_a_connect({"errors": 0, "first_error": ""})
    assert not wtransport_refused_a_connect({"errors": 1, "first_error": "connect timed out after 10s"})
    assert not wtransport_refused_a_connect({"errors": 2, "error_samples": ["connection closed by peer: 261",
                                                                             "connect timed out after 10s"]})
