"""examples/cluster_chat.py (two servers + Redis) and examples/rpc_service.py run as documented."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from redis_server import RedisServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
pytestmark = pytest.mark.timeout(120)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _server(args: list[str], cwd: Path) -> Iterator[int]:
    port = _free_udp_port()
    proc = subprocess.Popen(
        [sys.executable, *args, "--port", str(port)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert proc.stdout is not None
        assert "server on https://" in proc.stdout.readline()
        time.sleep(0.5)  # the banner is printed just before binding
        yield port
    finally:
        proc.terminate()
        proc.wait(15)


def test_rpc_service_example(tmp_path: Path) -> None:
    with _server([str(EXAMPLES / "rpc_service.py"), "server"], tmp_path) as port:
        for _ in range(10):  # the server may still be binding
            out = subprocess.run(
                [sys.executable, str(EXAMPLES / "rpc_service.py"), "client", f"https://127.0.0.1:{port}/rpc"],
                cwd=tmp_path, capture_output=True, text=True, timeout=60,
            )
            if out.returncode == 0:
                break
            time.sleep(0.3)
    assert out.returncode == 0, out.stderr
    assert "100 concurrent calls: sum of results = 9900" in out.stdout
    assert "greet() = 'hello, rpc example client'" in out.stdout
    assert "stats() = {'calls_served': 100" in out.stdout
    assert "divide(1, 0) -> RpcError -32010: division by zero {'dividend': 1}" in out.stdout
    assert "add(1) -> InvalidParamsError -32602" in out.stdout
    assert "nope() -> MethodNotFoundError -32601" in out.stdout
    assert "slow(10) -> RpcTimeoutError" in out.stdout


def test_cluster_chat_across_two_servers(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        chat = [str(EXAMPLES / "cluster_chat.py"), "server", "--redis", redis.url]
        with _server(chat, tmp_path) as port_a, _server(chat, tmp_path) as port_b:
            clients = []
            for name, port in (("alice", port_a), ("bob", port_b)):
                proc = subprocess.Popen(
                    [sys.executable, str(EXAMPLES / "cluster_chat.py"), "client",
                     f"https://127.0.0.1:{port}/chat", name, "-", "--expect", "2", "--wait", "30"],
                    cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                )
                assert proc.stderr is not None
                for _ in range(3):  # the server may still be binding: retry the connection
                    # Skip other stderr lines (warnings) until the client joined or exited.
                    line = proc.stderr.readline()
                    while line and "joined room:lobby" not in line:
                        line = proc.stderr.readline()
                    if line:
                        break
                    proc.wait(30)
                    proc = subprocess.Popen(proc.args, cwd=tmp_path, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    assert proc.stderr is not None
                else:
                    raise AssertionError("client could not join")
                clients.append((name, proc))
            # Both are subscribed; now each says one line.
            for name, proc in clients:
                assert proc.stdin is not None
                proc.stdin.write(f"hi from {name}\n")
                proc.stdin.close()
            outputs = {}
            for name, proc in clients:
                assert proc.stdout is not None and proc.stderr is not None
                outputs[name] = (proc.stdout.read(), proc.stderr.read())  # bounded by the test timeout
                proc.wait(60)
        for name, proc in clients:
            stdout, stderr = outputs[name]
            assert proc.returncode == 0, stderr
            assert sorted(stdout.splitlines()) == ["alice: hi from alice", "bob: hi from bob"], (name, stdout)
    finally:
        redis.stop()
