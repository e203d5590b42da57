"""The C shim under AddressSanitizer and UndefinedBehaviorSanitizer (tools/sanitize.sh --ci).

Builds an instrumented copy of the extension and runs the QUIC, WebTransport and abusive-peer
integration tests against it; any sanitizer report or test failure fails this test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(sys.platform != "linux", reason="the sanitizer runtime libraries are set up for Linux/gcc")
@pytest.mark.timeout(900)
def test_integration_subset_is_clean_under_asan_and_ubsan() -> None:
    assert shutil.which("cc"), "a C compiler is needed to build the instrumented shim"
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "tools" / "sanitize.sh"), "--ci"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=850)
    tail = (proc.stdout[-5000:] + proc.stderr[-3000:])
    assert "ERROR: AddressSanitizer" not in proc.stdout + proc.stderr, tail
    assert "runtime error:" not in proc.stdout + proc.stderr, tail
    assert proc.returncode == 0, tail
    assert "no sanitizer reports" in proc.stdout and " passed" in proc.stdout, tail
