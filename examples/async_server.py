"""The asyncio flavour: ``await ev.init(...)``; pair with ``examples/async_client.py``."""

import asyncio
import logging

from unixevents import UnixEvents

logging.basicConfig(level=logging.INFO)


async def main():
    done = asyncio.Event()
    async with UnixEvents() as server:
        await server.init("server", "Channel2")
        print("server listening on", server.address)

        async def on_question(data):
            print("server received question:", data)
            await server.send_sync("answer", {"answer": 42})

        async def on_thanks(data):
            done.set()  # coroutine listeners run on this loop, so asyncio objects are safe here

        server.receive("question", on_question)
        server.receive("thanks", on_thanks)
        await done.wait()


asyncio.run(main())
