"""Every public name of the 0.1.2 release exists, under the same module path, of the same kind.

The list is parsed from Appendix A of the shared API document (``../shared/docs/api-surface.md``
beside the clone); a committed copy of that appendix is used when the document is missing.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "docs" / "api-surface.md"
FALLBACK = Path(__file__).with_name("api_names_0_1_2.md")

_MODULE_LINE = re.compile(r"^- \*\*`(?P<module>[\w.]+)`\*\* \((?P<count>\d+)\): (?P<names>.+)$")
_ENTRY = re.compile(r"(?P<name>\w+) \((?P<kind>[CFVM])\)")


def _appendix() -> str:
    text = SHARED.read_text() if SHARED.exists() else FALLBACK.read_text()
    start = text.index("## Appendix A")
    end = text.find("## Appendix B", start)
    return text[start : end if end >= 0 else None]


def _entries() -> list[tuple[str, str, str]]:
    entries = []
    for line in _appendix().splitlines():
        match = _MODULE_LINE.match(line.strip())
        if match is None:
            continue
        found = _ENTRY.findall(match["names"])
        assert len(found) == int(match["count"]), f"{match['module']}: parsed {len(found)} of {match['count']}"
        entries += [(match["module"], name, kind) for name, kind in found]
    return entries


ENTRIES = _entries()


def test_the_list_was_found() -> None:
    assert len(ENTRIES) >= 221
    assert {m for m, _, _ in ENTRIES} >= {"pywebtransport", "pywebtransport.protocol", "pywebtransport.types"}


@pytest.mark.parametrize(("module", "name", "kind"), ENTRIES, ids=[f"{m}.{n}" for m, n, _ in ENTRIES])
def test_documented_name(module: str, name: str, kind: str) -> None:
    mod = importlib.import_module(module)
    assert hasattr(mod, name), f"{module}.{name} is missing"
    value = getattr(mod, name)
    if kind == "C":
        assert inspect.isclass(value), f"{module}.{name} should be a class, is {value!r}"
    elif kind == "F":
        assert inspect.isfunction(value) or inspect.isbuiltin(value), f"{module}.{name} should be a function"
    elif kind == "V":
        assert not inspect.isfunction(value) and not inspect.ismodule(value), f"{module}.{name} should be a value"
    if hasattr(mod, "__all__") and module not in ("pywebtransport.utils", "pywebtransport.types", "pywebtransport.constants"):
        assert name in mod.__all__, f"{name} missing from {module}.__all__"


def test_no_lazy_module_getattr() -> None:
    """0.1.x names are plain imports: no module-level __getattr__ hides them."""
    for module in sorted({m for m, _, _ in ENTRIES}):
        assert not hasattr(importlib.import_module(module), "__getattr__"), module
