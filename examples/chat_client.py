"""Chat client: sends one message, prints every broadcast it receives.

    python examples/chat_client.py https://127.0.0.1:4434/chat alice "hello all" --expect 2
"""

import argparse
import asyncio
import ssl

from pywebtransport import ClientConfig, WebTransportClient


async def main(url: str, name: str, message: str, expect: int, wait: float) -> None:
    config = ClientConfig.create(verify_mode=ssl.CERT_NONE)
    async with WebTransportClient.create(config=config) as client:
        async with await client.connect(url) as session:
            talk = await session.create_bidirectional_stream()
            await asyncio.sleep(wait)  # let the other members join first
            await talk.write(f"{name}: {message}\n".encode())
            seen = 0
            async for stream in session.incoming_streams():
                print((await stream.read_all()).decode().rstrip(), flush=True)
                seen += 1
                if seen >= expect:
                    break


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("name")
    parser.add_argument("message")
    parser.add_argument("--expect", type=int, default=1, help="broadcasts to print before leaving")
    parser.add_argument("--wait", type=float, default=0.5, help="seconds to wait before talking")
    args = parser.parse_args()
    asyncio.run(main(args.url, args.name, args.message, args.expect, args.wait))
