"""Demo 2: initialise later with ``await ev.init(...)``, coroutine listeners, send_sync."""

from __future__ import annotations

import asyncio

from unixevents import UnixEvents

from ._peer import demo_channel, peer_process


def client(channel: str, socket_dir: str) -> None:
    async def run() -> None:
        ev = UnixEvents(socket_dir=socket_dir)
        answered = asyncio.Event()

        async def on_pong(data: int) -> None:
            print(f"  client got pong {data}", flush=True)
            answered.set()

        ev.receive("pong", on_pong)
        if not await ev.init("client", channel, timeout=10):
            raise SystemExit("could not connect")
        print(f"  client connected: {ev.connected}", flush=True)
        await ev.send_sync("ping", 41)
        await asyncio.wait_for(answered.wait(), 10)
        await asyncio.get_running_loop().run_in_executor(None, ev.close)

    asyncio.run(run())


def main() -> None:
    async def run() -> None:
        with demo_channel() as (channel, socket_dir):
            async with UnixEvents(socket_dir=socket_dir) as server:
                await server.init("server", channel)
                print(f"  server listening on {server.address}", flush=True)

                async def on_ping(data: int) -> None:
                    print(f"  server got ping {data}", flush=True)
                    await server.send_sync("pong", data + 1)

                server.receive("ping", on_ping)
                with peer_process(client, channel, socket_dir) as proc:
                    await asyncio.get_running_loop().run_in_executor(None, proc.join, 15)

    asyncio.run(run())


if __name__ == "__main__":
    main()
