#!/usr/bin/env python3
"""Render the peer benchmark's JSON (bench/peers_bench.py --json PATH) as a markdown table.

  python bench/render_table.py results.json            # table for the README
  python bench/render_table.py results.json --details  # plus per-library notes and load averages

The JSON carries its own metric definitions (key, label, unit, which direction is better), so this
script needs nothing else. peers_bench.py prints its table with the same function.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

LEVEL = 0.02  # ratios within 2 % of 1.0 are reported as "level"


def fmt_value(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit in ("errors", "sessions"):
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:,.0f} {unit}"
    if abs(v) >= 10:
        return f"{v:,.1f} {unit}"
    return f"{v:,.3g} {unit}"


def ratio_text(metric: dict[str, Any], ours: float | None, best: float | None) -> str:
    if ours is None or best is None:
        return "-"
    if metric.get("no_ratio"):
        return "-"
    if best == 0:
        return "level" if ours == 0 else "-"
    r = ours / best
    if abs(r - 1) <= LEVEL:
        verdict = "level"
    elif (r > 1) == (metric["better"] == "higher"):
        verdict = "ahead"
    else:
        verdict = "behind"
    return f"{r:.2f} ({verdict})"


def best_peer(metric: dict[str, Any], medians: dict[str, dict[str, float]], peers: list[str]) -> tuple[str, float] | None:
    vals = [(p, medians.get(p, {}).get(metric["key"])) for p in peers]
    present = [(p, v) for p, v in vals if v is not None]
    if not present:
        return None
    pick = max if metric["better"] == "higher" else min
    return pick(present, key=lambda pv: pv[1])


def render(data: dict[str, Any], details: bool = False) -> str:
    libs: list[str] = data["lib_order"]
    labels = {k: data["libs"][k]["label"] for k in libs}
    medians: dict[str, dict[str, float]] = data["medians"]
    ours = "py" if "py" in libs else None
    peers = [k for k in libs if k != "py"]
    head = ["scenario", *(labels[k] for k in libs)]
    if ours and peers:
        head.append("PyWebTransport / best peer")
    rows = [head, ["---"] * len(head)]
    for metric in data["metrics"]:
        if all(medians.get(k, {}).get(metric["key"]) is None for k in libs):
            continue
        row = [metric["label"]]
        row += [fmt_value(medians.get(k, {}).get(metric["key"]), metric["unit"]) for k in libs]
        if ours and peers:
            bp = best_peer(metric, medians, peers)
            row.append(ratio_text(metric, medians.get(ours, {}).get(metric["key"]), bp[1] if bp else None))
        rows.append(row)
    out = ["| " + " | ".join(r) + " |" for r in rows]
    meta = data.get("meta", {})
    out.append("")
    runs = {k: len(data["runs"].get(k, [])) for k in libs}
    out.append(
        f"Medians of {max(runs.values()) if runs else 0} run(s) per library, client and server as separate "
        f"processes over 127.0.0.1, each library's own client against its own server "
        f"({meta.get('nproc', '?')} CPUs)."
        + (
            " Ratio: PyWebTransport's median / the best peer's median (for latencies and wall times lower"
            " is better, for rates higher is better)."
            if ours and peers
            else ""
        )
    )
    loads = {k: [r.get("load_1m") for r in data["runs"].get(k, [])] for k in libs}
    out.append(
        "Load average (1 min) as each library started a repetition: "
        + "; ".join(f"{labels[k]} " + ", ".join(f"{x:.2f}" for x in loads[k] if x is not None) for k in libs)
    )
    out.append("Versions: " + "; ".join(f"{labels[k]} {data['libs'][k].get('version', '?')}" for k in libs) + ".")
    if meta.get("command"):
        out.append(f"Command: `{meta['command']}` ({meta.get('runtime_s', 0):.0f} s).")
    if details:
        for k in libs:
            notes = data.get("notes", {}).get(k)
            if notes:
                out.append(f"- {labels[k]}: " + "; ".join(notes))
        for e in data.get("errors", []):
            out.append(f"- session errors: {e}")
        for f in data.get("failures", []):
            out.append(f"- FAILURE: {f}")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json_path")
    ap.add_argument("--details", action="store_true", help="also list notes and failures")
    args = ap.parse_args()
    with open(args.json_path) as f:
        data = json.load(f)
    print(render(data, details=args.details))
    return 0


if __name__ == "__main__":
    sys.exit(main())
