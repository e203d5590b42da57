"""Streams start with a small msquic receive buffer that grows (real msquic, loopback).

HTTP/3 opens six streams per connection that carry a few bytes each, so the
initial receive buffer is most of what an idle stream costs natively
(``QuicConfiguration.stream_receive_buffer``, 512 bytes by default instead of
msquic's 4 KB).  Bulk data must still flow: the buffer doubles as it fills.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable

import pytest

from certs import CertSet
from pywebtransport.quic import ConfigError, QuicConfiguration, QuicStream, connect, serve
from test_quic import client_config, server_config
from test_stream_open_path import each_stream

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("size", [0, 100, 255, 300, 3000, 1 << 30])
def test_stream_receive_buffer_must_be_a_power_of_two_within_the_window(size: int) -> None:
    with pytest.raises(ConfigError, match="stream_receive_buffer"):
        QuicConfiguration(is_client=True, stream_receive_buffer=size)


def test_stream_receive_buffer_default_is_small() -> None:
    assert QuicConfiguration(is_client=True).stream_receive_buffer == 512
    assert QuicConfiguration(is_client=True, stream_receive_buffer=256).stream_receive_buffer == 256


@pytest.mark.parametrize("initial", [256, 4096])
async def test_bulk_data_flows_through_a_small_initial_buffer(certs: CertSet, initial: int) -> None:
    """8 MiB each way on one stream, and small messages on others, from a 256-byte start."""
    payload = os.urandom(8 << 20)

    async def answer(stream: QuicStream) -> None:
        data = await stream.read_all()
        await stream.write(hashlib.sha256(data).digest() + data, fin=True)

    listener = await serve("127.0.0.1", 0, server_config(certs, stream_receive_buffer=initial), each_stream(answer))
    try:
        cfg = client_config(certs, stream_receive_buffer=initial)
        async with await connect("127.0.0.1", listener.port, cfg, server_name="localhost") as conn:
            for message in (b"x", b"y" * 600, payload):
                stream = await conn.open_bidi_stream()
                await stream.write(message, fin=True)
                reply = await asyncio.wait_for(stream.read_all(), 30)
                assert reply[:32] == hashlib.sha256(message).digest()
                assert reply[32:] == message
    finally:
        await listener.aclose()


async def upload_and_check_digest(
    certs: CertSet, payload: bytes, limit: int, reader: Callable[[QuicStream], Awaitable[None]]
) -> None:
    """Send `payload` on one stream to a server whose `reader` answers with its SHA-256."""
    listener = await serve("127.0.0.1", 0, server_config(certs, max_stream_buffer=limit), each_stream(reader))
    try:
        async with await connect("127.0.0.1", listener.port, client_config(certs), server_name="localhost") as conn:
            stream = await conn.open_bidi_stream()
            await stream.write(payload, fin=True)
            assert await asyncio.wait_for(stream.read_all(), 30) == hashlib.sha256(payload).digest()
    finally:
        await listener.aclose()


async def test_large_chunks_reach_python_from_msquics_buffers(certs: CertSet, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 4 KB and more come as zero-copy records (msquic waits for Python's copy);
    the bytes arrive intact and in order, however the reader paces itself."""
    from pywebtransport._native import lib
    from pywebtransport.quic.stream import QuicStream as _Stream

    kinds: dict[int, int] = {}
    original = _Stream._on_event

    def counting(self: _Stream, ev: object) -> None:
        kind = int(ev.type)  # type: ignore[attr-defined]
        kinds[kind] = kinds.get(kind, 0) + 1
        original(self, ev)

    monkeypatch.setattr(_Stream, "_on_event", counting)
    payload = os.urandom(6 << 20)

    async def slow_reader(stream: QuicStream) -> None:
        digest = hashlib.sha256()
        while data := await stream.read(100_000):
            digest.update(data)
            await asyncio.sleep(0)  # let msquic queue more while we read
        await stream.write(digest.digest(), fin=True)

    await upload_and_check_digest(certs, payload, 256 << 10, slow_reader)
    assert kinds.get(lib.PWT_EV_STREAM_RECEIVE_ZC, 0) > 0


async def test_partly_accepted_large_chunks_also_stay_in_msquics_buffers(
    certs: CertSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a small per-stream limit most receives fit only partly: the part that fits
    still comes as a zero-copy record, the rest waits in msquic until the reader makes
    room, and Python never holds more than the limit."""
    from pywebtransport._native import lib
    from pywebtransport.quic.stream import QuicStream as _Stream

    limit = 32 << 10
    zero_copy: list[int] = []
    original = _Stream._on_event

    copied: list[int] = []

    def counting(self: _Stream, ev: object) -> None:
        if int(ev.type) == lib.PWT_EV_STREAM_RECEIVE_ZC:  # type: ignore[attr-defined]
            zero_copy.append(int(ev.len))  # type: ignore[attr-defined]
        elif int(ev.type) == lib.PWT_EV_STREAM_RECEIVE:  # type: ignore[attr-defined]
            copied.append(int(ev.len))  # type: ignore[attr-defined]
        original(self, ev)

    monkeypatch.setattr(_Stream, "_on_event", counting)
    payload = os.urandom(4 << 20)
    held: list[int] = []

    async def slow_reader(stream: QuicStream) -> None:
        digest = hashlib.sha256()
        n = 0
        while data := await stream.read(8192):
            digest.update(data)
            held.append(stream.native_buffered())
            n += 1
            if n % 8 == 0:
                await asyncio.sleep(0.001)  # fall behind now and then
        await stream.write(digest.digest(), fin=True)

    await upload_and_check_digest(certs, payload, limit, slow_reader)
    # Nearly every byte came zero-copy (copied before: 0.4–0.7 % zero-copy with this limit).
    assert sum(zero_copy) > 0.9 * (sum(zero_copy) + sum(copied))
    assert max(zero_copy) <= limit
    assert held and max(held) <= limit
