"""Connect to a channel, hand the socket to a grandchild, and exit.

Reads {"address", "authkey"} as JSON on stdin, connects with the plain
multiprocessing.connection client (the wire is its HMAC handshake), starts
`sleep` with the socket inherited, prints the grandchild's PID and exits: the
server's peer is then gone while its socket stays open.
"""

import json
import os
import subprocess
import sys
from multiprocessing.connection import Client

if __name__ == "__main__":
    cfg = json.loads(sys.stdin.read())
    conn = Client(cfg["address"], "AF_UNIX", authkey=bytes.fromhex(cfg["authkey"]))
    grandchild = subprocess.Popen(
        ["sleep", "60"],
        pass_fds=(conn.fileno(),),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print(grandchild.pid, flush=True)
    os._exit(0)
