"""`pywebtransport bench` against the webtransport-go v0.12 echo server (tests/interop/go/server)."""

from __future__ import annotations

import pytest

from certs import CertSet
from pywebtransport import ClientConfig
from pywebtransport.loadgen import run_bench
from test_webtransport_go import GoServer, go_server, go_server_proc  # noqa: F401 - fixtures

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("scenario", ["connect", "echo", "datagram", "upload"])
async def test_load_tool_against_webtransport_go(go_server_proc: GoServer, certs: CertSet, scenario: str) -> None:
    url = f"https://localhost:{go_server_proc.port}/echo"
    size = 100_000 if scenario == "upload" else 64
    result = await run_bench(url, scenario, sessions=2, streams=2, duration=1.0, size=size,
                             config=ClientConfig.create(ca_certs=str(certs.ca_cert)))
    assert result.errors == 0, result.to_dict()
    assert result.operations > 0 and result.percentile(50) > 0
    if scenario == "upload":
        assert result.bytes == result.operations * size
