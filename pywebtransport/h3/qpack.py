"""QPACK (RFC 9204) restricted to the static table.

We advertise a dynamic table capacity of 0, so the decoder rejects any
reference to the dynamic table and any encoder-stream insertion, and the
encoder only emits static references and literals (Huffman-coded when that
is shorter).  Nothing is ever sent on our decoder stream.
"""

from __future__ import annotations

import functools
from typing import Iterable

from .errors import (
    FieldSectionTooLargeError,
    QpackDecoderStreamError,
    QpackDecompressionError,
    QpackEncoderStreamError,
)
from .huffman import huffman_decode, huffman_encode, huffman_encoded_length
from .varint import BytesLike

__all__ = [
    "STATIC_TABLE",
    "MAX_INT_CONTINUATION_BYTES",
    "DecoderStreamParser",
    "EncoderStreamParser",
    "Header",
    "decode_field_section",
    "decode_prefixed_int",
    "encode_field_section",
    "encode_prefixed_int",
    "field_section_size",
]

Header = tuple[bytes, bytes]

# RFC 9204 Appendix A.
STATIC_TABLE: tuple[Header, ...] = (
    (b":authority", b""),
    (b":path", b"/"),
    (b"age", b"0"),
    (b"content-disposition", b""),
    (b"content-length", b"0"),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"referer", b""),
    (b"set-cookie", b""),
    (b":method", b"CONNECT"),
    (b":method", b"DELETE"),
    (b":method", b"GET"),
    (b":method", b"HEAD"),
    (b":method", b"OPTIONS"),
    (b":method", b"POST"),
    (b":method", b"PUT"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"103"),
    (b":status", b"200"),
    (b":status", b"304"),
    (b":status", b"404"),
    (b":status", b"503"),
    (b"accept", b"*/*"),
    (b"accept", b"application/dns-message"),
    (b"accept-encoding", b"gzip, deflate, br"),
    (b"accept-ranges", b"bytes"),
    (b"access-control-allow-headers", b"cache-control"),
    (b"access-control-allow-headers", b"content-type"),
    (b"access-control-allow-origin", b"*"),
    (b"cache-control", b"max-age=0"),
    (b"cache-control", b"max-age=2592000"),
    (b"cache-control", b"max-age=604800"),
    (b"cache-control", b"no-cache"),
    (b"cache-control", b"no-store"),
    (b"cache-control", b"public, max-age=31536000"),
    (b"content-encoding", b"br"),
    (b"content-encoding", b"gzip"),
    (b"content-type", b"application/dns-message"),
    (b"content-type", b"application/javascript"),
    (b"content-type", b"application/json"),
    (b"content-type", b"application/x-www-form-urlencoded"),
    (b"content-type", b"image/gif"),
    (b"content-type", b"image/jpeg"),
    (b"content-type", b"image/png"),
    (b"content-type", b"text/css"),
    (b"content-type", b"text/html; charset=utf-8"),
    (b"content-type", b"text/plain"),
    (b"content-type", b"text/plain;charset=utf-8"),
    (b"range", b"bytes=0-"),
    (b"strict-transport-security", b"max-age=31536000"),
    (b"strict-transport-security", b"max-age=31536000; includesubdomains"),
    (b"strict-transport-security", b"max-age=31536000; includesubdomains; preload"),
    (b"vary", b"accept-encoding"),
    (b"vary", b"origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-xss-protection", b"1; mode=block"),
    (b":status", b"100"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"302"),
    (b":status", b"400"),
    (b":status", b"403"),
    (b":status", b"421"),
    (b":status", b"425"),
    (b":status", b"500"),
    (b"accept-language", b""),
    (b"access-control-allow-credentials", b"FALSE"),
    (b"access-control-allow-credentials", b"TRUE"),
    (b"access-control-allow-headers", b"*"),
    (b"access-control-allow-methods", b"get"),
    (b"access-control-allow-methods", b"get, post, options"),
    (b"access-control-allow-methods", b"options"),
    (b"access-control-expose-headers", b"content-length"),
    (b"access-control-request-headers", b"content-type"),
    (b"access-control-request-method", b"get"),
    (b"access-control-request-method", b"post"),
    (b"alt-svc", b"clear"),
    (b"authorization", b""),
    (b"content-security-policy", b"script-src 'none'; object-src 'none'; base-uri 'none'"),
    (b"early-data", b"1"),
    (b"expect-ct", b""),
    (b"forwarded", b""),
    (b"if-range", b""),
    (b"origin", b""),
    (b"purpose", b"prefetch"),
    (b"server", b""),
    (b"timing-allow-origin", b"*"),
    (b"upgrade-insecure-requests", b"1"),
    (b"user-agent", b""),
    (b"x-forwarded-for", b""),
    (b"x-frame-options", b"deny"),
    (b"x-frame-options", b"sameorigin"),
)

