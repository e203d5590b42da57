"""RpcManager over an in-memory stream pair: JSON-RPC 2.0 semantics, limits, cancellation."""

from __future__ import annotations

import asyncio
import json
import struct
from dataclasses import dataclass
from typing import Any

import pytest

from fake_streams import stream_pair
from pywebtransport.rpc import (
    InvalidParamsError,
    MethodNotFoundError,
    RpcError,
    RpcManager,
    RpcTimeoutError,
)

pytestmark = pytest.mark.timeout(20)


@dataclass
class Sum:
    total: int


async def pair(**kw: object) -> tuple[RpcManager, RpcManager]:
    a, b = stream_pair()
    return RpcManager(stream=a, **kw), RpcManager(stream=b, **kw)  # type: ignore[arg-type]


async def test_calls_both_ways_many_in_flight() -> None:
    left, right = await pair()

    async def slow_add(a: int, b: int, delay: float = 0.0) -> int:
        await asyncio.sleep(delay)
        return a + b

    right.register(slow_add, name="add")
    left.register(lambda: "pong", name="ping")
    right.register(lambda *xs: Sum(sum(xs)), name="sum")
    # Later calls finish first: responses are matched by id.
    results = await asyncio.gather(*(left.call("add", i, 1, 0.05 - i * 0.0005, timeout=5) for i in range(100)))
    assert results == [i + 1 for i in range(100)]
    assert await right.call("ping") == "pong"
    assert await left.call("sum", 1, 2, 3) == {"total": 6}
    assert left.in_flight == 0
    assert left.stats["calls_succeeded"] == 101


async def test_errors_map_to_json_rpc_codes() -> None:
    left, right = await pair()

    def fail() -> None:
        raise ValueError("boom")

    def custom() -> None:
        raise RpcError("nope", code=-32050, data={"why": 1})

    right.register(lambda a, b: a * b, name="mul")
    right.register(fail)
    right.register(custom)
    with pytest.raises(MethodNotFoundError) as nf:
        await left.call("missing")
    assert nf.value.code == -32601
    with pytest.raises(InvalidParamsError) as ip:
        await left.call("mul", 1)
    assert ip.value.code == -32602
    with pytest.raises(RpcError) as internal:
        await left.call("fail")
    assert internal.value.code == -32603 and internal.value.data == {"type": "ValueError", "message": "boom"}
    with pytest.raises(RpcError) as cust:
        await left.call("custom")
    assert (cust.value.code, cust.value.message, cust.value.data) == (-32050, "nope", {"why": 1})


async def test_timeout_cancels_the_remote_method() -> None:
    left, right = await pair()
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    right.register(forever)
    with pytest.raises(RpcTimeoutError) as err:
        await left.call("forever", timeout=0.2)
    assert err.value.timeout_duration == 0.2
    await asyncio.wait_for(cancelled.wait(), 5)
    # Caller-side task cancellation propagates too.
    cancelled.clear()
    started.clear()
    task = asyncio.ensure_future(left.call("forever", timeout=None))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    await asyncio.wait_for(cancelled.wait(), 5)
    assert right.stats["requests_cancelled"] == 2
    # The channel is still usable.
    right.register(lambda: 1, name="one")
    assert await left.call("one") == 1


async def test_concurrency_limit_bounds_running_and_rejects_excess() -> None:
    left, right = await pair(concurrency_limit=3, max_pending=2)
    running = 0
    peak = 0
    release = asyncio.Event()

    async def work() -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1
        return "done"

    right.register(work)
    tasks = [asyncio.ensure_future(left.call("work", timeout=10)) for _ in range(8)]
    await asyncio.sleep(0.2)
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert peak == 3
    assert results.count("done") == 5
    busy = [r for r in results if isinstance(r, RpcError)]
    assert len(busy) == 3 and all(r.code == -32005 for r in busy)
    assert right.stats["requests_rejected_busy"] == 3


async def test_malformed_input_gets_json_rpc_errors() -> None:
    a, b = stream_pair()
    server = RpcManager(stream=b, max_message_size=200)
    server.register(lambda x: x, name="echo")

    async def raw(body: bytes) -> dict[str, object]:
        a.feed(struct.pack("!I", len(body)) + body)
        buf = bytearray()
        while len(buf) < 4:
            buf += await a.read(4 - len(buf))
        (n,) = struct.unpack("!I", buf)
        body_in = bytearray()
        while len(body_in) < n:
            body_in += await a.read(n - len(body_in))
        return json.loads(body_in)

    reply = await raw(b"{not json")
    assert reply["error"]["code"] == -32700 and reply["id"] is None  # type: ignore[index]
    reply = await raw(b'{"jsonrpc":"2.0","method":"echo","params":[5],"id":"abc"}')
    assert reply == {"jsonrpc": "2.0", "result": 5, "id": "abc"}
    reply = await raw(b'{"jsonrpc":"2.0","params":[5],"id":3}')
    assert reply["error"]["code"] == -32600  # type: ignore[index]
    reply = await raw(b'[{"jsonrpc":"2.0","method":"echo","params":[1],"id":1},'
                      b'{"jsonrpc":"2.0","method":"echo","params":[2]},'
                      b'{"jsonrpc":"2.0","method":"nope","id":2}]')
    assert isinstance(reply, list) and len(reply) == 2
    assert reply[0]["result"] == 1 and reply[1]["error"]["code"] == -32601
    # An oversized frame is skipped; the next request on the same stream is answered.
    big = b'{"jsonrpc":"2.0","method":"echo","params":["' + b"x" * 300 + b'"],"id":9}'
    a.feed(struct.pack("!I", len(big)) + big)
    reply = await raw(b'{"jsonrpc":"2.0","method":"echo","params":["after"],"id":10}')
    assert reply == {"jsonrpc": "2.0", "result": "after", "id": 10}
    assert server.stats["malformed_messages"] >= 2


async def test_peer_closing_fails_pending_calls() -> None:
    left, right = await pair()
    right.register(lambda: asyncio.sleep(3600), name="hang")
    task = asyncio.ensure_future(left.call("hang", timeout=None))
    await asyncio.sleep(0.05)
    await right.close()
    with pytest.raises(RpcError, match="no response"):
        await task
    assert left.is_closed
    with pytest.raises(RpcError, match="closed"):
        await left.call("hang")


async def test_concurrency_limit_holds_for_a_burst_read_at_once() -> None:
    a, b = stream_pair()
    server = RpcManager(stream=b, concurrency_limit=2, max_pending=1)
    release = asyncio.Event()

    async def work() -> str:
        await release.wait()
        return "done"

    server.register(work)
    burst = b"".join(
        struct.pack("!I", len(body)) + body
        for body in (json.dumps({"jsonrpc": "2.0", "method": "work", "id": i}).encode() for i in range(10))
    )
    a.feed(burst)  # all ten requests arrive in one read
    await asyncio.sleep(0.1)
    release.set()
    replies: dict[int, Any] = {}
    buf = bytearray()
    while len(replies) < 10:
        buf += await a.read(65536)
        while len(buf) >= 4:
            (n,) = struct.unpack_from("!I", buf)
            if len(buf) < 4 + n:
                break
            msg = json.loads(bytes(buf[4 : 4 + n]))
            del buf[: 4 + n]
            replies[msg["id"]] = msg
    done = [m for m in replies.values() if m.get("result") == "done"]
    busy = [m for m in replies.values() if m.get("error", {}).get("code") == -32005]
    assert (len(done), len(busy)) == (3, 7)
    assert server.stats["requests_rejected_busy"] == 7
