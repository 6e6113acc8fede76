"""A middle process for parent-death tests: spawns a worker that ignores its channel.

Usage: python middle.py START_METHOD (main|thread) (1|0)
Prints one JSON line {"pid", "create_time", "directory"} about its worker, then
sleeps until killed. "thread" spawns from a short-lived thread, so the worker
cannot rely on PR_SET_PDEATHSIG and must be ended by its watchdog.
"""

import json
import sys
import threading
import time

from worker_targets import stubborn_worker

from unixevents.mp import spawn

if __name__ == "__main__":
    method, where, exit_with_parent = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    box = []

    def start():
        box.append(spawn(stubborn_worker, start_method=method, exit_with_parent=exit_with_parent))

    if where == "thread":
        t = threading.Thread(target=start)
        t.start()
        t.join()
    else:
        start()
    w = box[0]
    info = {"pid": w.pid, "create_time": w._create_time, "directory": w._directory}
    print(json.dumps(info), flush=True)
    while True:
        time.sleep(1)
