"""Medians across rounds, ratios and costs per request, the goals per server, as Markdown tables."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.measure import PAGES, Measurement
from bench.stacks import STACKS

PAGE_TITLES = {"count": "visit counter (modified every request)", "read": "read-only page"}
Key = tuple[str, str, str]  # (server, stack, page)


@dataclass
class Summary:
    server: str
    stack: str
    page: str
    runs: int
    rps: float
    rps_range: tuple[float, float]
    p50_ms: float
    p99_ms: float
    requests: int
    commands_per_request: float | None
    breakdown: dict[str, float]  # store calls per request, per command or statement
    usec_per_call: dict[str, float]  # µs inside the store per call (commandstats, pgss)
    server_us: float | None  # the server's CPU µs per request
    client_us: float | None  # wrk's CPU µs per request
    store_us: float | None  # the store's processes' CPU µs per request
    notes: list[str] = field(default_factory=list)
    ratio: float | None = None  # to the bare app of the same framework on the same server
    bare_cpu_delta_us: float | None = None  # server CPU µs/req more than bare's
    round_trips: dict[str, float] | None = None
    in_scripts: dict[str, float] | None = None


def _per_request(values: Sequence[float | None], requests: int) -> float | None:
    if requests == 0 or any(value is None for value in values):
        return None
    return 1e6 * sum(value for value in values if value is not None) / requests


def summarise(measurements: Sequence[Measurement]) -> dict[Key, Summary]:
    groups: dict[Key, list[Measurement]] = {}
    for measurement in measurements:
        key = (measurement.server, measurement.stack, measurement.page)
        groups.setdefault(key, []).append(measurement)
    summaries: dict[Key, Summary] = {}
    for (server, stack, page), runs in groups.items():
        requests = sum(run.wrk.requests for run in runs)
        calls: dict[str, int] = {}
        usec: dict[str, float] = {}
        for run in runs:
            for name, count in run.commands.items():
                calls[name] = calls.get(name, 0) + count
                usec[name] = usec.get(name, 0.0) + run.store_usec.get(name, 0.0)
        notes = sorted({f"run {run.round + 1}: {note}" for run in runs for note in run.notes})
        stored = STACKS[stack].store is not None
        summary = Summary(
            server,
            stack,
            page,
            len(runs),
            rps=statistics.median(run.wrk.rps for run in runs),
            rps_range=(min(run.wrk.rps for run in runs), max(run.wrk.rps for run in runs)),
            p50_ms=statistics.median(run.wrk.p50_ms for run in runs),
            p99_ms=statistics.median(run.wrk.p99_ms for run in runs),
            requests=requests,
            commands_per_request=sum(calls.values()) / requests if stored and requests else None,
            breakdown={name: count / requests for name, count in sorted(calls.items())},
            usec_per_call={name: usec[name] / count for name, count in calls.items() if count},
            server_us=_per_request([run.server_cpu_s for run in runs], requests),
            client_us=_per_request([run.client_cpu_s for run in runs], requests),
            store_us=_per_request([run.store_cpu_s for run in runs], requests) if stored else None,
            notes=notes,
        )
        monitored = [run for run in runs if run.round_trips is not None]
        if monitored:
            summary.round_trips = monitored[0].round_trips
            summary.in_scripts = monitored[0].in_scripts
        summaries[(server, stack, page)] = summary
    for summary in summaries.values():
        base = summaries.get((summary.server, STACKS[summary.stack].baseline, summary.page))
        if base is None:
            continue
        if base.rps > 0:
            summary.ratio = summary.rps / base.rps
        if summary.server_us is not None and base.server_us is not None:
            summary.bare_cpu_delta_us = summary.server_us - base.server_us
    return summaries


@dataclass(frozen=True)
class Goal:
    """One of the issue's goals: stack / other on page, on the same server, at least `wanted`."""

    text: str
    stack: str
    other: str
    page: str
    wanted: float

    def measured(self, summaries: dict[Key, Summary], server: str) -> float | None:
        mine = summaries.get((server, self.stack, self.page))
        theirs = summaries.get((server, self.other, self.page))
        if mine is None or theirs is None or theirs.rps <= 0:
            return None
        return mine.rps / theirs.rps

    def by_cpu(self, summaries: dict[Key, Summary], server: str) -> float | None:
        """The ratio the server's CPU per request predicts when the server's core is the limit."""
        mine = summaries.get((server, self.stack, self.page))
        theirs = summaries.get((server, self.other, self.page))
        if mine is None or theirs is None or not mine.server_us or theirs.server_us is None:
            return None
        return theirs.server_us / mine.server_us

    def verdict(self, summaries: dict[Key, Summary], server: str) -> str:
        value = self.measured(summaries, server)
        if value is None:
            return "not measured"
        cpu = self.by_cpu(summaries, server)
        by_cpu = "" if cpu is None else f" (CPU {cpu:.2f}×)"
        return f"{value:.2f}× {'met' if value >= self.wanted else 'MISSED'}{by_cpu}"


