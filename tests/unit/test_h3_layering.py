"""The sans-IO core imports only the standard library and itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

H3_DIR = Path(__file__).resolve().parents[2] / "pywebtransport" / "h3"
FORBIDDEN = ("asyncio", "pywebtransport._native", "pywebtransport.quic", "trio", "anyio", "socket", "threading")


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # Relative imports must stay inside the h3 package.
                assert node.level == 1, f"{path.name} reaches outside pywebtransport.h3"
                names.append("pywebtransport.h3." + (node.module or ""))
            else:
                names.append(node.module or "")
    return names


SOURCES = sorted(H3_DIR.glob("*.py"))


def test_sources_found() -> None:
    assert {p.name for p in SOURCES} >= {"connection.py", "qpack.py", "huffman.py", "frames.py", "capsules.py"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_forbidden_imports(path: Path) -> None:
    for name in imported_modules(path):
        for forbidden in FORBIDDEN:
            assert name != forbidden and not name.startswith(forbidden + "."), f"{path.name} imports {name}"
        if name.startswith("pywebtransport"):
            assert name.startswith("pywebtransport.h3"), f"{path.name} imports {name}"
