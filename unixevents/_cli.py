"""``python -m unixevents`` / ``unixevents``: serve, listen, send and request from a shell.

Output is one JSON object per line on stdout; diagnostics go to stderr, an
error as one line, with a non-zero exit status. ``serve`` and ``listen`` run
until Ctrl-C or SIGTERM (``listen`` also until its server goes away) and then
exit 0.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import json
import logging
import os
import queue
import signal
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from unixevents import NotConnectedError, UnixEvents, UnixEventsError

__all__ = ("main",)

_log = logging.getLogger("unixevents")

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure to report as one line on stderr."""


# ------------------------------------------------------------------ parsing


def _parser() -> Tuple[argparse.ArgumentParser, Dict[str, argparse.ArgumentParser]]:
    """The top-level parser (for help and usage errors) and one parser per command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--node",
        action="store_true",
        help="speak the wire of the JavaScript unixevents package (/tmp/<channel>.sock,"
        " no authentication)",
    )
    common.add_argument(
        "--socket-dir", metavar="DIR", help="directory of named channels (default: see README)"
    )
    common.add_argument(
        "--authkey-file",
        metavar="FILE",
        help="read the shared key (its bytes, as they are) from FILE instead of the"
        " server's key file",
    )
    common.add_argument(
        "--timeout",
        type=_positive_float,
        default=5.0,
        metavar="S",
        help="seconds to wait for the connection (and, for request, for the reply); default 5",
    )
    common.add_argument(
        "-v", "--verbose", action="store_true", help="log the connection and every event"
    )

    parser = argparse.ArgumentParser(
        prog="unixevents",
        description="Event-based IPC over Unix domain sockets, from the shell.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    serve = sub.add_parser(
        "serve",
        parents=[common],
        help="be the server; print every event received as a JSON line",
        description="Be the server of CHANNEL and print each client event as a JSON line"
        ' {"event": ..., "data": ...}. Runs until Ctrl-C or SIGTERM.',
    )
    serve.add_argument("channel", metavar="CHANNEL")
    serve.add_argument(
        "--relay",
        action="store_true",
        help="also re-send each event to every connected client (a tiny hub)",
    )
    serve.set_defaults(func=_serve)

    listen = sub.add_parser(
        "listen",
        parents=[common],
        help="connect as a client; print the server's events as JSON lines",
        description="Connect to CHANNEL and print the server's events (only EVENTs, if"
        " named) as JSON lines. Runs until Ctrl-C, SIGTERM or the server going away.",
    )
    listen.add_argument("channel", metavar="CHANNEL")
    listen.add_argument("events", metavar="EVENT", nargs="*", help="print only these events")
    listen.set_defaults(func=_listen)

    send = sub.add_parser(
        "send",
        parents=[common],
        help="send one event",
        description="Connect to CHANNEL, send EVENT with DATA, exit 0 once written.",
    )
    send.add_argument("channel", metavar="CHANNEL")
    send.add_argument("event", metavar="EVENT")
    send.add_argument("data", metavar="DATA", nargs="?", help=_DATA_HELP)
    send.set_defaults(func=_send)

    request = sub.add_parser(
        "request",
        parents=[common],
        help="send a request and print the reply as JSON",
        description="Connect to CHANNEL, ask the server's listener for EVENT, print its"
        " reply as JSON. Not available with --node.",
    )
    request.add_argument("channel", metavar="CHANNEL")
    request.add_argument("event", metavar="EVENT")
    request.add_argument("data", metavar="DATA", nargs="?", help=_DATA_HELP)
    request.set_defaults(func=_request)
    return parser, {"serve": serve, "listen": listen, "send": send, "request": request}


_DATA_HELP = (
    "JSON if it parses, else the text as a string; '-' reads it from stdin (one"
    " trailing newline removed); omitted: null"
)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def parse_data(text: Optional[str]) -> Any:
    """DATA as given on the command line: JSON if it parses, else the string."""
    if text is None:
        return None
    if text == "-":
        text = sys.stdin.read()
        if text.endswith("\n"):
            text = text[:-2] if text.endswith("\r\n") else text[:-1]
    try:
        return json.loads(text, parse_constant=_not_json)
    except ValueError:
        return text


def _not_json(name: str) -> Any:
    raise ValueError(name)


# ------------------------------------------------------------------ helpers


def _channel_options(args: argparse.Namespace) -> Dict[str, Any]:
    options: Dict[str, Any] = {"protocol": "node" if args.node else "mp"}
    if args.socket_dir is not None:
        options["socket_dir"] = args.socket_dir
    if args.authkey_file is not None:
        try:
            with open(args.authkey_file, "rb") as fh:
                options["authkey"] = fh.read()
        except OSError as exc:
            raise CliError(f"cannot read --authkey-file: {exc.strerror or exc}") from None
        if not options["authkey"]:
            raise CliError(f"--authkey-file {args.authkey_file!r} is empty")
    return options


def _json_line(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=repr)


def _emit(line: str) -> None:
    print(line, flush=True)


class _Stop:
    """Turns SIGINT and SIGTERM into an event the main thread waits on."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._old: List[Tuple[int, Any]] = []

    def __enter__(self) -> _Stop:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._old.append((signum, signal.signal(signum, self._handle)))
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.event.set()

    def __exit__(self, *exc: object) -> None:
        for signum, old in self._old:
            signal.signal(signum, old)


