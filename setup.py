"""Build glue: compile the cffi extension, bundle libmsquic and its license texts next to it."""

from __future__ import annotations

import filecmp
import os
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
NOTICES = Path("pywebtransport") / "_native" / "licenses"
sys.path.insert(0, str(ROOT / "vendor"))


class BuildExtWithMsQuic(build_ext):
    """Also place the compiled libmsquic and its notices inside the package (dlopen'ed by path)."""

    def run(self) -> None:
        super().run()
        if os.environ.get("PYWEBTRANSPORT_MSQUIC_LIB"):
            return
        import build_msquic

        lib = build_msquic.ensure_msquic().lib
        targets = [ROOT / "pywebtransport" / "_native"] if self.inplace else []
        targets.append(Path(self.build_lib) / "pywebtransport" / "_native")
        for target in targets:
            target.mkdir(parents=True, exist_ok=True)
            dest = target / lib.name
            # By content, not age: a library left by an earlier build (another patch set, a
            # newer file) must not survive a rebuild of the package.
            if not dest.exists() or not filecmp.cmp(lib, dest, shallow=False):
                dest.unlink(missing_ok=True)  # may be a hard link to another cached build
                shutil.copy2(lib, dest)
            build_msquic.write_notices(target / "licenses")


class SdistWithNotices(sdist):
    """The sdist builds libmsquic, so it carries the same license texts as the wheel."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        import build_msquic

        build_msquic.write_notices(Path(base_dir) / NOTICES)


setup(
    cffi_modules=["build_ffi.py:ffibuilder"],
    cmdclass={"build_ext": BuildExtWithMsQuic, "sdist": SdistWithNotices},
    # The extension uses only the stable ABI (cffi builds it with Py_LIMITED_API),
    # so one wheel serves CPython 3.11 and every later version.
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
