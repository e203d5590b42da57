"""Events and the asynchronous event emitter used by clients, servers and sessions."""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Container, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

from pywebtransport.exceptions import TimeoutError, WebTransportError
from pywebtransport.types import EventType
from pywebtransport.utils import get_logger

__all__ = [
    "Event",
    "EventBus",
    "EventEmitter",
    "EventHandler",
    "create_event_bus",
    "create_event_emitter",
    "event_handler",
]

logger = get_logger("events")

EventHandler: TypeAlias = Callable[["Event"], Awaitable[None] | None]
"""A callable taking an `Event`; it may be a coroutine function."""

F = TypeVar("F", bound=EventHandler)


def _normalize_type(event_type: EventType | str) -> EventType | str:
    try:
        return EventType(event_type)
    except ValueError:  # custom event names are allowed
        return event_type


@dataclass
class Event:
    """Something that happened, passed to event handlers.

    `type` is an `EventType` for the library's own events and may be any string for
    custom ones; `data` is event-specific and `source` the emitting object.
    """

    type: EventType | str
    timestamp: float = field(default_factory=time.time)
    data: Any = None
    source: Any = None
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def __post_init__(self) -> None:
        self.type = _normalize_type(self.type)

    @classmethod
    def for_connection(
        cls, event_type: EventType | str, connection_info: dict[str, Any], *, source: Any = None
    ) -> Event:
        """Create a connection event whose data is `connection_info`."""
        return cls(type=event_type, data=connection_info, source=source)

    @classmethod
    def for_session(
        cls,
        event_type: EventType | str,
        session_id: str,
        session_info: dict[str, Any] | None = None,
        *,
        source: Any = None,
    ) -> Event:
        """Create a session event; data holds ``session_id`` plus `session_info`."""
        return cls(type=event_type, data={"session_id": session_id, **(session_info or {})}, source=source)

    @classmethod
    def for_stream(
        cls,
        event_type: EventType | str,
        stream_id: int,
        stream_info: dict[str, Any] | None = None,
        *,
        source: Any = None,
    ) -> Event:
        """Create a stream event; data holds ``stream_id`` plus `stream_info`."""
        return cls(type=event_type, data={"stream_id": stream_id, **(stream_info or {})}, source=source)

    @classmethod
    def for_datagram(
        cls,
        event_type: EventType | str,
        data: bytes,
        datagram_info: dict[str, Any] | None = None,
        *,
        source: Any = None,
    ) -> Event:
        """Create a datagram event; data holds ``data`` and ``size`` plus `datagram_info`."""
        payload = {"data": data, "size": len(data), **(datagram_info or {})}
        return cls(type=event_type, data=payload, source=source)

    @classmethod
    def for_error(cls, error: BaseException, *, source: Any = None) -> Event:
        """Create a ``protocol_error`` event (``timeout_error`` for timeouts) describing `error`."""
        if isinstance(error, WebTransportError):
            data = error.to_dict()
        else:
            data = {"type": type(error).__name__, "message": str(error)}
        is_timeout = isinstance(error, TimeoutError | asyncio.TimeoutError)
        event_type = EventType.TIMEOUT_ERROR if is_timeout else EventType.PROTOCOL_ERROR
        return cls(type=event_type, data=data, source=source)

    def _has_prefix(self, prefix: str) -> bool:
        return str(self.type).startswith(prefix)

    @property
    def is_connection_event(self) -> bool:
        """True for ``connection_*`` events."""
        return self._has_prefix("connection_")

    @property
    def is_session_event(self) -> bool:
        """True for ``session_*`` events."""
        return self._has_prefix("session_")

    @property
    def is_stream_event(self) -> bool:
        """True for ``stream_*`` events."""
        return self._has_prefix("stream_")

    @property
    def is_datagram_event(self) -> bool:
        """True for ``datagram_*`` events."""
        return self._has_prefix("datagram_")

    @property
    def is_error_event(self) -> bool:
        """True for error events (``*_error``) and connection failures."""
        return str(self.type).endswith("_error") or self.type == EventType.CONNECTION_FAILED

    def to_dict(self) -> dict[str, Any]:
        """Return the event as a dictionary (the source is given by its type name)."""
        return {
            "id": self.event_id,
            "type": str(self.type),
            "timestamp": self.timestamp,
            "data": self.data,
            "source": type(self.source).__name__ if self.source is not None else None,
        }

    def __repr__(self) -> str:
        return f"Event(type={str(self.type)!r}, id={self.event_id[:8]}, timestamp={self.timestamp:.3f})"


