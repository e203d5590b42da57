"""QPACK static-only encoder/decoder and encoder/decoder stream validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pywebtransport.h3.errors import (
    FieldSectionTooLargeError,
    QpackDecoderStreamError,
    QpackDecompressionError,
    QpackEncoderStreamError,
)
from pywebtransport.h3.qpack import (
    STATIC_TABLE,
    DecoderStreamParser,
    EncoderStreamParser,
    decode_field_section,
    decode_prefixed_int,
    encode_field_section,
    encode_prefixed_int,
    field_section_size,
)


def test_static_table_shape() -> None:
    assert len(STATIC_TABLE) == 99
    assert STATIC_TABLE[0] == (b":authority", b"")
    assert STATIC_TABLE[15] == (b":method", b"CONNECT")
    assert STATIC_TABLE[25] == (b":status", b"200")
    assert STATIC_TABLE[98] == (b"x-frame-options", b"sameorigin")


def test_rfc9204_b1_literal_with_name_reference() -> None:
    data = bytes.fromhex("0000510b2f696e6465782e68746d6c")
    assert decode_field_section(data) == [(b":path", b"/index.html")]


def test_rfc9204_b2_dynamic_reference_rejected() -> None:
    # Request stream 4 of RFC 9204 B.2 refers to dynamic entries.
    with pytest.raises(QpackDecompressionError):
        decode_field_section(bytes.fromhex("03811011"))


def test_rfc9204_b2_encoder_stream_rejected() -> None:
    with pytest.raises(QpackEncoderStreamError):
        EncoderStreamParser().feed(bytes.fromhex("3fbd01c00f7777772e6578616d706c652e636f6d"))


def test_encoder_uses_static_index_and_huffman() -> None:
    assert encode_field_section([(b":method", b"CONNECT")]) == b"\x00\x00\xcf"
    encoded = encode_field_section([(b":authority", b"www.example.com")])
    # Literal with static name ref 0, Huffman value (12 bytes instead of 15).
    assert encoded == b"\x00\x00\x50\x8c" + bytes.fromhex("f1e3c2e5f23a6ba0ab90f4ff")
    # Literal name, not Huffman when it would be longer.
    encoded = encode_field_section([(b"\x7f", b"")])
    assert encoded == b"\x00\x00\x21\x7f\x00"


@pytest.mark.parametrize(
    "section",
    [
        b"\x01\x00",  # Required Insert Count != 0
        b"\x00\x00\x80",  # indexed, dynamic
        b"\x00\x00\x10",  # indexed post-base
        b"\x00\x00\x00",  # literal with post-base name reference
        b"\x00\x00\x40\x00",  # literal with dynamic name reference
        b"\x00\x00\xff\x24",  # static index 99 out of range
        b"\x00",  # truncated prefix
        b"\x00\x00\x51",  # truncated value
        b"\x00\x00\x51\x05ab",  # value shorter than its length
        b"\x00\x00\x23ab",  # literal name truncated
        b"\x00\x00\x51\x81\xff",  # bad Huffman value
        b"\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f",  # integer overflow
    ],
)
def test_decoder_errors(section: bytes) -> None:
    with pytest.raises(QpackDecompressionError):
        decode_field_section(section)


def test_field_section_size_limit() -> None:
    headers = [(b"x-a", b"b" * 100)]
    encoded = encode_field_section(headers)
    assert field_section_size(headers) == 3 + 100 + 32
    assert decode_field_section(encoded, 135) == headers
    with pytest.raises(FieldSectionTooLargeError):
        decode_field_section(encoded, 134)


def test_encoder_stream_accepts_zero_capacity_in_pieces() -> None:
    parser = EncoderStreamParser()
    parser.feed(b"\x20")
    parser.feed(b"\x20\x20")
    assert parser.idle
    with pytest.raises(QpackEncoderStreamError):
        # 5-bit prefix full: the capacity is at least 31 > 0, refused before
        # its continuation bytes arrive (they used to be buffered).
        parser.feed(b"\x3f")


def test_encoder_stream_unfinished_integer_is_refused_at_once() -> None:
    # Issue 8 finding 2: 0x3F then endless 0x80 was buffered and re-parsed forever.
    parser = EncoderStreamParser()
    with pytest.raises(QpackEncoderStreamError):
        for _ in range(1000):
            parser.feed(b"\x3f" if parser.idle else b"\x80")


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_decoder_stream_unfinished_integer_gives_up(chunk: int) -> None:
    # Stream cancellation with a 6-bit prefix full, then 0x80 padding for ever.
    data = b"\x7f" + b"\x80" * (1 << 16)
    parser = DecoderStreamParser()
    fed = 0
    with pytest.raises(QpackDecoderStreamError, match="too long"):
        for i in range(0, len(data), chunk):
            parser.feed(data[i : i + chunk])
            fed += chunk
    assert fed <= 16  # gives up within a few bytes, not after 64 KiB


def test_decoder_stream_large_ids_in_any_split() -> None:
    stream_ids = [0, 62, 63, 64, 1 << 20, (1 << 62) - 1]
    data = b"".join(encode_prefixed_int(i, 6, 0x40) for i in stream_ids)
    for step in (1, 2, 3, len(data)):
        parser = DecoderStreamParser()
        for i in range(0, len(data), step):
            parser.feed(data[i : i + step])
        assert parser.idle
    with pytest.raises(QpackDecoderStreamError, match="overflow"):
        DecoderStreamParser().feed(encode_prefixed_int(1 << 62, 6, 0x40))


def test_decoder_stream_holds_no_bytes() -> None:
    # Each byte is read once; a half-read instruction is kept as integers only.
    parser = DecoderStreamParser()
    for _ in range(1000):
        parser.feed(b"\x41" * 100 + b"\x7f\x80")  # ends inside an integer
        parser.feed(b"\x00")
    assert parser.idle
    state = [getattr(parser, n) for cls in type(parser).__mro__ for n in getattr(cls, "__slots__", ())]
    assert state and all(isinstance(value, int) for value in state)


def test_field_section_integer_padding_is_bounded() -> None:
    with pytest.raises(QpackDecompressionError, match="too long"):
        decode_field_section(b"\x00\x00\xff" + b"\x80" * 20 + b"\x00")


@pytest.mark.parametrize("instruction", [b"\x80", b"\xc0", b"\x40\x00", b"\x00"])
def test_encoder_stream_insertions_rejected(instruction: bytes) -> None:
    with pytest.raises(QpackEncoderStreamError):
        EncoderStreamParser().feed(instruction)


def test_decoder_stream() -> None:
    parser = DecoderStreamParser()
    parser.feed(b"\x44\x7f")  # stream cancellations are fine
    parser.feed(b"\x81"[:0])
    with pytest.raises(QpackDecoderStreamError):
        DecoderStreamParser().feed(b"\x84")  # section acknowledgment
    with pytest.raises(QpackDecoderStreamError):
        DecoderStreamParser().feed(b"\x01")  # insert count increment


@given(st.integers(min_value=0, max_value=(1 << 62) - 1), st.integers(min_value=1, max_value=8))
def test_prefixed_int_round_trip(value: int, prefix: int) -> None:
    encoded = encode_prefixed_int(value, prefix)
    assert decode_prefixed_int(encoded, 0, prefix) == (value, len(encoded))
    assert decode_prefixed_int(encoded[:-1], 0, prefix) is None


header_name = st.one_of(
    st.sampled_from([name for name, _ in STATIC_TABLE]),
    st.binary(min_size=1, max_size=30).map(lambda b: b.lower()),
)
header_value = st.one_of(st.sampled_from([value for _, value in STATIC_TABLE]), st.binary(max_size=100))


@given(st.lists(st.tuples(header_name, header_value), max_size=12))
def test_round_trip(headers: list[tuple[bytes, bytes]]) -> None:
    assert decode_field_section(encode_field_section(headers)) == headers


def test_interop_with_pylsqpack() -> None:
    pylsqpack = pytest.importorskip("pylsqpack")
    headers = [
        (b":method", b"CONNECT"),
        (b":protocol", b"webtransport"),
        (b":scheme", b"https"),
        (b":authority", b"localhost:4433"),
        (b":path", b"/wt?x=1"),
        (b"origin", b"https://localhost"),
        (b"user-agent", b"pywebtransport test"),
    ]
    decoder = pylsqpack.Decoder(0, 0)
    _, decoded = decoder.feed_header(0, encode_field_section(headers))
    assert list(decoded) == headers
    encoder = pylsqpack.Encoder()
    for index, entry in enumerate(STATIC_TABLE):
        _, section = encoder.encode(index, [entry])
        assert decode_field_section(section) == [entry]
    _, section = encoder.encode(200, headers)
    assert decode_field_section(section) == headers
