"""FileStore: atomic files, several processes, expiry by mtime, encryption at rest."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sessions import FileStore
from sessions.serialization import load_record

RECORD = b'{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"views":1}'


async def test_a_record_written_is_read_back_and_lives_in_one_json_file(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    await store.write("abc", RECORD, 60)
    assert await store.read("abc") == RECORD
    assert (tmp_path / "abc.json").read_bytes() == RECORD
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


async def test_an_id_that_is_not_a_plain_token_cannot_escape_the_folder(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    for sid in ("../../etc/passwd", "/foo", "%", "a/b", "..", "é" * 90):
        await store.write(sid, RECORD, 60)
        assert await store.read(sid) == RECORD
    assert not (tmp_path / "etc").exists()
    assert {p.parent for p in (tmp_path / "s").rglob("*.json")} == {tmp_path / "s"}
    assert set(await store.scan()) == {"../../etc/passwd", "/foo", "%", "a/b", "..", "é" * 90}


async def test_an_id_too_long_for_a_file_name_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="180 bytes"):
        await FileStore(tmp_path).write("é" * 200, RECORD, 60)


async def test_an_expired_record_reads_as_missing_and_is_reaped(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    await store.write("old", RECORD, 1)
    await store.write("new", RECORD, 60)
    os.utime(tmp_path / "old.json", (time.time() - 10, time.time() - 5))

    assert await store.read("old") is None
    assert await store.ids() == ["new"]
    assert await store.purge_expired() == 1
    assert not (tmp_path / "old.json").exists()


async def test_a_missing_file_answers_at_once_without_retries(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    started = time.perf_counter()
    for _ in range(100):
        assert await store.read("nobody") is None
    assert time.perf_counter() - started < 0.5  # session-file-store takes ~250 ms per miss


async def test_encrypted_records_are_unreadable_on_disk_and_bound_to_their_id(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path, secret="disk key")
    await store.write("abc", RECORD, 60)
    on_disk = (tmp_path / "abc.json").read_bytes()
    assert b"views" not in on_disk
    assert await store.read("abc") == RECORD

    (tmp_path / "xyz.json").write_bytes(on_disk)  # a file copied under another id
    os.utime(tmp_path / "xyz.json", (time.time(), time.time() + 60))
    assert await store.read("xyz") is None
    assert await FileStore(tmp_path, secret="another key").read("abc") is None


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from sessions import FileStore
    store = FileStore(sys.argv[1])
    payload = b'{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"blob":"' + b"x" * 4_000_000 + b'"}'
    async def main():
        print("ready", flush=True)
        while True:
            await store.write("victim", payload, 60)
    asyncio.run(main())
    """
)


async def test_a_process_killed_mid_write_never_leaves_a_half_record(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    await store.write("victim", RECORD, 60)
    for _ in range(5):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE
        )
        assert writer.stdout is not None
        writer.stdout.readline()
        await asyncio.sleep(0.15)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        raw = await store.read("victim")
        assert raw is not None
        assert load_record(raw) is not None  # whole old or whole new record, never a torn one


MERGER = textwrap.dedent(
    """
    import asyncio, json, sys
    from sessions import FileStore
    from sessions.serialization import load_record
    store = FileStore(sys.argv[1])
    me = sys.argv[2]
    async def main():
        for n in range(60):
            while True:
                raw = await store.read("shared")
                record = load_record(raw)
                record[f"{me}-{n}"] = n
                outcome = await store.replace("shared", raw, json.dumps(record).encode(), 60)
                if outcome is True:
                    break
    asyncio.run(main())
    """
)


async def test_two_processes_updating_one_session_lose_no_update(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    await store.write("shared", RECORD, 60)
    workers = [
        subprocess.Popen([sys.executable, "-c", MERGER, str(tmp_path), name]) for name in ("a", "b")
    ]
    for worker in workers:
        assert worker.wait(timeout=60) == 0

    record = load_record(await store.read("shared") or b"")
    assert record is not None
    assert {f"{me}-{n}" for me in "ab" for n in range(60)} <= set(record)


@pytest.mark.parametrize("ttl", [None, 30])
async def test_remaining_reports_the_time_left(tmp_path: Path, ttl: int | None) -> None:
    store = FileStore(tmp_path)
    await store.write("abc", RECORD, ttl)
    [left] = await store.remaining(["abc"])
    if ttl is None:
        assert left is None
    else:
        assert left is not None and 28 < left <= 30
