"""Client/Server/Datagram monitors and the development server, over real loopback sessions."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from certs import CertSet
from pywebtransport import ClientConfig, ServerConfig, WebTransportClient
from pywebtransport.exceptions import ClientError, ConfigurationError, WebTransportError
from pywebtransport.monitor import ClientMonitor, DatagramMonitor, MonitorBase, ServerMonitor
from pywebtransport.server import (
    create_development_server,
    create_echo_server_app,
    echo_handler,
    health_check_handler,
)

pytestmark = pytest.mark.timeout(20)

INSECURE = ClientConfig.create(verify_mode=ssl.CERT_NONE, connect_timeout=2.0)


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def samples_after(monitor: MonitorBase, count: int) -> None:
    target = monitor.history[-1]["timestamp"] if monitor.history else 0.0
    await until(lambda: sum(1 for s in monitor.history if s["timestamp"] > target) >= count)


async def test_development_server_echo_and_server_monitor(tmp_path: Path) -> None:
    app = create_development_server(host="127.0.0.1", port=0, generate_cert=True, cert_dir=tmp_path, max_connections=2)
    assert (tmp_path / "localhost.crt").exists() and (tmp_path / "localhost.key").exists()
    assert app.config.debug is True
    app.add_route("/echo", echo_handler)
    app.add_route("/health", health_check_handler)
    await app.startup()
    await app.server.listen()
    assert app.server.local_address is not None
    base = f"https://127.0.0.1:{app.server.local_address[1]}"
    try:
        async with ServerMonitor(app, monitoring_interval=0.05, history_size=5) as monitor:
            assert monitor.is_monitoring
            async with WebTransportClient(INSECURE) as client:
                echo = await client.connect(base + "/echo")
                stream = await echo.create_bidirectional_stream()
                await stream.write_all(b"dev server")
                assert await asyncio.wait_for(stream.read_all(), 5) == b"dev server"
                await echo.datagrams.send(b"dgram")
                assert await echo.datagrams.receive(timeout=5) == b"dgram"
                await samples_after(monitor, 1)
                assert monitor.get_health_status() == "healthy"
                assert monitor.history[-1]["active_sessions"] == 1

                health = await client.connect(base + "/health")
                probe = await health.create_bidirectional_stream()
                await probe.write_all(b"")
                assert b'"status": "healthy"' in await asyncio.wait_for(probe.read_all(), 5)
                # Two of two connections in use: degraded.
                await samples_after(monitor, 1)
                assert monitor.get_health_status() == "degraded"
                with pytest.raises(WebTransportError):
                    await client.connect(base + "/echo")  # over max_connections: refused
                await samples_after(monitor, 2)
                summary = monitor.get_metrics_summary()
                assert summary["latest"]["connections_accepted"] == 2
                assert summary["aggregates"]["connections_rejected"]["max"] == 1
                assert summary["aggregates"]["active_sessions"]["max"] == 2
                assert summary["samples"] <= 5  # bounded history
                messages = [a.message for a in monitor.get_alerts("degraded")]
                assert any("rejected" in m for m in messages)
                assert sum("connections in use" in m for m in messages) == 1  # alerted once, not per sample
                await echo.close()
                await health.close()
            await app.shutdown(timeout=0.5)
            await samples_after(monitor, 1)
            assert monitor.get_health_status() == "unhealthy"
            assert monitor.get_alerts("unhealthy")[-1].message == "server is not serving"
        assert not monitor.is_monitoring
    finally:
        await app.shutdown(timeout=0.5)


def test_development_server_without_certificate_fails(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        create_development_server(port=0, generate_cert=False, cert_dir=tmp_path)


async def test_client_monitor_tracks_failures(certs: CertSet) -> None:
    app = create_echo_server_app(ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))
    await app.startup()
    await app.server.listen(host="127.0.0.1", port=0)
    assert app.server.local_address is not None
    port = app.server.local_address[1]
    config = ClientConfig.create(ca_certs=str(certs.ca_cert), connect_timeout=2.0)
    try:
        async with WebTransportClient(config) as client:
            async with ClientMonitor(client, monitoring_interval=0.05, history_size=4) as monitor:
                session = await client.connect(f"https://127.0.0.1:{port}/echo")
                await samples_after(monitor, 1)
                assert monitor.get_health_status() == "healthy"
                assert monitor.history[-1]["successful"] == 1 and monitor.alerts == type(monitor.alerts)()

                for _ in range(2):  # nothing listens on port 9
                    with pytest.raises(ClientError):
                        await client.connect("https://127.0.0.1:9/echo", timeout=1.0)
                await samples_after(monitor, 3)
                assert monitor.get_health_status() == "unhealthy"  # 1 of 3 succeeded
                summary = monitor.get_metrics_summary()
                assert summary["latest"]["failed"] == 2
                assert summary["latest"]["success_rate"] == pytest.approx(1 / 3)
                assert summary["health"] == "unhealthy" and summary["samples"] == 4
                alerts = monitor.get_alerts("unhealthy")
                assert len(alerts) == 1 and "success rate" in alerts[0].message
                await session.close()
    finally:
        await app.shutdown(timeout=0.5)


async def test_datagram_monitor_detects_drops(certs: CertSet) -> None:
    app = create_echo_server_app(ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))
    await app.startup()
    await app.server.listen(host="127.0.0.1", port=0)
    assert app.server.local_address is not None
    config = ClientConfig.create(ca_certs=str(certs.ca_cert), connect_timeout=2.0)
    try:
        async with WebTransportClient(config) as client:
            session = await client.connect(f"https://127.0.0.1:{app.server.local_address[1]}/echo")
            datagrams = session.datagrams
            async with DatagramMonitor(datagrams, monitoring_interval=0.05) as monitor:
                for i in range(5):
                    await datagrams.send(b"d%d" % i)
                    assert await datagrams.receive(timeout=5) == b"d%d" % i
                await samples_after(monitor, 1)
                assert monitor.get_health_status() == "healthy"
                assert monitor.history[-1]["datagrams_sent"] == 5

                datagrams.high_water_mark = 10
                for i in range(12):  # nobody reads: the queue overflows by two
                    await datagrams.send(b"flood%d" % i)
                await until(lambda: datagrams.datagrams_received == 17)
                await samples_after(monitor, 1)
                latest = monitor.history[-1]
                assert latest["datagrams_dropped"] == 2 and latest["receive_queue"] == 10
                assert monitor.get_health_status() == "degraded"
                assert {a.level for a in monitor.alerts} == {"degraded"}
                assert monitor.get_metrics_summary()["aggregates"]["datagrams_received"]["max"] == 17

                await session.close()
                await samples_after(monitor, 1)
                assert monitor.get_health_status() == "unhealthy"
                assert "datagram stream is closed" in monitor.get_health_report()["issues"]
    finally:
        await app.shutdown(timeout=0.5)
