"""Interop matrix bookkeeping shared by tests/interop/conftest.py and the interop tests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
MATRIX_TEST_FILE = "test_zz_matrix.py"


@dataclass
class _Declared:
    peer: str
    direction: str
    features: tuple[str, ...]
    version: str | None = None
    passed: set[str] = field(default_factory=set)
    unsupported: set[str] = field(default_factory=set)


class InteropRecorder:
    """Collects (peer, version, direction, feature, result) records for one session."""

    def __init__(self) -> None:
        self.records: list[dict[str, str]] = []
        self.declared: dict[str, _Declared] = {}
        self.expected_items: set[str] = set()
        self.reported_items: set[str] = set()
        self.deselected_interop = False
        self.collected_modules: set[str] = set()

    # -- bookkeeping ---------------------------------------------------------------------
    def declaration(self, item: pytest.Item) -> _Declared | None:
        marker = item.get_closest_marker("interop")
        if marker is None:
            return None
        decl = self.declared.get(item.nodeid)
        if decl is None:
            peer, direction, *features = marker.args
            decl = self.declared[item.nodeid] = _Declared(peer, direction, tuple(features))
        return decl

    def finish_item(self, item: pytest.Item, result: str, reason: str = "") -> None:
        decl = self.declaration(item)
        if decl is None or item.nodeid in self.reported_items:
            return
        self.reported_items.add(item.nodeid)
        for feature in decl.features:
            outcome = result
            if result == "fail" and feature in decl.passed:
                outcome = "pass"
            elif result == "pass" and feature in decl.unsupported:
                outcome = "unsupported"
            self.records.append(
                {
                    "peer": decl.peer,
                    "version": decl.version or "unknown",
                    "direction": decl.direction,
                    "feature": feature,
                    "result": outcome,
                    "test": item.nodeid,
                    **({"reason": reason} if reason and outcome != "pass" else {}),
                }
            )

    @property
    def complete(self) -> bool:
        """True when every interop test module was collected and every interop test ran."""
        modules = {p.name for p in HERE.glob("test_*.py")} - {MATRIX_TEST_FILE}
        return (
            not self.deselected_interop
            and modules <= self.collected_modules
            and self.expected_items <= self.reported_items
        )

    def results(self) -> dict[str, Any]:
        return {
            "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "complete": self.complete,
            "results": self.records,
        }


RECORDER = InteropRecorder()


class InteropHandle:
    """What a test uses to report its peer version and the features it verified."""

    def __init__(self, decl: _Declared) -> None:
        self._decl = decl

    def version(self, version: str) -> None:
        self._decl.version = version

    def ok(self, *features: str) -> None:
        """These features passed their checks (they stay "pass" if the test fails later)."""
        for feature in self._check(features):
            self._decl.passed.add(feature)

    def unsupported(self, *features: str) -> None:
        """The test verified that the peer lacks these features (recorded if the test passes)."""
        for feature in self._check(features):
            self._decl.unsupported.add(feature)

    def _check(self, features: tuple[str, ...]) -> tuple[str, ...]:
        for feature in features:
            if feature not in self._decl.features:
                raise AssertionError(f"feature {feature!r} is not declared by this test's interop marker")
        return features
