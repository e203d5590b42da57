"""Huffman code table, RFC 7541 example vectors, round trips, padding rules."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pywebtransport.h3._huffman_table import EOS, HUFFMAN_CODES
from pywebtransport.h3.errors import QpackDecompressionError
from pywebtransport.h3.huffman import huffman_decode, huffman_encode, huffman_encoded_length

# RFC 7541 Appendix C.4 and C.6.
VECTORS = [
    (b"www.example.com", "f1e3c2e5f23a6ba0ab90f4ff"),
    (b"no-cache", "a8eb10649cbf"),
    (b"custom-key", "25a849e95ba97d7f"),
    (b"custom-value", "25a849e95bb8e8b4bf"),
    (b"302", "6402"),
    (b"307", "640eff"),
    (b"private", "aec3771a4b"),
    (b"Mon, 21 Oct 2013 20:13:21 GMT", "d07abe941054d444a8200595040b8166e082a62d1bff"),
    (b"Mon, 21 Oct 2013 20:13:22 GMT", "d07abe941054d444a8200595040b8166e084a62d1bff"),
    (b"https://www.example.com", "9d29ad171863c78f0b97c8e9ae82ae43d3"),
    (b"gzip", "9bd9ab"),
    (
        b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
        "94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
    ),
]


def test_table_is_a_complete_prefix_code() -> None:
    assert len(HUFFMAN_CODES) == 257
    assert sum(Fraction(1, 1 << length) for _, length in HUFFMAN_CODES) == 1
    assert HUFFMAN_CODES[EOS] == (0x3FFFFFFF, 30)
    codes = {(code, length) for code, length in HUFFMAN_CODES}
    assert len(codes) == 257


@pytest.mark.parametrize(("plain", "encoded"), VECTORS)
def test_rfc7541_vectors(plain: bytes, encoded: str) -> None:
    assert huffman_encode(plain) == bytes.fromhex(encoded)
    assert huffman_decode(bytes.fromhex(encoded)) == plain
    assert huffman_encoded_length(plain) == len(encoded) // 2


@given(st.binary(max_size=200))
def test_round_trip(data: bytes) -> None:
    encoded = huffman_encode(data)
    assert len(encoded) == huffman_encoded_length(data)
    assert huffman_decode(encoded) == data


def test_empty() -> None:
    assert huffman_encode(b"") == b""
    assert huffman_decode(b"") == b""


@pytest.mark.parametrize(
    "bad",
    [
        b"\xff",  # 8 bits of padding
        b"\xff\xff\xff\xff",  # contains EOS
        b"\x00",  # '0' then padding of zeros
        bytes.fromhex("f1e3c2e5f23a6ba0ab90f4fe"),  # padding not all ones
        bytes.fromhex("f1e3c2e5f23a6ba0ab90f4ffff"),  # extra full byte of padding
    ],
)
def test_invalid_padding_and_eos(bad: bytes) -> None:
    with pytest.raises(QpackDecompressionError):
        huffman_decode(bad)
