"""The structured-field subset used for WebTransport subprotocols."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pywebtransport.h3.structured_fields import (
    parse_string_item,
    parse_string_list,
    serialize_string,
    serialize_string_list,
)


def test_lists() -> None:
    assert parse_string_list(b'"a", "b c" , "d\\"e"') == ["a", "b c", 'd"e']
    assert parse_string_list(b"tok-1, tok/2") == ["tok-1", "tok/2"]  # drafts 10-12 tokens
    assert parse_string_list(b'"x";q=1;v="y";f=?0, "z";n=-1.5') == ["x", "z"]
    assert parse_string_list(b"") == []


@pytest.mark.parametrize("bad", [b'"a",', b'"a" "b"', b'"unterminated', b"1abc", b'"\\x"', b"(a b)", "é".encode()])
def test_invalid_lists(bad: bytes) -> None:
    assert parse_string_list(bad) is None


def test_items() -> None:
    assert parse_string_item(b'"echo"') == "echo"
    assert parse_string_item(b"echo") == "echo"
    assert parse_string_item(b'"echo" x') is None
    assert parse_string_item(b"") is None


def test_serialize() -> None:
    assert serialize_string('a"b\\') == b'"a\\"b\\\\"'
    assert serialize_string_list(["a", "b"]) == b'"a", "b"'
    with pytest.raises(ValueError):
        serialize_string("é")


@given(st.lists(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20), max_size=6))
def test_round_trip(values: list[str]) -> None:
    assert parse_string_list(serialize_string_list(values)) == values