class _Everything:
    """A container holding every event type (used while a catch-all handler exists)."""

    def __contains__(self, item: object) -> bool:
        return True


_EVERYTHING = _Everything()


class EventEmitter:
    """Register handlers for named events and emit events to them.

    Handlers may be plain functions or coroutine functions; `emit` runs plain ones and
    awaits coroutines, in registration order, and logs (without propagating) any
    exception a handler raises so that one faulty handler cannot break the others.

    Args:
        max_listeners: Number of handlers per event type above which a warning is logged
            (a common sign of a handler leak); 0 disables the warning.
        max_history: Number of recent events kept for `get_event_history`.
    """

    # Class-level defaults of the "has listeners" state. Emit sites inside the library test
    # ``self._ee_listened and EventType.X in self._ee_listening`` and build nothing while it
    # is false: ``_ee_listened`` (one attribute load, the common case) says whether any
    # handler exists at all, ``_ee_listening`` holds the event types with a handler (or
    # everything once a catch-all handler exists).
    _ee_listened: bool = False
    _ee_listening: Container[str] = frozenset()

    def __init__(self, *, max_listeners: int = 100, max_history: int = 1000) -> None:
        # Attribute names carry an "_ee" prefix so that subclasses (sessions, clients, ...)
        # can use names like "_closed" without breaking the emitter.
        self._ee_handlers: dict[EventType | str, list[EventHandler]] = {}
        self._ee_once: dict[EventType | str, list[EventHandler]] = {}
        self._ee_any_handlers: list[EventHandler] = []
        self._ee_max_listeners = max_listeners
        # History and pause queue are made on first use (760 bytes each, and most
        # emitters, e.g. a connection with one PROTOCOL_ERROR handler, never emit).
        self._ee_max_history = max_history
        self._ee_history: deque[Event] | None = None
        self._ee_paused = False
        self._ee_queue: deque[Event] | None = None
        self._ee_tasks: set[asyncio.Task[None]] | None = None  # handler tasks; made by the first
        self._ee_emitted = 0
        self._ee_handler_errors = 0
        self._ee_closed = False

    def _ee_ready(self) -> None:
        """Create the emitter state on first use.

        Library objects (sessions, streams, ...) inherit from `EventEmitter` without
        calling its ``__init__``, so that objects nobody listens to carry no emitter state.
        """
        if "_ee_handlers" not in self.__dict__:
            EventEmitter.__init__(self)

    def _ee_task_set(self) -> set[asyncio.Task[None]]:
        tasks = self._ee_tasks
        if tasks is None:
            tasks = self._ee_tasks = set()
        return tasks

    def _ee_record(self, event: Event) -> bool:
        """Add `event` to the history; queue it and return True while paused."""
        history = self._ee_history
        if history is None:
            history = self._ee_history = deque(maxlen=self._ee_max_history)
        history.append(event)
        if self._ee_paused:
            queue = self._ee_queue
            if queue is None:
                queue = self._ee_queue = deque()
            queue.append(event)
            return True
        return False

    def _ee_refresh(self) -> None:
        self._ee_listened = bool(self._ee_handlers or self._ee_once or self._ee_any_handlers)
        if self._ee_any_handlers:
            self._ee_listening = _EVERYTHING
        else:
            self._ee_listening = frozenset([*self._ee_handlers, *self._ee_once])

    def _ee_fire(self, event_type: EventType | str, data: Any) -> None:
        """Emit from synchronous library code (a no-op unless `event_type` has a handler).

        Plain handlers run at once, in registration order; coroutine handlers run as
        tasks. Handler exceptions are logged, never propagated into the library.
        """
        self._ee_ready()
        if self._ee_closed or event_type not in self._ee_listening:
            return
        event = Event(type=event_type, data=data, source=self)
        self._ee_emitted += 1
        if self._ee_record(event):
            return
        once = self._ee_once.pop(event.type, None)
        if once is not None:
            self._ee_refresh()
        handlers = [*self._ee_handlers.get(event.type, ()), *(once or ()), *self._ee_any_handlers]
        for handler in handlers:
            try:
                result = handler(event)
            except Exception:
                self._ee_handler_errors += 1
                logger.exception("Handler %r failed for event %r", handler, str(event.type))
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._ee_task_set().add(task)
                task.add_done_callback(self._ee_task_done)

    def _ee_task_done(self, task: asyncio.Future[Any]) -> None:
        assert isinstance(task, asyncio.Task)
        if self._ee_tasks is not None:
            self._ee_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._ee_handler_errors += 1
            logger.error("Event handler task failed", exc_info=task.exception())

    # -- registration ---------------------------------------------------------------------

    def on(self, event_type: EventType | str, handler: EventHandler) -> None:
        """Call `handler` every time `event_type` is emitted."""
        self._ee_ready()
        self._ee_add(self._ee_handlers, event_type, handler)

    def once(self, event_type: EventType | str, handler: EventHandler) -> None:
        """Call `handler` the next time `event_type` is emitted, then forget it."""
        self._ee_ready()
        self._ee_add(self._ee_once, event_type, handler)

    def _ee_add(
        self,
        table: dict[EventType | str, list[EventHandler]],
        event_type: EventType | str,
        handler: EventHandler,
    ) -> None:
        self._ee_ready()
        if not callable(handler):
            raise TypeError(f"event handler must be callable, got {type(handler).__name__}")
        key = _normalize_type(event_type)
        table.setdefault(key, []).append(handler)
        self._ee_refresh()
        count = self.listener_count(key)
        if self._ee_max_listeners and count > self._ee_max_listeners:
            logger.warning(
                "%d handlers registered for event %r (max_listeners=%d); possible handler leak",
                count,
                str(key),
                self._ee_max_listeners,
            )

    def off(self, event_type: EventType | str, handler: EventHandler | None = None) -> None:
        """Remove `handler` for `event_type`, or every handler of that type if None."""
        self._ee_ready()
        key = _normalize_type(event_type)
        for table in (self._ee_handlers, self._ee_once):
            handlers = table.get(key)
            if handlers is None:
                continue
            if handler is None:
                handlers.clear()
            else:
                # Remove every registration of this handler (it may have been added twice).
                handlers[:] = [h for h in handlers if h != handler]
            if not handlers:
                del table[key]
        self._ee_refresh()

    def on_any(self, handler: EventHandler) -> None:
        """Call `handler` for every emitted event, after the type-specific handlers."""
        self._ee_ready()
        if not callable(handler):
            raise TypeError(f"event handler must be callable, got {type(handler).__name__}")
        self._ee_any_handlers.append(handler)
        self._ee_refresh()

    def off_any(self, handler: EventHandler | None = None) -> None:
        """Remove a catch-all handler, or all of them if None."""
        self._ee_ready()
        if handler is None:
            self._ee_any_handlers.clear()
        else:
            self._ee_any_handlers[:] = [h for h in self._ee_any_handlers if h != handler]
        self._ee_refresh()

    def remove_all_listeners(self, event_type: EventType | str | None = None) -> None:
        """Remove the handlers of one event type, or all handlers including catch-all ones."""
        self._ee_ready()
        if event_type is not None:
            self.off(event_type)
            return
        self._ee_handlers.clear()
        self._ee_once.clear()
        self._ee_any_handlers.clear()
        self._ee_refresh()

    def listeners(self, event_type: EventType | str) -> list[EventHandler]:
        """Return the handlers registered for `event_type` (persistent ones first)."""
        self._ee_ready()
        key = _normalize_type(event_type)
        return [*self._ee_handlers.get(key, ()), *self._ee_once.get(key, ())]

    def listener_count(self, event_type: EventType | str) -> int:
        """Return how many handlers are registered for `event_type`."""
        self._ee_ready()
        key = _normalize_type(event_type)
        return len(self._ee_handlers.get(key, ())) + len(self._ee_once.get(key, ()))

    def event_names(self) -> list[EventType | str]:
        """Return the event types that have handlers."""
        self._ee_ready()
        return list(dict.fromkeys([*self._ee_handlers, *self._ee_once]))

    def set_max_listeners(self, max_listeners: int) -> None:
        """Set the per-type handler count above which a warning is logged (0 disables)."""
        self._ee_ready()
        if max_listeners < 0:
            raise ValueError("max_listeners must not be negative")
        self._ee_max_listeners = max_listeners

    # -- emitting -------------------------------------------------------------------------

    async def emit(self, event_type: EventType | str, *, data: Any = None, source: Any = None) -> Event:
        """Emit an event and run its handlers; returns the `Event`.

        While the emitter is paused the event is queued and delivered on `resume`.
        The default `source` is the emitter itself.
        """
        event = Event(type=event_type, data=data, source=self if source is None else source)
        await self.emit_event(event)
        return event

    async def emit_event(self, event: Event) -> None:
        """Emit an already built `Event`."""
        self._ee_ready()
        if self._ee_closed:
            return
        self._ee_emitted += 1
        if self._ee_record(event):
            return
        await self._ee_dispatch(event)

    async def _ee_dispatch(self, event: Event) -> None:
        once = self._ee_once.pop(event.type, [])
        if once:
            self._ee_refresh()
        handlers = [*self._ee_handlers.get(event.type, ()), *once, *self._ee_any_handlers]
        for handler in handlers:
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:
                self._ee_handler_errors += 1
                logger.exception("Handler %r failed for event %r", handler, str(event.type))

    async def wait_for(
        self,
        event_type: EventType | str | Iterable[EventType | str],
        *,
        timeout: float | None = None,
        condition: Callable[[Event], bool] | None = None,
    ) -> Event:
        """Wait for the next event of `event_type` (or any of several types).

        Only events for which `condition` returns true count. Raises the library's
        `TimeoutError` after `timeout` seconds.
        """
        types = [event_type] if isinstance(event_type, str) else list(event_type)
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()

        def check(event: Event) -> None:
            if future.done():
                return
            try:
                if condition is None or condition(event):
                    future.set_result(event)
            except Exception as exc:  # a broken condition must not leave the waiter hanging
                future.set_exception(exc)

        for t in types:
            self.on(t, check)
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            names = ", ".join(str(t) for t in types)
            raise TimeoutError(
                f"Timed out after {timeout:g}s waiting for event {names}",
                timeout_duration=timeout,
                operation=f"wait_for({names})",
            ) from None
        finally:
            for t in types:
                self.off(t, check)

    def pause(self) -> None:
        """Queue emitted events instead of delivering them until `resume`."""
        self._ee_ready()
        self._ee_paused = True

    def resume(self) -> asyncio.Task[None] | None:
        """Deliver queued events and go back to immediate delivery.

        Queued events are delivered by a task on the running loop, which is returned
        (None when there was nothing queued).
        """
        self._ee_ready()
        self._ee_paused = False
        if not self._ee_queue:  # None or empty
            return None
        task = asyncio.get_running_loop().create_task(self._ee_drain_queue())
        tasks = self._ee_task_set()
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    async def _ee_drain_queue(self) -> None:
        queue = self._ee_queue
        while queue and not self._ee_paused:
            await self._ee_dispatch(queue.popleft())

    @property
    def is_paused(self) -> bool:
        """Whether events are being queued."""
        self._ee_ready()
        return self._ee_paused

    # -- inspection and shutdown ----------------------------------------------------------

    def get_event_history(
        self, event_type: EventType | str | None = None, limit: int | None = None
    ) -> list[Event]:
        """Return recent events, oldest first, optionally of one type and at most `limit`."""
        self._ee_ready()
        if event_type is None:
            events = list(self._ee_history or ())
        else:
            key = _normalize_type(event_type)
            events = [e for e in self._ee_history or () if e.type == key]
        if limit is not None:
            events = events[-limit:] if limit > 0 else []
        return events

    def clear_history(self) -> None:
        """Forget the recorded events."""
        self._ee_ready()
        if self._ee_history is not None:
            self._ee_history.clear()

    def get_stats(self) -> dict[str, Any]:
        """Return counters describing handlers, events and the queue."""
        self._ee_ready()
        return {
            "event_types": len(self.event_names()),
            "total_handlers": sum(map(len, self._ee_handlers.values())),
            "once_handlers": sum(map(len, self._ee_once.values())),
            "any_handlers": len(self._ee_any_handlers),
            "events_emitted": self._ee_emitted,
            "handler_errors": self._ee_handler_errors,
            "history_size": len(self._ee_history or ()),
            "queued_events": len(self._ee_queue or ()),
            "paused": self._ee_paused,
            "max_listeners": self._ee_max_listeners,
            "closed": self._ee_closed,
        }

    async def close(self) -> None:
        """Drop all handlers, queued events and history; later emits are ignored."""
        self._ee_ready()
        self._ee_closed = True
        tasks = list(self._ee_tasks or ())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.remove_all_listeners()
        if self._ee_queue is not None:
            self._ee_queue.clear()
        if self._ee_history is not None:
            self._ee_history.clear()