# The goals (issue 11), measured side by side in one run; the same on every server.
GOALS = (
    Goal("Memory, read-only page: ours / floor probe (within 5 %)", "ours-memory", "floor", "read", 0.95),
    Goal("Redis, read-only page: ours / bare Quart", "ours-redis", "quart-bare", "read", 0.75),
    Goal("Redis, visit counter: ours / bare Quart", "ours-redis", "quart-bare", "count", 0.65),
    Goal("visit counter: ours (Redis) / quart-session (Redis)", "ours-redis", "quart-session-redis", "count", 1.5),
)  # fmt: skip


# Ratios shown beside the goals without a target: (text, stack, other, pages).
INFORMATIONAL = (
    ("PostgreSQL read-only page and counter: ratio to bare", "ours-postgres", "quart-bare", ("read", "count")),
)  # fmt: skip


def _ratio(summaries: dict[Key, Summary], server: str, stack: str, other: str, page: str) -> str:
    """`0.62× (CPU 0.58×)`: the goals' measure, without a verdict."""
    goal = Goal("", stack, other, page, 0.0)
    value = goal.measured(summaries, server)
    if value is None:
        return "not measured"
    cpu = goal.by_cpu(summaries, server)
    return f"{value:.2f}×" + ("" if cpu is None else f" (CPU {cpu:.2f}×)")


def goals_table(summaries: dict[Key, Summary], servers: Sequence[str]) -> list[str]:
    lines = [
        "| goal | wanted | " + " | ".join(servers) + " |",
        "|---|---:|" + "---:|" * len(servers),
    ]
    for goal in GOALS:
        cells = " | ".join(goal.verdict(summaries, server) for server in servers)
        lines.append(f"| {goal.text} | ≥ {goal.wanted:.2f}× | {cells} |")
    for text, stack, other, pages in INFORMATIONAL:
        cells = " | ".join(
            " / ".join(_ratio(summaries, server, stack, other, page) for page in pages)
            for server in servers
        )
        lines.append(f"| {text} ({' / '.join(pages)}; informational) | – | {cells} |")
    return [*lines, ""]


def _number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _calls(counts: dict[str, float], usec: dict[str, float], *, upper: bool) -> str:
    # Connection set-up (HELLO, CLIENT SETINFO) happens once per pooled connection.
    parts = []
    for name, calls in counts.items():
        if calls < 0.005:
            continue
        cost = f" × {usec[name]:.1f} µs" if name in usec else ""
        parts.append(f"{name.upper() if upper else name} {calls:.2f}{cost}")
    return ", ".join(parts)


def _traffic(row: Summary) -> str:
    # Redis commands in capitals; PostgreSQL statements by PostgresStore's names (`renew`).
    upper = STACKS[row.stack].store == "redis"
    if row.round_trips is None:
        return _calls(row.breakdown, row.usec_per_call, upper=upper) or "–"
    text = _calls(row.round_trips, row.usec_per_call, upper=upper) or "–"
    if row.in_scripts:
        text += f" (inside: {_calls(row.in_scripts, row.usec_per_call, upper=upper)})"
    return text


def _spread(row: Summary) -> str:
    low, high = row.rps_range
    return f" ({low:,.0f}–{high:,.0f})" if row.runs > 1 else ""


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+,.0f}"


def results_table(summaries: dict[Key, Summary], server: str, stacks: Sequence[str]) -> list[str]:
    lines = []
    for page in PAGES:
        rows = [
            summaries[(server, name, page)] for name in stacks if (server, name, page) in summaries
        ]
        if not rows:
            continue
        lines += [
            f"#### /{page}: {PAGE_TITLES[page]}",
            "",
            "| stack | req/s (min–max) | p50 ms | p99 ms | × own bare | server CPU µs/req "
            "| vs bare µs/req | wrk CPU µs/req | store CPU µs/req | store round trips/req "
            "| store calls/req | round trips × µs per call in the store (inside scripts) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for row in rows:
            lines.append(
                f"| {STACKS[row.stack].description} (`{row.stack}`) | {row.rps:,.0f}{_spread(row)} "
                f"| {row.p50_ms:.2f} | {row.p99_ms:.2f} | {_number(row.ratio)} "
                f"| {_number(row.server_us, 0)} | {_signed(row.bare_cpu_delta_us)} "
                f"| {_number(row.client_us, 0)} | {_number(row.store_us, 0)} "
                f"| {_number(sum(row.round_trips.values()) if row.round_trips else None)} "
                f"| {_number(row.commands_per_request)} | {_traffic(row)} |"
            )
        lines.append("")
    notes = [
        f"- `{row.stack}` /{row.page} {note}"
        for row in summaries.values()
        if row.server == server
        for note in row.notes
    ]
    if notes:
        lines += ["Problems seen during the runs:", "", *notes, ""]
    return lines
