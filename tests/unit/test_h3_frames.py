"""HTTP/3 frame encoding and the incremental FrameParser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pywebtransport.h3.errors import ExcessiveLoadError, FrameError, FrameUnexpectedError
from pywebtransport.h3.frames import Frame, FrameParser, FrameType, encode_data_frame_header, encode_frame
from pywebtransport.h3.varint import encode_varint


def parse_all(data: bytes, splits: list[int] | None = None, max_payload: int = 1 << 16) -> list[Frame]:
    parser = FrameParser(max_payload)
    frames: list[Frame] = []
    if splits is None:
        frames += parser.feed(data)
    else:
        pos = 0
        for cut in sorted(splits) + [len(data)]:
            frames += parser.feed(data[pos:cut])
            pos = max(pos, cut)
    return frames


def merge_data(frames: list[Frame]) -> list[tuple[int, bytes]]:
    """Join DATA chunks so frame boundaries can be compared."""
    merged: list[tuple[int, bytes]] = []
    pending = b""
    for frame in frames:
        if frame.type == FrameType.DATA:
            pending += frame.payload
            if frame.complete:
                merged.append((0, pending))
                pending = b""
        else:
            assert frame.complete
            merged.append((frame.type, frame.payload))
    assert pending == b""
    return merged


def test_encode_frame() -> None:
    assert encode_frame(FrameType.HEADERS, b"abc") == b"\x01\x03abc"
    assert encode_data_frame_header(70) == b"\x00\x40\x46"


def test_data_is_streamed_not_buffered() -> None:
    parser = FrameParser()
    first = parser.feed(encode_data_frame_header(10) + b"hello")
    assert first == [Frame(FrameType.DATA, b"hello", False)]
    assert not parser.at_frame_boundary
    assert parser.feed(b"world") == [Frame(FrameType.DATA, b"world", True)]
    assert parser.at_frame_boundary


def test_empty_frames() -> None:
    assert parse_all(b"\x00\x00\x01\x00") == [Frame(0, b"", True), Frame(1, b"", True)]


def test_unknown_and_grease_frames_skipped() -> None:
    grease = encode_frame(0x21, b"x" * 100) + encode_frame(0x1F * 7 + 0x21, b"") + encode_frame(0xABCDE, b"zz")
    data = grease + encode_frame(FrameType.HEADERS, b"h")
    assert parse_all(data) == [Frame(FrameType.HEADERS, b"h")]
    assert parse_all(data, list(range(len(data)))) == [Frame(FrameType.HEADERS, b"h")]


def test_unknown_frames_larger_than_limit_are_skipped() -> None:
    data = encode_frame(0x21, b"x" * 1000) + encode_frame(FrameType.SETTINGS, b"")
    assert parse_all(data, max_payload=10) == [Frame(FrameType.SETTINGS, b"")]


@pytest.mark.parametrize("frame_type", [0x2, 0x6, 0x8, 0x9])
def test_reserved_http2_types(frame_type: int) -> None:
    with pytest.raises(FrameUnexpectedError):
        parse_all(encode_frame(frame_type, b""))


def test_webtransport_signal_inside_stream() -> None:
    with pytest.raises(FrameError):
        parse_all(encode_frame(FrameType.HEADERS, b"x") + b"\x40\x41\x00")


def test_oversized_control_frame() -> None:
    with pytest.raises(ExcessiveLoadError):
        parse_all(encode_varint(FrameType.HEADERS) + encode_varint(100), max_payload=99)


def test_data_frame_has_no_size_limit() -> None:
    frames = parse_all(encode_frame(FrameType.DATA, b"y" * 500), max_payload=10)
    assert merge_data(frames) == [(0, b"y" * 500)]


frame_strategy = st.tuples(
    st.sampled_from([FrameType.DATA, FrameType.HEADERS, FrameType.SETTINGS, FrameType.GOAWAY, FrameType.MAX_PUSH_ID]),
    st.binary(max_size=300),
)


@given(st.lists(frame_strategy, max_size=8), st.lists(st.integers(min_value=0, max_value=3000), max_size=20))
def test_round_trip_any_split(frames: list[tuple[int, bytes]], splits: list[int]) -> None:
    data = b"".join(encode_frame(t, p) for t, p in frames)
    assert merge_data(parse_all(data, splits)) == [(int(t), p) for t, p in frames]


@given(st.lists(frame_strategy, max_size=4))
def test_round_trip_single_bytes(frames: list[tuple[int, bytes]]) -> None:
    data = b"".join(encode_frame(t, p) for t, p in frames)
    assert merge_data(parse_all(data, list(range(len(data))))) == [(int(t), p) for t, p in frames]
