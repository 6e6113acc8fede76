"""Run the stress suite and print the README's "Reliability" section from its figures.

Usage (from the repository root)::

    python tests/stress/report.py                    # run everything, print markdown
    UNIXEVENTS_LOAD_SECONDS=10 python tests/stress/report.py   # a shorter load test
    python tests/stress/report.py --from-json .stress/stress-report.json   # no run

It lives beside the tests it reports on (``tests/`` is not a package, so a
``python -m`` form would be awkward); ``benchmarks/`` is for speed, not this.
The figures come from the JSON file the tests write (``stress_support.record``);
the known defects are the suite's strict xfails, read from pytest's summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from stress_support import DEFAULT_REPORT, REPORT_ENV  # noqa: E402


def run_suite(report: str, pytest_args: List[str]) -> Dict[str, Any]:
    if os.path.exists(report):
        os.unlink(report)
    env = dict(os.environ, **{REPORT_ENV: report})
    cmd = [sys.executable, "-m", "pytest", "-q", "-rx", "-m", "stress", "tests/stress"]
    t0 = time.monotonic()
    done = subprocess.run(
        [*cmd, *pytest_args], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    sys.stderr.write(done.stdout)
    xfails = [
        m.group(1).strip() for m in re.finditer(r"^XFAIL \S+ - (.*)$", done.stdout, re.MULTILINE)
    ]
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    return {
        "returncode": done.returncode,
        "summary": tail.strip("= "),
        "minutes": round((time.monotonic() - t0) / 60, 1),
        "xfails": xfails,
    }


def _ms(x: Any) -> str:
    return f"{x} ms"


def render(figs: Dict[str, Any], run: Optional[Dict[str, Any]]) -> str:
    g = figs.get
    out: List[str] = ["## Reliability", ""]
    out.append(
        "`python tests/stress/report.py` runs the stress suite (`pytest -m stress"
        " tests/stress`: fuzzing, faults, load, hostile peers, resource hygiene) and"
        " prints this section from the figures it records (set `UNIXEVENTS_LOAD_SECONDS`"
        " for a shorter load test). `.ci/run` runs the same suite with a 20 s load test."
    )
    if run is not None:
        out.append(
            f"Last run: Python {platform.python_version()}, {os.cpu_count()} cores,"
            f" {run['minutes']} min, {run['summary']}."
        )
    out += ["", "| what was done to it | what it did |", "|---|---|"]

    def row(what: str, did: str) -> None:
        out.append(f"| {what} | {did} |")

    f = g("fuzz_sans_io")
    if f:
        c = f["cases"]
        row(
            "Fuzzed decoders, no socket (hypothesis, derandomized)",
            f"{f['total_cases']} cases: {c['mp_reader']} mp byte streams (random bytes,"
            f" truncated frames, huge and negative lengths, deep nesting, bad UTF-8, wrong"
            f" types), {c['json_split']} JSON batches, {c['node_reader']} Node `;;` streams,"
            f" {c['node_good_after_bad']} garbage-then-good Node pairs. Only well-formed"
            " messages come out, or a framing error; at most one frame is ever buffered;"
            " garbage never costs the good Node message after it",
        )
    f = g("fuzz_live_mp")
    if f:
        row(
            "Fuzz through a live socket (mp, after a real handshake)",
            f"{f['cases']} hostile connections; each of {f['oversized_frames_closed']}"
            " oversized/negative frame lengths closed that connection at once; a good client"
            f" was answered after every case (median {_ms(f['good_p50_ms'])}, max"
            f" {_ms(f['good_max_ms'])}); server RSS {f['server_rss_mib_before']} →"
            f" {f['server_rss_mib_after']} MiB, descriptors {f['server_fds_before']} →"
            f" {f['server_fds_after']}, threads {f['server_threads_before']} →"
            f" {f['server_threads_after']}",
        )
    f = g("fuzz_live_node")
    if f:
        row(
            "Fuzz through a live socket (Node wire)",
            f"{f['cases']} hostile connections; the good Node client got all"
            f" {f['good_client_pongs']} replies; server RSS {f['server_rss_mib_before']} →"
            f" {f['server_rss_mib_after']} MiB, descriptors {f['server_fds_before']} →"
            f" {f['server_fds_after']}",
        )
    f = g("no_unpickling")
    if f:
        row(
            "Pickles sent to a JSON channel by an authenticated same-user peer",
            f"{f['pickled_frames_sent']} frames (pickle, dill, `Connection.send`), {f['unpickled']}"
            " unpickled; the server goes on",
        )
    f = g("fault_server_sigkill")
    if f:
        row(
            f"Server SIGKILLed {f['server_kills']} times under load from"
            f" {f['clients']} client processes, restarted each time",
            f"{f['messages_delivered']} messages delivered;"
            f" {f['queued_while_disconnected_and_delivered_once_in_order']} of them sent"
            " while no server was up, every one delivered exactly once and in order after"
            f" the reconnect; {f['duplicates']} duplicates;"
            f" {f['lost_in_killed_server_buffers']} lost in all in the killed servers'"
            " socket buffers (written, so reported sent, but never read: no transport can"
            " save those)",
        )
    f = g("fault_client_kill_stop")
    if f:
        row(
            "Clients SIGKILLed and SIGSTOPped",
            "a SIGKILLed client is noticed (`on_disconnect`) and the server goes on; with"
            f" one client stopped, {f['broadcasts_while_one_client_stopped']} broadcasts"
            " reached the good client in full, a new client connected, and the stopped"
            " client got all of them after SIGCONT"
            f" ({f['broadcasts_refused_queue_full']} refused with `QueueFull`)",
        )
    f = g("fault_socket_deleted")
    if f:
        row("Socket file deleted under a running server", f["behaviour"])
    f = g("fault_read_only_dir")
    if f:
        row("Read-only socket directory at start", f'`UnixEventsError`: "{f["error"]}"')
    f = g("load")
    if f:
        row(
            f"{f['clients']} clients ({f['layout']}) on one server for {f['seconds']:g} s",
            f"{f['events_sent']} events sent, {f['events_counted_by_server']} counted in order"
            f" ({f['out_of_order']} out of order); {f['requests_answered']} requests answered,"
            f" {f['requests_failed']} failed; {f['broadcast_ticks_received']} broadcasts"
            f" received, {f['broadcast_tick_gaps']} gaps; server descriptors"
            f" {f['server_fds_idle']} → {f['server_fds_with_64_clients']} →"
            f" {f['server_fds_after']}, threads {f['server_threads_idle']} →"
            f" {f['server_threads_after']}; RSS"
            f" {min(f['server_rss_mib_samples'])} to {max(f['server_rss_mib_samples'])} MiB,"
            f" growth after warm-up {f['server_rss_growth_after_warmup_mib']} MiB",
        )
    f = g("hostile_stalled_handshakes")
    if f:
        row(
            f"{f['stalled_connections']} connections that stall the handshake",
            f"a good client still connects in at most {_ms(f['good_connect_max_ms'])}"
            f" ({f['good_connects']} tries)",
        )
    f = g("hostile_wrong_key_storm")
    if f:
        row(
            f"Wrong-key storm, 4 threads for {f['storm_seconds']:g} s",
            f"{f['wrong_key_attempts_refused']} attempts refused,"
            f" {f['wrong_key_attempts_accepted']} accepted; a good client's request median"
            f" {_ms(f['good_p50_ms_quiet'])} → {_ms(f['good_p50_ms_storm'])} (p99"
            f" {_ms(f['good_p99_ms_quiet'])} → {_ms(f['good_p99_ms_storm'])}) on a machine the"
            " storm shares; a new client connects in"
            f" {_ms(f['good_connect_during_storm_ms'])}",
        )
    f = g("hygiene")
    if f:
        row(
            f"{f['channel_cycles']} server+client open/request/close cycles, then"
            f" {f['worker_cycles']} workers",
            f"descriptors {f['fds_before']} → {f['fds_after_channels']} →"
            f" {f['fds_after_workers']}; {f['unixevents_threads_after']} threads,"
            f" {f['child_processes_after']} processes, {f['files_left']} files left",
        )
    if run is not None and run["xfails"]:
        out += ["", "Known defects, kept as strict `xfail` tests until fixed:", ""]
        out += [f"- {x.removeprefix('BUG: ')}" for x in run["xfails"]]
    return "\n".join(out) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-json", help="render this report file; do not run the suite")
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest")
    args = parser.parse_args(argv)
    run = None
    path = args.from_json
    if path is None:
        path = os.environ.get(REPORT_ENV) or DEFAULT_REPORT
        run = run_suite(path, args.pytest_args)
    with open(path) as fh:
        figs = json.load(fh)
    sys.stdout.write(render(figs, run))
    return 0 if run is None else run["returncode"]


if __name__ == "__main__":
    sys.exit(main())
