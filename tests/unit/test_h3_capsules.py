"""Capsule codec and the incremental CapsuleParser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pywebtransport.h3.capsules import (
    CapsuleParser,
    CapsuleType,
    CloseSessionCapsule,
    DataBlockedCapsule,
    DatagramCapsule,
    DrainSessionCapsule,
    MaxDataCapsule,
    MaxStreamsCapsule,
    StreamsBlockedCapsule,
    encode_capsule,
    encode_close_session,
    encode_data_blocked,
    encode_drain_session,
    encode_max_data,
    encode_max_streams,
    encode_streams_blocked,
    truncate_utf8,
)
from pywebtransport.h3.errors import H3UsageError, MessageError
from pywebtransport.h3.varint import encode_varint


def parse(data: bytes, chop: bool = False, max_size: int = 65536) -> list[object]:
    parser = CapsuleParser(max_size)
    if not chop:
        return list(parser.feed(data))
    out: list[object] = []
    for i in range(len(data)):
        out += parser.feed(data[i : i + 1])
    assert parser.at_capsule_boundary
    return out


def test_close_wire_format() -> None:
    assert encode_close_session(0x1234, "bye") == bytes.fromhex("6843") + b"\x07\x00\x00\x12\x34bye"
    assert parse(encode_close_session(7, "é")) == [CloseSessionCapsule(7, "é")]


def test_close_reason_truncated_on_character_boundary() -> None:
    reason = "€" * 400  # 1200 bytes
    raw = truncate_utf8(reason)
    assert len(raw) == 1023 and raw.decode() == "€" * 341
    assert parse(encode_close_session(1, reason)) == [CloseSessionCapsule(1, "€" * 341)]
    with pytest.raises(H3UsageError):
        encode_close_session(1 << 32)


@pytest.mark.parametrize(
    "value",
    [b"\x00\x00\x00", b"\x00\x00\x00\x00" + b"a" * 1025, b"\x00\x00\x00\x00\xff"],
)
def test_bad_close(value: bytes) -> None:
    with pytest.raises(MessageError):
        parse(encode_capsule(CapsuleType.CLOSE_WEBTRANSPORT_SESSION, value))


def test_all_types_round_trip_byte_by_byte() -> None:
    data = (
        encode_capsule(0x29 * 3 + 0x17, b"grease!")  # GREASE: skipped
        + encode_drain_session()
        + encode_max_data(1 << 40)
        + encode_max_streams(True, 10)
        + encode_max_streams(False, 11)
        + encode_data_blocked(5)
        + encode_streams_blocked(True, 6)
        + encode_streams_blocked(False, 7)
        + encode_capsule(CapsuleType.DATAGRAM, b"dgram")
        + encode_close_session(3, "x")
    )
    expected = [
        DrainSessionCapsule(),
        MaxDataCapsule(1 << 40),
        MaxStreamsCapsule(True, 10),
        MaxStreamsCapsule(False, 11),
        DataBlockedCapsule(5),
        StreamsBlockedCapsule(True, 6),
        StreamsBlockedCapsule(False, 7),
        DatagramCapsule(b"dgram"),
        CloseSessionCapsule(3, "x"),
    ]
    assert parse(data) == expected
    assert parse(data, chop=True) == expected


def test_unknown_capsule_larger_than_limit_is_skipped() -> None:
    data = encode_capsule(0x12345, b"z" * 5000) + encode_drain_session()
    assert parse(data, max_size=100) == [DrainSessionCapsule()]
    parser = CapsuleParser(100)
    assert parser.feed(data[:10]) == []
    assert parser.feed(data[10:4000]) == []
    assert parser.feed(data[4000:]) == [DrainSessionCapsule()]


def test_known_capsule_over_limit() -> None:
    with pytest.raises(MessageError):
        parse(encode_capsule(CapsuleType.DATAGRAM, b"x" * 101), max_size=100)


@pytest.mark.parametrize(
    "data",
    [
        encode_capsule(CapsuleType.WT_MAX_DATA, b""),
        encode_capsule(CapsuleType.WT_MAX_DATA, b"\x01\x02"),
        encode_capsule(CapsuleType.WT_MAX_STREAMS_BIDI, encode_varint((1 << 60) + 1)),
        encode_capsule(CapsuleType.WT_MAX_STREAM_DATA, b"\x01"),
        encode_capsule(CapsuleType.WT_STREAM_DATA_BLOCKED, b"\x01"),
    ],
)
def test_malformed_flow_control(data: bytes) -> None:
    with pytest.raises(MessageError):
        parse(data)


@given(st.integers(min_value=0, max_value=0xFFFFFFFF), st.text(max_size=300), st.lists(st.integers(0, 400)))
def test_close_round_trip_any_split(code: int, reason: str, splits: list[int]) -> None:
    data = encode_close_session(code, reason) + encode_max_data(9)
    parser = CapsuleParser()
    out: list[object] = []
    pos = 0
    for cut in sorted(splits) + [len(data)]:
        out += parser.feed(data[pos:cut])
        pos = max(pos, cut)
    expected_reason = truncate_utf8(reason).decode()
    assert out == [CloseSessionCapsule(code, expected_reason), MaxDataCapsule(9)]
