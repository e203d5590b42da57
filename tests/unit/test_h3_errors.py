"""Error codes and the WebTransport <-> HTTP/3 application code mapping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pywebtransport.h3.errors import (
    WT_APP_ERROR_FIRST,
    WT_APP_ERROR_LAST,
    ErrorCode,
    FrameError,
    H3Error,
    H3StreamError,
    H3UsageError,
    MessageError,
    SettingsError,
    http3_code_to_webtransport,
    is_session_gone_code,
    webtransport_code_to_http3,
)


def test_codes() -> None:
    assert int(ErrorCode.H3_NO_ERROR) == 0x100
    assert int(ErrorCode.H3_VERSION_FALLBACK) == 0x110
    assert int(ErrorCode.QPACK_DECODER_STREAM_ERROR) == 0x202
    assert int(ErrorCode.WT_BUFFERED_STREAM_REJECTED) == 0x3994BD84
    assert int(ErrorCode.WT_SESSION_GONE) == 0x170D7B68


def test_exceptions_carry_codes() -> None:
    assert FrameError("x").code == ErrorCode.H3_FRAME_ERROR
    assert SettingsError().code == ErrorCode.H3_SETTINGS_ERROR
    assert isinstance(MessageError(), H3StreamError)
    err = H3Error(0x105, "boom")
    assert err.code == 0x105 and err.message == "boom" and "0x105" in repr(err)


def test_mapping_range_endpoints() -> None:
    assert webtransport_code_to_http3(0) == WT_APP_ERROR_FIRST
    assert webtransport_code_to_http3(0xFFFFFFFF) == WT_APP_ERROR_LAST
    assert webtransport_code_to_http3(0xFF) == 0x52E4A40FA9E2  # draft-02's last code
    with pytest.raises(H3UsageError):
        webtransport_code_to_http3(1 << 32)
    with pytest.raises(H3UsageError):
        webtransport_code_to_http3(-1)


@given(st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_mapping_round_trip(code: int) -> None:
    mapped = webtransport_code_to_http3(code)
    assert (mapped - 0x21) % 0x1F != 0  # never a GREASE codepoint
    assert http3_code_to_webtransport(mapped) == code


@pytest.mark.parametrize("grease", [0x52E4A40FA8F9, 0x52E4A40FA918, 0x52E4A40FA9D2])
def test_grease_in_range_has_no_app_code(grease: int) -> None:
    assert (grease - 0x21) % 0x1F == 0
    assert http3_code_to_webtransport(grease) is None


def test_tolerant_reverse_mapping() -> None:
    assert http3_code_to_webtransport(42) == 42  # raw code (wtransport)
    assert http3_code_to_webtransport(ErrorCode.H3_CONNECT_ERROR) is None  # Chromium session gone
    assert http3_code_to_webtransport(ErrorCode.WT_SESSION_GONE) is None
    assert http3_code_to_webtransport(WT_APP_ERROR_LAST + 1) is None
    assert is_session_gone_code(0x10F) and is_session_gone_code(0x170D7B68)
    assert not is_session_gone_code(0x100)
