"""The table: which figures are compared with which, the targets of issue 6, the verdicts.

A target is a bound on the ratio unixevents / baseline (or, for the memory
rows, on RSS growth / bytes queued or attempted). Targets are reported, never
enforced by the exit status: CI only checks that the benchmark runs and loses
nothing.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = ("ROWS", "Row", "Verdict", "render", "verdicts")

Medians = Dict[str, Optional[float]]
Runs = List[Dict[str, float]]


@dataclasses.dataclass(frozen=True)
class Row:
    label: str
    ours: str  # key of the unixevents figure
    base: str  # key of the figure it is compared with
    unit: str  # how to print both: "rate", "us", "mbps", "mb"
    target: Optional[Tuple[str, float]] = None  # (">=" or "<=", bound on the ratio)
    base_note: str = ""  # printed after the compared figure when it is not a baseline
    require: str = ""  # key that must be > 0 (and "other errors" == 0) for a PASS


ROWS: Tuple[Row, ...] = (
    Row("one-way throughput, events/s", "oneway.ue.rate", "oneway.raw.rate", "rate", (">=", 2.0)),
    Row("  same, vs baseline 64 msgs/frame", "oneway.ue.rate", "oneway.raw64.rate", "rate"),
    Row(
        "request/reply p50, us (vs ping-pong)",
        "latency.ue.request.p50",
        "latency.raw.pingpong.p50",
        "us",
        ("<=", 1.2),
    ),
    Row(
        "  same, vs threaded ping-pong (see note)",
        "latency.ue.request.p50",
        "latency.rawthreads.pingpong.p50",
        "us",
    ),
    Row("  request/reply mean, us", "latency.ue.request.mean", "latency.raw.pingpong.mean", "us"),
    Row("  request/reply p99, us", "latency.ue.request.p99", "latency.raw.pingpong.p99", "us"),
    Row(
        "ping-pong send/receive p50, us",
        "latency.ue.pingpong.p50",
        "latency.raw.pingpong.p50",
        "us",
    ),
    Row("  ping-pong mean, us", "latency.ue.pingpong.mean", "latency.raw.pingpong.mean", "us"),
    Row("  ping-pong p99, us", "latency.ue.pingpong.p99", "latency.raw.pingpong.p99", "us"),
    Row("64 KiB payloads, MB/s", "blob.ue.mbps", "blob.raw.mbps", "mbps", (">=", 0.9)),
    Row("fan-out to 8 clients, events/s", "fanout.ue.rate", "fanout.raw.rate", "rate", (">=", 2.0)),
    Row("peak RSS, one-way receiver, MB", "oneway.ue.rss.server", "oneway.raw.rss.server", "mb"),
    Row("peak RSS, one-way sender, MB", "oneway.ue.rss.client", "oneway.raw.rss.client", "mb"),
    Row("peak RSS, fan-out sender, MB", "fanout.ue.rss.server", "fanout.raw.rss.server", "mb"),
    Row("peak RSS, fan-out receiver, MB", "fanout.ue.rss.client", "fanout.raw.rss.client", "mb"),
    Row(
        "stalled client: RSS growth, MB",
        "memory.held.growth",
        "memory.held.queued",
        "mb",
        ("<=", 1.5),
        base_note="queued",
    ),
    Row(
        "slow consumer, max_pending: growth, MB",
        "memory.bounded.growth_second",
        "memory.bounded.round_bytes",
        "mb",
        ("<=", 0.1),
        base_note="sent",
        require="memory.bounded.queue_full",
    ),
)

_FORMATS: Dict[str, Callable[[float], str]] = {
    "rate": lambda v: f"{v:,.0f}",
    "us": lambda v: f"{v:,.1f}",
    "mbps": lambda v: f"{v:,.0f}",
    "mb": lambda v: f"{v / 1e6:,.2f}",
}


@dataclasses.dataclass
class Verdict:
    row: Row
    ours: Optional[float]
    base: Optional[float]
    ratio: Optional[float]
    result: str  # PASS, FAIL, info, n/a

    def as_dict(self) -> Dict[str, Any]:
        target = self.row.target
        return {
            "measurement": self.row.label.strip(),
            "unixevents": self.ours,
            "baseline": self.base,
            "compared_with": self.row.base_note or "baseline",
            "ratio": self.ratio,
            "target": None if target is None else f"{target[0]} {target[1]}",
            "result": self.result,
        }


def verdicts(medians: Medians, runs: Runs) -> List[Verdict]:
    return [_judge(row, medians, runs) for row in ROWS]


def _ratio(row: Row, runs: Runs) -> Optional[float]:
    """Median of the per-repetition ratios.

    Both sides of a comparison run back to back in each repetition, so a
    slow moment of a shared machine weighs on both; pairing them keeps such
    moments out of the ratio better than dividing the two medians would.
    """
    pairs = [r[row.ours] / r[row.base] for r in runs if row.ours in r and r.get(row.base)]
    return statistics.median(pairs) if pairs else None


def _judge(row: Row, medians: Medians, runs: Runs) -> Verdict:
    ours, base = medians.get(row.ours), medians.get(row.base)
    ratio = _ratio(row, runs)
    if row.target is None:
        return Verdict(row, ours, base, ratio, "info")
    if ratio is None:
        return Verdict(row, ours, base, ratio, "n/a")
    op, bound = row.target
    ok = ratio >= bound if op == ">=" else ratio <= bound
    if row.require:
        prefix = row.require.rsplit(".", 1)[0]
        ok = ok and (medians.get(row.require) or 0) > 0
        ok = ok and not medians.get(f"{prefix}.other_errors")
    return Verdict(row, ours, base, ratio, "PASS" if ok else "FAIL")


_HEAD = ("measurement", "unixevents", "baseline", "ratio", "target", "result")
_WIDTHS = (40, 12, 17, 7, 8, 6)


def render(rows: List[Verdict]) -> List[str]:
    """The table as lines of text."""
    lines = [_line(_HEAD), "-" * (sum(_WIDTHS) + 2 * (len(_WIDTHS) - 1))]
    for v in rows:
        fmt = _FORMATS[v.row.unit]
        ours = "n/a" if v.ours is None else fmt(v.ours)
        base = "n/a" if v.base is None else fmt(v.base)
        if v.row.base_note and v.base is not None:
            base = f"{base} {v.row.base_note}"
        ratio = "" if v.ratio is None else f"{v.ratio:.2f}x"
        target = "" if v.row.target is None else f"{v.row.target[0]}{v.row.target[1]:.2f}x"
        lines.append(_line((v.row.label, ours, base, ratio, target, v.result)))
    return lines


def _line(cells: Tuple[str, ...]) -> str:
    first, *rest = cells
    out = [first.ljust(_WIDTHS[0])]
    out += [cell.rjust(width) for cell, width in zip(rest[:-1], _WIDTHS[1:-1])]
    out.append(rest[-1].rjust(_WIDTHS[-1]))
    return "  ".join(out)
