"""Write the hand-made seed corpus of the H3 fuzz target (fuzz/corpus/h3/).

Each seed is a script for ``h3_target.run_one``: a head byte (config and how
far the setup goes), then operations ``op`` = side << 7 | kind << 4 | arg.
Run it again after changing the script format; the fuzzer adds its own finds.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from h3_target import PREFIXES  # noqa: E402

from pywebtransport.h3.capsules import encode_close_session  # noqa: E402
from pywebtransport.h3.frames import FrameType, encode_frame  # noqa: E402
from pywebtransport.h3.qpack import encode_field_section  # noqa: E402
from pywebtransport.h3.settings import encode_settings  # noqa: E402

CLIENT, SERVER = 0x80, 0x00  # which side receives the operation


def blob(data: bytes) -> bytes:
    if len(data) < 0xF0:
        return bytes((len(data),)) + data
    assert len(data) < 15 * 256
    return bytes((0xF0 + len(data) // 256, len(data) % 256)) + data


def stream(side: int, view_index: int, prefix: bytes, data: bytes, fin: bool = False, frame: bool = False) -> bytes:
    kind = 1 if (fin or frame) else 0
    arg = view_index + (8 if fin else 0)
    return bytes((side | kind << 4 | arg, PREFIXES.index(prefix))) + blob(data)


def datagram(side: int, data: bytes) -> bytes:
    return bytes((side | 2 << 4,)) + blob(data)


def capsule(side: int, type_index: int, value: bytes, session_slot: int = 0) -> bytes:
    return bytes((side | 5 << 4 | session_slot << 3 | type_index,)) + blob(value)


def headers(side: int, request_index: int, extra: bytes, stream_slot: int, which: int = 0x7F) -> bytes:
    """HEADERS from canned list ``request_index``: ``which`` < its length replaces that
    value with ``extra``, < 0x80 appends ``extra`` split as name/value, else inserts it as a name."""
    return bytes((side | 6 << 4 | request_index,)) + blob(extra) + bytes((which, stream_slot))


def local(side: int, op: int, *args: bytes) -> bytes:
    return bytes((side | 7 << 4 | op,)) + b"".join(args)


def reset(side: int, view_index: int, stop: bool, code: int) -> bytes:
    return bytes((side | 3 << 4 | view_index, 0 if stop else 1, code >> 8, code & 0xFF))


def closed(side: int, view_index: int) -> bytes:
    return bytes((side | 4 << 4 | view_index,))


OPEN, REQUESTED, SETTINGS_ONLY, BARE = 0x00, 0x40, 0x20, 0x10
DEFAULT, SMALL, FLOW = 0, 1, 2

SEEDS = {
    "open_wt_streams": bytes((OPEN | DEFAULT,))
    + stream(SERVER, 7, b"\x54\x00", b"hello")
    + stream(SERVER, 4, b"\x40\x41\x00", b"bidi", fin=True)
    + stream(CLIENT, 5, b"\x40\x41\x00", b"from server")
    + datagram(SERVER, b"\x00ping")
    + datagram(CLIENT, b"\x00pong")
    + local(SERVER, 4, b"\x00\x01")
    + local(CLIENT, 7, b"\x00", blob(b"dgram")),
    "close_capsule": bytes((OPEN | DEFAULT,))
    + capsule(SERVER, 1, encode_close_session(7, "bye")[3:])
    + closed(SERVER, 3),
    "drain_and_close": bytes((OPEN | DEFAULT,))
    + capsule(CLIENT, 2, b"")
    + local(SERVER, 3, b"\x00")
    + local(SERVER, 2, b"\x00", b"\x05", blob(b"reason")),
    "early_streams_small": bytes((REQUESTED | SMALL,))
    + b"".join(stream(SERVER, 7 + i % 3, b"\x54\x00", b"e" * 30) for i in range(5))
    + b"".join(datagram(SERVER, b"\x00d") for _ in range(6))
    + local(SERVER, 0, b"\x00", blob(b"v")),
    "early_then_reject": bytes((REQUESTED | SMALL,))
    + stream(SERVER, 7, b"\x54\x00", b"x" * 60)
    + stream(SERVER, 4, b"\x40\x41\x00", b"y")
    + local(SERVER, 1, b"\x00", b"\x04"),
    "flow_control": bytes((OPEN | FLOW,))
    + capsule(SERVER, 3, b"\x44\x00")
    + capsule(SERVER, 5, b"\x05")
    + local(SERVER, 5, b"\x00", b"\x09", b"\x05")
    + b"".join(stream(SERVER, 7 + i, b"\x54\x00", b"z" * 90) for i in range(3)),
    "settings_before_requests": bytes((BARE | DEFAULT,))
    + stream(SERVER, 3, b"", encode_frame(FrameType.HEADERS, encode_field_section(
        [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"/")])))
    + stream(SERVER, 0, b"\x00", encode_frame(FrameType.SETTINGS, encode_settings({0x2B603742: 1, 0x33: 1}))),
    "control_frames": bytes((SETTINGS_ONLY | DEFAULT,))
    + stream(SERVER, 0, b"", encode_frame(FrameType.MAX_PUSH_ID, b"\x05") + encode_frame(FrameType.GOAWAY, b"\x00"))
    + stream(CLIENT, 0, b"", encode_frame(FrameType.GOAWAY, b"\x04")),
    "qpack_streams": bytes((SETTINGS_ONLY | DEFAULT,))
    + stream(SERVER, 1, b"", b"\x20\x20")
    + stream(SERVER, 2, b"", b"\x41\x7f\x80\x01")
    + stream(CLIENT, 1, b"", b"\x3f" + b"\x80" * 12),
    "requests_and_responses": bytes((SETTINGS_ONLY | SMALL,))
    + headers(SERVER, 0, b"", 0)
    + headers(SERVER, 1, b"x-ab\r\n", 1)
    + headers(SERVER, 2, b"", 2)
    + headers(SERVER, 0, b"", 3, which=3)
    + headers(SERVER, 1, b'"a", b;q=1, "c"', 4, which=5)
    + headers(SERVER, 0, b"http", 5, which=1)
    + headers(SERVER, 2, b"X-Upper", 6, which=0x90)
    + local(SERVER, 0, b"\x00", blob(b""))
    + local(CLIENT, 8, blob(b"p"))
    + headers(CLIENT, 3, b"", 0)
    + headers(CLIENT, 4, b"", 1),
    "resets": bytes((OPEN | DEFAULT,))
    + stream(SERVER, 7, b"\x54\x00", b"r")
    + reset(SERVER, 7, False, 0x170D)
    + reset(SERVER, 3, True, 0x10C)
    + reset(SERVER, 0, False, 0)
    + closed(SERVER, 7),
    "datagram_capsules": bytes((OPEN | SMALL,))
    + capsule(SERVER, 0, b"capsule datagram")
    + capsule(SERVER, 7, b"unknown capsule")
    + capsule(SERVER, 0, b"x" * 100),
    "frames_on_request": bytes((OPEN | DEFAULT,))
    + stream(SERVER, 3, b"\x00", b"\x00\x03abc", frame=True)
    + stream(SERVER, 3, b"\x21", b"grease")
    + stream(SERVER, 4, b"\x01", b"\x00\x00\xd1", frame=True),
}


def main() -> None:
    out = Path(__file__).resolve().parent / "corpus" / "h3"
    out.mkdir(parents=True, exist_ok=True)
    for name, data in SEEDS.items():
        (out / f"seed-{name}").write_bytes(data)
    print(f"{len(SEEDS)} seeds in {out}")
    for name, data in SEEDS.items():
        print(f"  seed-{name}: {len(data)} bytes, sha1 {hashlib.sha1(data).hexdigest()[:12]}")


if __name__ == "__main__":
    main()
