"""Per-event-loop engine: owns the shim's event queue and dispatches records.

One :class:`Engine` exists per asyncio loop.  msquic worker threads append
event records to its queue; the queue's fd wakes the loop (``add_reader``)
only on the empty -> non-empty transition, and :meth:`Engine._drain` pulls
one batch of records per wake-up with one native call.

The drain is bounded: it handles at most ``_BATCH`` records and returns to
the loop.  The fd stays readable while records remain (it is reset only when
the queue is empty), so the loop calls the drain again after the callbacks
that became ready meanwhile: a fast peer cannot starve the loop.

On asyncio's own loops the engine also waits briefly for the next record
before the loop would sleep (:meth:`Engine._spin`): the answer to what the
application just sent usually arrives within ``PYWEBTRANSPORT_LOOP_SPIN_US``
(500 µs), and waking a sleeping thread costs more than that wait.

Loops without ``add_reader`` (Windows' default ``ProactorEventLoop``) get a
:class:`_SocketWakeup` instead: a task awaiting ``loop.sock_recv()`` on the
wake-up socket (on Windows the shim's fd is one end of a loopback socket
pair), which drains batch after batch, yielding to the loop in between.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import select
import sys
import socket
import time
import weakref
from collections import OrderedDict
from typing import Any, Callable, Protocol

from .. import _native
from .._native import ffi, lib
from .config import QuicConfiguration
from .errors import ConfigError

# Records handled per wake-up of the loop (bounded work per callback).
_BATCH = 256


class NativeObject(Protocol):
    def _on_event(self, ev: Any) -> None: ...


class NativeConfig:
    """An msquic configuration handle built from a QuicConfiguration."""

    live: "weakref.WeakSet[NativeConfig]" = weakref.WeakSet()
    # Opening a configuration builds a TLS context (~10 ms); connections and
    # listeners with equal settings share one.
    _shared: "OrderedDict[tuple[Any, ...], NativeConfig]" = OrderedDict()
    _SHARED_MAX = 16

    @classmethod
    def shared(cls, config: QuicConfiguration) -> "NativeConfig":
        key = config.cache_key()
        native = cls._shared.get(key)
        if native is None or native.handle is None:
            native = cls(config)
            cls._shared[key] = native
            while len(cls._shared) > cls._SHARED_MAX:
                cls._shared.popitem(last=False)
        else:
            cls._shared.move_to_end(key)
        return native

    def __init__(self, config: QuicConfiguration) -> None:
        _native.ensure_initialized()
        self.alpns = [ffi.new("char[]", a.encode()) for a in config.alpn_protocols]
        self.alpn_array = ffi.new("const char *[]", self.alpns)
        settings = ffi.new("pwt_settings *", config.native_settings())
        cred = ffi.new("pwt_credentials *")
        keep: list[Any] = []

        def cstr(value: str | None) -> Any:
            if value is None:
                return ffi.NULL
            buf = ffi.new("char[]", value.encode())
            keep.append(buf)
            return buf

        cred.is_client = 1 if config.is_client else 0
        cred.verify_peer = 1 if config.verifies_peer else 0
        cred.cert_file = cstr(config.certfile)
        cred.key_file = cstr(config.keyfile)
        cred.key_password = cstr(config.key_password)
        cred.ca_file = cstr(config.cafile)
        cred.app_verify = 1 if config.verifies_in_python else 0
        if not config.is_client and config.request_client_certificate:
            cred.verify_peer = 1  # ask for one; Python decides whether it is required
        if config.pkcs12 is not None:
            blob = ffi.from_buffer(config.pkcs12)
            keep.append(blob)
            cred.pkcs12 = blob
            cred.pkcs12_len = len(config.pkcs12)
            cred.pkcs12_password = cstr(config.pkcs12_password)
        out = ffi.new("pwt_config **")
        status = lib.pwt_config_open(self.alpn_array, len(self.alpns), settings, cred, out)
        if status != 0:
            what = "certificate/key" if not config.is_client else "client credentials"
            raise ConfigError(
                f"msquic rejected the {what} configuration ({_native.status_name(status)}); "
                "check that the certificate and key files are valid PEM and match"
            )
        self.handle = out[0]
        self.key = config.cache_key()
        NativeConfig.live.add(self)
        self.max_stream_buffer = config.max_stream_buffer
        self.send_high_water = config.send_buffer_high_water

    def close(self) -> None:
        if self.handle is not None:
            lib.pwt_config_close(self.handle)
            self.handle = None

    def __del__(self) -> None:
        # Configurations may be closed while connections still use them:
        # msquic reference-counts configuration handles internally.
        try:
            self.close()
        except Exception:
            pass


class _ReaderWakeup:
    """Wake-ups through ``loop.add_reader`` (selector loops, uvloop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, drain: Callable[[], int]) -> None:
        loop.add_reader(fd, drain)  # NotImplementedError on loops without it
        self.loop = loop
        self.fd = fd

    def stop(self) -> None:
        if not self.loop.is_closed():
            try:
                self.loop.remove_reader(self.fd)
            except Exception:
                pass


