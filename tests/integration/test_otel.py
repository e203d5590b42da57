"""OpenTelemetry spans and metrics of a live server, read from the SDK's in-memory exporters."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from certs import CertSet
from pywebtransport import ClientConfig, ServerApp, ServerConfig, WebTransportClient, WebTransportSession
from pywebtransport import WebTransportStream
from pywebtransport.exceptions import SessionRejectedError
from pywebtransport.otel import OpenTelemetryInstrumentation

pytestmark = pytest.mark.timeout(60)


async def test_a_span_per_session_and_metrics(certs: CertSet) -> None:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])

    app = ServerApp(config=ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))

    @app.route("/work")
    async def work(session: WebTransportSession) -> None:
        async for stream in session.incoming_streams():
            if isinstance(stream, WebTransportStream):
                await stream.write_all(await stream.read_all())
        await session.wait_closed()

    OpenTelemetryInstrumentation(tracer_provider, meter_provider).instrument(app)
    async with app:
        await app.server.listen(host="127.0.0.1", port=0)
        assert app.server.local_address is not None
        port = app.server.local_address[1]
        async with WebTransportClient(ClientConfig.create(ca_certs=str(certs.ca_cert))) as client:
            session = await client.connect(f"https://localhost:{port}/work")
            stream = await session.create_bidirectional_stream()
            await stream.write_all(b"y" * 5000)
            assert await stream.read_all() == b"y" * 5000
            await session.close(4001, "done here")
            with pytest.raises(SessionRejectedError):
                await client.connect(f"https://localhost:{port}/missing")
        for _ in range(50):
            if len(spans.get_finished_spans()) >= 2:
                break
            await asyncio.sleep(0.1)

    finished = {s.name: s for s in spans.get_finished_spans()}
    ok = finished["WebTransport /work"]
    assert ok.kind == SpanKind.SERVER
    assert ok.attributes is not None
    assert ok.attributes["url.path"] == "/work"
    assert ok.attributes["network.peer.address"] == "127.0.0.1"
    assert ok.attributes["http.response.status_code"] == 200
    assert ok.attributes["webtransport.close_code"] == 4001
    assert ok.attributes["webtransport.close_reason"] == "done here"
    assert ok.attributes["webtransport.bytes_sent"] >= 5000
    assert ok.status.status_code != StatusCode.ERROR
    rejected = finished["WebTransport /missing"]
    assert rejected.attributes is not None and rejected.attributes["http.response.status_code"] == 404
    assert rejected.status.status_code == StatusCode.ERROR

    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[object]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points[metric.name] = list(metric.data.data_points)
    sessions = {dict(p.attributes)["outcome"]: p.value for p in points["pywebtransport.sessions"]}  # type: ignore[attr-defined]
    assert sessions == {"accepted": 1, "rejected": 1}
    streams = {tuple(sorted(dict(p.attributes).items())): p.value for p in points["pywebtransport.streams.opened"]}  # type: ignore[attr-defined]
    assert streams[(("direction", "bidi"), ("initiator", "peer"))] == 1
    assert points["pywebtransport.session.setup"][0].count == 2  # type: ignore[attr-defined]
    assert points["pywebtransport.bytes.received"][0].value >= 5000  # type: ignore[attr-defined]
    assert "pywebtransport.connections.active" in points and "pywebtransport.sessions.active" in points
