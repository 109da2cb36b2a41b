"""Per-request CPU budget of the session layer: `python -m bench.budget`.

An in-process microbenchmark (no server, no network) of the MemoryStore stack the server
benchmark runs (`bench/apps/ours.py`), next to bare Quart and the floor probe:

1. whole requests through Quart's ASGI app, as a server would call it;
2. one request's session work as Quart drives it: push the request context (open_session),
   the handler's use of the session, a response, `process_response` (save_session), pop; less
   the same with no session, this is what the session layer costs;
3. the pieces of that work, timed alone with a real record, times how often the request calls
   each one (counted with `sys.setprofile` during one request, so the counts follow the code).
   What the pieces leave over is the engine's glue: objects, snapshots, Quart's hooks.

Each number is the median over repeats of `time.perf_counter_ns` around many calls. Only the
public, module-level names of `sessions/` are used; when one moves, this fails and says which.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
UPDATE = "bench/budget.py times it; point it at the new name"


class BudgetError(RuntimeError):
    """The sessions API this tool measures changed: the message says what to update."""


def need(dotted: str) -> Any:
    """`sessions.signing.read_cookie` or `sessions.Cookie.from_json`, or a BudgetError."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for index, name in enumerate(parts[split:], start=split):
            try:
                found = getattr(found, name)
            except AttributeError:
                owner = ".".join(parts[:index])
                raise BudgetError(
                    f"{dotted} is gone: {owner} has no {name!r} (renamed or moved?); {UPDATE}"
                ) from None
        return found
    raise BudgetError(f"{dotted}: no module of it can be imported; {UPDATE}")


def code_of(function: Any) -> CodeType | None:
    """The code object a call of `function` runs (bound and class methods unwrapped)."""
    function = getattr(function, "__func__", function)
    return getattr(function, "__code__", None)


# ---------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timing:
    us: float  # median µs per call over the repeats the scheduler left alone
    spread: tuple[float, float]  # min and max of those repeats
    calls_per_repeat: int
    clean: int  # repeats whose thread ran the whole time (CPU time ≥ 97 % of the wall time)
    wanted: int  # clean repeats asked for; with fewer, every repeat made counts


# On a shared machine another process can take the core mid-repeat: the wall clock then counts
# its time too. A repeat counts only when this thread's CPU time kept up with the wall clock.
CLEAN = 0.97


