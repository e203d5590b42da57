#!/usr/bin/env python3
"""Compile bench/baseline.c against the cached msquic build.

Uses vendor/build_msquic.py's ``ensure_msquic()`` for the library and header
paths (the same libmsquic.so.2 the Python layer bundles), links it with an
rpath to the cache's lib directory and writes ``bench/bin/baseline``
(gitignored).  Rebuilds only when baseline.c or the library is newer than the
binary, unless ``--force`` is given.

    python3 bench/build_baseline.py [--force]   # prints the binary's path
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SOURCE = HERE / "baseline.c"
BIN_DIR = HERE / "bin"
BINARY = BIN_DIR / "baseline"


def _load_build_msquic():
    path = ROOT / "vendor" / "build_msquic.py"
    spec = importlib.util.spec_from_file_location("_pwt_build_msquic", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def build(force: bool = False) -> Path:
    msquic = _load_build_msquic().ensure_msquic()
    lib_dir = msquic.lib.parent
    if (
        not force
        and BINARY.exists()
        and BINARY.stat().st_mtime >= max(SOURCE.stat().st_mtime, msquic.lib.stat().st_mtime)
    ):
        return BINARY
    cc = os.environ.get("CC") or shutil.which("cc") or "gcc"
    BIN_DIR.mkdir(exist_ok=True)
    tmp = BINARY.with_suffix(".tmp")
    cmd = [
        cc,
        "-O2",
        "-g",
        "-std=gnu11",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter",
        "-Wno-missing-field-initializers",
        f"-I{msquic.include_dir}",
        str(SOURCE),
        "-o",
        str(tmp),
        f"-L{lib_dir}",
        f"-l:{msquic.lib.name}",
        f"-Wl,-rpath,{lib_dir}",
        "-lpthread",
    ]
    print("[build_baseline] " + " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)
    os.replace(tmp, BINARY)
    return BINARY


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = ap.parse_args()
    print(build(force=args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())
