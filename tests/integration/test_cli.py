"""The ``pywebtransport`` command line."""

from __future__ import annotations

import json
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


@pytest.mark.timeout(60)
def test_serve_with_browser_page_and_connect(tmp_path: Path) -> None:
    import re
    import urllib.request

    server = subprocess.Popen(
        [sys.executable, "-m", "pywebtransport.cli", "serve", "--port", "0", "--browser-demo",
         "--http-port", "0", "--duration", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        second = server.stdout.readline()
        match = re.search(r"https://127\.0\.0\.1:(\d+)/ \(certificate sha256 ([0-9a-f]{64})\)", first)
        assert match, first
        port, digest = match.group(1), match.group(2)
        http = re.search(r"http://127\.0\.0\.1:(\d+)/", second)
        assert http, second
        page = urllib.request.urlopen(f"http://127.0.0.1:{http.group(1)}/", timeout=10).read().decode()
        assert "new WebTransport(" in page and "serverCertificateHashes" in page
        assert json.dumps(list(bytes.fromhex(digest))) in page
        for extra, reply in (([], "ECHO: over a stream"), (["--datagram"], "ECHO: over a datagram")):
            text = reply.removeprefix("ECHO: ")
            out = subprocess.run(
                [sys.executable, "-m", "pywebtransport.cli", "connect", f"https://127.0.0.1:{port}/",
                 "--insecure", *extra],
                input=text + "\n", capture_output=True, text=True, timeout=30,
            )
            assert out.returncode == 0, out.stderr
            assert out.stdout.strip() == reply
        # Pinning the printed hash needs no --insecure; a wrong pin is refused.
        for pin, ok in ((digest, True), ("00" * 32, False)):
            out = subprocess.run(
                [sys.executable, "-m", "pywebtransport.cli", "connect", f"https://127.0.0.1:{port}/",
                 "--cert-hash", pin],
                input="pinned\n", capture_output=True, text=True, timeout=30,
            )
            if ok:
                assert out.returncode == 0, out.stderr
                assert out.stdout.strip() == "ECHO: pinned"
            else:
                assert out.returncode == 1 and "server_certificate_hashes" in out.stderr, out.stderr
    finally:
        server.terminate()
        server.wait(10)
