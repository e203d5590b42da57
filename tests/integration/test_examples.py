"""The programs in examples/ run as documented (real processes, loopback)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
pytestmark = pytest.mark.timeout(90)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _server(script: str, cwd: Path) -> Iterator[int]:
    port = _free_udp_port()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / script), "--port", str(port)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "server on https://" in proc.stdout.readline()
        time.sleep(0.5)  # the banner is printed just before binding
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _run(args: list[str], cwd: Path) -> str:
    for _ in range(10):  # the server may still be binding
        out = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=40)
        if out.returncode == 0:
            return out.stdout
        time.sleep(0.3)
    raise AssertionError(out.stderr)


def test_echo_example(tmp_path: Path) -> None:
    with _server("echo_server.py", tmp_path) as port:
        out = _run([str(EXAMPLES / "echo_client.py"), f"https://127.0.0.1:{port}/echo"], tmp_path)
    assert "stream:   b'ECHO: Hello, Stream!'" in out
    assert "datagram: b'ECHO: Hello, Datagram!'" in out


def test_chat_example_broadcasts_to_everyone(tmp_path: Path) -> None:
    with _server("chat_server.py", tmp_path) as port:
        url = f"https://127.0.0.1:{port}/chat"
        clients = [
            subprocess.Popen(
                [sys.executable, str(EXAMPLES / "chat_client.py"), url, name, f"hi from {name}",
                 "--expect", "2", "--wait", "1.5"],
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in ("alice", "bob")
        ]
        outputs = [c.communicate(timeout=40) for c in clients]
    for (stdout, stderr), client in zip(outputs, clients):
        assert client.returncode == 0, stderr
        assert sorted(stdout.split("\n")[:2]) == ["alice: hi from alice", "bob: hi from bob"]


def test_browser_demo_example_serves_its_page(tmp_path: Path) -> None:
    import re
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "browser_demo.py"), "--port", "0", "--http-port", "0",
         "--duration", "20"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        http = re.search(r"http://127\.0\.0\.1:(\d+)/", proc.stdout.readline())
        assert http
        page = urllib.request.urlopen(f"http://127.0.0.1:{http.group(1)}/", timeout=10).read().decode()
        assert "serverCertificateHashes" in page
    finally:
        proc.terminate()
        proc.wait(10)
