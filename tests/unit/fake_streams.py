"""An in-memory bidirectional stream pair with the public stream methods (read/write/close/abort).

For unit tests of the layers above streams (structured messages, RPC, pub/sub); the real
stack is exercised by the integration tests.
"""

from __future__ import annotations

import asyncio

from pywebtransport.exceptions import StreamError


class _Pipe:
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.eof = False
        self.error: Exception | None = None
        self.event = asyncio.Event()


class FakeStream:
    def __init__(self, incoming: _Pipe, outgoing: _Pipe) -> None:
        self._in = incoming
        self._out = outgoing
        self.writes: list[bytes] = []
        self.gate: asyncio.Event | None = None  # when set to a cleared Event, writes wait for it

    async def read(self, size: int = 8192) -> bytes:
        while not self._in.buffer:
            if self._in.error is not None:
                raise self._in.error
            if self._in.eof:
                return b""
            self._in.event.clear()
            await self._in.event.wait()
        data = bytes(self._in.buffer[:size])
        del self._in.buffer[:size]
        return data

    async def write(self, data: bytes, end_stream: bool = False) -> None:
        if self._out.eof or self._out.error is not None:
            raise StreamError("closed for writing")
        await asyncio.sleep(0)
        if self.gate is not None:
            await self.gate.wait()
        self.writes.append(bytes(data))
        self._out.buffer += data
        if end_stream:
            self._out.eof = True
        self._out.event.set()

    def feed(self, data: bytes, eof: bool = False) -> None:
        """Send raw bytes (and optionally FIN) to the peer, bypassing any framing."""
        self._out.buffer += data
        self._out.eof = self._out.eof or eof
        self._out.event.set()

    async def close(self) -> None:
        self._out.eof = True
        self._out.event.set()

    def abort(self, code: int = 0) -> None:
        err = StreamError(f"stream reset ({code})")
        self._out.error = err
        self._in.error = err
        self._out.event.set()
        self._in.event.set()


def stream_pair() -> tuple[FakeStream, FakeStream]:
    a_to_b, b_to_a = _Pipe(), _Pipe()
    return FakeStream(b_to_a, a_to_b), FakeStream(a_to_b, b_to_a)
