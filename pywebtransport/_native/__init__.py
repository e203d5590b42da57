"""Loader for the cffi extension and the msquic library it drives.

The extension (``_msquic``) is the C shim; msquic itself is loaded by path
(``dlopen``; ``LoadLibraryExW`` on Windows) at first use, from (in order):

1. ``PYWEBTRANSPORT_MSQUIC_LIB``, on every platform (a system or prebuilt
   ``libmsquic.so.2``, ``libmsquic.2.dylib`` or ``msquic.dll``);
2. the library bundled next to the extension by the build;
3. the platform's library search (``ctypes.util.find_library("msquic")``).
"""

from __future__ import annotations

import ctypes.util
import os
import sys
import threading
from pathlib import Path

from .._version import __version__

try:
    from ._msquic import ffi, lib
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "pywebtransport's native extension is not built; install the package with "
        "'pip install .' (or 'pip install -e .') so build_ffi.py compiles it"
    ) from exc

__all__ = ["ffi", "lib", "ensure_initialized", "library_path", "NativeError", "status_name"]

_BUNDLED_NAMES = ("libmsquic.so.2", "libmsquic.2.dylib", "msquic.dll")
_lock = threading.Lock()
_initialized = False

# Execution profiles (QUIC_EXECUTION_PROFILE).
PROFILE_LOW_LATENCY = 0
PROFILE_MAX_THROUGHPUT = 1


class NativeError(RuntimeError):
    """A native (msquic) call failed; carries the QUIC_STATUS."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def status_name(status: int) -> str:
    name: bytes = ffi.string(lib.pwt_status_name(status))
    return name.decode()


def _check_stamp() -> None:
    stamp = ffi.string(lib.pwt_package_version()).decode()
    if stamp != __version__:
        raise ImportError(
            f"pywebtransport native extension was built for version {stamp}, but the Python "
            f"package is {__version__}; rebuild with 'pip install -e .'"
        )


_check_stamp()


def _platform_library_name(platform: str | None = None) -> str:
    """msquic's file name on ``platform`` (default: this one)."""
    platform = sys.platform if platform is None else platform
    if platform == "win32":
        return "msquic.dll"
    if platform == "darwin":
        return "libmsquic.2.dylib"
    return "libmsquic.so.2"


def library_path() -> str:
    """Return the msquic library that will be (or was) loaded."""
    env = os.environ.get("PYWEBTRANSPORT_MSQUIC_LIB")
    if env:
        return env
    here = Path(__file__).resolve().parent
    for name in _BUNDLED_NAMES:
        candidate = here / name
        if candidate.exists():
            return str(candidate)
    found = ctypes.util.find_library("msquic")
    if found:
        return found
    raise NativeError(
        "no msquic library found: reinstall pywebtransport (the build bundles libmsquic), "
        f"or set PYWEBTRANSPORT_MSQUIC_LIB to the path of {_platform_library_name()}"
    )


# msquic workers keep polling this long after their last work before they
# sleep. Measured with bench/quic_bench.py on 2 cores: 64-byte echo p50
# 260 µs -> 122 µs at 200 µs, for a little CPU while traffic flows.
DEFAULT_POLLING_IDLE_US = 200

DEFAULT_WORKERS = 0

# The event loop waits this long for the next record before its selector
# sleeps (see pwt_queue_spin); the reply to a small message usually arrives
# within it, and a sleeping thread's wake-up is what it saves.
DEFAULT_LOOP_SPIN_US = 500


def _int_setting(name: str, default: int, low: int, high: int) -> int:
    """An integer environment setting within [low, high]; ``default`` when unset or empty."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise NativeError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return number


def polling_idle_us() -> int:
    """Worker polling window in µs (``PYWEBTRANSPORT_MSQUIC_POLL_US``; -1 = msquic's default)."""
    return _int_setting("PYWEBTRANSPORT_MSQUIC_POLL_US", DEFAULT_POLLING_IDLE_US, -1, 10_000_000)


def loop_spin_us() -> int:
    """How long the loop waits for records before sleeping, µs (``PYWEBTRANSPORT_LOOP_SPIN_US``; 0 = never)."""
    return _int_setting("PYWEBTRANSPORT_LOOP_SPIN_US", DEFAULT_LOOP_SPIN_US, 0, 100_000)


def worker_count() -> int:
    """msquic worker threads (``PYWEBTRANSPORT_MSQUIC_WORKERS``; 0 = one per CPU, msquic's default)."""
    return _int_setting("PYWEBTRANSPORT_MSQUIC_WORKERS", DEFAULT_WORKERS, 0, 256)


def ensure_initialized() -> None:
    """Load msquic and open the process-wide registration (idempotent)."""
    global _initialized
    if _initialized:
        return
    with _lock:
        if _initialized:
            return
        profile = PROFILE_LOW_LATENCY
        if os.environ.get("PYWEBTRANSPORT_MSQUIC_PROFILE", "").lower() == "throughput":
            profile = PROFILE_MAX_THROUGHPUT
        poll_us = polling_idle_us()
        err = ffi.new("char[512]")
        workers = min(worker_count(), os.cpu_count() or 1)  # msquic wants CPUs 0..n-1 to exist
        status = lib.pwt_init(library_path().encode(), profile, poll_us, workers, err, 512)
        if status != 0:
            raise NativeError(ffi.string(err).decode() or status_name(status), status)
        _initialized = True

