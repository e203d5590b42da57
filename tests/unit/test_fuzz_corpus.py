"""Replay the committed fuzz corpus (fuzz/corpus/h3) through the H3 fuzz target.

The target (fuzz/h3_target.py) needs only the standard library, so CI runs
every seed and every input the coverage-guided runs kept or crashed on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

FUZZ_DIR = Path(__file__).resolve().parents[2] / "fuzz"
CORPUS = sorted((FUZZ_DIR / "corpus" / "h3").iterdir())

sys.path.insert(0, str(FUZZ_DIR))

from h3_target import run_one  # noqa: E402


def test_corpus_is_present() -> None:
    assert len(CORPUS) >= 13
    assert any(path.name.startswith("seed-") for path in CORPUS)


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_replay(path: Path) -> None:
    run_one(path.read_bytes())


def test_target_reports_broken_invariants(monkeypatch: pytest.MonkeyPatch) -> None:
    # The target is not a no-op: a core whose bound is broken is caught.
    from pywebtransport.h3 import H3Connection

    real = H3Connection.resource_usage

    def inflated(self: H3Connection) -> dict[str, int]:
        usage = real(self)
        usage["early_datagrams"] = self.config.max_buffered_datagrams + 1
        return usage

    monkeypatch.setattr(H3Connection, "resource_usage", inflated)
    with pytest.raises(AssertionError):
        run_one(CORPUS[0].read_bytes())
