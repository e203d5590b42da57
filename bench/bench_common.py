"""Helpers shared by the benchmarks: percentiles, medians, number formatting, profiling."""

from __future__ import annotations

import asyncio
import json
import statistics
from collections.abc import Callable, Coroutine
from typing import Any


def pct(sorted_ns: list[int], p: float) -> float:
    """The p-quantile (0..1) of sorted nanosecond samples, in microseconds."""
    i = int(p * (len(sorted_ns) - 1) + 0.5)
    return sorted_ns[i] / 1000.0


def median(results: list[dict], key: str) -> float | None:
    vals = [r[key] for r in results if key in r]
    return statistics.median(vals) if vals else None


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    return f"{v:,.1f} {unit}" if v < 1000 else f"{v:,.0f} {unit}"


def run_profiled(make_run: Callable[[Any], Coroutine[Any, Any, dict]], top: int) -> None:
    """Run one benchmark with cProfile passed in (enabled only while measuring); print stats."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    res = asyncio.run(make_run(prof))
    print(json.dumps(res))
    st = pstats.Stats(prof)
    st.sort_stats("tottime").print_stats(top)
    st.sort_stats("cumulative").print_stats(top)
