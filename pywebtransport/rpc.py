"""JSON-RPC 2.0 over one bidirectional stream of a WebTransport session.

Each side of a session may both call and serve: an `RpcManager` sends requests, answers the
peer's requests with the methods registered on it, and keeps any number of calls in flight on
one stream (responses are matched by id, so they may arrive in any order).

Wire format: every message is one frame ``[u32 length][UTF-8 JSON]``; the JSON is a JSON-RPC 2.0
request, notification, response or batch. Two extensions, both ordinary notifications:

* ``{"method": "$/cancel", "params": {"id": N}}`` - the caller gave up on request N (its timeout
  expired or its task was cancelled); the serving side cancels the running method.
* Requests beyond ``concurrency_limit`` running plus ``max_pending`` queued are answered at
  once with error -32005 ("server busy") rather than queued without bound.

Typical use::

    # server
    @app.route("/rpc")
    async def rpc_endpoint(session):
        rpc = RpcManager(session)
        rpc.register(add)                 # def add(a, b): return a + b
        await rpc.serve()                 # accepts the client's RPC stream, returns when it closes

    # client
    rpc = RpcManager(session)
    print(await rpc.call("add", 1, 2, timeout=5))
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .exceptions import (
    InvalidParamsError,
    MethodNotFoundError,
    RpcError,
    RpcTimeoutError,
    SerializationError,
    WebTransportError,
)
from .serializer import to_plain
from .structured import FrameReader, FrameWriter

if TYPE_CHECKING:
    from .session import WebTransportSession
    from .stream import WebTransportStream

__all__ = [
    "CANCELLED",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "InvalidParamsError",
    "METHOD_NOT_FOUND",
    "MethodNotFoundError",
    "PARSE_ERROR",
    "RpcError",
    "RpcManager",
    "RpcTimeoutError",
    "SERVER_BUSY",
]

log = logging.getLogger("pywebtransport.rpc")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_BUSY = -32005
CANCELLED = -32800
CANCEL_METHOD = "$/cancel"

_HEADER = struct.Struct("!I")
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _error_from_wire(error: Any) -> RpcError:
    if not isinstance(error, dict):
        return RpcError(f"malformed error object: {error!r:.100}", code=INTERNAL_ERROR)
    code = error.get("code")
    message = str(error.get("message", ""))
    data = error.get("data")
    if code == METHOD_NOT_FOUND:
        return MethodNotFoundError(message, data=data)
    if code == INVALID_PARAMS:
        return InvalidParamsError(message, data=data)
    return RpcError(message, code=code if isinstance(code, int) else INTERNAL_ERROR, data=data)


class RpcManager:
    """JSON-RPC 2.0 client and server on one session.

    Args:
        session: The session whose stream carries the calls.
        stream: Use this bidirectional stream instead of opening one (client) or accepting
            the peer's first one (server).
        concurrency_limit: Most methods running at once for the peer.
        max_pending: Peer requests allowed to wait for a free slot (default: ``concurrency_limit``);
            beyond that they are answered with error -32005.
        max_message_size: Largest JSON message accepted or sent, in bytes.
        default_timeout: Timeout of `call` when none is given (``None``: wait forever).
    """

    def __init__(
        self,
        session: "WebTransportSession | None" = None,
        stream: "WebTransportStream | None" = None,
        concurrency_limit: int = 100,
        max_pending: int | None = None,
        max_message_size: int = 1 << 20,
        default_timeout: float | None = 30.0,
    ) -> None:
        if session is None and stream is None:
            raise ValueError("RpcManager needs a session or a stream")
        if concurrency_limit < 1:
            raise ValueError("concurrency_limit must be at least 1")
        self._session = session
        self._stream: Any = stream
        self.concurrency_limit = concurrency_limit
        self.max_pending = concurrency_limit if max_pending is None else max_pending
        self.max_message_size = max_message_size
        self.default_timeout = default_timeout
        self._methods: dict[str, Callable[..., Any]] = {}
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self._serving: dict[Any, asyncio.Task[Any]] = {}
        self._slots = asyncio.Semaphore(concurrency_limit)
        self._waiting = 0
        self._admitted = 0  # requests accepted and not finished (running or waiting for a slot)
        self._next_id = 1
        self._writer: FrameWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._close_error: Exception | None = None
        self.stats = {
            "calls_sent": 0,
            "calls_succeeded": 0,
            "calls_failed": 0,
            "calls_timed_out": 0,
            "requests_served": 0,
            "requests_rejected_busy": 0,
            "requests_cancelled": 0,
            "malformed_messages": 0,
        }
        if stream is not None:
            self._attach(stream)

    # -- registration -------------------------------------------------------------------------
    def register(self, func: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
        """Serve ``func`` (sync or async) under ``name`` (default: its ``__name__``); returns ``func``.

        Positional JSON params are passed as ``*args``, named params as ``**kwargs``; params that do
        not fit the signature are answered with -32602 (InvalidParamsError at the caller).
        """
        method = name or getattr(func, "__name__", None)
        if not method:
            raise ValueError("cannot infer a method name; pass name=")
        if method.startswith("$/") or method.startswith("rpc."):
            raise ValueError(f"method names starting with '$/' or 'rpc.' are reserved: {method!r}")
        self._methods[method] = func
        return func

    def unregister(self, name: str) -> None:
        """Stop serving ``name``."""
        self._methods.pop(name, None)

    @property
    def methods(self) -> list[str]:
        """Names of the registered methods."""
        return sorted(self._methods)

    @property
    def is_closed(self) -> bool:
        """True once the RPC stream or the session ended."""
        return self._closed.done()

    @property
    def in_flight(self) -> int:
        """Calls of ours still waiting for a response."""
        return len(self._calls)

    # -- channel -------------------------------------------------------------------------------
    def _attach(self, stream: Any) -> None:
        self._stream = stream
        self._writer = FrameWriter(stream)
        self._reader_task = asyncio.get_running_loop().create_task(self._read_loop())

    async def start(self) -> None:
        """Open the RPC stream on the session (done by the first `call` if not called)."""
        async with self._start_lock:
            if self._stream is not None:
                return
            self._check_open()
            assert self._session is not None
            self._attach(await self._session.create_bidirectional_stream())

    async def accept(self, timeout: float | None = None) -> None:
        """Use the peer's first incoming bidirectional stream as the RPC stream.

        Unidirectional streams arriving before it are refused (STOP_SENDING); use ``stream=`` to
        pick the stream yourself when the session carries other streams too.
        """
        from .stream import WebTransportStream

        async with self._start_lock:
            if self._stream is not None:
                return
            assert self._session is not None
            session = self._session

            async def first() -> Any:
                async for stream in session.incoming_streams():
                    if isinstance(stream, WebTransportStream):
                        return stream
                    stream.abort_reading(0)
                return None

            try:
                stream = await asyncio.wait_for(first(), timeout)
            except asyncio.TimeoutError:
                raise RpcTimeoutError(
                    f"no RPC stream from the peer within {timeout}s", timeout_duration=timeout
                ) from None
            if stream is None:
                raise RpcError("the session closed before the peer opened an RPC stream")
            self._attach(stream)

    async def serve(self) -> None:
        """Accept the peer's RPC stream if there is none yet, then serve until the channel closes."""
        if self._stream is None:
            await self.accept()
        await asyncio.shield(self._closed)

    async def wait_closed(self) -> None:
        """Wait until the RPC channel closes."""
        await asyncio.shield(self._closed)

    def _check_open(self) -> None:
        if self._closed.done():
            raise RpcError(f"the RPC channel is closed: {self._close_error}")

    # -- calling ---------------------------------------------------------------------------------
    async def call(self, method: str, *params: Any, timeout: float | None | object = ...) -> Any:
        """Call ``method`` on the peer with positional ``params``; returns its result.

        Raises MethodNotFoundError, InvalidParamsError or RpcError with the peer's code; and
        RpcTimeoutError after ``timeout`` seconds (default ``default_timeout``), after which the
        call is cancelled at the peer. Cancelling the awaiting task cancels it there too.
        """
        limit: float | None
        if timeout is ...:
            limit = self.default_timeout
        elif timeout is None or isinstance(timeout, (int, float)):
            limit = timeout
        else:
            raise TypeError("timeout must be a number or None")
        if self._stream is None:
            await self.start()
        self._check_open()
        call_id = self._next_id
        self._next_id += 1
        message = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": call_id}
        frame = self._encode(message)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = future
        self.stats["calls_sent"] += 1
        try:
            assert self._writer is not None
            await self._writer.write_frame(frame)
            result = await asyncio.wait_for(asyncio.shield(future), limit)
        except asyncio.TimeoutError:
            self.stats["calls_timed_out"] += 1
            self._cancel_remote(call_id)
            raise RpcTimeoutError(
                f"no response to {method!r} within {limit}s", timeout_duration=limit
            ) from None
        except asyncio.CancelledError:
            self._cancel_remote(call_id)
            raise
        except RpcError:
            self.stats["calls_failed"] += 1
            raise
        except WebTransportError as exc:
            self.stats["calls_failed"] += 1
            raise RpcError(f"call {method!r} failed: {exc}") from exc
        finally:
            self._calls.pop(call_id, None)
            if not future.done():
                future.cancel()
        self.stats["calls_succeeded"] += 1
        return result

    async def notify(self, method: str, *params: Any) -> None:
        """Send a notification (a call without a response)."""
        if self._stream is None:
            await self.start()
        self._check_open()
        assert self._writer is not None
        await self._writer.write_frame(
            self._encode({"jsonrpc": "2.0", "method": method, "params": list(params)})
        )

    def _cancel_remote(self, call_id: int) -> None:
        if self._closed.done() or self._writer is None:
            return
        frame = self._encode({"jsonrpc": "2.0", "method": CANCEL_METHOD, "params": {"id": call_id}})
        task = asyncio.get_running_loop().create_task(self._writer.write_frame(frame))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def _encode(self, message: Any) -> bytes:
        try:
            body = _ENCODER.encode(message).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"cannot encode RPC message as JSON: {exc}") from exc
        if len(body) > self.max_message_size:
            raise SerializationError(
                f"RPC message of {len(body)} bytes exceeds max_message_size={self.max_message_size}"
            )
        return _HEADER.pack(len(body)) + body

    # -- reading and serving -------------------------------------------------------------------
    async def _read_loop(self) -> None:
        reader = FrameReader(self._stream, _HEADER, self.max_message_size)
        error: Exception = RpcError("the peer closed the RPC stream")
        try:
            while True:
                try:
                    frame = await reader.read_frame()
                except SerializationError as exc:
                    self.stats["malformed_messages"] += 1
                    log.warning("RPC: %s", exc)
                    continue
                if frame is None:
                    break
                self._dispatch(frame[1])
        except asyncio.CancelledError:
            error = RpcError("the RPC manager was closed")
            raise
        except WebTransportError as exc:
            error = RpcError(f"the RPC stream failed: {exc}")
        finally:
            self._shutdown(error)

    def _dispatch(self, body: bytes) -> None:
        try:
            message = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            self.stats["malformed_messages"] += 1
            self._send_soon(self._error(None, PARSE_ERROR, f"parse error: {exc}"))
            return
        if isinstance(message, list):
            if not message:
                self._send_soon(self._error(None, INVALID_REQUEST, "empty batch"))
                return
            requests = [m for m in message if isinstance(m, dict) and "method" in m]
            for item in message:
                if not (isinstance(item, dict) and "method" in item):
                    self._handle_response(item)
            if requests:
                self._start_batch(requests)
            return
        if isinstance(message, dict) and "method" in message:
            self._handle_request(message)
        else:
            self._handle_response(message)

    def _handle_response(self, message: Any) -> None:
        if not isinstance(message, dict) or "id" not in message or (
            "result" not in message and "error" not in message
        ):
            self.stats["malformed_messages"] += 1
            self._send_soon(self._error(None, INVALID_REQUEST, "invalid request"))
            return
        future = self._calls.get(message["id"]) if isinstance(message["id"], int) else None
        if future is None or future.done():
            return  # a late answer to a call that timed out or was cancelled
        if "error" in message:
            future.set_exception(_error_from_wire(message["error"]))
        else:
            future.set_result(message["result"])

    def _handle_request(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        has_id = "id" in message
        req_id = message.get("id")
        if method == CANCEL_METHOD:
            params = message.get("params")
            target = params.get("id") if isinstance(params, dict) else None
            task = self._serving.get(target)
            if task is not None and not task.done():
                self.stats["requests_cancelled"] += 1
                task.cancel()
            return
        if not isinstance(method, str) or (has_id and not isinstance(req_id, (int, str, type(None)))):
            self._send_soon(self._error(req_id if has_id else None, INVALID_REQUEST, "invalid request"))
            return
        if self._admitted >= self.concurrency_limit + self.max_pending:
            self.stats["requests_rejected_busy"] += 1
            if has_id:
                self._send_soon(
                    self._error(req_id, SERVER_BUSY, f"server busy: {self.concurrency_limit} calls running")
                )
            return
        self._admitted += 1
        task = asyncio.get_running_loop().create_task(self._serve_one(message))
        task.add_done_callback(self._release_admission)
        if has_id:
            self._serving[req_id] = task
            key: Any = req_id
            task.add_done_callback(lambda _t: self._serving.pop(key, None))
        else:
            self._serving[object()] = task  # keep notifications alive until done

            def forget(t: asyncio.Task[Any]) -> None:
                for key, value in list(self._serving.items()):
                    if value is t:
                        del self._serving[key]

            task.add_done_callback(forget)

    def _release_admission(self, _task: asyncio.Task[Any]) -> None:
        self._admitted -= 1

    def _start_batch(self, requests: list[dict[str, Any]]) -> None:
        async def run() -> None:
            replies = await asyncio.gather(*(self._serve_one(r, reply=False) for r in requests))
            out = [r for r in replies if r is not None]
            if out:
                await self._send(out)

        task = asyncio.get_running_loop().create_task(run())
        self._serving[object()] = task
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _serve_one(self, message: dict[str, Any], reply: bool = True) -> Any:
        has_id = "id" in message
        req_id = message.get("id")
        method = message["method"]
        self._waiting += 1
        try:
            await self._slots.acquire()
        except asyncio.CancelledError:
            self._waiting -= 1
            return await self._finish(reply, has_id, self._error(req_id, CANCELLED, "request cancelled"))
        self._waiting -= 1
        try:
            response = await self._invoke(method, message.get("params", []), req_id)
        except asyncio.CancelledError:
            if self._closed.done():
                raise
            response = self._error(req_id, CANCELLED, "request cancelled")
        finally:
            self._slots.release()
        self.stats["requests_served"] += 1
        return await self._finish(reply, has_id, response)

    async def _finish(self, reply: bool, has_id: bool, response: dict[str, Any]) -> Any:
        if not has_id:
            return None
        if not reply:
            return response
        try:
            await self._send(response)
        except WebTransportError as exc:
            log.debug("RPC: could not send a response: %s", exc)
        return None

    async def _invoke(self, method: str, params: Any, req_id: Any) -> dict[str, Any]:
        func = self._methods.get(method)
        if func is None:
            return self._error(req_id, METHOD_NOT_FOUND, f"method not found: {method!r}")
        if isinstance(params, list):
            args, kwargs = params, {}
        elif isinstance(params, dict):
            args, kwargs = [], params
        else:
            return self._error(req_id, INVALID_PARAMS, "params must be an array or an object")
        try:
            inspect.signature(func).bind(*args, **kwargs)
        except TypeError as exc:
            return self._error(req_id, INVALID_PARAMS, f"invalid params for {method!r}: {exc}")
        except ValueError:
            pass  # builtins without a signature: let the call decide
        try:
            result = func(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return {"jsonrpc": "2.0", "result": to_plain(result), "id": req_id}
        except asyncio.CancelledError:
            raise
        except RpcError as exc:
            return self._error(req_id, exc.code, exc.message, exc.data)
        except SerializationError as exc:
            return self._error(req_id, INTERNAL_ERROR, f"result of {method!r} is not serializable: {exc}")
        except Exception as exc:
            log.warning("RPC method %r raised %s: %s", method, type(exc).__name__, exc)
            return self._error(
                req_id, INTERNAL_ERROR, "internal error", {"type": type(exc).__name__, "message": str(exc)}
            )

    @staticmethod
    def _error(req_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
        error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            error["data"] = to_plain(data)
        return {"jsonrpc": "2.0", "error": error, "id": req_id}

    async def _send(self, message: Any) -> None:
        if self._closed.done() or self._writer is None:
            return
        try:
            frame = self._encode(message)
        except SerializationError as exc:
            req_id = message.get("id") if isinstance(message, dict) else None
            frame = self._encode(self._error(req_id, INTERNAL_ERROR, str(exc)))
        await self._writer.write_frame(frame)

    def _send_soon(self, message: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._send(message))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    # -- teardown ------------------------------------------------------------------------------
    def _shutdown(self, error: Exception) -> None:
        if self._closed.done():
            return
        self._close_error = error
        self._closed.set_result(None)
        for future in self._calls.values():
            if not future.done():
                future.set_exception(RpcError(f"no response: {error}"))
        for task in list(self._serving.values()):
            task.cancel()

    async def close(self) -> None:
        """Close the RPC stream; calls still waiting fail with RpcError."""
        self._shutdown(RpcError("the RPC manager was closed"))
        if self._reader_task is not None and not self._reader_task.done():
            self._reader_task.cancel()
        if self._stream is not None:
            try:
                await self._stream.close()
            except WebTransportError:
                pass

    async def __aenter__(self) -> "RpcManager":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return (
            f"<RpcManager methods={len(self._methods)} in_flight={len(self._calls)} "
            f"serving={len(self._serving)} closed={self.is_closed}>"
        )
