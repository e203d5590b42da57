"""ConnectionLoadBalancer over two (and three) real loopback servers."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from certs import CertSet
from pywebtransport import ClientConfig, ServerApp, ServerConfig, WebTransportSession
from pywebtransport.balancer import ConnectionLoadBalancer
from pywebtransport.exceptions import ClientError
from pywebtransport.server import create_echo_server_app

pytestmark = pytest.mark.timeout(20)


async def start_server(certs: CertSet, port: int = 0, delay: float = 0.0) -> ServerApp:
    app = create_echo_server_app(ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))
    if delay:

        @app.middleware
        async def slow(session: WebTransportSession) -> bool:
            await asyncio.sleep(delay)
            return True

    await app.startup()
    await app.server.listen(host="127.0.0.1", port=port)
    return app


def port_of(app: ServerApp) -> int:
    assert app.server.local_address is not None
    return app.server.local_address[1]


def url(port: int) -> str:
    return f"https://127.0.0.1:{port}/echo"


def cfg(certs: CertSet) -> ClientConfig:
    return ClientConfig.create(ca_certs=str(certs.ca_cert), connect_timeout=1.0)


async def served_by(balancer: ConnectionLoadBalancer, strategy: str, n: int) -> list[int]:
    ports = []
    for _ in range(n):
        session = await balancer.get_session(strategy=strategy)
        assert session.remote_address is not None
        ports.append(session.remote_address[1])
        await session.close()
    return ports


async def test_round_robin_failover_and_recovery(certs: CertSet) -> None:
    a, b = await start_server(certs), await start_server(certs)
    pa, pb = port_of(a), port_of(b)
    balancer = ConnectionLoadBalancer([url(pa), url(pb)], health_check_interval=60, health_check_timeout=2, config=cfg(certs))
    try:
        assert await served_by(balancer, "round_robin", 4) == [pa, pb, pa, pb]

        await b.shutdown(timeout=0.2)
        # B fails once, is marked unhealthy and the call falls over to A.
        assert await served_by(balancer, "round_robin", 4) == [pa, pa, pa, pa]
        stats = balancer.get_target_stats()
        assert stats[url(pb)]["healthy"] is False and stats[url(pb)]["failures"] == 1
        assert stats[url(pa)]["sessions"] == 6 and stats[url(pb)]["sessions"] == 2
        assert await balancer.check_health() == {url(pa): True, url(pb): False}

        b = await start_server(certs, pb)  # B is back on the same port
        assert await balancer.check_health() == {url(pa): True, url(pb): True}
        assert set(await served_by(balancer, "round_robin", 4)) == {pa, pb}

        await a.shutdown(timeout=0.2)
        await b.shutdown(timeout=0.2)
        with pytest.raises(ClientError):
            await balancer.get_session()
        assert balancer.healthy_targets() == []
    finally:
        await balancer.close()
        await a.shutdown(timeout=0.2)
        await b.shutdown(timeout=0.2)


async def test_background_health_check_restores_target(certs: CertSet) -> None:
    a = await start_server(certs)
    pa = port_of(a)
    await a.shutdown(timeout=0.2)
    async with ConnectionLoadBalancer([url(pa)], 0.1, 1, config=cfg(certs)) as balancer:
        with pytest.raises(ClientError):
            await balancer.get_session()
        assert balancer.healthy_targets() == []
        a = await start_server(certs, pa)
        for _ in range(50):  # the periodic check notices it is back
            if balancer.healthy_targets():
                break
            await asyncio.sleep(0.05)
        assert balancer.healthy_targets() == [url(pa)]
        assert balancer.get_target_stats()[url(pa)]["health_checks"] >= 1
        session = await balancer.get_session()
        assert session.is_ready
    await a.shutdown(timeout=0.2)


async def test_weighted_and_least_latency(certs: CertSet) -> None:
    fast, slow = await start_server(certs), await start_server(certs, delay=0.25)
    pf, ps = port_of(fast), port_of(slow)
    balancer = ConnectionLoadBalancer([url(ps), url(pf)], config=cfg(certs))
    try:
        balancer.update_target_weight(url(ps), 0)
        assert Counter(await served_by(balancer, "weighted", 5)) == Counter({pf: 5})
        balancer.update_target_weight(url(ps), 1)
        balancer.update_target_weight(url(pf), 0)
        assert Counter(await served_by(balancer, "weighted", 2)) == Counter({ps: 2})
        with pytest.raises(ValueError):
            balancer.update_target_weight("https://127.0.0.1:1/unknown", 1)

        await balancer.check_health()  # measures both targets' connect latency
        stats = balancer.get_target_stats()
        assert stats[url(ps)]["latency"] > stats[url(pf)]["latency"] + 0.1
        assert await served_by(balancer, "least_latency", 3) == [pf, pf, pf]
        with pytest.raises(ValueError):
            await balancer.get_session(strategy="fastest")
    finally:
        await balancer.close()
        await fast.shutdown(timeout=0.2)
        await slow.shutdown(timeout=0.2)
