"""The access log: one line per session, written when it ends (or at once when refused)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from certs import CertSet
from pywebtransport import ClientConfig, ServerApp, ServerConfig, WebTransportClient, WebTransportSession
from pywebtransport import WebTransportStream
from pywebtransport.exceptions import SessionRejectedError

pytestmark = pytest.mark.timeout(60)


async def test_one_line_per_session_with_duration_bytes_and_close_code(
    certs: CertSet, caplog: pytest.LogCaptureFixture
) -> None:
    app = ServerApp(config=ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))

    @app.route("/echo")
    async def echo(session: WebTransportSession) -> None:
        async for stream in session.incoming_streams():
            if isinstance(stream, WebTransportStream):
                await stream.write_all(await stream.read_all())
        await session.wait_closed()

    with caplog.at_level(logging.INFO, logger="pywebtransport.server.access"):
        async with app:
            await app.server.listen(host="127.0.0.1", port=0)
            assert app.server.local_address is not None
            url = f"https://localhost:{app.server.local_address[1]}"
            async with WebTransportClient(ClientConfig.create(ca_certs=str(certs.ca_cert))) as client:
                session = await client.connect(url + "/echo")
                stream = await session.create_bidirectional_stream()
                await stream.write_all(b"z" * 3000)
                assert await stream.read_all() == b"z" * 3000
                assert not [r for r in caplog.records if r.name == "pywebtransport.server.access"]
                await session.close(4100, "bye")
                with pytest.raises(SessionRejectedError):
                    await client.connect(url + "/nope")
                for _ in range(50):
                    if len([r for r in caplog.records if r.name == "pywebtransport.server.access"]) >= 2:
                        break
                    await asyncio.sleep(0.1)

    records = {r.wt_path: r for r in caplog.records if r.name == "pywebtransport.server.access"}  # type: ignore[attr-defined]
    done = records["/echo"]
    assert done.wt_status == 200 and done.wt_close_code == 4100 and done.wt_close_reason == "bye"  # type: ignore[attr-defined]
    assert done.wt_bytes_sent >= 3000 and done.wt_duration > 0  # type: ignore[attr-defined]
    assert done.wt_peer.startswith("127.0.0.1:")  # type: ignore[attr-defined]
    assert "/echo -> 200" in done.getMessage() and "close=4100" in done.getMessage()
    refused = records["/nope"]
    assert refused.wt_status == 404 and "/nope -> 404" in refused.getMessage()  # type: ignore[attr-defined]
