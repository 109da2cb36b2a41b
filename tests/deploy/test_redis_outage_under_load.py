"""Redis SIGKILLed under load: 503s while it is down, recovery within 2 s, no acknowledged write lost."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis
from keepalive_client import KeepAliveClient

from deploy.cluster import Cluster, fetch
from deploy.processes import kill

CLIENTS = 12
WARM_UP_VISITS = 5  # 200s every visitor has before the kill, so each holds a stored session
OUTAGE = 2.5  # seconds between the SIGKILL and starting redis-server again
RECOVERY_LIMIT = 2.0  # seconds after Redis answers PING by which every visitor has a 200 again
LOAD_AFTER_RETURN = RECOVERY_LIMIT + 1.5
PAUSE_AFTER_FAILURE = 0.02  # a retrying visitor, not a tight loop that starves the 2 cores
SESSION_KEY_PREFIX = "demo:sess:"  # app.py's default REDIS_PREFIX, then RedisStore's "sess:"
# Enough data that the restarted Redis spends ~0.1 s loading its append-only file, answering
# LOADING meanwhile (it serves clients every 1024 commands it replays): part of a real restart.
FILLER_KEYS = 100_000
_VISITS = re.compile(rb'id="visits"[^>]*>\s*(\d+)\s*<')
_TITLE = re.compile(rb"<title>([^<]*)</title>")


@dataclass(frozen=True)
class Answer:
    """One request of one visitor: when it was sent and answered, and what came back."""

    client: int
    sent: float
    done: float
    status: int  # 0: no HTTP answer at all (connection error or client timeout)
    visits: int | None
    retry_after: str | None
    served_by: int | None
    error: str = ""

    def show(self, origin: float) -> str:
        detail = f"visits={self.visits}" if self.status == 200 else self.error
        return (
            f"{self.sent - origin:+.3f}..{self.done - origin:+.3f} {self.status} {detail}".strip()
        )


def gist(body: bytes) -> str:
    """A page's title, else the start of the body: enough to tell a 500 page from a 502."""
    match = _TITLE.search(body)
    return (match.group(1) if match else body[:120]).decode(errors="replace")


def timeline(answers: Sequence[Answer], origin: float) -> str:
    """One visitor's answers around the outage, each run of 503s folded into one entry."""
    shown: list[str] = []
    run: list[Answer] = []
    for answer in [*answers, None]:
        if answer is not None and answer.status == 503:
            run.append(answer)
            continue
        if run:
            shown.append(
                f"{run[0].sent - origin:+.3f}..{run[-1].done - origin:+.3f} 503 x{len(run)}"
            )
            run = []
        if answer is not None:
            shown.append(answer.show(origin))
    return ", ".join(shown)


async def visitor(
    index: int, client: KeepAliveClient, answers: list[Answer], stop: asyncio.Event
) -> None:
    """GET / until told to stop, recording every outcome; back off briefly after a failure."""
    try:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                reply = await client.get("/")
            except (OSError, EOFError, TimeoutError, ValueError, IndexError) as error:
                answers.append(Answer(index, sent, time.monotonic(), 0, None, None, None,
                                      f"{type(error).__name__}: {error}"))  # fmt: skip
                await client.close()
                await asyncio.sleep(PAUSE_AFTER_FAILURE)
                continue
            match = _VISITS.search(reply.body)
            pid = reply.headers.get("x-served-by", "").rpartition(":")[2]
            answers.append(Answer(
                index, sent, time.monotonic(), reply.status,
                int(match.group(1)) if match else None, reply.headers.get("retry-after"),
                int(pid) if pid.isdigit() else None,
                "" if reply.status in (200, 503) else gist(reply.body),
            ))  # fmt: skip
            if reply.status != 200:
                await asyncio.sleep(PAUSE_AFTER_FAILURE)
    finally:
        await client.close()