class Timer:
    """Times sync or async callables on one event loop: median of repeats of many calls.

    Each repeat is timed with `time.perf_counter_ns`; `time.thread_time_ns` around it tells
    whether the scheduler took the core away meanwhile, and such repeats are made again.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, repeats: int, target_s: float) -> None:
        self.loop = loop
        self.repeats = repeats
        self.target_s = target_s

    def _batch(self, call: Callable[[], Any], is_async: bool, n: int) -> tuple[int, int]:
        """(wall ns, this thread's CPU ns) for n calls."""
        if is_async:

            async def many() -> tuple[int, int]:
                cpu, started = time.thread_time_ns(), time.perf_counter_ns()
                for _ in range(n):
                    await call()
                return time.perf_counter_ns() - started, time.thread_time_ns() - cpu

            return self.loop.run_until_complete(many())
        cpu, started = time.thread_time_ns(), time.perf_counter_ns()
        for _ in range(n):
            call()
        return time.perf_counter_ns() - started, time.thread_time_ns() - cpu

    def time(self, call: Callable[[], Any], *, is_async: bool) -> Timing:
        n = 1
        while True:  # calibrate: enough calls for a repeat to last about target_s
            elapsed = self._batch(call, is_async, n)[1] / 1e9
            if elapsed >= self.target_s / 10 or n >= 1 << 22:
                break
            n *= 4
        n = max(1, int(n * self.target_s / max(elapsed, 1e-9)))
        clean: list[float] = []
        every: list[float] = []
        while len(clean) < self.repeats and len(every) < 5 * self.repeats:
            gc.collect()
            wall, cpu = self._batch(call, is_async, n)
            every.append(wall / n / 1000)
            if cpu >= CLEAN * wall:
                clean.append(wall / n / 1000)
        samples = clean or every
        return Timing(
            statistics.median(samples), (min(samples), max(samples)), n, len(clean), self.repeats
        )


class CallCounter:
    """Counts calls of chosen functions during one request, outermost only (no double counting)."""

    def __init__(self, codes: dict[CodeType, str]) -> None:
        self.codes = codes
        self.calls: dict[str, int] = {name: 0 for name in codes.values()}
        self._depth = 0

    def _hook(self, frame: FrameType, event: str, arg: Any) -> None:
        name = self.codes.get(frame.f_code)
        if name is None:
            return
        # A coroutine's frame enters ("call") and leaves ("return") at every await that
        # suspends; the pieces measured here run to completion without suspending.
        if event == "call":
            if self._depth == 0:
                self.calls[name] += 1
            self._depth += 1
        elif event == "return":
            self._depth -= 1

    def count(self, loop: asyncio.AbstractEventLoop, request: Callable[[], Awaitable[Any]]) -> None:
        sys.setprofile(self._hook)
        try:
            loop.run_until_complete(request())
        finally:
            sys.setprofile(None)


# ---------------------------------------------------------------------------- the apps


def load_apps() -> dict[str, Any]:
    """The benchmark's apps: bare Quart, ours on a MemoryStore, the floor probe."""
    os.environ["BENCH_STORE"] = "memory"
    apps = {}
    for name in ("bare", "ours", "floor"):
        apps[name] = importlib.import_module(f"bench.apps.{name}").app
    return apps


def handler(page: str) -> Callable[[], str]:
    """The handler's use of the session on /read and /count (as in bench/apps/)."""
    from quart import session

    from bench.apps.settings import body

    def read() -> str:
        return body(session.get("views", 0))

    def count() -> str:
        session["views"] = session.get("views", 0) + 1
        return body(session["views"])

    return read if page == "read" else count


def context_request(app: Any, page: str, cookie: str | None) -> Callable[[], Awaitable[Any]]:
    """One request's work around the handler: context push/pop, response, process_response."""
    headers = {"Cookie": cookie} if cookie else {}
    use = handler(page)
    path = f"/{page}"

    async def request() -> Any:
        async with app.test_request_context(path, headers=headers):
            response = app.response_class(use())
            return await app.process_response(response)

    return request


def asgi_request(app: Any, page: str, cookie: str | None) -> Callable[[], Awaitable[None]]:
    """A whole request through the app's ASGI callable, as a server makes it."""
    headers = [(b"host", b"127.0.0.1:8000")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"/{page}",
        "raw_path": f"/{page}".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }
    body = {"type": "http.request", "body": b"", "more_body": False}

    async def request() -> None:
        received = False
        status: list[int] = []

        async def receive() -> dict[str, Any]:
            nonlocal received
            if not received:
                received = True
                return body
            await asyncio.Event().wait()  # the client stays connected; Quart cancels this
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(dict(scope), receive, send)
        if status != [200]:
            raise RuntimeError(f"GET /{page} answered {status} in-process")

    return request


def _cookies(loop: asyncio.AbstractEventLoop, apps: dict[str, Any]) -> dict[str, str]:
    """A returning visitor's cookie for each app (bare Quart gets ours, and ignores it)."""
    cookies = {name: prime(loop, app) for name, app in apps.items() if name != "bare"}
    return {**cookies, "bare": cookies["ours"]}


def prime(loop: asyncio.AbstractEventLoop, app: Any) -> str:
    """A returning visitor's Cookie header: the first /count of a new visitor, as a server would."""
    response = loop.run_until_complete(context_request(app, "count", None)())
    set_cookie = response.headers.get("Set-Cookie")
    if not set_cookie:
        raise BudgetError("a new visitor's GET /count set no cookie: the app is not benchmarkable")
    return str(set_cookie.split(";", 1)[0])


# ---------------------------------------------------------------------------- the pieces


@dataclass
class Piece:
    name: str  # the public name it is reached by
    call: Callable[[], Any]  # one call with a real input
    is_async: bool
    code: CodeType | None  # what CallCounter looks for
    timing: Timing | None = None


def pieces(loop: asyncio.AbstractEventLoop, app: Any, cookie: str) -> list[Piece]:
    """Every step of a request's session work, each callable alone with a real record."""
    read_cookie = need("sessions.signing.read_cookie")
    verify = need("sessions.signing.verify")
    encode_cookie_value = need("sessions.signing.encode_cookie_value")
    parse_record = need("sessions.record.parse_record")
    change_between = need("sessions.record.change_between")
    dump_data = need("sessions.serialization.dump_data")
    dump_json = need("sessions.serialization.dump_json")
    decide = need("sessions.decision.decide")
    rules_class = need("sessions.decision.Rules")
    facts_class = need("sessions.decision.Facts")
    cookie_class = need("sessions.Cookie")
    from_json, header = need("sessions.Cookie.from_json"), need("sessions.Cookie.header")
    now_ms = need("sessions.expiry.now_ms")
    extension = app.extensions.get("sessions")
    if extension is None or not hasattr(extension, "store") or not hasattr(extension, "secrets"):
        raise BudgetError("app.extensions['sessions'] has no .store and .secrets any more")
    store, secrets = extension.store, extension.secrets
    store_type = type(store)
    for method in ("renewal", "load", "apply"):
        if not hasattr(store_type, method):
            raise BudgetError(f"{store_type.__name__}.{method} is gone; {UPDATE}")

    name, header_value = cookie.split("=", 1)
    try:
        value = read_cookie(cookie, name)
        sid = verify(value, secrets)[0]
        renewal = store.renewal(now_ms())
        raw = loop.run_until_complete(store.load(sid, renewal))
        parsed = parse_record(raw)
        stored_cookie = from_json(parsed.cookie)
        data = parsed.data
        changed = {**data, "views": int(data.get("views", 0)) + 1}
        cookie_text = dump_json(stored_cookie.to_json())
        before = dump_json(data)
        change = change_between(before, parsed.owner, cookie_text, parsed.owner, changed)
        rules = rules_class(resave=False, rolling=False, save_uninitialized=False)
        facts = facts_class(status=200, saved=True, had_cookie=True, renewed=True)
        expires = now_ms() + 86_400_000
        signed = encode_cookie_value(sid, secrets[0])
    except BudgetError:
        raise
    except Exception as error:
        raise BudgetError(
            f"a piece of the session API no longer works as bench/budget.py calls it "
            f"({type(error).__name__}: {error}); its signature or result changed? {UPDATE}"
        ) from error
    if not isinstance(stored_cookie, cookie_class):
        raise BudgetError("sessions.Cookie.from_json no longer returns a sessions.Cookie")
    async_load = lambda: store.load(sid, store.renewal(now_ms()))  # noqa: E731
    return [
        Piece("signing.read_cookie", lambda: read_cookie(cookie, name), False, code_of(read_cookie)),
        Piece("signing.verify (HMAC-SHA256)", lambda: verify(value, secrets), False, code_of(verify)),
        Piece("store.renewal", lambda: store.renewal(now_ms()), False, code_of(store_type.renewal)),
        Piece("store.load(sid, renewal)", async_load, True, code_of(store_type.load)),
        Piece("record.parse_record", lambda: parse_record(raw), False, code_of(parse_record)),
        Piece("Cookie.from_json", lambda: from_json(parsed.cookie), False, code_of(from_json)),
        Piece("serialization.dump_data", lambda: dump_data(data), False, code_of(dump_data)),
        Piece("decision.decide", lambda: decide(rules, facts), False, code_of(decide)),
        Piece(
            "record.change_between",
            lambda: change_between(before, parsed.owner, cookie_text, parsed.owner, changed),
            False,
            code_of(change_between),
        ),
        Piece("store.apply(sid, change)", lambda: store.apply(sid, change, expires), True, code_of(store_type.apply)),
        Piece("signing.encode_cookie_value", lambda: encode_cookie_value(sid, secrets[0]), False, code_of(encode_cookie_value)),
        Piece("Cookie.header (Set-Cookie)", lambda: stored_cookie.header(name, signed), False, code_of(header)),
    ]  # fmt: skip


# ---------------------------------------------------------------------------- the budget


@dataclass(frozen=True)
class Kind:
    key: str
    title: str
    app: str  # "bare", "ours" or "floor"
    page: str
    returning: bool


KINDS = (
    # Bare Quart gets ours' cookie too: a request that carries one costs Quart a little more.
    Kind("bare", "no session (bare Quart, same Cookie header)", "bare", "read", True),
    Kind("cookieless", "ours: no cookie, read-only (nothing saved)", "ours", "read", False),
    Kind("read", "ours: returning visitor, read-only", "ours", "read", True),
    Kind("modified", "ours: returning visitor, modified", "ours", "count", True),
    Kind("new", "ours: new visitor, modified (writes, Set-Cookie)", "ours", "count", False),
    Kind("floor-read", "floor probe: returning visitor, read-only", "floor", "read", True),
    Kind("floor-modified", "floor probe: returning visitor, modified", "floor", "count", True),
)
# The whole requests through ASGI: (title, app, page, returning).
WHOLE = (
    ("bare Quart, GET /read (same Cookie header)", "bare", "read", True),
    ("floor probe, GET /read (returning)", "floor", "read", True),
    ("ours, GET /read (returning)", "ours", "read", True),
    ("floor probe, GET /count (returning)", "floor", "count", True),
    ("ours, GET /count (returning)", "ours", "count", True),
)


@dataclass
class Budget:
    versions: dict[str, str]
    repeats: int
    whole: dict[str, Timing] = field(default_factory=dict)
    steps: dict[str, Timing] = field(default_factory=dict)
    pieces: dict[str, Timing] = field(default_factory=dict)
    calls: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> piece -> calls


def _versions() -> dict[str, str]:
    import importlib.metadata as metadata
    import platform

    found = {"python": platform.python_version()}
    for name in ("quart", "werkzeug", "uvloop"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()  # as the servers run


def measure(repeats: int, target_s: float, progress: Callable[[str], None]) -> Budget:
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    try:
        apps = load_apps()
        for app in apps.values():
            loop.run_until_complete(app.startup())
        try:
            return _measure(loop, apps, Timer(loop, repeats, target_s), progress)
        finally:
            for app in apps.values():
                loop.run_until_complete(app.shutdown())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _measure(
    loop: asyncio.AbstractEventLoop,
    apps: dict[str, Any],
    timer: Timer,
    progress: Callable[[str], None],
) -> Budget:
    cookies = _cookies(loop, apps)
    budget = Budget(_versions(), timer.repeats)
    for title, app, page, returning in WHOLE:
        progress(title)
        request = asgi_request(apps[app], page, cookies[app] if returning else None)
        budget.whole[title] = timer.time(request, is_async=True)
    for kind in KINDS:
        progress(kind.title)
        cookie = cookies[kind.app] if kind.returning else None
        request = context_request(apps[kind.app], kind.page, cookie)
        budget.steps[kind.key] = timer.time(request, is_async=True)
    found = pieces(loop, apps["ours"], cookies["ours"])
    for piece in found:
        progress(piece.name)
        budget.pieces[piece.name] = timer.time(piece.call, is_async=piece.is_async)
    codes = {piece.code: piece.name for piece in found if piece.code is not None}
    for kind in KINDS:
        if kind.app != "ours":
            continue
        counter = CallCounter(codes)
        cookie = cookies["ours"] if kind.returning else None
        counter.count(loop, context_request(apps["ours"], kind.page, cookie))
        budget.calls[kind.key] = counter.calls
    return budget


# ---------------------------------------------------------------------------- where the rest goes


def spin(kind_key: str, seconds: float) -> dict[str, float]:
    """Run one kind's request in a loop for `seconds` (under py-spy): requests and µs each."""
    kind = next((kind for kind in KINDS if kind.key == kind_key), None)
    if kind is None:
        raise BudgetError(f"no request kind {kind_key!r}; known: {[k.key for k in KINDS]}")
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    apps = load_apps()
    cookie = _cookies(loop, apps)[kind.app] if kind.returning else None
    request = context_request(apps[kind.app], kind.page, cookie)

    async def loop_requests() -> dict[str, float]:
        for _ in range(200):
            await request()  # warm-up
        done, started = 0, time.perf_counter_ns()
        deadline = started + int(seconds * 1e9)
        while time.perf_counter_ns() < deadline:
            for _ in range(100):
                await request()
            done += 100
        return {"requests": done, "us": (time.perf_counter_ns() - started) / done / 1000}

    return loop.run_until_complete(loop_requests())


SPIN_LOOP = "spin.<locals>.loop_requests"


@dataclass(frozen=True)
class Sampled:
    us: float  # µs per request, measured unsampled
    samples: int
    own: dict[str, float]  # frame -> own µs per request
    inclusive: dict[str, float]  # frame -> µs per request anywhere on the stack


def sample(kind_key: str, us: float, seconds: float, log_dir: Path) -> Sampled:
    """py-spy (1000 Hz) on a process that runs only this kind's request, shared out as `us`/req.

    py-spy pauses the process to read each sample, which slows it down but leaves the shares
    alone: they are scaled by the µs per request measured without sampling.
    """
    import subprocess

    from bench.profile import py_spy, summarise

    raw = log_dir / f"budget-profile-{kind_key}.txt"
    command = [
        py_spy(), "record", "--rate", "1000", "--format", "raw", "--output", str(raw), "--",
        sys.executable, "-m", "bench.budget", "--spin", kind_key, "--seconds", f"{seconds:g}",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=seconds + 120)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines or not raw.exists():
        raise BudgetError(f"py-spy on the {kind_key} loop failed: {done.stderr.strip()[-800:]}")
    profile = summarise(raw, within=SPIN_LOOP)  # the loop only: not imports nor start-up
    scale = us / max(profile.samples, 1)
    return Sampled(
        us,
        profile.samples,
        {frame: count * scale for frame, count in profile.own.items()},
        {frame: count * scale for frame, count in profile.total.items()},
    )


def rest_lines(
    budget: Budget, kind_key: str, seconds: float, log_dir: Path, top: int = 25
) -> list[str]:
    """Where the session layer goes, frame by frame: a sampled profile less bare Quart's."""
    from bench.profile import package

    kind = next((kind for kind in KINDS if kind.key == kind_key), None)
    if kind is None or kind.key == "bare":
        raise BudgetError(f"--profile takes one of {[k.key for k in KINDS if k.key != 'bare']}")
    bare = sample("bare", budget.steps["bare"].us, seconds, log_dir)
    mine = sample(kind_key, budget.steps[kind_key].us, seconds, log_dir)
    frames = set(bare.own) | set(mine.own)
    delta = {frame: mine.own.get(frame, 0.0) - bare.own.get(frame, 0.0) for frame in frames}
    by_package: dict[str, float] = {}
    for frame, us in delta.items():
        by_package[package(frame)] = by_package.get(package(frame), 0.0) + us
    lines = [
        "",
        f"## Where the session layer goes: {kind.title}, sampled",
        "",
        f"py-spy at 1000 Hz on a process running only this request in a loop, and on one running "
        f"bare Quart's; each frame's share of the samples times the µs per request measured "
        f"above ({mine.us:.1f} and {bare.us:.1f}), then the difference (it adds up to the "
        f"session layer, and also holds what else differs between the two apps). "
        f"{mine.samples} and {bare.samples} samples: one is worth {mine.us / max(mine.samples, 1):.3f} "
        "µs/req, and a frame of n samples is uncertain by about √n of them.",
        "",
        "| package | own µs/req, this less bare |",
        "|---|---:|",
    ]
    for name, us in sorted(by_package.items(), key=lambda item: -abs(item[1])):
        if abs(us) >= 0.5:
            lines.append(f"| `{name}` | {us:+.1f} |")
    lines += ["", "| frame (own time) | bare µs | this µs | difference |", "|---|---:|---:|---:|"]
    for frame, us in sorted(delta.items(), key=lambda item: -abs(item[1]))[:top]:
        lines.append(
            f"| `{frame}` | {bare.own.get(frame, 0.0):.1f} | {mine.own.get(frame, 0.0):.1f} "
            f"| {us:+.1f} |"
        )
    ours = sorted(
        ((frame, us) for frame, us in mine.inclusive.items() if package(frame) == "sessions"),
        key=lambda item: -item[1],
    )
    lines += ["", "| frame of sessions/ | µs/req with what it calls |", "|---|---:|"]
    lines += [f"| `{frame}` | {us:.1f} |" for frame, us in ours[:top]]
    return lines


# ---------------------------------------------------------------------------- the report


def _share(part: float, total: float) -> str:
    return f"{100 * part / total:.0f}%" if total > 0 else "–"


def _us(timing: Timing, digits: int = 1) -> str:
    """µs per call, with a * when the scheduler interrupted too many of its repeats."""
    mark = "*" if timing.clean < timing.wanted else ""
    return f"{timing.us:.{digits}f}{mark}"


def report(budget: Budget) -> list[str]:
    steps, whole = budget.steps, budget.whole
    base = steps["bare"].us
    versions = ", ".join(f"{key} {value}" for key, value in budget.versions.items())
    lines = [
        "# Per-request CPU budget of the session layer (MemoryStore, in-process)",
        "",
        f"{versions}; µs per call, the median of {budget.repeats} repeats of many calls each "
        "(`time.perf_counter_ns`), counting only repeats during which the scheduler left the "
        "thread alone (its CPU time ≥ 97 % of the wall time); no server, no network "
        "(`python -m bench.budget`).",
        "",
        "## Whole requests through Quart's ASGI app",
        "",
        "| request | µs | × bare (req/s, if Quart were all the cost) |",
        "|---|---:|---:|",
    ]
    bare_whole = next(iter(whole.values())).us
    for title, timing in whole.items():
        lines.append(f"| {title} | {_us(timing)} | {bare_whole / timing.us:.2f}× |")
    lines += [
        "",
        "## A request's session work as Quart drives it",
        "",
        "Push the request context (open_session), the handler's use of the session, a response, "
        "`process_response` (save_session), pop. 'session layer' = the step less the same with "
        "no session.",
        "",
        "| step | µs | session layer µs |",
        "|---|---:|---:|",
    ]
    for kind in KINDS:
        us = steps[kind.key].us
        extra = "–" if kind.key == "bare" else f"{us - base:.1f}"
        lines.append(f"| {kind.title} | {_us(steps[kind.key])} | {extra} |")
    lines += [
        "",
        "## The pieces, per request",
        "",
        "Each piece timed alone with a real record (µs per call), times the calls one request "
        "makes (counted with sys.setprofile, outermost calls only); 'the rest' is what the pieces "
        "leave of the session layer: the engine's glue, Session and state objects, Quart's hooks.",
        "",
        "| piece | µs per call |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {_us(timing, 2)} |" for name, timing in budget.pieces.items()]
    unused = [
        name
        for name in budget.pieces
        if all(calls.get(name, 0) == 0 for calls in budget.calls.values())
    ]
    for kind in KINDS:
        if kind.key not in budget.calls:
            continue
        layer = steps[kind.key].us - base
        calls = budget.calls[kind.key]
        lines += [
            "",
            f"### {kind.title}: session layer {layer:.1f} µs",
            "",
            "| step | calls | µs | share of the total |",
            "|---|---:|---:|---:|",
        ]
        spent = 0.0
        for name, timing in budget.pieces.items():
            count = calls.get(name, 0)
            if count == 0:
                continue
            us = count * timing.us
            spent += us
            lines.append(f"| {name} | {count} | {us:.1f} | {_share(us, layer)} |")
        lines.append(
            f"| the rest (glue, objects, Quart's hooks) | | {layer - spent:.1f} "
            f"| {_share(layer - spent, layer)} |"
        )
        lines.append(f"| **total session layer** | | **{layer:.1f}** | 100% |")
    if unused:
        lines += [
            "",
            "Not called by any of these requests (their work, if done another way, is in the "
            f"rest): {', '.join(unused)}.",
        ]
    timings = [*whole.values(), *steps.values(), *budget.pieces.values()]
    if any(timing.clean < timing.wanted for timing in timings):
        lines += [
            "",
            "\\* fewer clean repeats than asked (a busy machine): the median of every repeat "
            "made, wall clock; run again on a quieter machine.",
        ]
    floor = steps["floor-read"].us - base
    ours = steps["read"].us - base
    lines += [
        "",
        f"Returning read-only: ours {ours:.1f} µs of session layer, the floor probe {floor:.1f} µs "
        f"({ours - floor:+.1f} µs); the goal (ours within 5 % of the floor's req/s) allows about "
        f"{0.05 * whole['floor probe, GET /read (returning)'].us:.1f} µs more than the floor "
        "in-process, and less once the server's own cost per request is counted.",
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.budget",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repeats", type=int, default=11, help="clean repeats per number (11)")
    parser.add_argument(
        "--target-ms", type=float, default=20.0, help="length of one repeat (default 20 ms)"
    )
    parser.add_argument("--quick", action="store_true", help="3 repeats of 5 ms: a smoke run")
    parser.add_argument(
        "--cpu", type=int, help="pin this process to one CPU (os.sched_setaffinity)"
    )
    parser.add_argument("--json", type=Path, default=OUT / "budget.json")
    parser.add_argument(
        "--profile",
        metavar="KIND",
        choices=[kind.key for kind in KINDS if kind.key != "bare"],
        help="also sample (py-spy) where the session layer of one request kind goes, frame by "
        f"frame: {', '.join(kind.key for kind in KINDS if kind.key != 'bare')}",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="sampling time per process")
    parser.add_argument("--spin", help=argparse.SUPPRESS)  # the process py-spy samples
    args = parser.parse_args(argv)
    if args.spin:
        print(json.dumps(spin(args.spin, args.seconds)))
        return 0
    if args.quick:
        args.repeats, args.target_ms = 3, 5.0
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})

    def progress(text: str) -> None:
        print(f"[budget] {text}", file=sys.stderr, flush=True)

    try:
        budget = measure(args.repeats, args.target_ms / 1000, progress)
        lines = report(budget)
        if args.profile:
            progress(f"sampling {args.profile} and bare for {args.seconds:g} s each")
            OUT.mkdir(parents=True, exist_ok=True)
            lines += rest_lines(budget, args.profile, args.seconds, OUT)
    except (BudgetError, RuntimeError) as error:
        print(f"bench.budget: {error}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(asdict(budget), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
