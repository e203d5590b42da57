#!/usr/bin/env python3
"""Coverage-guided fuzzing of the sans-IO HTTP/3 + WebTransport core (atheris).

    pip install -e ".[fuzz]"
    fuzz/run.sh [SECONDS]          # or: python fuzz/fuzz_h3.py WORKDIR fuzz/corpus/h3 -max_total_time=600

Arguments are libFuzzer's.  A crash (an exception escaping ``run_one``) is
written as ``crash-<sha1>``; add it to ``fuzz/corpus/h3/`` once fixed so the
replay test (``tests/unit/test_fuzz_corpus.py``) keeps it fixed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports(include=["pywebtransport.h3", "h3_target"]):
    from h3_target import run_one


def test_one_input(data: bytes) -> None:
    run_one(data)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
