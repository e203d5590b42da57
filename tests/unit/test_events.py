"""Tests for pywebtransport.events."""

from __future__ import annotations

import asyncio
import logging

import pytest

from pywebtransport.events import Event, EventBus, EventEmitter, create_event_emitter, event_handler
from pywebtransport.exceptions import StreamError, TimeoutError
from pywebtransport.types import EventType


def test_event_defaults_and_type_normalisation() -> None:
    event = Event(type="session_ready", data={"a": 1})
    assert event.type is EventType.SESSION_READY
    assert event.timestamp > 0
    assert len(event.event_id) == 36
    assert Event(type="x").event_id != Event(type="x").event_id
    custom = Event(type="my_event")
    assert custom.type == "my_event" and not isinstance(custom.type, EventType)


def test_event_factories_and_predicates() -> None:
    conn = Event.for_connection(EventType.CONNECTION_ESTABLISHED, {"remote": "x"})
    assert conn.is_connection_event and not conn.is_session_event and conn.data == {"remote": "x"}
    session = Event.for_session(EventType.SESSION_READY, "sid", {"path": "/"})
    assert session.is_session_event and session.data == {"session_id": "sid", "path": "/"}
    stream = Event.for_stream(EventType.STREAM_OPENED, 4)
    assert stream.is_stream_event and stream.data == {"stream_id": 4}
    datagram = Event.for_datagram(EventType.DATAGRAM_RECEIVED, b"abc")
    assert datagram.is_datagram_event and datagram.data["size"] == 3
    error = Event.for_error(StreamError("bad", stream_id=4))
    assert error.type is EventType.PROTOCOL_ERROR and error.is_error_event
    assert error.data["type"] == "StreamError" and error.data["stream_id"] == 4
    timeout = Event.for_error(TimeoutError("late"))
    assert timeout.type is EventType.TIMEOUT_ERROR
    plain = Event.for_error(ValueError("v"))
    assert plain.data == {"type": "ValueError", "message": "v"}
    assert Event(type=EventType.CONNECTION_FAILED).is_error_event


def test_event_to_dict() -> None:
    source = object()
    data = Event(type=EventType.STREAM_CLOSED, data=1, source=source).to_dict()
    assert data["type"] == "stream_closed" and data["data"] == 1 and data["source"] == "object"


async def test_sync_and_async_handlers_run_in_order() -> None:
    emitter = EventEmitter()
    calls: list[str] = []

    def sync_handler(event: Event) -> None:
        calls.append("sync")

    async def async_handler(event: Event) -> None:
        await asyncio.sleep(0)
        calls.append("async")

    emitter.on(EventType.SESSION_READY, sync_handler)
    emitter.on("session_ready", async_handler)  # strings and enum members are interchangeable
    event = await emitter.emit(EventType.SESSION_READY, data={"k": 1})
    assert calls == ["sync", "async"]
    assert event.data == {"k": 1} and event.source is emitter


async def test_emit_source_override_and_data() -> None:
    emitter = EventEmitter()
    received: list[Event] = []
    emitter.on("custom", received.append)
    await emitter.emit("custom", data=5, source="me")
    assert received[0].data == 5 and received[0].source == "me"


async def test_once_handler_runs_once() -> None:
    emitter = EventEmitter()
    calls: list[int] = []
    emitter.once("e", lambda event: calls.append(1))
    await emitter.emit("e")
    await emitter.emit("e")
    assert calls == [1]
    assert emitter.listener_count("e") == 0


async def test_off_specific_and_all() -> None:
    emitter = EventEmitter()
    calls: list[str] = []

    def a(event: Event) -> None:
        calls.append("a")

    def b(event: Event) -> None:
        calls.append("b")

    emitter.on("e", a)
    emitter.on("e", b)
    emitter.off("e", a)
    await emitter.emit("e")
    assert calls == ["b"]
    emitter.off("e")
    await emitter.emit("e")
    assert calls == ["b"]
    emitter.off("never-registered")  # no error


async def test_on_any_and_off_any() -> None:
    emitter = EventEmitter()
    seen: list[str] = []

    def catch_all(event: Event) -> None:
        seen.append(str(event.type))

    emitter.on_any(catch_all)
    await emitter.emit("a")
    await emitter.emit(EventType.STREAM_OPENED)
    emitter.off_any(catch_all)
    await emitter.emit("b")
    assert seen == ["a", "stream_opened"]


async def test_failing_handler_does_not_stop_others(caplog: pytest.LogCaptureFixture) -> None:
    emitter = EventEmitter()
    calls: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("handler bug")

    emitter.on("e", broken)
    emitter.on("e", lambda event: calls.append("ok"))
    with caplog.at_level(logging.ERROR, logger="pywebtransport.events"):
        await emitter.emit("e")
    assert calls == ["ok"]
    assert "handler bug" in caplog.text
    assert emitter.get_stats()["handler_errors"] == 1


async def test_wait_for_with_condition() -> None:
    emitter = EventEmitter()

    async def produce() -> None:
        await asyncio.sleep(0)
        await emitter.emit("tick", data=1)
        await emitter.emit("tick", data=2)

    task = asyncio.create_task(produce())
    event = await emitter.wait_for("tick", timeout=1, condition=lambda e: e.data == 2)
    await task
    assert event.data == 2
    assert emitter.listener_count("tick") == 0  # the temporary handler is removed


