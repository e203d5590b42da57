"""Where peer programs (Go, Rust) are built, and how: outside the clone, shared across runs.

Used by the interop tests (go_peers.py, rust_peer.py) and by the benchmark peers
(bench/peers_bench.py). Nothing here imports pytest: build problems raise
`PeerBuildError`, which the test helpers turn into test failures and the benchmark
into an error message.

* Go: a module directory with a complete go.mod/go.sum is built with ``go build
  -trimpath`` into ``<cache>/go-<name>-<webtransport-go version>-<hash>/<binary>``;
  the hash covers go.mod, go.sum, every .go file and the Go toolchain version.
  Modules come from the configured GOPROXY into the default GOMODCACHE; the build is
  ``-mod=readonly``, so go.sum must already be complete, and ``GOTOOLCHAIN=local``
  means no other toolchain is ever downloaded.
* Rust: a crate directory is built with ``cargo build --release --locked`` into
  ``<cache>/<prefix>-<hash>/`` (used as CARGO_TARGET_DIR); the hash covers
  Cargo.toml, Cargo.lock and everything under src/. Crates come from crates.io.

A later run with the same inputs reuses the binary without invoking the toolchain.
Concurrent builders (parallel test workers, a benchmark) wait on a file lock.
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

GO_BUILD_TIMEOUT = 600.0
CARGO_BUILD_TIMEOUT = 540.0  # a cold release build on the 2-core machine takes a few minutes


class PeerBuildError(RuntimeError):
    """A peer program could not be built (missing toolchain, compile error, timeout)."""


def cache_root() -> Path:
    """``$PYWEBTRANSPORT_PEER_CACHE``, else ``<msquic cache root>/peers``.

    The msquic cache root is ``$PYWEBTRANSPORT_CACHE_DIR`` or
    ``$XDG_CACHE_HOME/pywebtransport`` (default ``~/.cache/pywebtransport``).
    """
    explicit = os.environ.get("PYWEBTRANSPORT_PEER_CACHE")
    if explicit:
        return Path(explicit)
    root = os.environ.get("PYWEBTRANSPORT_CACHE_DIR")
    if root:
        return Path(root) / "peers"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pywebtransport" / "peers"


# ---------------------------------------------------------------------------- Go


@dataclass(frozen=True)
class GoBuild:
    binary: Path
    webtransport_go: str  # pinned module version from go.mod, e.g. "v0.12.0"
    quic_go: str
    cached: bool  # True if the binary was already there
    build_seconds: float


def find_go() -> str:
    go = shutil.which("go")
    if go is None:
        for candidate in ("/usr/local/go/bin/go", str(Path.home() / "go" / "bin" / "go")):
            if os.access(candidate, os.X_OK):
                return candidate
        raise PeerBuildError(
            "the Go toolchain (>= 1.25) is needed to build the webtransport-go peers: `go` was not found "
            "on PATH. Install Go (e.g. the Debian package golang-go, or go.dev)."
        )
    return go


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GOTOOLCHAIN"] = "local"  # never download another toolchain
    env["GOFLAGS"] = "-mod=readonly -buildvcs=false"
    env.setdefault("CGO_ENABLED", "0")
    return env


def go_version(go: str) -> str:
    proc = subprocess.run(
        [go, "env", "GOVERSION"], capture_output=True, text=True, timeout=60, env=go_env(), check=False
    )
    if proc.returncode != 0:
        raise PeerBuildError(f"`go env GOVERSION` failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def go_required_version(gomod: str, module: str) -> str:
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", gomod, re.MULTILINE)
    return match.group(1) if match else "unknown"


def go_source_hash(src: Path, toolchain: str) -> str:
    h = hashlib.sha256(toolchain.encode() + b"\0")
    files = [src / "go.mod", src / "go.sum", *sorted(src.glob("*.go"))]
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build_go_module(src: Path, name: str, binary_name: str, timeout: float = GO_BUILD_TIMEOUT) -> GoBuild:
    """Build the Go module in ``src`` into the peer cache unless an identical build is there."""
    if not (src / "go.mod").is_file() or not (src / "go.sum").is_file():
        raise PeerBuildError(f"{src} must contain go.mod and go.sum")
    go = find_go()
    toolchain = go_version(go)
    gomod = (src / "go.mod").read_text()
    wt_version = go_required_version(gomod, "github.com/quic-go/webtransport-go")
    quic_version = go_required_version(gomod, "github.com/quic-go/quic-go")
    out_dir = cache_root() / f"go-{name}-{wt_version}-{go_source_hash(src, toolchain)}"
    binary = out_dir / binary_name
    if binary.is_file() and os.access(binary, os.X_OK):
        return GoBuild(binary, wt_version, quic_version, cached=True, build_seconds=0.0)

    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time
        if binary.is_file():
            return GoBuild(binary, wt_version, quic_version, cached=True, build_seconds=0.0)
        tmp = out_dir / f".{binary_name}.{os.getpid()}.tmp"
        start = time.monotonic()
        try:
            proc = subprocess.run(
                [go, "build", "-trimpath", "-o", str(tmp), "."],
                cwd=src,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=go_env(),
                check=False,
            )
        except subprocess.TimeoutExpired:
            tmp.unlink(missing_ok=True)
            raise PeerBuildError(f"building {src} with {toolchain} took longer than {timeout:.0f}s") from None
        elapsed = time.monotonic() - start
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise PeerBuildError(
                f"`go build` of {src} (webtransport-go {wt_version}, {toolchain}) failed "
                f"(exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
            )
        os.replace(tmp, binary)
    return GoBuild(binary, wt_version, quic_version, cached=False, build_seconds=elapsed)


# ---------------------------------------------------------------------------- Rust


def find_cargo() -> str:
    env = os.environ.get("CARGO")
    if env and Path(env).exists():
        return env
    found = shutil.which("cargo")
    if found:
        return found
    home_cargo = Path.home() / ".cargo" / "bin" / "cargo"
    if home_cargo.exists():
        return str(home_cargo)
    raise PeerBuildError(
        "cargo not found: the wtransport peers need a Rust toolchain (rustup/cargo >= 1.88). "
        "Install it or set CARGO=/path/to/cargo."
    )


def cargo_source_hash(crate_dir: Path) -> str:
    h = hashlib.sha256()
    files = [crate_dir / "Cargo.toml", crate_dir / "Cargo.lock"]
    files += sorted(p for p in (crate_dir / "src").rglob("*") if p.is_file())
    for path in files:
        h.update(str(path.relative_to(crate_dir)).encode() + b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def cargo_locked_version(crate_dir: Path, package: str) -> str:
    """Version of ``package`` pinned in the crate's Cargo.lock ("unknown" if absent)."""
    lock = (crate_dir / "Cargo.lock").read_text()
    match = re.search(rf'^name = "{re.escape(package)}"\nversion = "([^"]+)"', lock, re.MULTILINE)
    return match.group(1) if match else "unknown"


