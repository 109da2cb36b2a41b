"""Medians across runs, ratios to each framework's bare app, the targets, and RESULTS.md."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.measure import PAGES, Measurement
from bench.stacks import STACKS

PAGE_TITLES = {"count": "visit counter (modified every request)", "read": "read-only page"}


@dataclass
class Summary:
    stack: str
    page: str
    runs: int
    rps: float
    rps_range: tuple[float, float]
    p50_ms: float
    p99_ms: float
    commands_per_request: float | None
    breakdown: dict[str, float]
    notes: list[str] = field(default_factory=list)
    ratio: float | None = None
    round_trips: dict[str, float] | None = None
    in_scripts: dict[str, float] | None = None


def summarise(measurements: Sequence[Measurement]) -> dict[tuple[str, str], Summary]:
    groups: dict[tuple[str, str], list[Measurement]] = {}
    for measurement in measurements:
        groups.setdefault((measurement.stack, measurement.page), []).append(measurement)
    summaries: dict[tuple[str, str], Summary] = {}
    for (stack, page), runs in groups.items():
        requests = sum(run.wrk.requests for run in runs)
        totals: dict[str, int] = {}
        for run in runs:
            for name, calls in run.commands.items():
                totals[name] = totals.get(name, 0) + calls
        notes = sorted({f"run {run.round + 1}: {note}" for run in runs for note in run.notes})
        summaries[(stack, page)] = Summary(
            stack,
            page,
            len(runs),
            rps=statistics.median(run.wrk.rps for run in runs),
            rps_range=(min(run.wrk.rps for run in runs), max(run.wrk.rps for run in runs)),
            p50_ms=statistics.median(run.wrk.p50_ms for run in runs),
            p99_ms=statistics.median(run.wrk.p99_ms for run in runs),
            commands_per_request=(
                sum(totals.values()) / requests if STACKS[stack].redis and requests else None
            ),
            breakdown={name: calls / requests for name, calls in sorted(totals.items())},
            notes=notes,
        )
        monitored = [run for run in runs if run.round_trips is not None]
        if monitored:
            summaries[(stack, page)].round_trips = monitored[0].round_trips
            summaries[(stack, page)].in_scripts = monitored[0].in_scripts
    for summary in summaries.values():
        base = summaries.get((STACKS[summary.stack].baseline, summary.page))
        if base is not None and base.rps > 0:
            summary.ratio = summary.rps / base.rps
    return summaries


@dataclass(frozen=True)
class Target:
    text: str
    wanted: float
    measured: float | None

    @property
    def verdict(self) -> str:
        if self.measured is None:
            return "not measured"
        return "met" if self.measured >= self.wanted else "MISSED"


def _rps_ratio(
    summaries: dict[tuple[str, str], Summary], stack: str, other: str, page: str
) -> float | None:
    mine, theirs = summaries.get((stack, page)), summaries.get((other, page))
    if mine is None or theirs is None or theirs.rps <= 0:
        return None
    return mine.rps / theirs.rps


def targets(summaries: dict[tuple[str, str], Summary]) -> list[Target]:
    return [
        Target(
            "ours (Redis) / bare Quart, visit counter",
            0.60,
            _rps_ratio(summaries, "ours-redis", "quart-bare", "count"),
        ),
        Target(
            "ours (Redis) / bare Quart, read-only page",
            0.75,
            _rps_ratio(summaries, "ours-redis", "quart-bare", "read"),
        ),
        Target(
            "ours (Redis) / quart-session (Redis), visit counter",
            1.3,
            _rps_ratio(summaries, "ours-redis", "quart-session-redis", "count"),
        ),
        Target(
            "ours (Redis) / quart-session (Redis), read-only page",
            1.3,
            _rps_ratio(summaries, "ours-redis", "quart-session-redis", "read"),
        ),
    ]


def _number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _per_command(counts: dict[str, float]) -> str:
    # Connection set-up (HELLO, CLIENT SETINFO) happens once per pooled connection.
    return ", ".join(
        f"{name.upper()} {calls:.2f}" for name, calls in counts.items() if calls >= 0.005
    )


def _traffic(row: Summary) -> str:
    if row.round_trips is None:
        return _per_command(row.breakdown) or "–"
    text = _per_command(row.round_trips) or "–"
    if row.in_scripts:
        text += f" (inside: {_per_command(row.in_scripts)})"
    return text


def _spread(row: Summary) -> str:
    low, high = row.rps_range
    return f" ({low:,.0f}–{high:,.0f})" if row.runs > 1 else ""


def _times(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def results_table(summaries: dict[tuple[str, str], Summary], stacks: Sequence[str]) -> list[str]:
    lines = []
    for page in PAGES:
        rows = [summaries[(name, page)] for name in stacks if (name, page) in summaries]
        if not rows:
            continue
        lines += [
            f"### /{page}: {PAGE_TITLES[page]}",
            "",
            "| stack | req/s (min–max) | p50 ms | p99 ms | × own bare | Redis round trips/req "
            "| Redis cmds/req | round trips (and commands inside scripts) |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for row in rows:
            lines.append(
                f"| {STACKS[row.stack].description} (`{row.stack}`) | {row.rps:,.0f}{_spread(row)} "
                f"| {row.p50_ms:.2f} | {row.p99_ms:.2f} | {_number(row.ratio)} "
                f"| {_number(sum(row.round_trips.values()) if row.round_trips else None)} "
                f"| {_number(row.commands_per_request)} | {_traffic(row)} |"
            )
        lines.append("")
    notes = [
        f"- `{row.stack}` /{row.page} {note}" for row in summaries.values() for note in row.notes
    ]
    if notes:
        lines += ["Problems seen during the runs:", "", *notes, ""]
    return lines


def targets_table(summaries: dict[tuple[str, str], Summary]) -> list[str]:
    lines = ["| target | wanted | measured | verdict |", "|---|---:|---:|---|"]
    for target in targets(summaries):
        lines.append(
            f"| {target.text} | ≥ {target.wanted:.2f}× | {_times(target.measured)} "
            f"| {target.verdict} |"
        )
    return [*lines, ""]
