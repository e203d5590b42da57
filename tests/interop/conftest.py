"""Interop result recording: every interop test reports what it proved, per matrix cell.

A test declares its cells with ``@pytest.mark.interop(peer, direction, *features)`` and uses the
``interop`` fixture to report the peer version it actually ran against (``interop.version(...)``)
and, optionally, each feature as soon as its assertions passed (``interop.ok("bidi")``).  When the
test passes every declared feature passes; when it fails, the features already reported pass and
the rest fail; a skipped test records ``skip``.

At the end of the session the results go to ``.interop-results.json`` (or
``$PYWEBTRANSPORT_INTEROP_RESULTS``) with ``complete: true`` only if every interop test module was
collected and every interop test ran.  ``tools/render_interop.py`` renders the README table from
that file, and ``test_zz_matrix.py`` (always moved to the end of the run) fails when the committed
README table differs from what this run measured.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from interop_matrix import HERE, MATRIX_TEST_FILE, RECORDER, InteropHandle, InteropRecorder


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "interop(peer, direction, *features): the interop matrix cells a test proves"
    )


@pytest.fixture
def interop(request: pytest.FixtureRequest) -> InteropHandle:
    decl = RECORDER.declaration(request.node)
    if decl is None:
        raise AssertionError("the interop fixture needs @pytest.mark.interop(peer, direction, *features)")
    return InteropHandle(decl)


@pytest.fixture
def interop_recorder() -> InteropRecorder:
    return RECORDER


def pytest_deselected(items: list[pytest.Item]) -> None:
    if any(item.get_closest_marker("interop") for item in items):
        RECORDER.deselected_interop = True


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent == HERE:
            RECORDER.collected_modules.add(item.path.name)
        if item.get_closest_marker("interop"):
            RECORDER.expected_items.add(item.nodeid)
    # The README check must see every other test's results: run it last.
    last = [item for item in items if item.path.name == MATRIX_TEST_FILE and item.path.parent == HERE]
    if last:
        items[:] = [item for item in items if item not in last] + last


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if item.get_closest_marker("interop") is None:
        return
    if report.when == "setup" and not report.passed:
        RECORDER.finish_item(item, "skip" if report.skipped else "fail", str(report.longrepr)[-300:])
    elif report.when == "call":
        if report.passed:
            RECORDER.finish_item(item, "pass")
        else:
            RECORDER.finish_item(item, "skip" if report.skipped else "fail", str(report.longrepr)[-300:])


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not RECORDER.records:
        return
    env = os.environ.get("PYWEBTRANSPORT_INTEROP_RESULTS")
    path = Path(env) if env else HERE.parent.parent / ".interop-results.json"
    path.write_text(json.dumps(RECORDER.results(), indent=1, ensure_ascii=False) + "\n")
