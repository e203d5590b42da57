"""The shim's non-Linux code paths, checked from Linux.

* Windows: ``pwt_shim.c`` cross-compiles with mingw-w64 against the pinned
  crate's msquic headers and links into a DLL with no unresolved symbol
  (Winsock socket-pair wake-up, SRWLOCK, CreateThread, LoadLibraryExW).  The
  cross compiler is a Debian package (``gcc-mingw-w64-x86-64``) that
  ``.ci/run`` installs; there (``PWT_REQUIRE_MINGW=1``) its absence fails.
* macOS / BSD: the pipe wake-up of ``pwt_platform.h`` is compiled with
  ``__linux__`` undefined and run for real.

Nothing here runs on Windows or macOS themselves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "pywebtransport" / "_native"
MINGW = "x86_64-w64-mingw32-gcc"


def _msquic_headers() -> Path:
    sys.path.insert(0, str(ROOT / "vendor"))
    import build_msquic

    inc: Path = build_msquic.headers_only()
    assert (inc / "msquic_winuser.h").exists()
    return inc


def _require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("PWT_REQUIRE_MINGW") == "1":
            pytest.fail(f"{tool} is missing; .ci/run installs it: apt-get install {package}")
        pytest.skip(f"{tool} not installed (apt-get install {package})")
    return path


def test_shim_cross_compiles_and_links_for_windows(tmp_path: Path) -> None:
    gcc = _require(MINGW, "gcc-mingw-w64-x86-64")
    obj = tmp_path / "pwt_shim.o"
    # The flags build_ffi.py uses for GCC; MSVC-only pragmas in msquic's headers are ignored.
    subprocess.run(
        [gcc, "-c", "-O2", "-std=gnu11", "-Wall", "-Werror", "-Wno-unknown-pragmas",
         "-Wno-unused-function", "-DPWT_PACKAGE_VERSION=\"0\"",
         "-I", str(NATIVE), "-I", str(_msquic_headers()),
         str(NATIVE / "pwt_shim.c"), "-o", str(obj)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    dll = tmp_path / "pwt_shim.dll"
    subprocess.run(
        [gcc, "-shared", "-Wl,--no-undefined", str(obj), "-lws2_32", "-o", str(dll)],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    nm = shutil.which("x86_64-w64-mingw32-nm") or "nm"
    symbols = subprocess.run([nm, str(obj)], check=True, capture_output=True, text=True).stdout
    defined = {line.split()[-1] for line in symbols.splitlines() if " T " in line}
    undefined = {line.split()[-1] for line in symbols.splitlines() if " U " in line}
    assert {"pwt_init", "pwt_queue_new", "pwt_queue_fd", "pwt_queue_poll"} <= defined
    # The Windows primitives, not POSIX ones, were compiled in.
    for name in ("LoadLibraryExW", "MultiByteToWideChar", "GetProcAddress", "CreateThread", "socket", "accept", "send",
                 "recv", "closesocket", "WSAStartup", "SleepConditionVariableSRW"):  # fmt: skip
        assert f"__imp_{name}" in undefined, name
    for posix in ("dlopen", "pthread_create", "eventfd", "pipe", "write", "read"):
        assert posix not in undefined and f"__imp_{posix}" not in undefined, posix


PIPE_HARNESS = textwrap.dedent(
    """
    #include <poll.h>
    #include "pwt_platform.h"

    static int readable(pwt_fd_t fd) {
        struct pollfd p = {fd, POLLIN, 0};
        return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
    }

    int main(void) {
        pwt_fd_t r, w;
        if (pwt_wake_open(&r, &w) != 0 || r == w) return 1;  /* a pipe: two fds */
        if (readable(r)) return 2;
        pwt_wake_signal(w);
        pwt_wake_signal(w);
        if (!readable(r)) return 3;
        pwt_wake_drain(r);                 /* non-blocking: must not hang */
        if (readable(r)) return 4;
        pwt_wake_drain(r);                 /* empty: returns at once */
        if (!(fcntl(r, F_GETFD) & FD_CLOEXEC)) return 5;
        pwt_wake_signal(w);
        if (!readable(r)) return 6;
        pwt_wake_close(r, w);
        if (fcntl(r, F_GETFD) != -1 || fcntl(w, F_GETFD) != -1) return 7;
        return 0;
    }
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="undefines __linux__ to reach the pipe branch")
def test_pipe_wakeup_of_macos_and_bsd(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc is not None, "a C compiler is needed to build the extension at all"
    src = tmp_path / "pipe_harness.c"
    src.write_text(PIPE_HARNESS)
    exe = tmp_path / "pipe_harness"
    subprocess.run(
        [cc, "-U__linux__", "-std=gnu11", "-Wall", "-Werror", "-Wno-unused-function",
         "-I", str(NATIVE), str(src), "-o", str(exe)],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    result = subprocess.run([str(exe)], capture_output=True, timeout=30)
    assert result.returncode == 0, f"pipe wake-up check {result.returncode} failed"


def _load_in_subprocess(env_lib: str) -> subprocess.CompletedProcess[str]:
    code = (
        "from pywebtransport import _native\n"
        "print(_native.library_path())\n"
        "_native.ensure_initialized()\n"
        "print('loaded')\n"
    )
    env = dict(os.environ, PYWEBTRANSPORT_MSQUIC_LIB=env_lib)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


def test_bundled_msquic_is_the_recipes_build() -> None:
    """The library next to the package is byte for byte the one vendor/build_msquic.py builds
    for the current patch set (an older copy once survived a rebuild because it was newer)."""
    import filecmp

    from pywebtransport import _native

    chosen = os.environ.get("PYWEBTRANSPORT_MSQUIC_LIB")
    if chosen:  # the variable wins (tested below); nothing bundled is loaded to compare
        assert _native.library_path() == chosen
        return
    sys.path.insert(0, str(ROOT / "vendor"))
    import build_msquic

    built = build_msquic.cache_dir(build_msquic.pinned_version()) / "lib" / build_msquic.lib_filename()
    assert built.exists(), f"{built} missing: the package was installed from another recipe"
    assert filecmp.cmp(built, _native.library_path(), shallow=False), (
        f"{_native.library_path()} is not {built}: reinstall (pip install -e .)"
    )


def test_msquic_lib_variable_is_what_gets_loaded(tmp_path: Path) -> None:
    from pywebtransport import _native

    bundled = Path(_native.library_path())
    copy = tmp_path / "elsewhere" / bundled.name
    copy.parent.mkdir()
    shutil.copy2(bundled, copy)
    ok = _load_in_subprocess(str(copy))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == [str(copy), "loaded"]
    missing = tmp_path / "nowhere" / bundled.name
    bad = _load_in_subprocess(str(missing))
    assert bad.returncode != 0
    assert f"cannot load msquic from {missing}" in bad.stderr


@pytest.mark.parametrize(
    ("platform", "name"),
    [("win32", "msquic.dll"), ("darwin", "libmsquic.2.dylib"), ("linux", "libmsquic.so.2")],
)
def test_msquic_lib_variable_wins_on_every_platform(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, platform: str, name: str
) -> None:
    from pywebtransport import _native

    assert _native._platform_library_name(platform) == name
    monkeypatch.setattr(_native.sys, "platform", platform)
    monkeypatch.setenv("PYWEBTRANSPORT_MSQUIC_LIB", str(tmp_path / name))
    assert _native.library_path() == str(tmp_path / name)
    # Without it and with nothing bundled or installed, the error names this platform's file.
    monkeypatch.delenv("PYWEBTRANSPORT_MSQUIC_LIB")
    monkeypatch.setattr(_native, "_BUNDLED_NAMES", ())
    monkeypatch.setattr(_native.ctypes.util, "find_library", lambda _name: None)
    with pytest.raises(_native.NativeError, match=f"PYWEBTRANSPORT_MSQUIC_LIB to the path of {name}"):
        _native.library_path()
