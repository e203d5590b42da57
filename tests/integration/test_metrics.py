"""Prometheus metrics of a live server, scraped over real HTTP while sessions run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from certs import CertSet
from pywebtransport import (
    ClientConfig,
    ServerApp,
    ServerConfig,
    WebTransportClient,
    WebTransportSession,
    WebTransportStream,
)
from pywebtransport.exceptions import SessionRejectedError
from pywebtransport.metrics import PrometheusMetrics

pytestmark = pytest.mark.timeout(60)


async def scrape(port: int, path: str = "/metrics") -> tuple[int, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    if status == 200:
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return status, samples


@pytest.fixture
async def served(certs: CertSet) -> AsyncIterator[tuple[ServerApp, PrometheusMetrics, int, int]]:
    app = ServerApp(config=ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))

    @app.route("/echo")
    async def echo(session: WebTransportSession) -> None:
        async def datagrams() -> None:
            while True:
                await session.datagrams.send(await session.datagrams.receive())

        task = asyncio.ensure_future(datagrams())
        try:
            async for stream in session.incoming_streams():
                if isinstance(stream, WebTransportStream):
                    await stream.write_all(await stream.read_all())
                else:
                    out = await session.create_unidirectional_stream()
                    await out.write_all(await stream.read_all())
        finally:
            task.cancel()

    metrics = PrometheusMetrics()
    metrics.instrument(app)
    async with app:
        await app.server.listen(host="127.0.0.1", port=0)
        assert app.server.local_address is not None
        http_port = await metrics.serve(port=0)
        yield app, metrics, app.server.local_address[1], http_port
        await metrics.close()


async def test_scrape_while_sessions_run(certs: CertSet, served: tuple[Any, PrometheusMetrics, int, int]) -> None:
    _app, _metrics, port, http_port = served
    config = ClientConfig.create(ca_certs=str(certs.ca_cert))
    async with WebTransportClient(config) as client:
        sessions = [await client.connect(f"https://localhost:{port}/echo") for _ in range(3)]
        for session in sessions:
            stream = await session.create_bidirectional_stream()
            await stream.write_all(b"x" * 10_000)
            assert await stream.read_all() == b"x" * 10_000
            await session.datagrams.send(b"ping")
            assert await session.datagrams.receive(timeout=5) == b"ping"
        uni = await sessions[0].create_unidirectional_stream()
        await uni.write_all(b"uni")
        back = await asyncio.wait_for(sessions[0].incoming_streams().__anext__(), 5)
        assert await back.read_all() == b"uni"
        with pytest.raises(SessionRejectedError):
            await client.connect(f"https://localhost:{port}/nowhere")

        status, live = await scrape(http_port)
        assert status == 200
        assert live[("pywebtransport_sessions_active", ())] == 3
        assert live[("pywebtransport_connections_active", ())] >= 1
        assert live[("pywebtransport_sessions_total", (("outcome", "accepted"),))] == 3
        assert live[("pywebtransport_sessions_total", (("outcome", "rejected"),))] == 1
        assert live[("pywebtransport_streams_opened_total", (("direction", "bidi"), ("initiator", "peer")))] == 3
        assert live[("pywebtransport_streams_opened_total", (("direction", "uni"), ("initiator", "peer")))] == 1
        assert live[("pywebtransport_streams_opened_total", (("direction", "uni"), ("initiator", "local")))] == 1
        assert live[("pywebtransport_datagrams_received_total", ())] == 3
        assert live[("pywebtransport_datagrams_sent_total", ())] == 3
        assert live[("pywebtransport_bytes_received_total", ())] >= 30_000
        assert live[("pywebtransport_bytes_sent_total", ())] >= 30_000
        assert live[("pywebtransport_session_setup_seconds_count", ())] == 4
        assert live[("pywebtransport_quic_sampled_connections", ())] >= 1
        assert 0 < live[("pywebtransport_quic_rtt_seconds", (("stat", "max"),))] < 1
        assert live[("pywebtransport_msquic_conn_created_total", ())] >= 2

        for session in sessions:
            await session.close()

    for _ in range(50):
        status, after = await scrape(http_port)
        if after[("pywebtransport_sessions_active", ())] == 0:
            break
        await asyncio.sleep(0.1)
    assert after[("pywebtransport_sessions_active", ())] == 0
    # Counters of closed sessions are kept: nothing goes backwards.
    assert after[("pywebtransport_datagrams_received_total", ())] == 3
    assert after[("pywebtransport_sessions_total", (("outcome", "accepted"),))] == 3
    assert (await scrape(http_port, "/other"))[0] == 404
