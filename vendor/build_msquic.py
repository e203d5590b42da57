#!/usr/bin/env python3
"""Build libmsquic from the pinned msquic crate and cache it outside the clone.

The msquic C sources (and the quictls/OpenSSL sources msquic links statically)
reach us only through the ``msquic`` crate on the Rust crate registry.  This
script:

1. ``cargo fetch``es the exact version pinned in ``vendor/msquic/Cargo.lock``;
2. runs CMake over the unpacked crate with our own flags (Release, shared
   library, logging off, tools/tests off);
3. applies :data:`SOURCE_PATCHES` to a temporary copy of the crate (today:
   the RESET_STREAM_AT codepoints and quictls memory fixes, see below);
4. installs ``libmsquic.so.2`` and the public headers into a cache directory
   keyed by crate version, flags and patches, e.g.
   ``~/.cache/pywebtransport/msquic-2.5.1-beta-<hash>/``.

A second run finds the cache and returns in well under a second.  The cache
location can be moved with ``PYWEBTRANSPORT_CACHE_DIR``.

Run directly (``python vendor/build_msquic.py``) to prebuild, or let
``build_ffi.py`` call :func:`ensure_msquic`.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PIN_DIR = HERE / "msquic"

# Flags handed to msquic's CMake. Changing them changes the cache key.
_COMMON_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DQUIC_BUILD_SHARED=ON",
    "-DQUIC_ENABLE_LOGGING=OFF",
)
_TOOLS_OFF = (
    "-DQUIC_BUILD_TOOLS=OFF",
    "-DQUIC_BUILD_TEST=OFF",
    "-DQUIC_BUILD_PERF=OFF",
    "-DQUIC_EMBED_GIT_HASH=OFF",
    "-DQUIC_ENABLE_SANITIZERS=OFF",
)


def platform_flags(system: str) -> tuple[str, ...]:
    """CMake flags per OS, each with the TLS library msquic supports there.

    Linux and macOS link quictls (OpenSSL with the QUIC API) statically; Windows uses the
    system's Schannel, so no Perl/OpenSSL build is needed there.
    """
    if system == "Windows":
        return (*_COMMON_FLAGS, "-DQUIC_TLS_LIB=schannel", *_TOOLS_OFF)
    flags = (*_COMMON_FLAGS, "-DQUIC_TLS_LIB=quictls", *_TOOLS_OFF)
    if system == "Darwin":
        target = os.environ.get("MACOSX_DEPLOYMENT_TARGET", "11.0")
        flags += (f"-DCMAKE_OSX_DEPLOYMENT_TARGET={target}",)
        arch = os.environ.get("ARCHFLAGS", "").replace("-arch", "").split()
        if len(arch) == 1:  # cibuildwheel cross-builds x86_64 on arm64 runners this way
            flags += (f"-DCMAKE_OSX_ARCHITECTURES={arch[0]}",)
    return flags


def build_tools(system: str) -> tuple[str, ...]:
    """The tools the build needs on this OS (Windows: CMake finds MSVC itself)."""
    if system == "Windows":
        return ("cmake",)
    return ("cmake", "perl", "cc", "make")


CMAKE_FLAGS = platform_flags(platform.system())
# Bumped when this script changes what it produces.
RECIPE_VERSION = "2"

# Exact text substitutions applied to a temporary copy of the crate before building
# (path relative to the crate root, text to find exactly once, replacement).
#
# 1. msquic 2.5.1 implements draft-ietf-quic-reliable-stream-reset with the codepoints of
# its first draft: transport parameter 0x17f7586d2cb570 and frame type 0x21.  The current
# draft (-09) uses transport parameter 0x1d and RESET_STREAM_AT frame type 0x24 with the
# same frame layout (stream id, error code, final size, reliable size) and an empty
# parameter, which is what quic-go >= 0.61 sends (it also accepts 0x17f7586d2cb571 of
# draft -07, never ...570).  WebTransport draft-14+ peers such as webtransport-go v0.12
# refuse servers without it.  Only the two codepoints change; the feature stays off
# unless QUIC_SETTINGS.ReliableResetEnabled is set (the stack sets it).
# 2. A receive-side fix for reliable resets (below).
SOURCE_PATCHES: tuple[tuple[str, str, str], ...] = (
    (
        "src/core/crypto_tls.c",
        "#define QUIC_TP_ID_RELIABLE_RESET_ENABLED                   0x17f7586d2cb570",
        "#define QUIC_TP_ID_RELIABLE_RESET_ENABLED                   0x1d /* reliable-stream-reset-09 */",
    ),
    (
        "src/core/frame.h",
        "QUIC_FRAME_RELIABLE_RESET_STREAM = 0x21ULL,",
        "QUIC_FRAME_RELIABLE_RESET_STREAM = 0x24ULL, /* RESET_STREAM_AT, reliable-stream-reset-09 */",
    ),
    # msquic 2.5.1 bug: once the bytes below a received RESET_STREAM_AT's reliable size are
    # delivered, it flags the last of them FIN and indicates PEER_SEND_SHUTDOWN (a graceful
    # end) instead of PEER_SEND_ABORTED with the peer's error code, so a reliable reset looks
    # like a FIN to the application.  Deliver those bytes without FIN and then the abort.
    (
        "src/core/stream_recv.c",
        """            if (Event.RECEIVE.AbsoluteOffset + Event.RECEIVE.TotalBufferLength == Stream->RecvMaxLength) {""",
        """            if (Event.RECEIVE.AbsoluteOffset + Event.RECEIVE.TotalBufferLength == Stream->RecvMaxLength &&
                !Stream->Flags.RemoteCloseResetReliable) { /* pywebtransport: reliable reset is no FIN */""",
    ),
    (
        "src/core/stream_recv.c",
        "            Event.RECEIVE.Flags |= QUIC_RECEIVE_FLAG_FIN; // TODO - 0-RTT flag?",
        """            if (!Stream->Flags.RemoteCloseResetReliable) { /* pywebtransport: reliable reset is no FIN */
                Event.RECEIVE.Flags |= QUIC_RECEIVE_FLAG_FIN;
            }""",
    ),
    (
        "src/core/stream_recv.c",
        """    if (Stream->RecvBuffer.BaseOffset == Stream->RecvMaxLength) {
        CXPLAT_DBG_ASSERT(!Stream->Flags.ReceiveDataPending);""",
        """    if (Stream->Flags.RemoteCloseResetReliable &&
        Stream->RecvBuffer.BaseOffset >= Stream->RecvMaxLength) {
        /* pywebtransport: a reliable reset ends with the peer's error code, not a FIN */
        QuicStreamIndicatePeerSendAbortedEvent(Stream, Stream->RecvShutdownErrorCode);
        QuicStreamRecvShutdown(Stream, TRUE, Stream->RecvShutdownErrorCode);
    } else if (Stream->RecvBuffer.BaseOffset == Stream->RecvMaxLength) {
        CXPLAT_DBG_ASSERT(!Stream->Flags.ReceiveDataPending);""",
    ),
    # 3. Memory: quictls collects received handshake bytes in quic_buf (16 KB when made, ~22 KB
    # after a client's handshake) and keeps it until the connection is freed, although every
    # byte was copied out (into init_buf) as its message was taken.  Release it whenever
    # nothing in it is pending (no queued message, no partial one); SSL_provide_quic_data
    # makes a new one for later messages (it handles quic_buf == NULL), and the offsets of
    # queued messages are untouched because the buffer is only dropped when none is queued.
    (
        "submodules/quictls/ssl/statem/statem_quic.c",
        """    s->quic_input_data_head = qd->next;
    if (s->quic_input_data_head == NULL)
        s->quic_input_data_tail = NULL;
    OPENSSL_free(qd);
""",
        """    s->quic_input_data_head = qd->next;
    if (s->quic_input_data_head == NULL)
        s->quic_input_data_tail = NULL;
    OPENSSL_free(qd);
    /* pywebtransport: drop the input buffer once all of it was handed out */
    if (s->quic_input_data_head == NULL && s->quic_buf != NULL
            && s->quic_next_record_start == s->quic_buf->length) {
        BUF_MEM_free(s->quic_buf);
        s->quic_buf = NULL;
        s->quic_next_record_start = 0;
    }
""",
    ),
    # 4. Memory: the TLS record layer's read and write buffers (about 16.5 KB each) are made
    # when a handshake starts, yet a QUIC connection never uses them: quictls hands handshake
    # bytes and alerts to msquic (quic_method) and takes received ones from
    # SSL_provide_quic_data, and SSL_read/SSL_write refuse QUIC connections.  They stayed
    # allocated for the connection's lifetime: 33 KB of a client connection's ~92 KB.
    # Skip them for QUIC connections (both places that make them; freeing NULL is a no-op).
    # 6. Speed: msquic's default TLS 1.3 cipher list puts AES-256-GCM-SHA384 first, so two
    # msquic endpoints always pick it (OpenSSL servers follow the client's order).  AES-128-GCM
    # (what Chrome and Go prefer) encrypts bulk data faster and its SHA-256 key schedule runs
    # on the SHA extensions; SHA-384 alone was ~8% of a server's handshake CPU here.  Same
    # suites, AES-128 first.
    (
        "src/platform/tls_quictls.c",
        '#define CXPLAT_TLS_DEFAULT_SSL_CIPHERS    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"',
        '#define CXPLAT_TLS_DEFAULT_SSL_CIPHERS    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256" /* pywebtransport */',
    ),
    (
        "submodules/quictls/ssl/statem/statem.c",
        """        if (!ssl3_setup_buffers(s)) {
            SSLfatal(s, SSL_AD_NO_ALERT, ERR_R_INTERNAL_ERROR);
            goto end;
        }""",
        """        if (!SSL_IS_QUIC(s) && !ssl3_setup_buffers(s)) { /* pywebtransport: QUIC has no records */
            SSLfatal(s, SSL_AD_NO_ALERT, ERR_R_INTERNAL_ERROR);
            goto end;
        }""",
    ),
    # 5. Memory: msquic gives every stream a 4 KB receive buffer to start with (it grows as
    # data arrives) and refuses a smaller StreamRecvBufferDefault.  HTTP/3's control and QPACK
    # streams and a WebTransport CONNECT stream carry a few dozen bytes in their lifetime, so
    # these 4 KB chunks were ~16 KB of every idle session, on each side.  Accept any power of
    # two from 256 (QuicConfiguration.stream_receive_buffer; the buffer still grows by doubling).
    (
        "src/core/settings.c",
        """        if (Source->StreamRecvBufferDefault < QUIC_DEFAULT_STREAM_RECV_BUFFER_SIZE) {
            return FALSE;
        }""",
        """        if (Source->StreamRecvBufferDefault < 256 || /* pywebtransport: was 4096 */
            (Source->StreamRecvBufferDefault & (Source->StreamRecvBufferDefault - 1)) != 0) {
            return FALSE;
        }""",
    ),
    (
        "submodules/quictls/ssl/statem/extensions.c",
        """        if (!ssl3_setup_buffers(s)) {
            /* SSLfatal() already called */
            return 0;
        }""",
        """        if (!SSL_IS_QUIC(s) && !ssl3_setup_buffers(s)) { /* pywebtransport: QUIC has no records */
            /* SSLfatal() already called */
            return 0;
        }""",
    ),
    # 7. Connect without waiting for a worker: every connection SetParam from a thread that is
    # not the connection's worker queues an operation and blocks until the worker ran it.  A
    # client sets its UDP-binding sharing (and optionally local address, resumption ticket,
    # remote address) before ConnectionStart, when no operation of that connection exists and
    # no worker touches it; behind a busy worker (100 concurrent connects) each such call held
    # the event loop for ~0.5 ms (p50).  A caller that adds PWT_PARAM_BEFORE_START (0x20000000,
    # a bit no parameter prefix uses) to such a SetParam promises exactly that (one thread,
    # before ConnectionStart); the call then runs inline, like one on the worker thread.
    # Without the bit (and for started or server connections) nothing changes.
    (
        "src/core/api.c",
        """    QUIC_CONN_VERIFY(Connection, !Connection->State.Freed);

    if (MsQuicLib.CustomExecutions ||
        Connection->WorkerThreadID == CxPlatCurThreadID()) {
        //
        // Execute this blocking API call inline if called on the worker thread.
        //
        BOOLEAN AlreadyInline = Connection->State.InlineApiExecution;
        if (!AlreadyInline) {
            Connection->State.InlineApiExecution = TRUE;
        }
        Status = QuicLibrarySetParam(Handle, Param, BufferLength, Buffer);""",
        """    QUIC_CONN_VERIFY(Connection, !Connection->State.Freed);

    /* pywebtransport: PWT_PARAM_BEFORE_START, see vendor/build_msquic.py */
    const BOOLEAN PwtBeforeStart = (Param & 0x20000000u) != 0;
    Param &= ~0x20000000u;
    if (MsQuicLib.CustomExecutions ||
        Connection->WorkerThreadID == CxPlatCurThreadID() ||
        (PwtBeforeStart && Handle->Type == QUIC_HANDLE_TYPE_CONNECTION_CLIENT &&
         !Connection->State.Started && !Connection->State.ClosedLocally)) {
        //
        // Execute this blocking API call inline if called on the worker thread.
        //
        BOOLEAN AlreadyInline = Connection->State.InlineApiExecution;
        if (!AlreadyInline) {
            Connection->State.InlineApiExecution = TRUE;
        }
        Status = QuicLibrarySetParam(Handle, Param, BufferLength, Buffer);""",
    ),
    # 8. Fewer packets per request: msquic sent MAX_STREAMS each time a peer stream was freed,
    # which on a server answering requests on new streams is once per request, after the
    # client acknowledged the response: a packet of its own (and usually an ACK of it back),
    # 4-5 UDP datagrams per request instead of quinn's ~2.  Advertise freed stream credit
    # like a flow-control window instead: when the credit the peer knows falls below half of
    # the concurrent-stream limit (on a release, or when the peer opens a stream), which then
    # rides on the ACK or response the opening stream causes.  A peer whose known credit is
    # below half gets every release at once, so a peer waiting for credit still gets it as
    # soon as a stream ends; the limit on concurrent streams is unchanged.
    # PwtAdvertisedCount is a lower bound of the MAX_STREAMS value sent (the frame carries
    # the count when it is written, and a lost frame is resent with the current count).
    (
        "src/core/stream_set.h",
        """    uint64_t MaxTotalStreamCount;
""",
        """    uint64_t MaxTotalStreamCount;

    uint64_t PwtAdvertisedCount; /* pywebtransport: MAX_STREAMS credit the peer was given */
""",
    ),
    (
        "src/core/stream_set.c",
        """        Info->MaxTotalStreamCount++;
        QuicSendSetSendFlag(
            &QuicStreamSetGetConnection(StreamSet)->Send,
            (Flags & STREAM_ID_FLAG_IS_UNI_DIR) ?
                QUIC_CONN_SEND_FLAG_MAX_STREAMS_UNI :
                QUIC_CONN_SEND_FLAG_MAX_STREAMS_BIDI);""",
        """        Info->MaxTotalStreamCount++;
        /* pywebtransport: advertise when the peer's known credit is below half the limit */
        if (Info->PwtAdvertisedCount < Info->TotalStreamCount + (Info->MaxCurrentStreamCount + 1u) / 2u) {
            Info->PwtAdvertisedCount = Info->MaxTotalStreamCount;
            QuicSendSetSendFlag(
                &QuicStreamSetGetConnection(StreamSet)->Send,
                (Flags & STREAM_ID_FLAG_IS_UNI_DIR) ?
                    QUIC_CONN_SEND_FLAG_MAX_STREAMS_UNI :
                    QUIC_CONN_SEND_FLAG_MAX_STREAMS_BIDI);
        }""",
    ),
    (
        "src/core/stream_set.c",
        """    if (!Connection->State.Started) {
        Info->MaxTotalStreamCount = Count;

    } else {
        if (Count >= Info->MaxCurrentStreamCount) {
            Info->MaxTotalStreamCount += (Count - Info->MaxCurrentStreamCount);""",
        """    if (!Connection->State.Started) {
        Info->MaxTotalStreamCount = Count;
        Info->PwtAdvertisedCount = Count; /* pywebtransport: sent as a transport parameter */

    } else {
        if (Count >= Info->MaxCurrentStreamCount) {
            Info->MaxTotalStreamCount += (Count - Info->MaxCurrentStreamCount);
            Info->PwtAdvertisedCount = Info->MaxTotalStreamCount; /* pywebtransport */""",
    ),
    (
        "src/core/stream_set.c",
        """            Info->CurrentStreamCount++;
            Info->TotalStreamCount++;
""",
        """            Info->CurrentStreamCount++;
            Info->TotalStreamCount++;
            /* pywebtransport: credit held back on releases leaves with this stream's ACK */
            if (Info->PwtAdvertisedCount < Info->MaxTotalStreamCount &&
                Info->PwtAdvertisedCount < Info->TotalStreamCount + (Info->MaxCurrentStreamCount + 1u) / 2u) {
                Info->PwtAdvertisedCount = Info->MaxTotalStreamCount;
                QuicSendSetSendFlag(
                    &Connection->Send,
                    STREAM_ID_IS_UNI_DIR(StreamId) ?
                        QUIC_CONN_SEND_FLAG_MAX_STREAMS_UNI :
                        QUIC_CONN_SEND_FLAG_MAX_STREAMS_BIDI);
            }
""",
    ),
    # 9. Fewer packets per message: whenever stream bytes were delivered while an immediate
    # ACK was queued, msquic put MAX_DATA and MAX_STREAM_DATA into that ACK however few bytes
    # had been delivered since the last update.  Those frames make the ACK ack-eliciting, so
    # the peer must acknowledge it: with two msquic endpoints exchanging small messages this
    # locked into a cycle where every message cost each side an extra ACK+MAX_DATA packet
    # sent ahead of the reply (decrypted capture of the per-request echo: 2 datagrams per
    # request, then 4 once the cycle started, for the rest of the connection).  An update now
    # rides on a queued ACK only once the stream's window can move by a sixteenth or more
    # (16 KiB of a 256 KiB window): small messages no longer trigger one per ACK, and bulk
    # transfers still get frequent, loss-tolerant updates (with updates only at msquic's
    # quarter-window drain threshold, a 256 KiB echo through a 20 % loss relay took ~1.3 s
    # longer: a lost update stalled the sender until loss detection resent it).
    (
        "src/core/stream_recv.c",
        """    } else if (!(Stream->Connection->Send.SendFlags & QUIC_CONN_SEND_FLAG_ACK)) {
        //
        // We haven't hit the drain limit AND we don't have any ACKs to send
        // immediately, so we don't need to immediately update the max stream data
        // values.
        //
        return;
    }""",
        """    } else if (!(Stream->Connection->Send.SendFlags & QUIC_CONN_SEND_FLAG_ACK) ||
               Stream->RecvBuffer.BaseOffset + Stream->RecvBuffer.VirtualBufferLength <
                   Stream->MaxAllowedRecvOffset + Stream->RecvBuffer.VirtualBufferLength / 64) {
        /* pywebtransport: no immediate ACK to ride on, or the window would move by less
         * than 1/64: an update would only make the ACK ack-eliciting (patch 9) */
        return;
    }""",
    ),
    # 10. Path MTU discovery once a connection has traffic: msquic started probing as soon as
    # the handshake completed, four probes each way on loopback (1260 to 1480 bytes, each
    # acknowledged): 16 of the ~25 datagrams of a short session's whole life, sent while
    # its CONNECT and response were on the way, CPU both processes spent for nothing when
    # the session is short or idle.  Like Chromium's QUIC (which probes after 100 packets),
    # start the search once the connection sent 64 packets, or as soon as it sends a
    # DATAGRAM (whose size limit is what the search raises): a transfer gets there in well
    # under a millisecond, an idle session never pays for it.  Until then the path keeps
    # the validated minimum (datagrams up to about 1.2 KB), as during any search.
    (
        "src/core/mtu_discovery.h",
        """    BOOLEAN HasProbed1500       : 1;
""",
        """    BOOLEAN HasProbed1500       : 1;

    BOOLEAN PwtWaiting          : 1; /* pywebtransport: search starts after 64 packets */
""",
    ),
    (
        "src/core/mtu_discovery.c",
        """        MtuDiscovery->MaxMtu,
        Path->Mtu);

    QuicMtuDiscoveryMoveToSearching(MtuDiscovery, Connection);
}""",
        """        MtuDiscovery->MaxMtu,
        Path->Mtu);

    if (Connection->Stats.Send.TotalPackets < 64) { /* pywebtransport: see QuicSendFlush */
        MtuDiscovery->PwtWaiting = TRUE;
        return;
    }
    MtuDiscovery->PwtWaiting = FALSE;
    QuicMtuDiscoveryMoveToSearching(MtuDiscovery, Connection);
}""",
    ),
    (
        "src/core/send.c",
        """    uint64_t TimeNow = CxPlatTimeUs64();
    QuicMtuDiscoveryCheckSearchCompleteTimeout(Connection, TimeNow);
""",
        """    uint64_t TimeNow = CxPlatTimeUs64();
    QuicMtuDiscoveryCheckSearchCompleteTimeout(Connection, TimeNow);
    if (Path->MtuDiscovery.PwtWaiting && Path->IsPeerValidated &&
        (Connection->Stats.Send.TotalPackets >= 64 ||
         (Send->SendFlags & QUIC_CONN_SEND_FLAG_DATAGRAM))) { /* pywebtransport: patch 10 */
        Path->MtuDiscovery.PwtWaiting = FALSE;
        QuicMtuDiscoveryMoveToSearching(&Path->MtuDiscovery, Connection);
    }
""",
    ),
)

HEADERS = ("msquic.h", "msquic_posix.h", "quic_sal_stub.h", "msquic_winuser.h")


class BuildError(RuntimeError):
    """Raised with a message a user can act on."""


@dataclass(frozen=True)
class MsQuicBuild:
    version: str
    lib: Path
    include_dir: Path


def _log(msg: str) -> None:
    print(f"[build_msquic] {msg}", file=sys.stderr, flush=True)


def lib_filename() -> str:
    system = platform.system()
    if system == "Linux":
        return "libmsquic.so.2"
    if system == "Darwin":
        return "libmsquic.2.dylib"
    if system == "Windows":
        return "msquic.dll"
    raise BuildError(f"unsupported platform {system!r}")


def check_tools(names: tuple[str, ...]) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        hint = {
            "cargo": "a Rust toolchain (https://rustup.rs or 'apt-get install cargo')",
            "cmake": "CMake >= 3.16 ('apt-get install cmake')",
            "perl": "Perl ('apt-get install perl'), needed by OpenSSL's Configure",
            "cc": "a C compiler ('apt-get install build-essential')",
            "make": "make ('apt-get install build-essential')",
        }
        needs = "; ".join(hint.get(n, n) for n in missing)
        raise BuildError(
            f"cannot build msquic: missing {', '.join(missing)}. Install {needs}, "
            "or set PYWEBTRANSPORT_MSQUIC_LIB=/path/to/libmsquic.so.2 to use a prebuilt library."
        )


def pinned_version() -> str:
    lock = (PIN_DIR / "Cargo.lock").read_text()
    blocks = lock.split("[[package]]")
    for block in blocks:
        if 'name = "msquic"' in block:
            for line in block.splitlines():
                if line.startswith("version = "):
                    return line.split('"')[1]
    raise BuildError("vendor/msquic/Cargo.lock does not pin msquic")


def crate_source() -> Path:
    """Fetch the pinned crate (verified by its lockfile checksum) and return its root."""
    check_tools(("cargo",))
    manifest = str(PIN_DIR / "Cargo.toml")
    subprocess.run(["cargo", "fetch", "--locked", "--manifest-path", manifest], check=True)
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--manifest-path", manifest],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for pkg in json.loads(out)["packages"]:
        if pkg["name"] == "msquic":
            return Path(pkg["manifest_path"]).parent
    raise BuildError("cargo metadata did not list the msquic crate")


def cache_root() -> Path:
    env = os.environ.get("PYWEBTRANSPORT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "pywebtransport"


def cache_dir(version: str) -> Path:
    key = hashlib.sha256(
        "\n".join(
            (
                RECIPE_VERSION,
                platform.system(),
                platform.machine(),
                *CMAKE_FLAGS,
                *("\0".join(p) for p in SOURCE_PATCHES),
            )
        ).encode()
    ).hexdigest()[:12]
    return cache_root() / f"msquic-{version}-{key}"


def exported_symbols(lib: Path) -> list[str]:
    """Dynamic symbols the library defines (Linux: nm -D --defined-only)."""
    out = subprocess.run(
        ["nm", "-D", "--defined-only", str(lib)], check=True, capture_output=True, text=True
    ).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in {"T", "W", "D", "B", "R", "i"}:
            syms.append(parts[2].split("@")[0])
    return sorted(set(syms))


def patch_sources(src: Path, dest: Path) -> Path:
    """Copy the crate to ``dest`` and apply :data:`SOURCE_PATCHES`; return the copy."""
    shutil.copytree(src, dest, symlinks=True)
    for rel, old, new in SOURCE_PATCHES:
        path = dest / rel
        text = path.read_text()
        if text.count(old) != 1:
            raise BuildError(
                f"cannot patch {rel}: expected exactly one {old!r} (unexpected msquic crate contents)"
            )
        path.write_text(text.replace(old, new))
    return dest


def _build(src: Path, dest: Path) -> None:
    check_tools(build_tools(platform.system()))
    jobs = str(os.cpu_count() or 2)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    build = tmp / "build"
    try:
        t0 = time.monotonic()
        if SOURCE_PATCHES:
            src = patch_sources(src, tmp / "src")
        _log(f"configuring msquic from {src} (cold build: several minutes on 2 cores)")
        subprocess.run(
            ["cmake", "-S", str(src), "-B", str(build), *CMAKE_FLAGS,
             f"-DQUIC_OUTPUT_DIR={build / 'out'}"],
            check=True,
        )
        subprocess.run(
            ["cmake", "--build", str(build), "--target", "msquic", "--config", "Release", "--parallel", jobs],
            check=True,
        )
        name = lib_filename()
        built = next((p for p in (build / "out").rglob(name)), None) or next(
            (p for p in build.rglob(name)), None
        )
        if built is None:
            raise BuildError(f"msquic build finished but produced no {name}")
        (tmp / "lib").mkdir()
        (tmp / "include").mkdir()
        shutil.copy2(built.resolve(), tmp / "lib" / name)
        for h in HEADERS:
            hp = src / "src" / "inc" / h
            if hp.exists():
                shutil.copy2(hp, tmp / "include" / h)
        (tmp / "BUILD_INFO.json").write_text(
            json.dumps(
                {
                    "version": dest.name,
                    "flags": CMAKE_FLAGS,
                    "patches": [p[0] for p in SOURCE_PATCHES],
                    "seconds": round(time.monotonic() - t0, 1),
                },
                indent=2,
            )
        )
        shutil.rmtree(build)
        if (tmp / "src").exists():
            shutil.rmtree(tmp / "src")
        os.replace(tmp, dest)
        _log(f"built {dest / 'lib' / name} in {time.monotonic() - t0:.0f}s")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def ensure_msquic() -> MsQuicBuild:
    """Return the cached msquic build, building it first if needed."""
    version = pinned_version()
    dest = cache_dir(version)
    lib = dest / "lib" / lib_filename()
    if not lib.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        _build(crate_source(), dest)
    else:
        _log(f"using cached {lib}")
    return MsQuicBuild(version=version, lib=lib, include_dir=dest / "include")


# License files of the code a built libmsquic contains: msquic itself and the
# quictls (OpenSSL fork) it links statically.  Paths are inside the crate.
LICENSE_FILES = (
    ("msquic", "LICENSE", "MSQUIC-LICENSE.txt"),
    ("msquic", "THIRD-PARTY-NOTICES", "MSQUIC-THIRD-PARTY-NOTICES.txt"),
    ("quictls", "submodules/quictls/LICENSE.txt", "QUICTLS-LICENSE.txt"),
)


def quictls_version(src: Path) -> str:
    """Version of the bundled quictls, from its VERSION.dat (e.g. ``3.1.7+quic``)."""
    fields: dict[str, str] = {}
    for line in (src / "submodules" / "quictls" / "VERSION.dat").read_text().splitlines():
        key, _, value = line.partition("=")
        fields[key.strip()] = value.strip().strip('"')
    version = f"{fields.get('MAJOR')}.{fields.get('MINOR')}.{fields.get('PATCH')}"
    if fields.get("BUILD_METADATA"):
        version += f"+{fields['BUILD_METADATA']}"
    return version


def write_notices(dest: Path) -> list[Path]:
    """Copy the bundled code's license texts into ``dest`` with a notice naming versions.

    Wheels and sdists that carry (or build) libmsquic must ship these.
    """
    src = crate_source()
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for _, rel, name in LICENSE_FILES:
        shutil.copyfile(src / rel, dest / name)
        written.append(dest / name)
    notice = dest / "THIRD_PARTY_NOTICES.txt"
    notice.write_text(
        "pywebtransport bundles a build of the following third-party code.\n\n"
        f"msquic {pinned_version()} (Microsoft, MIT License): MSQUIC-LICENSE.txt;\n"
        "  its own third-party notices: MSQUIC-THIRD-PARTY-NOTICES.txt\n"
        f"quictls {quictls_version(src)} (the OpenSSL Project and quictls, Apache License 2.0),\n"
        "  linked statically into libmsquic: QUICTLS-LICENSE.txt\n"
    )
    written.append(notice)
    return written


def headers_only() -> Path:
    """Public msquic headers from the pinned crate (used with a prebuilt library)."""
    version = pinned_version()
    dest = cache_root() / f"msquic-headers-{version}"
    if not (dest / "msquic.h").exists():
        src = crate_source()
        tmp = Path(tempfile.mkdtemp(prefix="hdr.", dir=cache_root()))
        for h in HEADERS:
            if (src / "src" / "inc" / h).exists():
                shutil.copy2(src / "src" / "inc" / h, tmp / h)
        os.replace(tmp, dest)
    return dest


def main() -> int:
    try:
        b = ensure_msquic()
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(b.lib)
    return 0


if __name__ == "__main__":
    sys.exit(main())
