"""Run me, then ``python examples/basic_client.py`` in another terminal (either order works)."""

import logging
import threading

from unixevents import UnixEvents

logging.basicConfig(level=logging.INFO)
done = threading.Event()

with UnixEvents("server", "Channel1") as server:

    def on_hello(data):
        print("server received hello:", data)
        server.send("welcome", {"message": "hi from the server"})

    def on_bye(data):
        print("server received bye:", data)
        done.set()

    server.receive("hello", on_hello)
    server.receive("bye", on_bye)
    print("server listening on", server.address)
    done.wait()
