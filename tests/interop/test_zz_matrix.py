"""The README interop table is generated: it must equal what this run's interop tests measured.

Always the last test of a run (tests/interop/conftest.py moves it).  After a complete interop run
the whole table must match; after a partial run (a subset of interop tests selected) every cell
that was measured must match the committed value.  Regenerate with
``pytest tests/interop && python tools/render_interop.py --write``.
"""

from __future__ import annotations

import difflib
import importlib.util
import sys
from pathlib import Path

import pytest

from interop_matrix import InteropRecorder

ROOT = Path(__file__).resolve().parent.parent.parent


def _renderer():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("render_interop", ROOT / "tools" / "render_interop.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("render_interop", module)
    spec.loader.exec_module(module)
    return module


def test_renderer_round_trips() -> None:
    r = _renderer()
    records = [
        {"peer": "PeerA", "version": "1", "direction": "d1", "feature": "bidi", "result": "pass"},
        {"peer": "PeerA", "version": "1", "direction": "d1", "feature": "bidi", "result": "fail"},
        {"peer": "PeerA", "version": "1", "direction": "d1", "feature": "uni", "result": "pass"},
        {"peer": "Chromium", "version": "2", "direction": "d2", "feature": "close", "result": "skip"},
    ]
    cells = r.cells_from_results(records)
    row = r.Row("PeerA", "1", "d1")
    assert cells[row] == {"bidi": "fail", "uni": "pass"}  # a failure of a cell wins
    table = r.render(cells)
    assert table.splitlines()[2].startswith("| Chromium | 2 | d2 |")  # known peers first
    assert r.parse(table) == cells
    readme = f"x\n{r.BEGIN}\n{table}{r.END}\ny\n"
    assert r.readme_block(readme) == table
    # a partial run updates only what it measured
    partial = {"complete": False, "results": [dict(records[2], result="fail")]}
    merged = r.parse(r.expected_table(partial, readme))
    assert merged[row] == {"bidi": "fail", "uni": "fail"}
    assert merged[r.Row("Chromium", "2", "d2")] == {"close": "skip"}
    complete = {"complete": True, "results": records[2:3]}
    assert list(r.parse(r.expected_table(complete, readme))) == [row]


def test_readme_interop_table_matches_this_run(interop_recorder: InteropRecorder) -> None:
    r = _renderer()
    if not interop_recorder.records:
        pytest.skip("no interop test ran in this session: nothing measured to compare")
    readme = (ROOT / "README.md").read_text()
    committed = r.readme_block(readme)
    expected = r.expected_table(interop_recorder.results(), readme)
    if committed != expected:
        diff = "".join(difflib.unified_diff(committed.splitlines(True), expected.splitlines(True), "README.md", "this run"))
        failing = [rec for rec in interop_recorder.records if rec["result"] != "pass"]
        pytest.fail(
            "README.md's interop table differs from what the interop tests measured in this run "
            f"(complete run: {interop_recorder.complete}).\n{diff}\nnon-passing cells: {failing}\n"
            "If the change is real, regenerate with: python tools/render_interop.py --write",
            pytrace=False,
        )
