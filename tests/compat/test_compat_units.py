"""0.1.x helpers that need no network: utils, constants, types, the event bus, lazy emitters."""

from __future__ import annotations

import asyncio

import pytest

from pywebtransport import constants, types, utils
from pywebtransport.events import Event, EventBus, EventEmitter, create_event_bus
from pywebtransport.exceptions import ConfigurationError
from pywebtransport.h3.errors import ErrorCode
from pywebtransport.h3.settings import Setting
from pywebtransport.types import EventType


def test_address_and_error_code_helpers() -> None:
    assert utils.is_ipv4_address("127.0.0.1") and not utils.is_ipv4_address("::1")
    assert utils.is_ipv6_address("::1") and utils.is_ipv6_address("[::1]") and not utils.is_ipv6_address("host")
    utils.validate_address(("localhost", 4433))
    for bad in (("", 1), ("h", 0), ("h",), "h:1"):
        with pytest.raises(ConfigurationError):
            utils.validate_address(bad)
    utils.validate_error_code(0)
    utils.validate_error_code((1 << 62) - 1)
    for bad_code in (-1, 1 << 62, True):
        with pytest.raises(ConfigurationError):
            utils.validate_error_code(bad_code)


def test_normalize_headers() -> None:
    assert utils.normalize_headers({"Content-Type": "x", b"X-Bin": b"v", "n": 1}) == {
        "content-type": "x",
        "x-bin": "v",
        "n": "1",
    }


async def test_create_task_with_timeout() -> None:
    fast = utils.create_task_with_timeout(asyncio.sleep(0, result=7), 1.0, name="fast")
    assert await fast == 7 and fast.get_name() == "fast"
    slow = utils.create_task_with_timeout(asyncio.sleep(10), timeout=0.01)
    with pytest.raises(asyncio.TimeoutError):
        await slow
    assert await utils.create_task_with_timeout(asyncio.sleep(0, result="x")) == "x"


def test_constants_come_from_the_h3_core() -> None:
    wt = constants.WebTransportConstants
    assert wt.SETTINGS_ENABLE_WEBTRANSPORT == Setting.ENABLE_WEBTRANSPORT_DRAFT02 == 0x2B603742
    assert wt.SETTINGS_H3_DATAGRAM == 0x33 and wt.SETTINGS_ENABLE_CONNECT_PROTOCOL == 8
    assert (wt.WEBTRANSPORT_BIDI_STREAM_TYPE, wt.WEBTRANSPORT_UNI_STREAM_TYPE) == (0x41, 0x54)
    assert (wt.CLOSE_WEBTRANSPORT_SESSION_TYPE, wt.DRAIN_WEBTRANSPORT_SESSION_TYPE) == (0x2843, 0x78AE)
    assert constants.ErrorCodes.H3_NO_ERROR == ErrorCode.H3_NO_ERROR == 0x100
    assert constants.ErrorCodes.WT_SESSION_GONE == ErrorCode.WT_SESSION_GONE
    assert constants.ErrorCodes.APP_INVALID_REQUEST == 0x1004 and constants.ErrorCodes.NO_VIABLE_PATH == 0x10
    assert "https" in constants.WEBTRANSPORT_SCHEMES and constants.DEFAULT_LOG_LEVEL == "INFO"
    assert constants.RECOMMENDED_BUFFER_SIZES["medium"] == 64 * 1024


def test_type_aliases_are_usable() -> None:
    def handler(data: types.Data, headers: types.Headers, sid: types.SessionId) -> types.Timeout:
        return None

    assert handler(b"", {}, "1") is None
    assert types.Buffer == bytes | bytearray | memoryview
    assert isinstance(b"x", types.ReadableStreamProtocol) is False


async def test_event_bus_factory_and_lazy_emitter() -> None:
    bus = create_event_bus()
    assert isinstance(bus, EventBus) and bus is not EventBus.get_instance()
    got: list[Event] = []
    unsubscribe = bus.subscribe(EventType.SESSION_READY, got.append)
    await bus.publish(Event(type=EventType.SESSION_READY, data={"session_id": "1"}))
    unsubscribe()
    await bus.publish(Event(type=EventType.SESSION_READY))
    assert len(got) == 1

    class Lazy(EventEmitter):
        def __init__(self) -> None:  # does not call EventEmitter.__init__, like library objects
            self.value = 1

    lazy = Lazy()
    assert not lazy._ee_listened and EventType.STREAM_OPENED not in lazy._ee_listening
    seen: list[Event] = []

    async def async_handler(event: Event) -> None:
        seen.append(event)

    lazy.on(EventType.STREAM_OPENED, async_handler)
    assert lazy._ee_listened and EventType.STREAM_OPENED in lazy._ee_listening
    assert EventType.STREAM_CLOSED not in lazy._ee_listening
    lazy._ee_fire(EventType.STREAM_CLOSED, {})  # nobody listens: nothing happens
    lazy._ee_fire(EventType.STREAM_OPENED, {"stream_id": 4})
    await asyncio.sleep(0)
    assert [e.data for e in seen] == [{"stream_id": 4}] and seen[0].source is lazy
    await lazy.emit(EventType.STREAM_OPENED, data={"stream_id": 8})
    assert seen[-1].data == {"stream_id": 8}
    lazy.off(EventType.STREAM_OPENED)
    assert not lazy._ee_listened
    lazy.on_any(seen.append)
    assert EventType.DATAGRAM_SENT in lazy._ee_listening
