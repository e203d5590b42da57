"""Names a module re-exports from modules that import it (resolved on first use)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any


def resolve(module: str, package: str | None, table: Mapping[str, str], name: str) -> Any:
    """Module ``__getattr__`` body: import ``table[name]`` relative to ``package``."""
    source = table.get(name)
    if source is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    return getattr(importlib.import_module(source, package), name)
