"""A program started by unixevents.mp.popen() in the tests: echoes ping as pong.

With argument "exit:N" it exits with code N at once, without connecting.
"""

import os
import sys

from unixevents.mp import parent_channel

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("exit:"):
        sys.exit(int(sys.argv[1][5:]))
    events = parent_channel()
    assert parent_channel() is events
    events.receive("ping", lambda data: events.send("pong", data))
    events.receive("env", lambda name: events.send("env", os.environ.get(name)))
    events.send("hello", {"pid": os.getpid(), "argv": sys.argv[1:]})
    events.wait_closed()
