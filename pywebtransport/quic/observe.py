"""What msquic can tell about itself and a live connection: version, TLS provider, global
performance counters, per-connection transport flags (ECN, resumption), and the UDP offloads
the kernel offers (msquic 2.5 uses them when present but does not report them)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from .. import _native
from .._native import ffi, lib
from .connection import QuicConnection
from .errors import QuicError

__all__ = [
    "PERF_COUNTER_NAMES",
    "LibraryInfo",
    "connection_flags",
    "library_info",
    "perf_counters",
    "udp_offloads",
]

# QUIC_PERFORMANCE_COUNTERS, in msquic's order (msquic.h).
PERF_COUNTER_NAMES = (
    "conn_created", "conn_handshake_fail", "conn_app_reject", "conn_resumed", "conn_active",
    "conn_connected", "conn_protocol_errors", "conn_no_alpn", "strm_active", "pkts_suspected_lost",
    "pkts_dropped", "pkts_decryption_fail", "udp_recv", "udp_send", "udp_recv_bytes", "udp_send_bytes",
    "udp_recv_events", "udp_send_calls", "app_send_bytes", "app_recv_bytes", "conn_queue_depth",
    "conn_oper_queue_depth", "conn_oper_queued", "conn_oper_completed", "work_oper_queue_depth",
    "work_oper_queued", "work_oper_completed", "path_validated", "path_failure",
    "send_stateless_reset", "send_stateless_retry", "conn_load_reject",
)
# Counters that are levels, not running totals.
PERF_GAUGES = frozenset({"conn_active", "conn_connected", "strm_active", "conn_queue_depth",
                         "conn_oper_queue_depth", "work_oper_queue_depth"})


@dataclass(frozen=True)
class LibraryInfo:
    """The loaded msquic library."""

    version: str
    tls_provider: str
    git_hash: str
    path: str
    polling_idle_us: int
    execution_profile: str
    worker_threads: int = 0
    """msquic worker threads per process (0: one per CPU)."""
    loop_spin_us: int = 0
    """How long an asyncio loop waits for QUIC events before sleeping."""


def library_info() -> LibraryInfo:
    """Version and TLS provider of the loaded msquic (loads it if needed)."""
    _native.ensure_initialized()
    version = ffi.new("uint32_t[4]")
    provider = ffi.new("int32_t *")
    git_hash = ffi.new("char[64]")
    status = lib.pwt_library_info(version, provider, git_hash, 64)
    if status != 0:
        raise QuicError(f"cannot read msquic's version: {_native.status_name(status)}")
    tls = {0: "schannel", 1: "openssl (quictls)"}.get(provider[0], f"unknown ({provider[0]})")
    profile = "max_throughput" if os.environ.get("PYWEBTRANSPORT_MSQUIC_PROFILE", "").lower() == "throughput" \
        else "low_latency"
    return LibraryInfo(
        version=".".join(str(v) for v in version),
        tls_provider=tls,
        git_hash=ffi.string(git_hash).decode(errors="replace"),
        path=_native.library_path(),
        polling_idle_us=_native.polling_idle_us(),
        execution_profile=profile,
        worker_threads=_native.worker_count(),
        loop_spin_us=_native.loop_spin_us(),
    )


def perf_counters() -> dict[str, int]:
    """msquic's process-wide performance counters by name (empty before msquic is loaded)."""
    if not lib.pwt_is_initialized():
        return {}
    buf = ffi.new("int64_t[64]")
    n = lib.pwt_perf_counters(buf, 64)
    if n < 0:
        return {}
    return {name: int(buf[i]) for i, name in enumerate(PERF_COUNTER_NAMES[:n])}


def connection_flags(conn: QuicConnection) -> dict[str, bool]:
    """Transport facts of a live connection: ECN validated, resumption, GREASE bit."""
    handle = conn._check_open()
    out = ffi.new("uint32_t *")
    status = lib.pwt_conn_flags(handle, out)
    if status != 0:
        raise QuicError(f"cannot read connection flags: {_native.status_name(status)}")
    flags = int(out[0])
    return {
        "ecn_capable": bool(flags & lib.PWT_CONN_FLAG_ECN_CAPABLE),
        "resumption_attempted": bool(flags & lib.PWT_CONN_FLAG_RESUMPTION_ATTEMPTED),
        "resumption_succeeded": bool(flags & lib.PWT_CONN_FLAG_RESUMPTION_SUCCEEDED),
        "encryption_offloaded": bool(flags & lib.PWT_CONN_FLAG_ENCRYPTION_OFFLOADED),
        "grease_bit": bool(flags & lib.PWT_CONN_FLAG_GREASE_BIT),
    }


# Linux socket options (linux/udp.h); msquic's datapath probes the same ones.
_UDP_SEGMENT = 103
_UDP_GRO = 104


def udp_offloads() -> dict[str, bool]:
    """Whether the kernel accepts UDP send segmentation (GSO) and receive coalescing (GRO).

    msquic 2.5 turns these on by itself when the kernel has them; it has no API that says so,
    so this probes a UDP socket the same way.
    """
    result = {"gso": False, "gro": False}
    if not hasattr(socket, "SOL_UDP"):
        return result
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for name, opt, value in (("gso", _UDP_SEGMENT, 1200), ("gro", _UDP_GRO, 1)):
            try:
                sock.setsockopt(socket.SOL_UDP, opt, value)
                result[name] = True
            except OSError:
                pass
    return result
