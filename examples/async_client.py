"""Pair with ``examples/async_server.py``."""

import asyncio
import logging

from unixevents import UnixEvents

logging.basicConfig(level=logging.INFO)


async def main():
    answered = asyncio.Event()
    async with UnixEvents() as client:

        async def on_answer(data):
            print("client received answer:", data)
            answered.set()

        client.receive("answer", on_answer)
        if not await client.init("client", "Channel2", timeout=30):
            raise SystemExit("no server on Channel2")
        await client.send_sync("question", "what is the answer?")
        await asyncio.wait_for(answered.wait(), 30)
        await client.send_sync("thanks", None)


asyncio.run(main())
