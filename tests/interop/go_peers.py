"""Build (once, cached outside the clone) the webtransport-go peer programs in tests/interop/go/.

Each peer is a tiny Go module with its own pinned go.mod/go.sum:

* ``go/client`` — webtransport-go v0.11.x (draft-15) client
* ``go/client012`` — webtransport-go v0.12.x (draft-16) client (needs RESET_STREAM_AT from the server)
* ``go/server`` — webtransport-go v0.12.x (draft-16) server

Binaries land in ``$PYWEBTRANSPORT_PEER_CACHE`` (default ``$XDG_CACHE_HOME/pywebtransport/peers`` or
``~/.cache/pywebtransport/peers``) under ``go-<name>-<webtransport-go version>-<hash>/``, where the hash
covers go.mod, go.sum, every .go source and the Go toolchain version. A later run with the same inputs
reuses the binary without invoking the toolchain for a build. Modules come from the configured
GOPROXY into the default GOMODCACHE; the build is ``-mod=readonly`` so go.sum must already be complete.

A missing ``go`` is a test *failure*, not a skip: these interop tests are meant to run.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

GO_DIR = Path(__file__).resolve().parent / "go"
BUILD_TIMEOUT = 600.0


@dataclass(frozen=True)
class GoPeer:
    name: str
    binary: Path
    webtransport_go: str  # pinned module version, e.g. "v0.11.1"
    quic_go: str
    cached: bool  # True if the binary was already there
    build_seconds: float


from peer_cache import cache_root  # noqa: E402


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        pytest.fail(
            "webtransport-go interop tests need the Go toolchain (>= 1.25) on PATH: `go` was not found. "
            "Install Go (e.g. the Debian package golang-go, or go.dev) so tests/interop/go_peers.py can build "
            "the pinned webtransport-go peers.",
            pytrace=False,
        )
    return go


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GOTOOLCHAIN"] = "local"  # never download another toolchain
    env["GOFLAGS"] = "-mod=readonly -buildvcs=false"
    env.setdefault("CGO_ENABLED", "0")
    return env


def _go_version(go: str) -> str:
    proc = subprocess.run(
        [go, "env", "GOVERSION"], capture_output=True, text=True, timeout=60, env=_go_env(), check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"`go env GOVERSION` failed: {proc.stderr.strip()}", pytrace=False)
    return proc.stdout.strip()


def _required_version(gomod: str, module: str) -> str:
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", gomod, re.MULTILINE)
    return match.group(1) if match else "unknown"


def _source_hash(src: Path, go_version: str) -> str:
    h = hashlib.sha256(go_version.encode() + b"\0")
    files = [src / "go.mod", src / "go.sum", *sorted(src.glob("*.go"))]
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build_go_peer(name: str) -> GoPeer:
    """Build go/<name> into the peer cache unless an identical build is already there."""
    src = GO_DIR / name
    if not (src / "go.mod").is_file() or not (src / "go.sum").is_file():
        pytest.fail(f"{src} must contain go.mod and go.sum", pytrace=False)
    go = _go()
    go_version = _go_version(go)
    gomod = (src / "go.mod").read_text()
    wt_version = _required_version(gomod, "github.com/quic-go/webtransport-go")
    quic_version = _required_version(gomod, "github.com/quic-go/quic-go")
    out_dir = cache_root() / f"go-{name}-{wt_version}-{_source_hash(src, go_version)}"
    binary = out_dir / f"wt{name}"
    if binary.is_file() and os.access(binary, os.X_OK):
        return GoPeer(name, binary, wt_version, quic_version, cached=True, build_seconds=0.0)

    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time (parallel test workers)
        if binary.is_file():
            return GoPeer(name, binary, wt_version, quic_version, cached=True, build_seconds=0.0)
        tmp = out_dir / f".wt{name}.{os.getpid()}.tmp"
        start = time.monotonic()
        try:
            proc = subprocess.run(
                [go, "build", "-trimpath", "-o", str(tmp), "."],
                cwd=src,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT,
                env=_go_env(),
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"building {src} with {go_version} took longer than {BUILD_TIMEOUT:.0f}s", pytrace=False)
        elapsed = time.monotonic() - start
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            pytest.fail(
                f"`go build` of {src} (webtransport-go {wt_version}, {go_version}) failed "
                f"(exit {proc.returncode}):\n{proc.stdout}{proc.stderr}",
                pytrace=False,
            )
        os.replace(tmp, binary)
    return GoPeer(name, binary, wt_version, quic_version, cached=False, build_seconds=elapsed)


if __name__ == "__main__":  # `python tests/interop/go_peers.py`: build both, print where and how long
    for peer_name in ("client", "client012", "server"):
        t0 = time.monotonic()
        peer = build_go_peer(peer_name)
        print(
            f"{peer_name}: {peer.binary} webtransport-go {peer.webtransport_go} quic-go {peer.quic_go} "
            f"cached={peer.cached} {time.monotonic() - t0:.2f}s"
        )
