"""A worker process with a channel to its parent: ``python examples/workers.py``."""

import threading

from unixevents.mp import spawn


def square_worker(events, factor):
    events.receive("job", lambda n: events.send("result", n * n * factor))
    events.wait_closed()  # or any blocking loop of yours
    return "square_worker is done"


if __name__ == "__main__":
    got = threading.Event()

    def on_result(value):
        print("result:", value)  # 98
        got.set()

    w = spawn(square_worker, 2)
    w.on_exit(lambda worker: print("worker ended:", worker))
    w.events.receive("result", on_result)
    w.events.send("job", 7)
    got.wait(10)
    w.close()  # closes the channel: the worker's wait_closed() returns
    print("returned:", w.result())

    # Lambdas and closures work too, under every start method.
    offset = 10
    with spawn(lambda events, x: x + offset, 5, start_method="spawn") as w2:
        print("lambda returned:", w2.result(10))  # 15
