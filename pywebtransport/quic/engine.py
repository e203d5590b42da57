"""Per-event-loop engine: owns the shim's event queue and dispatches records.

One :class:`Engine` exists per asyncio loop.  msquic worker threads append
event records to its queue; the queue's fd wakes the loop (``add_reader``)
only on the empty -> non-empty transition, and :meth:`Engine._drain` pulls
every pending record with one native call per batch.
"""

from __future__ import annotations

import asyncio
import atexit
import select
import time
import weakref
from collections import OrderedDict
from typing import Any, Protocol

from .. import _native
from .._native import ffi, lib
from .config import QuicConfiguration
from .errors import ConfigError

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
        self._events = ffi.new("pwt_event[]", _BATCH)
        self._reader_loop: asyncio.AbstractEventLoop | None = None
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
        self.loop.add_reader(self.fd, self._drain)
        self._reader_loop = self.loop

    def register(self, handle: Any, obj: NativeObject) -> None:
        self.objects[ffi.cast("void *", handle)] = obj

    def unregister(self, handle: Any) -> None:
        self.objects.pop(ffi.cast("void *", handle), None)

    def _drain(self) -> None:
        events = self._events
        objects = self.objects
        while True:
            n = lib.pwt_queue_poll(self.queue, events, _BATCH)
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
            if n < _BATCH:
                return

    def drain_blocking(self, deadline: float) -> None:
        """Process events without a running loop (interpreter exit)."""
        while self.objects and time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if ready:
                self._drain()

    def close_all(self, deadline: float) -> None:
        """Abort every object and process events until all are closed (no running loop)."""
        if self._reader_loop is not None and not self._reader_loop.is_closed():
            try:
                self._reader_loop.remove_reader(self.fd)
            except Exception:
                pass
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
        if lib.pwt_live_objects() == 0:
            lib.pwt_cleanup()


atexit.register(_atexit)