def build_cargo_crate(
    crate_dir: Path,
    bin_name: str,
    prefix: str = "rust",
    timeout: float = CARGO_BUILD_TIMEOUT,
    shared_target: bool = False,
) -> Path:
    """Return the crate's release binary, building it (once per source hash, under a lock) if needed.

    By default ``<cache>/<prefix>-<hash>/`` is the CARGO_TARGET_DIR and the binary stays in its
    ``release/``. With ``shared_target`` the build happens in ``<cache>/<prefix>-target/`` (kept
    across source changes, so an edit recompiles only the crate, not its dependencies) and the
    binary is copied to ``<cache>/<prefix>-<hash>/<bin_name>``.
    """
    out_dir = cache_root() / f"{prefix}-{cargo_source_hash(crate_dir)}"
    target_dir = cache_root() / f"{prefix}-target" if shared_target else out_dir
    binary = out_dir / bin_name if shared_target else out_dir / "release" / bin_name
    stamp = out_dir / "BUILT"
    if binary.exists() and stamp.exists():
        return binary
    cargo = find_cargo()
    out_dir.mkdir(parents=True, exist_ok=True)
    target_dir.mkdir(parents=True, exist_ok=True)
    with open(target_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent builders wait for one build
        if binary.exists() and stamp.exists():
            return binary
        env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir))
        cmd = [cargo, "build", "--release", "--locked", "-j", "2"]
        started = time.monotonic()
        try:
            proc = subprocess.run(cmd, cwd=crate_dir, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise PeerBuildError(
                f"building {crate_dir} timed out after {timeout:.0f}s (a later run resumes it): {exc}"
            ) from None
        elapsed = time.monotonic() - started
        built = target_dir / "release" / bin_name
        if proc.returncode != 0 or not built.exists():
            raise PeerBuildError(
                f"building {crate_dir} failed (rc={proc.returncode}, {elapsed:.0f}s):\n"
                f"$ (cd {crate_dir} && CARGO_TARGET_DIR={target_dir} {' '.join(cmd)})\n{proc.stderr[-6000:]}"
            )
        if shared_target:
            tmp = out_dir / f".{bin_name}.{os.getpid()}.tmp"
            shutil.copy2(built, tmp)
            os.replace(tmp, binary)
        stamp.write_text(f"built in {elapsed:.1f}s\n")
    return binary