def wait_for_ping(url: str, timeout: float = 20.0) -> float:
    """The monotonic time of the first PING that Redis answers (not LOADING, not refused)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=0.2, socket_timeout=0.2)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return time.monotonic()
            except redis.exceptions.RedisError:
                client.connection_pool.disconnect()
            time.sleep(0.005)
    finally:
        client.close()
    raise TimeoutError(f"Redis at {url} did not answer PING within {timeout}s")


def fill(url: str, keys: int) -> None:
    """Write `keys` unrelated 100-byte values, pipelined, so the append-only file has some size."""
    client = redis.Redis.from_url(url)
    try:
        for start in range(0, keys, 10_000):
            pipe = client.pipeline(transaction=False)
            for n in range(start, min(start + 10_000, keys)):
                pipe.set(f"filler:{n}", b"x" * 100)
            pipe.execute()
    finally:
        client.close()


def log_tail(path: Path, lines: int = 15) -> str:
    """The end of a log file, or a note that there is none."""
    if not path.exists():
        return f"(no {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def counter_violations(answers: Sequence[Answer]) -> list[str]:
    """Where one visitor's counter breaks the no-lost-write invariant (see the test's docstring)."""
    problems = []
    last_value, failures_since = 0, 0
    for answer in answers:
        if answer.status != 200:
            failures_since += 1
            continue
        if answer.visits is None:
            problems.append("a 200 without a visit counter")
        elif not last_value < answer.visits <= last_value + 1 + failures_since:
            problems.append(
                f"visits {last_value} -> {answer.visits} with {failures_since} failures between"
            )
        last_value = answer.visits or last_value
        failures_since = 0
    return problems


def session_id(client: KeepAliveClient) -> str:
    """The session id inside the visitor's signed cookie (`s:<id>.<mac>`, percent-encoded)."""
    signed = urllib.parse.unquote(client.cookies["connect.sid"])
    assert signed.startswith("s:"), signed
    return signed[2:].rpartition(".")[0]


