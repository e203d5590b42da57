"""A 60-second soak (bench/soak.py): churn with killed clients leaves fds, RSS and native objects flat."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


@pytest.mark.timeout(240)
def test_sixty_seconds_of_churn_leave_resources_flat(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, str(SOAK), "--seconds", "60", "--json", str(out)],
                          capture_output=True, text=True, timeout=220)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["checks"] == {name: True for name in result["checks"]}, json.dumps(
        {k: v for k, v in result.items() if k != "samples"}, indent=1)
    assert result["workers_killed"] >= 5 and result["server_sessions"] >= 50
    assert proc.returncode == 0
