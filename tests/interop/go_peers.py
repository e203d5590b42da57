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

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from peer_cache import GO_BUILD_TIMEOUT, PeerBuildError, build_go_module

GO_DIR = Path(__file__).resolve().parent / "go"
BUILD_TIMEOUT = GO_BUILD_TIMEOUT


@dataclass(frozen=True)
class GoPeer:
    name: str
    binary: Path
    webtransport_go: str  # pinned module version, e.g. "v0.11.1"
    quic_go: str
    cached: bool  # True if the binary was already there
    build_seconds: float


def build_go_peer(name: str) -> GoPeer:
    """Build go/<name> into the peer cache unless an identical build is already there."""
    try:
        built = build_go_module(GO_DIR / name, name, f"wt{name}", timeout=BUILD_TIMEOUT)
    except PeerBuildError as exc:
        pytest.fail(f"webtransport-go interop peer: {exc}", pytrace=False)
    return GoPeer(name, built.binary, built.webtransport_go, built.quic_go, built.cached, built.build_seconds)


if __name__ == "__main__":  # `python tests/interop/go_peers.py`: build both, print where and how long
    for peer_name in ("client", "client012", "server"):
        t0 = time.monotonic()
        peer = build_go_peer(peer_name)
        print(
            f"{peer_name}: {peer.binary} webtransport-go {peer.webtransport_go} quic-go {peer.quic_go} "
            f"cached={peer.cached} {time.monotonic() - t0:.2f}s"
        )
