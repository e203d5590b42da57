"""Random bytes into every parser: only the protocol's own errors may escape."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from h3_pair import make_pair

from pywebtransport.h3 import H3Connection
from pywebtransport.h3.capsules import CapsuleParser
from pywebtransport.h3.errors import H3Error
from pywebtransport.h3.frames import FrameParser, FrameType, encode_frame
from pywebtransport.h3.huffman import huffman_decode
from pywebtransport.h3.qpack import DecoderStreamParser, EncoderStreamParser, decode_field_section
from pywebtransport.h3.settings import decode_settings
from pywebtransport.h3.structured_fields import parse_string_item, parse_string_list
from pywebtransport.h3.varint import Buffer, encode_varint

chunks = st.lists(st.binary(max_size=64), max_size=8)


Parser = FrameParser | CapsuleParser | EncoderStreamParser | DecoderStreamParser


def feed_all(parser: Parser, data: list[bytes]) -> None:
    try:
        for chunk in data:
            parser.feed(chunk)
    except H3Error:
        pass


@given(chunks, st.integers(min_value=0, max_value=100))
def test_frame_parser(data: list[bytes], limit: int) -> None:
    feed_all(FrameParser(limit), data)


@given(chunks, st.integers(min_value=0, max_value=100))
def test_capsule_parser(data: list[bytes], limit: int) -> None:
    feed_all(CapsuleParser(limit), data)


@given(chunks)
def test_qpack_stream_parsers(data: list[bytes]) -> None:
    feed_all(EncoderStreamParser(), data)
    feed_all(DecoderStreamParser(), data)


@given(st.binary(max_size=200))
def test_single_shot_decoders(data: bytes) -> None:
    for decode in (decode_settings, decode_field_section, huffman_decode):
        try:
            decode(data)
        except H3Error:
            pass
    buf = Buffer(data)
    try:
        while True:
            buf.pull_varint()
            buf.pull_bytes(buf.pull_uint8() % 5)
    except H3Error:
        pass
    parse_string_list(data)
    parse_string_item(data)


@given(st.binary(max_size=200).map(lambda b: b"\x00\x00" + b))
def test_field_section_bodies(data: bytes) -> None:
    try:
        decode_field_section(data, 4096)
    except H3Error:
        pass


# Peer-initiated stream IDs seen by a server (client-initiated) and a client.
server_streams = st.sampled_from([0, 4, 8, 2, 6, 10, 14, 18])
client_streams = st.sampled_from([1, 5, 3, 7, 11, 15, 0])


def prefixes() -> st.SearchStrategy[bytes]:
    return st.sampled_from(
        [
            b"",
            b"\x00",
            b"\x02",
            b"\x03",
            b"\x54\x00",
            b"\x40\x54\x00",
            b"\x40\x41\x00",
            encode_frame(FrameType.HEADERS, b"\x00\x00\xcf"),
            encode_frame(FrameType.DATA, b"x"),
        ]
    )


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200, deadline=None)
@given(st.lists(st.tuples(server_streams, prefixes(), st.binary(max_size=40), st.booleans()), max_size=10))
def test_server_connection(ops: list[tuple[int, bytes, bytes, bool]]) -> None:
    pair = make_pair()
    pair.open_session()
    try:
        for stream_id, prefix, data, fin in ops:
            pair.server.receive_stream_data(stream_id, prefix + data, fin)
            pair.server.receive_datagram(prefix + data)
            if fin:
                pair.server.receive_stream_reset(stream_id, len(data))
                pair.server.receive_stop_sending(stream_id, len(data))
    except H3Error:
        pass


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200, deadline=None)
@given(st.lists(st.tuples(client_streams, prefixes(), st.binary(max_size=40), st.booleans()), max_size=10))
def test_client_connection(ops: list[tuple[int, bytes, bytes, bool]]) -> None:
    pair = make_pair()
    pair.open_session()
    try:
        for stream_id, prefix, data, fin in ops:
            pair.client.receive_stream_data(stream_id, prefix + data, fin)
            pair.client.receive_datagram(prefix + data)
    except H3Error:
        pass


@settings(max_examples=200, deadline=None)  # no per-example deadline: the CI machine is shared
@given(st.binary(max_size=300), st.booleans())
def test_fresh_server_any_control_stream(data: bytes, fin: bool) -> None:
    server = H3Connection(False)
    for stream_id in (2, 0):
        try:
            server.receive_stream_data(stream_id, data, fin)
        except H3Error:
            pass


@settings(max_examples=200, deadline=None)  # no per-example deadline: the CI machine is shared
@given(st.binary(max_size=200))
def test_capsules_on_open_session(body: bytes) -> None:
    pair = make_pair()
    pair.open_session()
    frame = encode_varint(0) + encode_varint(len(body)) + body
    try:
        pair.server.receive_stream_data(0, frame)
        pair.client.receive_stream_data(0, frame)
    except H3Error:
        pass
