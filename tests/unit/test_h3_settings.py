"""SETTINGS codec, validation and the SETTINGS set we send."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pywebtransport.h3.errors import FrameError, SettingsError
from pywebtransport.h3.settings import PeerSettings, Setting, decode_settings, encode_settings, local_settings
from pywebtransport.h3.varint import encode_varint


def test_local_settings_serve_every_peer() -> None:
    sent = local_settings(max_field_section_size=16384)
    assert sent[Setting.QPACK_MAX_TABLE_CAPACITY] == 0
    assert sent[Setting.QPACK_BLOCKED_STREAMS] == 0
    assert sent[Setting.MAX_FIELD_SECTION_SIZE] == 16384
    assert sent[Setting.ENABLE_CONNECT_PROTOCOL] == 1
    assert sent[Setting.H3_DATAGRAM] == 1  # Chromium, aioquic, webtransport-go
    assert sent[Setting.ENABLE_WEBTRANSPORT_DRAFT02] == 1  # Chromium, aioquic
    assert sent[Setting.WT_ENABLED] == 1  # webtransport-go >= 0.11
    assert sent[Setting.WT_MAX_SESSIONS] >= 1  # Safari / draft-13
    # Never the draft-07 setting (Chromium would pick draft-07), nor draft-04 datagrams.
    assert Setting.WEBTRANSPORT_MAX_SESSIONS_DRAFT07 not in sent
    assert Setting.H3_DATAGRAM_DRAFT04 not in sent
    # Flow control only when configured.
    assert Setting.WT_INITIAL_MAX_DATA not in sent
    assert decode_settings(encode_settings(sent)) == sent


def test_flow_control_settings_when_configured() -> None:
    sent = local_settings(max_field_section_size=100, initial_max_data=1000, initial_max_streams_bidi=5)
    assert sent[Setting.WT_INITIAL_MAX_DATA] == 1000
    assert sent[Setting.WT_INITIAL_MAX_STREAMS_BIDI] == 5
    assert Setting.WT_INITIAL_MAX_STREAMS_UNI not in sent
    assert PeerSettings(sent).flow_control


def test_datagrams_can_be_disabled() -> None:
    assert Setting.H3_DATAGRAM not in local_settings(max_field_section_size=1, enable_datagrams=False)


@pytest.mark.parametrize("identifier", [0x0, 0x2, 0x3, 0x4, 0x5])
def test_http2_identifiers_rejected(identifier: int) -> None:
    with pytest.raises(SettingsError):
        decode_settings(encode_varint(identifier) + b"\x00")


def test_duplicate_rejected() -> None:
    with pytest.raises(SettingsError):
        decode_settings(b"\x06\x01\x06\x02")


@pytest.mark.parametrize("identifier", [0x08, 0x33, 0x2B603742, 0x2C7CF000])
def test_boolean_settings_validated(identifier: int) -> None:
    with pytest.raises(SettingsError):
        decode_settings(encode_varint(identifier) + b"\x02")


def test_truncated_payload_is_frame_error() -> None:
    with pytest.raises(FrameError):
        decode_settings(b"\x06")


def test_unknown_and_grease_ignored() -> None:
    grease = 0x1F * 123456 + 0x21
    assert decode_settings(encode_varint(grease) + b"\x05") == {grease: 5}


def test_peer_settings_views() -> None:
    chrome = PeerSettings({0x06: 16384, 0x07: 100, 0x33: 1, 0xFFD277: 1, 0x2B603742: 1})
    assert chrome.supports_webtransport and chrome.webtransport_draft02 and not chrome.webtransport_h3
    assert chrome.h3_datagram and not chrome.extended_connect and chrome.max_sessions == 1
    go = PeerSettings({0x08: 1, 0x33: 1, 0x2B603742: 1, 0x2C7CF000: 1, 0x14E9CD29: (1 << 62) - 1})
    assert go.webtransport_h3 and go.extended_connect and go.max_sessions > 1 and not go.flow_control
    wtr = PeerSettings({0x08: 1, 0x2B603742: 1, 0x33: 1, 0xC671706A: 1})
    assert wtr.supports_webtransport and wtr.max_sessions == 1
    assert not PeerSettings({}).supports_webtransport
    assert PeerSettings({0x2B61: 5, 0x2B64: 2, 0x2B65: 3}).initial_max_streams_bidi == 3


@given(st.dictionaries(st.integers(min_value=6, max_value=(1 << 62) - 1), st.integers(min_value=0, max_value=1)))
def test_round_trip(settings: dict[int, int]) -> None:
    assert decode_settings(encode_settings(settings)) == settings
