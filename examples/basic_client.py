"""Run with ``python examples/basic_server.py`` running (or started later)."""

import logging
import threading

from unixevents import UnixEvents

logging.basicConfig(level=logging.INFO)
welcomed = threading.Event()

with UnixEvents("client", "Channel1") as client:
    client.receive(
        "welcome", lambda data: (print("client received welcome:", data), welcomed.set())
    )
    client.send("hello", {"message": "hi from the client"})  # queued until connected
    if welcomed.wait(30):
        client.send("bye", "see you")
