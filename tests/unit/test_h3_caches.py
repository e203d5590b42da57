"""The sans-IO core caches what peers repeat (field sections, SETTINGS, field checks):
results must be independent copies, errors must never be cached, and big inputs bypass."""

from __future__ import annotations

import pytest

from pywebtransport.h3 import qpack, settings
from pywebtransport.h3.errors import FieldSectionTooLargeError, QpackDecompressionError, SettingsError
from pywebtransport.h3.messages import validate_fields
from pywebtransport.h3.errors import MessageError
from pywebtransport.h3.qpack import decode_field_section, encode_field_section
from pywebtransport.h3.settings import decode_settings, encode_settings

from h3_pair import SERVER_CONTROL, make_pair

REQUEST = [
    (b":method", b"CONNECT"),
    (b":scheme", b"https"),
    (b":authority", b"example.com:4433"),
    (b":path", b"/chat"),
    (b":protocol", b"webtransport-h3"),
]


def test_a_repeated_field_section_decodes_to_an_independent_list_each_time() -> None:
    block = encode_field_section(REQUEST)
    first = decode_field_section(block)
    first.append((b"x-added", b"by the caller"))
    first[0] = (b":method", b"GET")
    assert decode_field_section(block) == REQUEST
    assert decode_field_section(bytearray(block)) == REQUEST


def test_a_bad_field_section_fails_every_time() -> None:
    bad = b"\x01\x00\xc0"  # a dynamic table reference
    for _ in range(3):
        with pytest.raises(QpackDecompressionError):
            decode_field_section(bad)


def test_the_size_limit_is_part_of_what_is_remembered() -> None:
    block = encode_field_section(REQUEST)
    assert decode_field_section(block, 4096) == REQUEST
    with pytest.raises(FieldSectionTooLargeError):
        decode_field_section(block, 40)
    assert decode_field_section(block, None) == REQUEST


def test_a_large_field_section_bypasses_the_cache() -> None:
    big = [*REQUEST, (b"x-big", b"v" * (qpack._CACHED_SECTION * 2))]
    before = qpack._decode_field_section_cached.cache_info().currsize
    assert decode_field_section(encode_field_section(big)) == big
    assert qpack._decode_field_section_cached.cache_info().currsize == before


def test_settings_decode_to_an_independent_dict_and_bad_ones_always_fail() -> None:
    payload = encode_settings({0x1: 0, 0x6: 16384, 0x8: 1})
    first = decode_settings(payload)
    first[0x6] = 1
    assert decode_settings(payload) == {0x1: 0, 0x6: 16384, 0x8: 1}
    duplicate = encode_settings({0x6: 1}) * 2
    for _ in range(3):
        with pytest.raises(SettingsError):
            decode_settings(duplicate)
    assert settings._decode_settings_cached.cache_info().currsize >= 1


def test_field_checks_reject_a_bad_field_every_time_and_keep_order_rules() -> None:
    validate_fields(REQUEST, frozenset(n for n, _ in REQUEST))
    for _ in range(3):
        with pytest.raises(MessageError):
            validate_fields([(b":path", b"/a\r\nb")], frozenset({b":path"}))
        with pytest.raises(MessageError):  # the same good fields, in a bad order
            validate_fields([(b"origin", b"x"), (b":path", b"/chat")], frozenset({b":path"}))
        with pytest.raises(MessageError):  # a known-good field where it is not allowed
            validate_fields([(b":path", b"/chat")], frozenset())


def test_repeated_requests_and_responses_encode_and_parse_the_same() -> None:
    frames = set()
    for session_id in (0, 4, 8):
        frames.add(make_pair().client.connect_session(session_id, authority="example.com:4433", path="/chat"))
        pair = make_pair()
        pair.open_session(session_id)  # request parsed and answered, response parsed
        assert "WebTransportSessionRequested" in [type(e).__name__ for e in pair.server_events]
        assert "WebTransportSessionEstablished" in [type(e).__name__ for e in pair.client_events]
    assert len(frames) == 1
    pair = make_pair(settings=False)
    data = pair.server.local_control_stream_data(SERVER_CONTROL)
    for _ in range(2):
        fresh = make_pair(settings=False)
        fresh.client.receive_stream_data(SERVER_CONTROL, data, False)
        assert fresh.client.session_limit() >= 1



def test_field_values_of_other_bytes_types_are_checked_without_the_cache() -> None:
    good = [(b":path", bytearray(b"/chat"))]
    validate_fields(good, frozenset({b":path"}))  # type: ignore[arg-type]
    with pytest.raises(MessageError):
        validate_fields([(b":path", bytearray(b"/a\nb"))], frozenset({b":path"}))  # type: ignore[arg-type]
