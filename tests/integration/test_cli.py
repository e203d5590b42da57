"""The ``pywebtransport`` command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec


@pytest.mark.timeout(60)
def test_demo_runs_an_echo_round_trip() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pywebtransport.cli", "demo"], capture_output=True, text=True, timeout=50
    )
    assert out.returncode == 0, out.stderr
    assert "stream echo:   b'ECHO: Hello, Stream!'" in out.stdout
    assert "datagram echo: b'ECHO: Hello, Datagram!'" in out.stdout


def test_cert_prints_the_hash_of_a_browser_cert(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pywebtransport.cli", "cert", "--output-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    cert = x509.load_pem_x509_certificate((tmp_path / "localhost.crt").read_bytes())
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 14
    from cryptography.hazmat.primitives.serialization import Encoding

    digest = hashes.Hash(hashes.SHA256())
    digest.update(cert.public_bytes(Encoding.DER))
    assert f"sha256:      {digest.finalize().hex()}" in out.stdout
