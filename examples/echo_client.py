"""Echo client: one stream round trip and one datagram round trip.

    python examples/echo_client.py https://127.0.0.1:4433/echo
"""

import asyncio
import ssl
import sys

from pywebtransport import ClientConfig, WebTransportClient


async def main(url: str) -> None:
    # The example server uses a self-signed certificate; real clients verify.
    config = ClientConfig.create(verify_mode=ssl.CERT_NONE)
    async with WebTransportClient.create(config=config) as client:
        async with await client.connect(url) as session:
            stream = await session.create_bidirectional_stream()
            await stream.write_all(b"Hello, Stream!")
            print(f"stream:   {await stream.read_all()!r}")
            for _ in range(5):  # datagrams may be lost: retry a few times
                await session.datagrams.send(b"Hello, Datagram!")
                try:
                    print(f"datagram: {await session.datagrams.receive(timeout=1)!r}")
                    break
                except Exception:
                    continue


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "https://127.0.0.1:4433/echo"))