class EventBus:
    """A process-wide publish/subscribe hub built on `EventEmitter`.

    `EventBus.get_instance()` returns the shared instance; `subscribe` returns a function
    that undoes the subscription.
    """

    _instance: EventBus | None = None

    def __init__(self) -> None:
        self._emitter = EventEmitter(max_listeners=0)

    @classmethod
    def get_instance(cls) -> EventBus:
        """Return the shared bus, creating it on first use."""
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    async def publish(self, event: Event) -> None:
        """Deliver `event` to its subscribers."""
        await self._emitter.emit_event(event)

    def subscribe(
        self, event_type: EventType | str, handler: EventHandler, *, once: bool = False
    ) -> Callable[[], None]:
        """Subscribe `handler` to `event_type`; call the returned function to unsubscribe."""
        if once:
            self._emitter.once(event_type, handler)
        else:
            self._emitter.on(event_type, handler)
        return lambda: self._emitter.off(event_type, handler)

    def subscribe_all(self, handler: EventHandler) -> Callable[[], None]:
        """Subscribe `handler` to every event; call the returned function to unsubscribe."""
        self._emitter.on_any(handler)
        return lambda: self._emitter.off_any(handler)

    def get_stats(self) -> dict[str, Any]:
        """Return the underlying emitter's counters."""
        return self._emitter.get_stats()

    async def close(self) -> None:
        """Drop all subscriptions."""
        await self._emitter.close()
        self._emitter = EventEmitter(max_listeners=0)


def create_event_bus() -> EventBus:
    """Create a standalone `EventBus` (`EventBus.get_instance` returns the shared one)."""
    return EventBus()


def create_event_emitter(*, max_listeners: int = 100, max_history: int = 1000) -> EventEmitter:
    """Create a standalone `EventEmitter`."""
    return EventEmitter(max_listeners=max_listeners, max_history=max_history)


def event_handler(*event_types: EventType | str) -> Callable[[F], F]:
    """Mark a function as a handler of `event_types` (stored in ``func._event_types``).

    The marker is informational; register the handler with `EventEmitter.on` as usual,
    or iterate ``_event_types`` to register it for each listed type.
    """

    def decorator(func: F) -> F:
        existing: tuple[EventType | str, ...] = getattr(func, "_event_types", ())
        func._event_types = (*existing, *map(_normalize_type, event_types))  # type: ignore[attr-defined]
        return func

    return decorator
