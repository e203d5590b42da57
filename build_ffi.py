"""cffi build script (out-of-line API mode) for ``pywebtransport._native._msquic``.

The extension is compiled from the C shim in ``pywebtransport/_native/``; its
declarations come from ``pwt_api.h`` (shared verbatim with the C compiler).
msquic itself is built from the pinned crate by ``vendor/build_msquic.py`` (or
taken from ``PYWEBTRANSPORT_MSQUIC_LIB``) and loaded at runtime with dlopen.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent
NATIVE = ROOT / "pywebtransport" / "_native"
sys.path.insert(0, str(ROOT / "vendor"))

import build_msquic  # noqa: E402


def package_version() -> str:
    text = (ROOT / "pywebtransport" / "_version.py").read_text()
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    if match is None:
        raise RuntimeError("pywebtransport/_version.py has no __version__")
    return match.group(1)


def msquic_include_and_lib() -> tuple[Path, Path | None]:
    """Headers to compile against and, unless a prebuilt lib is used, the lib to bundle."""
    prebuilt = os.environ.get("PYWEBTRANSPORT_MSQUIC_LIB")
    if prebuilt:
        if not Path(prebuilt).is_file():
            raise build_msquic.BuildError(f"PYWEBTRANSPORT_MSQUIC_LIB={prebuilt} does not exist")
        inc = os.environ.get("PYWEBTRANSPORT_MSQUIC_INCLUDE")
        return (Path(inc) if inc else build_msquic.headers_only()), None
    build = build_msquic.ensure_msquic()
    return build.include_dir, build.lib


INCLUDE_DIR, BUNDLED_LIB = msquic_include_and_lib()

def platform_build_args() -> dict[str, list[str]]:
    """Compiler flags and system libraries of the shim per OS."""
    if sys.platform == "win32":
        # MSVC: C11 atomics are experimental there; the wake-up is a socket pair (Winsock).
        return {"extra_compile_args": ["/O2", "/std:c11", "/experimental:c11atomics"], "libraries": ["ws2_32"]}
    libraries = ["dl", "pthread"] if sys.platform.startswith("linux") else []
    return {"extra_compile_args": ["-O2", "-std=gnu11", "-Wall", "-Wno-unused-function"], "libraries": libraries}


ffibuilder = FFI()
ffibuilder.cdef((NATIVE / "pwt_api.h").read_text())
ffibuilder.set_source(
    "pywebtransport._native._msquic",
    '#include <stdint.h>\n#include "pwt_api.h"\n',
    sources=[str((NATIVE / "pwt_shim.c").relative_to(ROOT))],
    include_dirs=[str(NATIVE), str(INCLUDE_DIR)],
    define_macros=[("PWT_PACKAGE_VERSION", f'"{package_version()}"')],
    **platform_build_args(),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
