"""Where interop peers (Go, Rust) are built: outside the clone, shared across runs."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$PYWEBTRANSPORT_PEER_CACHE``, else ``<msquic cache root>/peers``.

    The msquic cache root is ``$PYWEBTRANSPORT_CACHE_DIR`` or
    ``$XDG_CACHE_HOME/pywebtransport`` (default ``~/.cache/pywebtransport``).
    """
    explicit = os.environ.get("PYWEBTRANSPORT_PEER_CACHE")
    if explicit:
        return Path(explicit)
    root = os.environ.get("PYWEBTRANSPORT_CACHE_DIR")
    if root:
        return Path(root) / "peers"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pywebtransport" / "peers"
