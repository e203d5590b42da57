"""QUIC varints and the bounds-checked Buffer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pywebtransport.h3.errors import FrameError, MessageError
from pywebtransport.h3.varint import MAX_VARINT, Buffer, decode_varint, encode_varint, varint_size


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (37, bytes.fromhex("25")),
        (15293, bytes.fromhex("7bbd")),
        (494878333, bytes.fromhex("9d7f3e7d")),
        (151288809941952652, bytes.fromhex("c2197c5eff14e88c")),
    ],
)
def test_rfc9000_examples(value: int, encoded: bytes) -> None:
    assert encode_varint(value) == encoded
    assert decode_varint(encoded) == (value, len(encoded))


def test_non_minimal_encoding_decodes() -> None:
    assert decode_varint(bytes.fromhex("4025")) == (37, 2)


@pytest.mark.parametrize("value", [-1, MAX_VARINT + 1])
def test_out_of_range(value: int) -> None:
    with pytest.raises(ValueError):
        encode_varint(value)
    with pytest.raises(ValueError):
        varint_size(value)


@given(st.integers(min_value=0, max_value=MAX_VARINT), st.binary(max_size=4))
def test_round_trip(value: int, suffix: bytes) -> None:
    encoded = encode_varint(value)
    assert len(encoded) == varint_size(value)
    assert decode_varint(encoded + suffix) == (value, len(encoded))
    for cut in range(len(encoded)):
        assert decode_varint(encoded[:cut]) is None


def test_decode_at_offset() -> None:
    data = b"\xff" + encode_varint(300)
    assert decode_varint(data, 1) == (300, 3)
    assert decode_varint(data, 3) is None


def test_buffer_reads_and_truncation() -> None:
    buf = Buffer(encode_varint(1000) + b"\x00\x00\x01\x00xyz")
    assert buf.pull_varint() == 1000
    assert buf.pull_uint32() == 256
    assert buf.pull_uint8() == ord("x")
    assert buf.remaining() == 2
    assert buf.pull_rest() == b"yz"
    assert buf.eof()
    with pytest.raises(FrameError):
        buf.pull_varint()
    with pytest.raises(FrameError):
        buf.pull_uint8()
    with pytest.raises(FrameError):
        Buffer(b"\x01").pull_bytes(2)
    with pytest.raises(FrameError):
        Buffer(b"").pull_bytes(-1)


def test_buffer_custom_error() -> None:
    with pytest.raises(MessageError):
        Buffer(b"\x40", MessageError).pull_varint()