_STATIC_EXACT: dict[Header, int] = {}
_STATIC_NAME: dict[bytes, int] = {}
for _index, (_name, _value) in enumerate(STATIC_TABLE):
    _STATIC_EXACT.setdefault((_name, _value), _index)
    _STATIC_NAME.setdefault(_name, _index)

# Largest integer we accept in a prefixed-integer field (fits a QUIC varint).
_MAX_INT = (1 << 62) - 1
# A 62-bit value needs at most 9 continuation bytes after the prefix (RFC 7541
# §5.1 allows any number, "padded" with 0x80; RFC 9204 §4.1.1 lets us refuse).
MAX_INT_CONTINUATION_BYTES = 9


def encode_prefixed_int(value: int, prefix_bits: int, flags: int = 0) -> bytes:
    """RFC 7541 §5.1 integer with an N-bit prefix; ``flags`` fills the high bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((flags | value,))
    out = bytearray((flags | limit,))
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_prefixed_int(data: BytesLike, pos: int, prefix_bits: int) -> tuple[int, int] | None:
    """Decode a prefixed integer at ``pos``; ``None`` if ``data`` ends first.

    Values above 2**62, or more than :data:`MAX_INT_CONTINUATION_BYTES`
    continuation bytes, raise QPACK_DECOMPRESSION_FAILED.
    """
    if pos >= len(data):
        return None
    limit = (1 << prefix_bits) - 1
    value = data[pos] & limit
    pos += 1
    if value < limit:
        return value, pos
    shift = 0
    while True:
        if pos >= len(data):
            return None
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if value > _MAX_INT:
            raise QpackDecompressionError("integer overflow")
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 7 * MAX_INT_CONTINUATION_BYTES:
            raise QpackDecompressionError("integer encoding too long")


# Header values repeat (a client's :authority, :path and origin on every request): short
# strings are coded once.  Both caches are bounded in entries and in key length, so a
# peer sending ever new strings costs at most their size times the entry count.
_CACHED_STRING = 128


def _encode_string(value: bytes, prefix_bits: int, flags: int) -> bytes:
    if len(value) <= _CACHED_STRING:
        return _encode_string_cached(value, prefix_bits, flags)
    return _encode_string_uncached(value, prefix_bits, flags)


def _encode_string_uncached(value: bytes, prefix_bits: int, flags: int) -> bytes:
    huffman_length = huffman_encoded_length(value)
    if huffman_length < len(value):
        return encode_prefixed_int(huffman_length, prefix_bits, flags | (1 << prefix_bits)) + huffman_encode(value)
    return encode_prefixed_int(len(value), prefix_bits, flags) + value


def encode_field_section(headers: Iterable[Header]) -> bytes:
    """Encode a field section with static references and literals only."""
    # Required Insert Count = 0, Sign = 0, Delta Base = 0.
    out = [b"\x00\x00"]
    for name, value in headers:
        index = _STATIC_EXACT.get((name, value))
        if index is not None:
            # Indexed field line, static (1 T=1 index:6).
            out.append(encode_prefixed_int(index, 6, 0xC0))
            continue
        index = _STATIC_NAME.get(name)
        if index is not None:
            # Literal with name reference, N=0, static (01 N T=1 index:4).
            out.append(encode_prefixed_int(index, 4, 0x50))
        else:
            # Literal with literal name, N=0 (001 N H length:3).
            out.append(_encode_string(name, 3, 0x20))
        out.append(_encode_string(value, 7, 0x00))
    return b"".join(out)


def field_section_size(headers: Iterable[Header]) -> int:
    """Size of a field section as RFC 9114 §4.2.2 counts it."""
    size = 0
    for name, value in headers:
        size += len(name) + len(value) + 32
    return size


def _decode_string(data: BytesLike, pos: int, prefix_bits: int) -> tuple[bytes, int]:
    if pos >= len(data):
        raise QpackDecompressionError("truncated field line")
    huffman = data[pos] & (1 << prefix_bits)
    parsed = decode_prefixed_int(data, pos, prefix_bits)
    if parsed is None:
        raise QpackDecompressionError("truncated string length")
    length, pos = parsed
    end = pos + length
    if end > len(data):
        raise QpackDecompressionError("truncated string")
    raw = bytes(data[pos:end])
    if not huffman:
        return raw, end
    return (_huffman_decode_cached(raw) if length <= _CACHED_STRING else huffman_decode(raw)), end


_encode_string_cached = functools.lru_cache(maxsize=256)(_encode_string_uncached)
_huffman_decode_cached = functools.lru_cache(maxsize=256)(huffman_decode)


def _static_entry(index: int) -> Header:
    if index >= len(STATIC_TABLE):
        raise QpackDecompressionError(f"static table index {index} out of range")
    return STATIC_TABLE[index]


# A peer repeats its field sections (a client's CONNECT on every connection, a server's
# 200): short ones are decoded once.  Only sections that decoded are cached, bounded in
# entries and size; a peer sending ever new ones gets the uncached cost.
_CACHED_SECTION = 512


def decode_field_section(data: BytesLike, max_size: int | None = None) -> list[Header]:
    """Decode an encoded field section (the payload of a HEADERS frame).

    Any dynamic-table reference raises QPACK_DECOMPRESSION_FAILED (we never
    allow a dynamic table); exceeding ``max_size`` (RFC 9114 §4.2.2 size)
    raises :class:`FieldSectionTooLargeError`, a stream error.
    """
    if len(data) <= _CACHED_SECTION:
        return list(_decode_field_section_cached(bytes(data), max_size))
    return _decode_field_section(data, max_size)


def _decode_field_section_tuple(data: bytes, max_size: int | None) -> tuple[Header, ...]:
    return tuple(_decode_field_section(data, max_size))


_decode_field_section_cached = functools.lru_cache(maxsize=128)(_decode_field_section_tuple)


def _decode_field_section(data: BytesLike, max_size: int | None) -> list[Header]:
    parsed = decode_prefixed_int(data, 0, 8)
    if parsed is None:
        raise QpackDecompressionError("truncated field section prefix")
    required_insert_count, pos = parsed
    if required_insert_count != 0:
        raise QpackDecompressionError("dynamic table references are not allowed")
    parsed = decode_prefixed_int(data, pos, 7)
    if parsed is None:
        raise QpackDecompressionError("truncated field section prefix")
    # With Required Insert Count 0 the Base is irrelevant; RFC 9204 §4.5.1.2
    # does not forbid a non-zero Delta Base, so it is ignored.
    pos = parsed[1]

    headers: list[Header] = []
    size = 0
    end = len(data)
    while pos < end:
        first = data[pos]
        if first & 0x80:
            # Indexed field line: 1 T index:6
            if not first & 0x40:
                raise QpackDecompressionError("dynamic table reference")
            parsed = decode_prefixed_int(data, pos, 6)
            if parsed is None:
                raise QpackDecompressionError("truncated index")
            index, pos = parsed
            header = _static_entry(index)
        elif first & 0x40:
            # Literal with name reference: 01 N T index:4
            if not first & 0x10:
                raise QpackDecompressionError("dynamic table reference")
            parsed = decode_prefixed_int(data, pos, 4)
            if parsed is None:
                raise QpackDecompressionError("truncated index")
            index, pos = parsed
            value, pos = _decode_string(data, pos, 7)
            header = (_static_entry(index)[0], value)
        elif first & 0x20:
            # Literal with literal name: 001 N H length:3
            name, pos = _decode_string(data, pos, 3)
            value, pos = _decode_string(data, pos, 7)
            header = (name, value)
        else:
            # 0001xxxx indexed post-base, 0000xxxx literal with post-base name ref.
            raise QpackDecompressionError("dynamic table reference")
        size += len(header[0]) + len(header[1]) + 32
        if max_size is not None and size > max_size:
            raise FieldSectionTooLargeError(f"field section exceeds {max_size} bytes")
        headers.append(header)
    return headers


class _InstructionStreamParser:
    """Incremental reader of one-integer instructions on a QPACK stream.

    Every byte is looked at once (no buffer, no re-parse), and an unfinished
    integer gives up after :data:`MAX_INT_CONTINUATION_BYTES` continuation
    bytes, so the state a peer can make us hold is a few ints.
    """

    __slots__ = ("_value", "_shift", "_open")

    _prefix_bits = 8
    _error: type[QpackEncoderStreamError] | type[QpackDecoderStreamError]

    def __init__(self) -> None:
        self._value = 0
        self._shift = 0
        # True while an integer whose prefix was full is being continued.
        self._open = False

    @property
    def idle(self) -> bool:
        """No instruction is half-read."""
        return not self._open

    def feed(self, data: BytesLike) -> None:
        """Consume ``data``; raise the stream's error code on a bad instruction."""
        limit = (1 << self._prefix_bits) - 1
        max_shift = 7 * MAX_INT_CONTINUATION_BYTES
        for byte in data:
            if not self._open:
                self._check_first(byte)
                value = byte & limit
                if value < limit:
                    self._instruction(value)
                    continue
                self._value = value
                self._shift = 0
                self._open = True
                self._check_partial(value)
                continue
            self._value += (byte & 0x7F) << self._shift
            if self._value > _MAX_INT:
                raise self._error("integer overflow")
            if byte & 0x80:
                self._shift += 7
                if self._shift >= max_shift:
                    raise self._error("integer encoding too long")
                continue
            self._open = False
            self._instruction(self._value)

    def _check_first(self, byte: int) -> None:
        raise NotImplementedError

    def _check_partial(self, value: int) -> None:
        """Called once the prefix is full: ``value`` is a lower bound."""

    def _instruction(self, value: int) -> None:
        """A complete instruction with integer ``value``."""


