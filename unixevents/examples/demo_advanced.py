"""Demo 3: request/reply, receive_once, peers, lifecycle hooks, errors."""

from __future__ import annotations

import threading

from unixevents import RemoteError, UnixEvents

from ._peer import demo_channel, peer_process


def client(channel: str, socket_dir: str) -> None:
    with UnixEvents("client", channel, socket_dir=socket_dir) as ev:
        print(f"  client: 2 + 3 = {ev.request('add', [2, 3]).result(timeout=10)}", flush=True)
        try:
            ev.request("divide", [1, 0]).result(timeout=10)
        except RemoteError as exc:
            print(f"  client: the server's listener raised {exc.remote_type}", flush=True)
        ev.send("note", "first")  # the server hears only this one (receive_once)
        ev.send("note", "second")
        ev.request("sync", None).result(timeout=10)


def main() -> None:
    with demo_channel() as (channel, socket_dir):
        left = threading.Event()
        with UnixEvents("server", channel, socket_dir=socket_dir) as server:
            server.on_connect(lambda peer: print(f"  server: pid {peer.pid} connected", flush=True))
            server.on_disconnect(lambda peer: left.set())
            server.receive("add", lambda xs: sum(xs))
            server.receive("divide", lambda xy: xy[0] / xy[1])
            server.receive_once("note", lambda text: print(f"  server: note {text!r}", flush=True))
            server.receive("sync", lambda _: None)
            with peer_process(client, channel, socket_dir):
                left.wait(10)
            print("  server: the client left", flush=True)


if __name__ == "__main__":
    main()
