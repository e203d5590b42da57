"""Build glue: compile the cffi extension and bundle libmsquic next to it."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class BuildExtWithMsQuic(build_ext):
    """Also place the compiled libmsquic inside the package (dlopen'ed by path)."""

    def run(self) -> None:
        super().run()
        if os.environ.get("PYWEBTRANSPORT_MSQUIC_LIB"):
            return
        sys.path.insert(0, str(ROOT / "vendor"))
        import build_msquic

        lib = build_msquic.ensure_msquic().lib
        targets = [ROOT / "pywebtransport" / "_native"] if self.inplace else []
        targets.append(Path(self.build_lib) / "pywebtransport" / "_native")
        for target in targets:
            target.mkdir(parents=True, exist_ok=True)
            dest = target / lib.name
            if not dest.exists() or dest.stat().st_mtime < lib.stat().st_mtime:
                shutil.copy2(lib, dest)


setup(
    cffi_modules=["build_ffi.py:ffibuilder"],
    cmdclass={"build_ext": BuildExtWithMsQuic},
)
