"""bench/charts.py reads every benchmark JSON shape (the parsing needs no matplotlib)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import charts  # noqa: E402


def _write(tmp_path: Path, data: object, prefix: str = "", suffix: str = "") -> Path:
    path = tmp_path / "bench.json"
    path.write_text(prefix + json.dumps(data, indent=2) + suffix)
    return path


def test_wt_bench_json_with_table_after_it_gives_medians(tmp_path: Path) -> None:
    data = {
        "pywebtransport": [{"upload_mib_s": 40.0, "echo_p50_us": 100.0}, {"upload_mib_s": 60.0, "echo_p50_us": 300.0},
                           {"upload_mib_s": 50.0, "echo_p50_us": 200.0}],
        "aioquic": [{"upload_mib_s": 3.0}],
    }
    ds = charts.load(_write(tmp_path, data, suffix="\ncommand: x\n| scenario | ... |\n"))
    assert ds.kind == "wt"
    by_key = {m.key: m for m in ds.metrics}
    assert by_key["upload_mib_s"].values == {"pywebtransport": 50.0, "aioquic": 3.0}
    assert by_key["upload_mib_s"].better == "higher"
    assert by_key["echo_p50_us"].values == {"pywebtransport": 200.0}  # aioquic did not report it: left out
    assert by_key["echo_p50_us"].better == "lower"
    table = charts.markdown_table(ds)
    assert "| bulk upload, 1 WT bidi stream (MiB/s) | 50.0 | 3.00 | 16.67x | higher |" in table
    assert "| echo 64 B, 1 stream, p50 (µs) | 200 | – | – | lower |" in table


def test_quic_bench_json_pairs_python_with_each_c_variant(tmp_path: Path) -> None:
    data = {
        "python": [{"echo_p50_us": 110.0, "handshakes_per_s": 200.0}],
        "c": [{"echo_cb_p50_us": 30.0, "echo_thread_p50_us": 45.0, "handshakes_per_s": 900.0}],
    }
    ds = charts.load(_write(tmp_path, data, prefix="[bench] noise\n"))
    assert ds.kind == "quic"
    by_label = {m.label: m.values for m in ds.metrics}
    assert by_label["echo 64 B, p50"] == {"Python": 110.0, "C callback": 30.0, "C app thread": 45.0}
    assert by_label["handshakes (sequential)"] == {"Python": 200.0, "C": 900.0}


def test_peers_json_groups_metrics_by_scenario_and_tolerates_missing_libraries(tmp_path: Path) -> None:
    data = {
        "schema": 1,
        "meta": {"scenarios": ["upload", "echo", "stream_echo"]},
        "lib_order": ["py", "go", "rust"],
        "libs": {"py": {"label": "PyWebTransport"}, "go": {"label": "webtransport-go"}, "rust": {"label": "wtransport"}},
        "metrics": [
            {"key": "upload_mb_s", "label": "upload", "unit": "MB/s", "better": "higher"},
            {"key": "stream_echo_p50_us", "label": "stream echo p50", "unit": "µs", "better": "lower"},
        ],
        "medians": {"py": {"upload_mb_s": 80.0, "stream_echo_p50_us": 400.0}, "go": {"upload_mb_s": 300.0}, "rust": {}},
    }
    ds = charts.load(_write(tmp_path, data))
    assert ds.kind == "peers"
    by_key = {m.key: m for m in ds.metrics}
    assert by_key["upload_mb_s"].values == {"PyWebTransport": 80.0, "webtransport-go": 300.0}
    assert by_key["upload_mb_s"].group == "upload"
    assert by_key["stream_echo_p50_us"].group == "stream_echo"


def test_generic_scenarios_form_is_accepted(tmp_path: Path) -> None:
    data = {"scenarios": {"echo": {"libs": {"py": {"p50_us": 150.0}, "go": {"p50_us": 90.0}, "rust": None}}}}
    ds = charts.load(_write(tmp_path, data))
    assert [(m.group, m.values, m.better) for m in ds.metrics] == [
        ("echo", {"PyWebTransport": 150.0, "webtransport-go": 90.0}, "lower")
    ]


def test_unknown_json_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unrecognised benchmark JSON"):
        charts.load(_write(tmp_path, {"something": 1}))
    (tmp_path / "empty.txt").write_text("no json here")
    with pytest.raises(ValueError, match="no JSON object"):
        charts.load(tmp_path / "empty.txt")
