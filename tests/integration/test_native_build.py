"""The bundled msquic library and the cffi extension are what the build promises."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import pywebtransport
from pywebtransport import _native

ROOT = Path(__file__).resolve().parents[2]


def _defined_dynamic_symbols(lib: str) -> set[str]:
    out = subprocess.run(
        ["nm", "-D", "--defined-only", lib], check=True, capture_output=True, text=True
    ).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] != "A":  # 'A' is the version node itself
            names.add(parts[2].split("@")[0])
    return names


def test_msquic_exports_only_its_api() -> None:
    assert shutil.which("nm") is not None, "this check needs binutils' nm: apt-get install binutils"
    assert _defined_dynamic_symbols(_native.library_path()) == {"MsQuicOpenVersion", "MsQuicClose"}


def test_extension_version_stamp_matches_package() -> None:
    stamp = _native.ffi.string(_native.lib.pwt_package_version()).decode()
    assert stamp == pywebtransport.__version__


def test_build_cache_is_outside_the_clone_and_reused() -> None:
    sys.path.insert(0, str(ROOT / "vendor"))
    import build_msquic

    build = build_msquic.ensure_msquic()  # cached: must not rebuild
    assert ROOT not in build.lib.parents
    assert build.version == "2.5.1-beta"
    assert build.lib.name == "libmsquic.so.2"
    assert f"msquic-{build.version}-" in build.lib.parent.parent.name


def test_missing_tool_message_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(ROOT / "vendor"))
    import build_msquic

    monkeypatch.setattr(build_msquic.shutil, "which", lambda name: None)
    with pytest.raises(build_msquic.BuildError) as info:
        build_msquic.check_tools(("cmake", "perl"))
    msg = str(info.value)
    assert "apt-get install cmake" in msg and "apt-get install perl" in msg
    assert "PYWEBTRANSPORT_MSQUIC_LIB" in msg


def test_library_path_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "libmsquic.so.2"
    monkeypatch.setenv("PYWEBTRANSPORT_MSQUIC_LIB", str(fake))
    assert _native.library_path() == str(fake)


@pytest.mark.parametrize(
    ("name", "read", "default", "good", "bad"),
    [
        ("PYWEBTRANSPORT_MSQUIC_POLL_US", _native.polling_idle_us, _native.DEFAULT_POLLING_IDLE_US, -1, "soon"),
        ("PYWEBTRANSPORT_MSQUIC_WORKERS", _native.worker_count, _native.DEFAULT_WORKERS, 1, "257"),
        ("PYWEBTRANSPORT_LOOP_SPIN_US", _native.loop_spin_us, _native.DEFAULT_LOOP_SPIN_US, 0, "-1"),
    ],
)
def test_environment_settings(
    monkeypatch: pytest.MonkeyPatch, name: str, read: Any, default: int, good: int, bad: str
) -> None:
    monkeypatch.delenv(name, raising=False)
    assert read() == default
    monkeypatch.setenv(name, " ")
    assert read() == default
    monkeypatch.setenv(name, str(good))
    assert read() == good
    monkeypatch.setenv(name, bad)
    with pytest.raises(_native.NativeError, match=f"{name} must be an integer"):
        read()


def test_setting_defaults() -> None:
    assert (_native.DEFAULT_POLLING_IDLE_US, _native.DEFAULT_WORKERS, _native.DEFAULT_LOOP_SPIN_US) == (200, 0, 500)


_THREADS = (
    "import os, pywebtransport._native as n; n.ensure_initialized(); "
    "print(len(os.listdir('/proc/self/task')))"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads through /proc")
def test_worker_count_limits_msquic_threads() -> None:
    """One worker per CPU by default; PYWEBTRANSPORT_MSQUIC_WORKERS=1 leaves one."""

    def threads(workers: str) -> int:
        env = dict(os.environ, PYWEBTRANSPORT_MSQUIC_WORKERS=workers)
        out = subprocess.run([sys.executable, "-c", _THREADS], env=env, capture_output=True,
                             text=True, timeout=60, check=True)
        return int(out.stdout.strip())

    cpus = os.sysconf("SC_NPROCESSORS_ONLN")
    default, one = threads(""), threads("1")
    assert default - one == cpus - 1
    assert threads(str(cpus + 3)) == default  # more workers than CPUs: one per CPU
