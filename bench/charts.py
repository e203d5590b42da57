#!/usr/bin/env python3
"""Bar charts (PNG) of benchmark results, for docs/benchmarks.md.

Reads the JSON the benchmarks write and draws one bar chart per metric, the bars being the
implementations measured in that run; every chart notes whether higher or lower is better.

Accepted inputs (detected from their shape; a file may also be the captured stdout of a
benchmark, i.e. the JSON followed by the text table):

  wt_bench.py --json       {"pywebtransport": [run, ...], "aioquic": [run, ...]}
  quic_bench.py --json     {"python": [run, ...], "c": [run, ...]}
  wt_bench.py --peers      {"libs": {...}, "medians": {lib: {metric: value}}, "metrics": [...]}
  generic peers form       {"scenarios": {name: {"libs": {lib: {metric: value}}}}}

Lists of runs are reduced to their median, as the benchmarks' own tables do. What is missing
(a library that failed, a scenario not run) is left out of the chart rather than drawn as 0.

Usage:
  python bench/wt_bench.py --quick --json > /tmp/wt.json
  python bench/charts.py /tmp/wt.json --out docs/img [--prefix wt] [--markdown]

Needs matplotlib (``pip install -e ".[docs]"``); the parsing part (``load``) does not.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Metric:
    """One measured quantity and its value per implementation."""

    key: str
    label: str
    unit: str
    better: str  # "higher" or "lower"
    values: dict[str, float] = field(default_factory=dict)  # implementation label -> value
    group: str = ""  # chart file the metric goes to ("" = the dataset's main chart)


@dataclass
class Dataset:
    """Everything one JSON file holds, normalised."""

    kind: str  # "wt", "quic", "peers"
    title: str
    metrics: list[Metric]


# key -> (label, unit, better) for the two in-process benchmarks
WT_METRICS = {
    "upload_mib_s": ("bulk upload, 1 WT bidi stream", "MiB/s", "higher"),
    "echo_p50_us": ("echo 64 B, 1 stream, p50", "µs", "lower"),
    "echo_p99_us": ("echo 64 B, 1 stream, p99", "µs", "lower"),
    "dgram_rt_per_s": ("datagram ping-pong", "round trips/s", "higher"),
    "setups_per_s": ("session setups (sequential)", "setups/s", "higher"),
    "setup_open_us": ("setup: QUIC + CONNECT + 200", "µs", "lower"),
    "setup_close_us": ("setup: close until closed", "µs", "lower"),
    "echo_cpu_us": ("loop CPU per echo round", "µs", "lower"),
    "dgram_cpu_us": ("loop CPU per datagram round trip", "µs", "lower"),
}
# quic_bench.py: (label, unit, better, python key, [(C label, C key), ...])
QUIC_METRICS = [
    ("upload, 1 stream", "MiB/s", "higher", "upload_mib_s", [("C", "upload_mib_s")]),
    ("download, 1 stream", "MiB/s", "higher", "download_mib_s", [("C", "download_mib_s")]),
    ("echo 64 B, p50", "µs", "lower", "echo_p50_us",
     [("C callback", "echo_cb_p50_us"), ("C app thread", "echo_thread_p50_us"), ("C one loop", "echo_loop_p50_us")]),
    ("echo 64 B, p99", "µs", "lower", "echo_p99_us",
     [("C callback", "echo_cb_p99_us"), ("C app thread", "echo_thread_p99_us"), ("C one loop", "echo_loop_p99_us")]),
    ("datagram ping-pong", "round trips/s", "higher", "dgram_rt_per_s", [("C", "dgram_rt_per_s")]),
    ("handshakes (sequential)", "handshakes/s", "higher", "handshakes_per_s",
     [("C", "handshakes_per_s"), ("C new config", "handshakes_newcfg_per_s")]),
]
PEER_LABELS = {"py": "PyWebTransport", "go": "webtransport-go", "rust": "wtransport"}


def _read_json(path: Path) -> Any:
    """The first JSON object in ``path`` (tolerates text before or after it)."""
    text = path.read_text()
    decoder = json.JSONDecoder()
    for match in re.finditer(r"^\{", text, re.MULTILINE):
        try:
            obj, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    raise ValueError(f"{path}: no JSON object found")


def _median(runs: Any, key: str) -> float | None:
    vals = [float(r[key]) for r in runs or () if isinstance(r, dict) and isinstance(r.get(key), (int, float))]
    return statistics.median(vals) if vals else None


def _from_runs(kind: str, title: str, impls: dict[str, Any], table: dict[str, tuple[str, str, str]]) -> Dataset:
    metrics = []
    keys = list(table)
    # metrics a newer benchmark writes that the table above does not know yet: keep them too
    for runs in impls.values():
        for run in runs or ():
            if isinstance(run, dict):
                keys += [k for k, v in run.items() if k not in keys and isinstance(v, (int, float)) and _known_unit(k)]
    for key in keys:
        label, unit, better = table.get(key) or _guess(key)
        m = Metric(key, label, unit, better)
        for impl, runs in impls.items():
            v = _median(runs, key)
            if v is not None:
                m.values[impl] = v
        if m.values:
            metrics.append(m)
    return Dataset(kind, title, metrics)


def _known_unit(key: str) -> bool:
    return key.endswith(("_us", "_ms", "_mib_s", "_mb_s", "_per_s", "_k_s"))


def _guess(key: str) -> tuple[str, str, str]:
    """Label, unit and direction for a metric key the tables do not list."""
    for suffix, unit, better in (
        ("_mib_s", "MiB/s", "higher"), ("_mb_s", "MB/s", "higher"), ("_k_s", "k/s", "higher"),
        ("_per_s", "/s", "higher"), ("_us", "µs", "lower"), ("_ms", "ms", "lower"), ("_s", "s", "lower"),
        ("_pct", "%", "lower"), ("_kb", "KB", "lower"),
    ):
        if key.endswith(suffix):
            return key[: -len(suffix)].replace("_", " "), unit, better
    return key.replace("_", " "), "", "higher"


def _scenario_of(key: str, scenarios: list[str]) -> str:
    for sc in sorted(scenarios, key=len, reverse=True):  # "stream_echo" before "echo"
        if key == sc or key.startswith(sc + "_"):
            return sc
    return key.split("_")[0]


def _from_quic(data: dict[str, Any]) -> Dataset:
    metrics = []
    for label, unit, better, py_key, c_keys in QUIC_METRICS:
        m = Metric(py_key, label, unit, better)
        v = _median(data.get("python"), py_key)
        if v is not None:
            m.values["Python"] = v
        for c_label, c_key in c_keys:
            v = _median(data.get("c"), c_key)
            if v is not None:
                m.values[c_label] = v
        if m.values:
            metrics.append(m)
    return Dataset("quic", "QUIC layer: Python adapter vs. msquic driven from C", metrics)


def _from_peers(data: dict[str, Any]) -> Dataset:
    libs = data.get("libs") or {}
    label_of = {k: (v.get("label") if isinstance(v, dict) else None) or PEER_LABELS.get(k, k) for k, v in libs.items()}
    order = data.get("lib_order") or list(data.get("medians") or {})
    specs = {m["key"]: m for m in data.get("metrics") or [] if isinstance(m, dict) and "key" in m}
    scenarios = list((data.get("meta") or {}).get("scenarios") or [])
    medians: dict[str, dict[str, float]] = data.get("medians") or {}
    keys = list(specs) + sorted({k for lib in medians.values() for k in lib} - set(specs))
    metrics = []
    for key in keys:
        spec = specs.get(key)
        label, unit, better = (spec["label"], spec.get("unit", ""), spec.get("better", "higher")) if spec else _guess(key)
        m = Metric(key, label, unit, better, group=_scenario_of(key, scenarios))
        for lib in order:
            v = (medians.get(lib) or {}).get(key)
            if isinstance(v, (int, float)):
                m.values[label_of.get(lib, PEER_LABELS.get(lib, lib))] = float(v)
        if m.values:
            metrics.append(m)
    return Dataset("peers", "PyWebTransport vs. webtransport-go vs. wtransport", metrics)


def _from_scenarios(data: dict[str, Any]) -> Dataset:
    metrics = []
    for scenario, body in (data.get("scenarios") or {}).items():
        libs = (body or {}).get("libs") or {} if isinstance(body, dict) else {}
        keys: list[str] = []
        for values in libs.values():
            if isinstance(values, dict):
                keys += [k for k, v in values.items() if k not in keys and isinstance(v, (int, float))]
        for key in keys:
            label, unit, better = _guess(key)
            m = Metric(key, f"{scenario}: {label}", unit, better, group=scenario)
            for lib, values in libs.items():
                v = values.get(key) if isinstance(values, dict) else None
                if isinstance(v, (int, float)):
                    m.values[PEER_LABELS.get(lib, lib)] = float(v)
            if m.values:
                metrics.append(m)
    return Dataset("peers", "PyWebTransport vs. webtransport-go vs. wtransport", metrics)


def load(path: Path) -> Dataset:
    """Read one benchmark JSON file (any of the accepted shapes) into a Dataset."""
    data = _read_json(path)
    if "medians" in data:
        return _from_peers(data)
    if isinstance(data.get("scenarios"), dict):
        return _from_scenarios(data)
    if "pywebtransport" in data or "aioquic" in data:
        impls = {k: data.get(k) for k in ("pywebtransport", "aioquic") if data.get(k)}
        return _from_runs("wt", "PyWebTransport vs. aioquic (WebTransport, one process)", impls, WT_METRICS)
    if "python" in data or "c" in data:
        return _from_quic(data)
    raise ValueError(f"{path}: unrecognised benchmark JSON (keys: {', '.join(sorted(data)) or 'none'})")


def _fmt(v: float) -> str:
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}" if v >= 0.01 or v == 0 else f"{v:.2g}"


def markdown_table(ds: Dataset, group: str | None = None) -> str:
    """The metrics of ``ds`` (of one chart group, if given) as a Markdown table.

    With two or three implementations, a ratio column compares the first with each other one.
    """
    metrics = [m for m in ds.metrics if group is None or m.group == group]
    impls: list[str] = []
    for m in metrics:
        impls += [i for i in m.values if i not in impls]
    others = impls[1:] if 2 <= len(impls) <= 3 else []
    head = ["metric", *impls, *(f"{impls[0]} / {o}" for o in others), "better"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in metrics:
        cells = [f"{m.label} ({m.unit})" if m.unit else m.label]
        cells += [_fmt(m.values[i]) if i in m.values else "–" for i in impls]
        for o in others:
            a, b = m.values.get(impls[0]), m.values.get(o)
            cells.append(f"{a / b:.2f}x" if a is not None and b else "–")
        cells.append(m.better)
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


COLORS = ["#3b6ea8", "#d08a2e", "#5a9e5a", "#a0506e", "#6c6c6c", "#7a5ea8", "#3a9e9e"]


def draw(ds: Dataset, metrics: list[Metric], title: str, out: Path, note: str = "") -> Path:
    """Draw ``metrics`` as a grid of small bar charts (one per metric) into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    impls: list[str] = []
    for m in metrics:
        impls += [i for i in m.values if i not in impls]
    color = {impl: COLORS[i % len(COLORS)] for i, impl in enumerate(impls)}
    cols = min(3, len(metrics))
    rows = (len(metrics) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows + 0.6), squeeze=False)
    for ax, m in zip(axes.flat, metrics):
        names = [i for i in impls if i in m.values]
        vals = [m.values[i] for i in names]
        bars = ax.bar(range(len(names)), vals, color=[color[n] for n in names], width=0.6)
        wrapped = [textwrap.fill(n, 12 if len(names) > 2 else 24) for n in names]
        ax.set_xticks(range(len(names)), wrapped, fontsize=8 if len(names) <= 3 else 7)
        ax.set_title(f"{m.label}\n({m.unit}, {m.better} is better)" if m.unit else f"{m.label}\n({m.better} is better)",
                     fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
        ax.spines[["top", "right"]].set_visible(False)
        top = max(vals) if vals else 0
        ax.set_ylim(0, top * 1.18 if top > 0 else 1)
        for bar, v in zip(bars, vals):
            ax.annotate(_fmt(v), (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom",
                        fontsize=8, xytext=(0, 2), textcoords="offset points")
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=11)
    if note:
        fig.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.03 if note else 0, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return out


def render(ds: Dataset, outdir: Path, prefix: str, note: str = "") -> list[Path]:
    """Write the charts of one dataset; returns the PNG paths."""
    written = []
    groups: list[str] = []
    for m in ds.metrics:
        if m.group not in groups:
            groups.append(m.group)
    for group in groups:
        metrics = [m for m in ds.metrics if m.group == group]
        name = f"{prefix}.png" if not group else f"{prefix}-{group}.png"
        title = ds.title if not group else f"{ds.title}: {group}"
        written.append(draw(ds, metrics, title, outdir / name, note))
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: ``charts.py JSON... [--out DIR] [--prefix NAME] [--markdown]``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", nargs="+", type=Path, help="benchmark JSON files (or captured stdout)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "img")
    ap.add_argument("--prefix", default=None, help="file name prefix (default: bench-<kind>)")
    ap.add_argument("--note", default="", help="footnote printed under every chart")
    ap.add_argument("--markdown", action="store_true", help="also print the tables as Markdown")
    args = ap.parse_args(argv)
    for i, path in enumerate(args.json):
        ds = load(path)
        if not ds.metrics:
            print(f"{path}: no metrics found, nothing drawn", file=sys.stderr)
            continue
        prefix = args.prefix or f"bench-{ds.kind}"
        if args.prefix and len(args.json) > 1:
            prefix = f"{args.prefix}-{i + 1}"
        for png in render(ds, args.out, prefix, args.note):
            print(f"wrote {png}", file=sys.stderr)
        if args.markdown:
            groups = list(dict.fromkeys(m.group for m in ds.metrics))
            for group in groups:
                if group:
                    print(f"\n{group}:\n")
                print(markdown_table(ds, group))
    return 0


if __name__ == "__main__":
    sys.exit(main())