class _SocketWakeup:
    """Wake-ups through a task awaiting ``loop.sock_recv`` (loops without ``add_reader``).

    ``fd`` must be a socket (the shim's Windows wake-up is a loopback socket
    pair).  The socket object only borrows it: :meth:`stop` detaches, the
    shim closes it.  Each wake-up byte received is followed by drains until
    a batch comes back short, i.e. the queue was emptied (the shim then
    clears the socket and signals again on its next record).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, drain: Callable[[], int]) -> None:
        self.loop = loop
        self.fd = fd
        self._drain = drain
        self._sock = socket.socket(fileno=fd)
        self._sock.setblocking(False)
        self.task: asyncio.Task[None] = loop.create_task(self._run())

    async def _run(self) -> None:
        while True:
            data = await self.loop.sock_recv(self._sock, 64)
            if not data:
                return  # the write end is gone: the queue was freed
            while True:
                try:
                    n = self._drain()
                except Exception as exc:  # keep waking: one bad batch must not stop the engine
                    self.loop.call_exception_handler(
                        {"message": "error while draining QUIC events", "exception": exc}
                    )
                    n = 0
                if n < _BATCH:
                    break
                await asyncio.sleep(0)  # let the callbacks that became ready run

    def stop(self) -> None:
        if not self.loop.is_closed():
            self.task.cancel()
        self._sock.detach()  # the shim owns (and closes) the socket


# How many loop iterations a spin waits behind other ready callbacks before giving up.
_SPIN_REARMS = 4
# After this many waits in a row that saw no record, only every this many-th runs (until
# one sees a record again): sparse traffic does not pay the wait after every message.
_SPIN_IDLE_AFTER = 8


def _spin_window(loop: asyncio.AbstractEventLoop) -> int:
    """µs the engine of ``loop`` waits for records before the loop sleeps (0: never)."""
    if sys.platform == "win32":
        return 0
    # The wait must only start when no other callback is due, which only asyncio's own
    # loops let us see (BaseEventLoop._ready, a deque since Python 3.4); on others
    # (uvloop) it could hold ready callbacks back.
    if not isinstance(loop, asyncio.BaseEventLoop):
        return 0
    if not isinstance(getattr(loop, "_ready", None), collections.deque):
        return 0
    return _native.loop_spin_us()


def _wakeup_for(
    loop: asyncio.AbstractEventLoop, fd: int, drain: Callable[[], int]
) -> "_ReaderWakeup | _SocketWakeup":
    """``add_reader`` where the loop has it, else a ``sock_recv`` task (Windows Proactor)."""
    try:
        return _ReaderWakeup(loop, fd, drain)
    except NotImplementedError:
        return _SocketWakeup(loop, fd, drain)


class Engine:
    """Event queue + dispatch table for one asyncio loop."""

    _engines: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Engine]" = (
        weakref.WeakKeyDictionary()
    )
    _all: "list[Engine]" = []

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        _native.ensure_initialized()
        self.loop = loop
        self.queue = lib.pwt_queue_new()
        if self.queue == ffi.NULL:
            raise OSError("cannot create the native event queue")
        self.fd = lib.pwt_queue_fd(self.queue)
        self.objects: dict[Any, NativeObject] = {}
        # Client connections share one UDP socket per server address:
        # (server ip, port) -> local address of the shared socket.
        self.shared_bindings: dict[tuple[str, int], tuple[str, int]] = {}
        self._events = ffi.new("pwt_event[]", _BATCH)
        self._wakeup: _ReaderWakeup | _SocketWakeup | None = None
        self._socket_wakeup = False  # wake-ups via sock_recv (see drain_blocking)
        # Streams holding small writes until the end of the loop iteration (QuicStream._defer),
        # in the order they were written: one callback flushes them all, and any other send
        # flushes them first.
        self.deferred: list[Any] = []
        self._spin_us = _spin_window(loop)
        self._ready: "collections.deque[Any]" = getattr(loop, "_ready", collections.deque())
        self._spin_scheduled = False
        self._spin_misses = 0
        # Set by every send (stream data, datagram, a held write) and cleared by each drain:
        # the loop waits for an answer only after it sent something since the last drain
        # (a loop that only receives, a bulk reader say, sleeps between events as before).
        self.sent = False
        # Waits for records before sleeping, and how many of them saw one arrive.
        self.spins = 0
        self.spin_hits = 0
        self._attach()
        Engine._all.append(self)

    @classmethod
    def current(cls) -> "Engine":
        loop = asyncio.get_running_loop()
        engine = cls._engines.get(loop)
        if engine is None:
            cls._reap_closed_loops()
            engine = cls(loop)
            cls._engines[loop] = engine
        return engine

    @classmethod
    def _reap_closed_loops(cls) -> None:
        """Release engines whose loop is closed (each ``asyncio.run`` makes one).

        Objects left behind by such a loop are shut down and drained here, so
        their native handles and queued events do not outlive it.
        """
        for engine in list(cls._all):
            if not engine.loop.is_closed():
                continue
            engine.close_all(time.monotonic() + 1.0)
            if not engine.objects:
                lib.pwt_queue_free(engine.queue)
                engine.queue = ffi.NULL
                cls._all.remove(engine)

    def _attach(self) -> None:
        self._wakeup = _wakeup_for(self.loop, self.fd, self._on_readable if self._spin_us else self._drain)
        self._socket_wakeup = isinstance(self._wakeup, _SocketWakeup)

    def defer(self, stream: Any) -> None:
        """Have ``stream._flush_pending()`` called by the end of the next loop iteration."""
        self.sent = True
        deferred = self.deferred
        if not deferred and not self._spin_scheduled:  # else the spin flushes them
            self.loop.call_soon(self.flush_deferred)
        deferred.append(stream)

    def flush_deferred(self) -> None:
        """Hand every stream's held small writes to msquic, in the order they were written."""
        deferred = self.deferred
        if deferred:
            self.deferred = []
            for stream in deferred:
                stream._flush_pending()

    def register(self, handle: Any, obj: NativeObject) -> None:
        self.objects[handle] = obj  # cffi pointers hash by address, whatever their type

    def unregister(self, handle: Any) -> None:
        self.objects.pop(handle, None)

    def _on_readable(self) -> int:
        """Drain a batch; then, once the callbacks it made ready ran, wait for the next."""
        self.sent = False
        n = self._drain()
        if n and not self._spin_scheduled:
            self._spin_scheduled = True
            self.loop.call_soon(self._spin, _SPIN_REARMS)
        return n

    def _spin(self, rearms: int) -> None:
        """Wait up to ``_spin_us`` for a record if nothing else is ready; drain it at once.

        Runs after the callbacks the last drain made ready, and first sends the
        small writes they held (the application's reply, typically); waits only if
        something was sent since that drain (an answer may be on its way). If other
        callbacks are due, it waits behind them, for at most ``_SPIN_REARMS``
        iterations. After ``_SPIN_IDLE_AFTER`` waits in a row that saw nothing, only
        every ``_SPIN_IDLE_AFTER``-th wait runs until one sees a record again.
        """
        self._spin_scheduled = False
        self.flush_deferred()  # writes held while this was scheduled (see defer)
        if self._wakeup is None or self.queue == ffi.NULL:
            return  # closed meanwhile
        if self._ready:
            if rearms:
                self._spin_scheduled = True
                self.loop.call_soon(self._spin, rearms - 1)
            return
        if not self.sent:
            return  # nothing was sent since the last drain: no answer to wait for
        misses = self._spin_misses
        if misses >= _SPIN_IDLE_AFTER and misses % _SPIN_IDLE_AFTER:
            self._spin_misses = misses + 1  # sparse traffic: only every so often
            return
        self.spins += 1
        if lib.pwt_queue_spin(self.queue, self._spin_us):
            self.spin_hits += 1
            self._spin_misses = 0
            self._on_readable()
        else:
            self._spin_misses = misses + 1

    def _drain(self) -> int:
        """Handle one batch of records; returns how many were handled.

        Never loops: records left in the queue keep the fd readable, so the
        loop comes back after running what else is ready.
        """
        events = self._events
        objects = self.objects
        n: int = lib.pwt_queue_poll(self.queue, events, _BATCH)
        pending: BaseException | None = None
        for i in range(n):
            ev = events[i]
            obj = objects.get(ev.obj)
            if obj is not None:
                try:
                    obj._on_event(ev)
                except Exception as exc:  # a bug in a handler must not kill the drain
                    if self.loop.is_closed():
                        continue
                    self.loop.call_exception_handler(
                        {"message": "error while handling a QUIC event", "exception": exc}
                    )
                except BaseException as exc:  # finish the batch: its records die at the next poll
                    pending = pending or exc
        if pending is not None:
            raise pending
        return n

    def drain_blocking(self, deadline: float) -> None:
        """Process events without a running loop (interpreter exit)."""
        # A sock_recv left pending by a stopped _SocketWakeup may swallow a
        # wake-up byte: then poll every 50 ms whether or not the fd fired.
        stolen = self._socket_wakeup
        while self.objects and time.monotonic() < deadline:
            timeout = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.fd], [], [], min(timeout, 0.05) if stolen else timeout)
            if ready or stolen:
                while self._drain() == _BATCH:
                    pass

    def close_all(self, deadline: float) -> None:
        """Abort every object and process events until all are closed (no running loop)."""
        if self._wakeup is not None:
            self._wakeup.stop()
            self._wakeup = None
        while self.objects and time.monotonic() < deadline:
            self.shutdown_all()  # again: connections accepted meanwhile must go too
            self.drain_blocking(min(deadline, time.monotonic() + 0.25))

    def shutdown_all(self) -> None:
        for obj in list(self.objects.values()):
            abort = getattr(obj, "_abort_for_exit", None)
            if abort is not None:
                abort()


def _atexit() -> None:
    """Orderly native shutdown: close what is still open, then the registration."""
    if not lib.pwt_is_initialized():
        return
    deadline = time.monotonic() + 3.0
    for engine in Engine._all:
        if engine.objects:
            engine.close_all(deadline)
    if all(not e.objects for e in Engine._all):
        for cfg in list(NativeConfig.live):
            cfg.close()
        if lib.pwt_live_objects() == 0 and not lib.pwt_cleanup():
            # A bug (ours or msquic's) left a connection inside msquic: say so rather than hang.
            sys.stderr.write("pywebtransport: msquic still held connections at exit after 5 s; not waiting\n")


atexit.register(_atexit)