async def test_redis_killed_under_load_answers_503_then_recovers_within_2s_losing_no_write(
    cluster: Cluster,
) -> None:
    """Twelve visitors click / through nginx while the cluster's Redis is SIGKILLed and restarted.

    The store write happens before the response is sent, and Redis runs appendfsync always, so
    a 200 showing visits=k means k is on disk; a 503 means this request's write was not
    acknowledged, though Redis may still have applied (even fsynced) it just before dying.
    Hence the invariant for each visitor's successive 200s, v then w with f non-200 answers
    between: v < w <= v + 1 + f. The counter never repeats or goes back (that would be a lost
    acknowledged write, or a session that vanished), and skips a value only across a 503.
    """
    assert cluster.redis is not None and cluster.redis.process is not None
    redis_url = cluster.redis.url
    await asyncio.to_thread(fill, redis_url, FILLER_KEYS)
    clients = [KeepAliveClient(cluster.url, timeout=8.0) for _ in range(CLIENTS)]
    answers: list[list[Answer]] = [[] for _ in range(CLIENTS)]
    stop = asyncio.Event()
    started = time.monotonic()
    tasks = [
        asyncio.create_task(visitor(i, client, answers[i], stop))
        for i, client in enumerate(clients)
    ]
    try:
        while min(sum(a.status == 200 for a in mine) for mine in answers) < WARM_UP_VISITS:
            assert time.monotonic() - started < 20, "the visitors did not warm up in 20 s"
            await asyncio.sleep(0.05)
        workers_before = list(cluster.worker_pids)
        redis_pid_before = cluster.redis.pid

        kill(cluster.redis.process)  # SIGKILL by PID and reap: Redis is gone once this returns
        killed = time.monotonic()
        await asyncio.sleep(OUTAGE / 2)
        health_down = await asyncio.to_thread(fetch, cluster.url + "healthz", 8.0)
        await asyncio.sleep(killed + OUTAGE - time.monotonic())

        restarting = time.monotonic()
        ping = asyncio.create_task(asyncio.to_thread(wait_for_ping, redis_url))
        await asyncio.to_thread(cluster.redis.start)  # same port, same append-only file
        back = await ping
        await asyncio.sleep(back + LOAD_AFTER_RETURN - time.monotonic())
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    health_up = await asyncio.to_thread(fetch, cluster.url + "healthz", 8.0)

    everything = sorted((a for mine in answers for a in mine), key=lambda a: a.sent)
    timelines = "\n".join(
        f"visitor {i}: " + timeline([a for a in mine if a.done >= killed - 0.3], killed)[:1200]
        for i, mine in enumerate(answers)
    )
    context = (
        f"times relative to the kill; Redis restarted at +{restarting - killed:.3f}, "
        f"answered PING at +{back - killed:.3f}\n{timelines}\n{cluster.diagnostics()}\n"
        f"--- redis.log ---\n{log_tail(cluster.redis.directory / 'redis.log')}"
    )

    odd = [a for a in everything if a.status not in (200, 503)]
    assert odd == [], f"answers other than 200/503: {[a.show(killed) for a in odd[:20]]}\n{context}"
    unavailable = [a for a in everything if a.status == 503]
    assert all(a.done > killed for a in unavailable), f"a 503 before the kill\n{context}"
    no_retry_after = [
        a.show(killed) for a in unavailable if not re.fullmatch(r"[1-9]\d*", a.retry_after or "")
    ]
    assert no_retry_after == [], f"503s without a Retry-After: {no_retry_after[:5]}\n{context}"
    without_503 = [i for i, mine in enumerate(answers) if not any(a.status == 503 for a in mine)]
    assert without_503 == [], f"visitors that never saw the outage: {without_503}\n{context}"

    assert health_down[0] == 503 and json.loads(health_down[2])["store"] is False, health_down
    assert health_up[0] == 200 and json.loads(health_up[2])["store"] is True, health_up

    # Recovery without a restart: the same worker processes, each serving 200s again in time.
    assert cluster.redis.pid != redis_pid_before
    assert cluster.worker_pids == workers_before, f"a worker was restarted\n{context}"
    recovered_at = []
    for i, mine in enumerate(answers):
        after_kill = [a for a in mine if a.sent > killed]
        first_ok = next((n for n, a in enumerate(after_kill) if a.status == 200), None)
        assert first_ok is not None, f"visitor {i} never got a 200 back\n{context}"
        recovered_at.append(after_kill[first_ok].done - back)
        relapses = [a.show(killed) for a in after_kill[first_ok:] if a.status != 200]
        assert relapses == [], f"visitor {i} failed again after recovering\n{context}"
    slowest = max(recovered_at)
    assert slowest <= RECOVERY_LIMIT, (
        f"a visitor waited {slowest:.3f}s after Redis returned for a 200\n{context}"
    )
    served_soon = {
        a.served_by for a in everything
        if a.status == 200 and a.sent > killed and a.done <= back + RECOVERY_LIMIT
    }  # fmt: skip
    assert served_soon == set(workers_before), (
        f"workers serving 200s within {RECOVERY_LIMIT}s: {served_soon}, all: {workers_before}"
        f"\n{context}"
    )

    # No acknowledged write lost: per visitor, across the kill, and in Redis itself at the end.
    for i, mine in enumerate(answers):
        assert counter_violations(mine) == [], f"visitor {i}: {counter_violations(mine)}\n{context}"
    store = redis.Redis.from_url(redis_url)
    try:
        for i, client in enumerate(clients):
            acknowledged = next(a.visits for a in reversed(answers[i]) if a.visits is not None)
            raw = store.get(SESSION_KEY_PREFIX + session_id(client))
            assert raw is not None, f"visitor {i}'s session is gone from Redis"
            assert json.loads(raw)["visits"] == acknowledged, (i, raw)
            final = await client.get("/")
            await client.close()
            assert final.status == 200, (i, final.status)
            match = _VISITS.search(final.body)
            assert match is not None and int(match.group(1)) == acknowledged + 1, (i, acknowledged)
    finally:
        store.close()

    print(
        f"outage: killed -> PING {back - killed:.3f}s (restart took {back - restarting:.3f}s); "
        f"{len(unavailable)} x 503 of {len(everything)} answers; recovery after PING: "
        f"max {slowest:.3f}s, min {min(recovered_at):.3f}s; run {time.monotonic() - started:.1f}s"
    )
