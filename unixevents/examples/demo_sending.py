"""Demo 4: fire-and-forget ``send`` with callbacks vs awaited ``send_sync``."""

from __future__ import annotations

import asyncio
import threading
import time

from unixevents import UnixEvents

from ._peer import demo_channel, peer_process

COUNT = 20_000


def client(channel: str, socket_dir: str) -> None:
    with UnixEvents("client", channel, socket_dir=socket_dir) as ev:
        ev.wait_connected(10)
        written = threading.Event()
        started = time.perf_counter()
        for i in range(COUNT - 1):
            ev.send("tick", i)
        ev.send("tick", COUNT - 1, lambda err, ok: written.set())
        written.wait(10)
        elapsed = time.perf_counter() - started
        print(f"  send():      {COUNT} events written in {elapsed:.3f} s", flush=True)

        async def awaited() -> float:
            started = time.perf_counter()
            for i in range(1000):
                await ev.send_sync("tock", i)
            return time.perf_counter() - started

        elapsed = asyncio.run(awaited())
        print(f"  send_sync(): 1000 events, each awaited, in {elapsed:.3f} s", flush=True)


def main() -> None:
    with demo_channel() as (channel, socket_dir):
        counts = {"tick": 0, "tock": 0}
        done = threading.Event()

        def count(event: str, total: int) -> None:
            counts[event] += 1
            if counts["tick"] == COUNT and counts["tock"] == total:
                done.set()

        with UnixEvents("server", channel, socket_dir=socket_dir) as server:
            server.receive("tick", lambda _: count("tick", 1000))
            server.receive("tock", lambda _: count("tock", 1000))
            with peer_process(client, channel, socket_dir):
                done.wait(20)
            print(
                f"  server received {counts['tick']} ticks and {counts['tock']} tocks", flush=True
            )


if __name__ == "__main__":
    main()
