"""Demo 1: a server and a client in two processes exchange events both ways."""

from __future__ import annotations

import threading

from unixevents import UnixEvents

from ._peer import demo_channel, peer_process


def client(channel: str, socket_dir: str) -> None:
    done = threading.Event()
    with UnixEvents("client", channel, socket_dir=socket_dir) as ev:
        ev.receive("welcome", lambda data: print(f"  client got welcome: {data}", flush=True))
        ev.receive("bye", lambda data: done.set())
        ev.send("hello", {"from": "client", "numbers": [1, 2, 3]})
        done.wait(10)


def main() -> None:
    with demo_channel() as (channel, socket_dir):
        finished = threading.Event()
        with UnixEvents("server", channel, socket_dir=socket_dir) as server:

            def on_hello(data: dict) -> None:  # type: ignore[type-arg]
                print(f"  server got hello: {data}", flush=True)
                server.send("welcome", {"sum": sum(data["numbers"])})
                server.send("bye", None, lambda err, ok: finished.set())

            server.receive("hello", on_hello)
            with peer_process(client, channel, socket_dir):
                finished.wait(10)


if __name__ == "__main__":
    main()