def _tap_all_events(events: UnixEvents, fn: Callable[[str, Any], None]) -> None:
    """Call ``fn(event, data)`` for every event ``events`` receives, whatever its name.

    The public API has listeners per event name only; the channel keeps a
    private catch-all for us (see ``UnixEvents._receive_all``). Call it
    before the instance is initialised.
    """
    events._receive_all(fn)


def _connect(args: argparse.Namespace, events: UnixEvents) -> None:
    # init_sync logs why it failed at WARNING; we say it in our one error line.
    level = _log.level
    if not args.verbose:
        _log.setLevel(logging.ERROR)
    try:
        ok = events.init_sync("client", args.channel, timeout=args.timeout)
    finally:
        _log.setLevel(level)
    if not ok:
        raise CliError(
            f"could not connect to {events.address} within {args.timeout:g} s;"
            " is a server running on that channel?"
        )


def _print_until_stopped(
    lines: queue.Queue[str], stop: _Stop, done: Callable[[], bool] = lambda: False
) -> None:
    while not stop.event.is_set():
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            if done():
                break
            continue
        _emit(line)
    while True:  # what arrived before the stop
        try:
            _emit(lines.get_nowait())
        except queue.Empty:
            return


# ----------------------------------------------------------------- commands


def _serve(args: argparse.Namespace) -> int:
    lines: queue.Queue[str] = queue.Queue()
    server = UnixEvents(**_channel_options(args), debug=args.verbose)

    def relay_failed(error: Optional[BaseException], ok: bool) -> None:
        # A client that left meanwhile is no failure of the relay.
        if error is not None and not isinstance(error, NotConnectedError):
            _log.warning("relay failed: %s", error)

    def on_event(event: str, data: Any) -> None:
        lines.put(_json_line({"event": event, "data": data}))
        if args.relay:
            server.send(event, data, relay_failed)

    with _Stop() as stop:
        _tap_all_events(server, on_event)
        try:
            server.init_sync("server", args.channel)
            _log.info("serving %s", server.address)
            _print_until_stopped(lines, stop)
        finally:
            server.close()
    return 0


def _listen(args: argparse.Namespace) -> int:
    lines: queue.Queue[str] = queue.Queue()
    client = UnixEvents(**_channel_options(args), reconnect=False, debug=args.verbose)

    def on_event(event: str, data: Any) -> None:
        lines.put(_json_line({"event": event, "data": data}))

    if args.events:
        for name in dict.fromkeys(args.events):
            client.receive(name, functools.partial(on_event, name))
    else:
        _tap_all_events(client, on_event)
    with _Stop() as stop:
        try:
            _connect(args, client)
            _print_until_stopped(lines, stop, done=lambda: client.closed)
        finally:
            client.close()
    return 0


def _send(args: argparse.Namespace) -> int:
    data = parse_data(args.data)
    client = UnixEvents(**_channel_options(args), reconnect=False, debug=args.verbose)
    try:
        _connect(args, client)
        written = threading.Event()
        outcome: List[Optional[BaseException]] = []

        def callback(error: Optional[BaseException], ok: bool) -> None:
            outcome.append(error)
            written.set()

        client.send(args.event, data, callback)
        if not written.wait(args.timeout):
            raise CliError(f"the event was not written within {args.timeout:g} s")
        if outcome[0] is not None:
            raise outcome[0]
    finally:
        client.close()
    return 0


def _request(args: argparse.Namespace) -> int:
    if args.node:
        raise CliError("request/reply does not exist with --node (the JavaScript wire has none)")
    data = parse_data(args.data)
    client = UnixEvents(**_channel_options(args), reconnect=False, debug=args.verbose)
    try:
        _connect(args, client)
        future = client.request(args.event, data, timeout=args.timeout)
        reply = future.result(args.timeout + 5.0)
    finally:
        client.close()
    _emit(_json_line(reply))
    return 0


# --------------------------------------------------------------------- main


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("unixevents: %(levelname)s: %(message)s"))
    _log.addHandler(handler)
    _log.propagate = False
    _log.setLevel(logging.DEBUG if verbose else logging.WARNING)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (TimeoutError, concurrent.futures.TimeoutError)) and not str(exc):
        return "no reply within the timeout"
    text = str(exc).strip().splitlines()
    name = type(exc).__name__
    if isinstance(exc, (CliError, OSError)) or not text:
        return text[0] if text else name
    return f"{name}: {text[0]}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    top, commands = _parser()
    if not argv or argv[0] not in commands:
        top.parse_args(argv)  # prints help, or the usage error, and exits
        return 2  # pragma: no cover
    # Per command, so that options may come before or after an optional DATA.
    args = commands[argv[0]].parse_intermixed_args(argv[1:])
    args.command = argv[0]
    _setup_logging(args.verbose)
    try:
        status: int = args.func(args)
        return status
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our output went away (``| head``): nothing left to say.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_ERROR
    except (
        CliError,
        UnixEventsError,
        ValueError,
        TypeError,
        OSError,
        TimeoutError,
        concurrent.futures.TimeoutError,
    ) as exc:
        message = _describe(exc)
        if args.verbose and not isinstance(exc, CliError):
            _log.debug("details", exc_info=exc)
        print(f"unixevents {args.command}: error: {message}", file=sys.stderr, flush=True)
        return EXIT_ERROR