class EncoderStreamParser(_InstructionStreamParser):
    """Validates the peer's QPACK encoder stream against a zero-capacity table.

    Only "Set Dynamic Table Capacity" to 0 is acceptable; any insertion or
    duplication, or a non-zero capacity, is QPACK_ENCODER_STREAM_ERROR.  A
    capacity whose 5-bit prefix is full is at least 31, so it fails at once.
    """

    __slots__ = ()

    _prefix_bits = 5
    _error = QpackEncoderStreamError

    def _check_first(self, byte: int) -> None:
        if byte & 0xE0 != 0x20:
            raise QpackEncoderStreamError("dynamic table insertion without capacity")

    def _check_partial(self, value: int) -> None:
        raise QpackEncoderStreamError(f"dynamic table capacity of at least {value} exceeds 0")

    def _instruction(self, value: int) -> None:
        if value != 0:
            raise QpackEncoderStreamError(f"dynamic table capacity {value} exceeds 0")


class DecoderStreamParser(_InstructionStreamParser):
    """Validates the peer's QPACK decoder stream.

    We never reference the dynamic table, so Section Acknowledgment and Insert
    Count Increment are errors (RFC 9204 §4.4); Stream Cancellation is fine.
    """

    __slots__ = ()

    _prefix_bits = 6
    _error = QpackDecoderStreamError

    def _check_first(self, byte: int) -> None:
        if byte & 0x80:
            raise QpackDecoderStreamError("section acknowledgment without dynamic table use")
        if not byte & 0x40:
            raise QpackDecoderStreamError("insert count increment without insertions")