async def test_wait_for_any_of_several_types() -> None:
    emitter = EventEmitter()
    waiter = asyncio.create_task(emitter.wait_for([EventType.SESSION_READY, EventType.SESSION_CLOSED], timeout=1))
    await asyncio.sleep(0)
    await emitter.emit(EventType.SESSION_CLOSED)
    assert (await waiter).type is EventType.SESSION_CLOSED


async def test_wait_for_timeout_raises_library_timeout() -> None:
    emitter = EventEmitter()
    with pytest.raises(TimeoutError) as info:
        await emitter.wait_for("never", timeout=0.01)
    assert info.value.timeout_duration == 0.01
    assert emitter.listener_count("never") == 0


async def test_wait_for_condition_error_propagates() -> None:
    emitter = EventEmitter()

    def bad_condition(event: Event) -> bool:
        raise ValueError("bad condition")

    waiter = asyncio.create_task(emitter.wait_for("e", timeout=1, condition=bad_condition))
    await asyncio.sleep(0)
    await emitter.emit("e")
    with pytest.raises(ValueError, match="bad condition"):
        await waiter


async def test_pause_queues_and_resume_delivers() -> None:
    emitter = EventEmitter()
    seen: list[int] = []
    emitter.on("e", lambda event: seen.append(event.data))
    emitter.pause()
    assert emitter.is_paused
    await emitter.emit("e", data=1)
    await emitter.emit("e", data=2)
    assert seen == [] and emitter.get_stats()["queued_events"] == 2
    task = emitter.resume()
    assert task is not None
    await task
    assert seen == [1, 2]
    assert emitter.resume() is None  # nothing queued


def test_listeners_and_counts() -> None:
    emitter = EventEmitter()

    def h1(event: Event) -> None: ...

    def h2(event: Event) -> None: ...

    emitter.on("e", h1)
    emitter.once("e", h2)
    assert emitter.listeners("e") == [h1, h2]
    assert emitter.listener_count("e") == 2
    assert emitter.event_names() == ["e"]
    with pytest.raises(TypeError):
        emitter.on("e", "not callable")  # type: ignore[arg-type]


def test_max_listeners_warning(caplog: pytest.LogCaptureFixture) -> None:
    emitter = EventEmitter()
    emitter.set_max_listeners(1)
    with caplog.at_level(logging.WARNING, logger="pywebtransport.events"):
        emitter.on("e", lambda event: None)
        assert "leak" not in caplog.text
        emitter.on("e", lambda event: None)
    assert "possible handler leak" in caplog.text
    with pytest.raises(ValueError):
        emitter.set_max_listeners(-1)


async def test_history_filter_and_limit() -> None:
    emitter = EventEmitter(max_history=3)
    for i in range(5):
        await emitter.emit("a" if i % 2 == 0 else "b", data=i)
    history = emitter.get_event_history()
    assert [e.data for e in history] == [2, 3, 4]
    assert [e.data for e in emitter.get_event_history("a")] == [2, 4]
    assert [e.data for e in emitter.get_event_history(limit=1)] == [4]
    assert emitter.get_event_history(limit=0) == []
    emitter.clear_history()
    assert emitter.get_event_history() == []


async def test_stats_and_close() -> None:
    emitter = create_event_emitter()
    calls: list[int] = []
    emitter.on("e", lambda event: calls.append(1))
    emitter.on_any(lambda event: None)
    await emitter.emit("e")
    stats = emitter.get_stats()
    assert stats["total_handlers"] == 1 and stats["any_handlers"] == 1 and stats["events_emitted"] == 1
    await emitter.close()
    await emitter.emit("e")
    assert calls == [1]
    assert emitter.get_stats()["closed"] is True
    assert emitter.listener_count("e") == 0


async def test_close_cancels_pending_resume_task() -> None:
    emitter = EventEmitter()
    started = asyncio.Event()

    async def slow(event: Event) -> None:
        started.set()
        await asyncio.sleep(10)

    emitter.on("e", slow)
    emitter.pause()
    await emitter.emit("e")
    task = emitter.resume()
    await started.wait()
    await emitter.close()
    assert task is not None and task.cancelled()


async def test_event_bus_publish_subscribe() -> None:
    bus = EventBus()
    seen: list[object] = []
    unsubscribe = bus.subscribe("topic", lambda event: seen.append(event.data))
    unsubscribe_all = bus.subscribe_all(lambda event: seen.append("any"))
    await bus.publish(Event(type="topic", data=1))
    unsubscribe()
    unsubscribe_all()
    await bus.publish(Event(type="topic", data=2))
    assert seen == [1, "any"]
    assert EventBus.get_instance() is EventBus.get_instance()
    bus.subscribe("once", lambda event: seen.append("once"), once=True)
    await bus.publish(Event(type="once"))
    await bus.publish(Event(type="once"))
    assert seen.count("once") == 1
    await bus.close()


def test_event_handler_decorator() -> None:
    @event_handler(EventType.SESSION_READY, "custom")
    def handler(event: Event) -> None: ...

    assert handler._event_types == (EventType.SESSION_READY, "custom")  # type: ignore[attr-defined]
