"""FileStore: atomic files, several processes, expiry by mtime, encryption, and disks that break."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from quart import Quart

from sessions import FileStore, Sessions
from sessions.errors import StoreUnavailable
from sessions.expiry import Renewal, iso_from_ms, now_ms
from sessions.record import Change, parse_record
from tests.sessions.conftest import SECRET, Browser, make_app

RECORD = b'{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"views":1}'
MINUTE = 60_000


def later(ms: int = MINUTE) -> int:
    return now_ms() + ms


# ---------------------------------------------------------------- files


async def test_a_record_written_is_read_back_and_lives_in_one_json_file(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    await store.write("abc", RECORD, later())
    assert await store.load("abc") == RECORD
    assert (tmp_path / "abc.json").read_bytes() == RECORD
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


async def test_an_id_that_is_not_a_plain_token_cannot_escape_the_folder(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    ids = ("../../etc/passwd", "/foo", "%", "a/b", "..", "é" * 90)
    for sid in ids:
        await store.write(sid, RECORD, later())
        assert await store.load(sid) == RECORD
    assert not (tmp_path / "etc").exists()
    assert {p.parent for p in (tmp_path / "s").rglob("*.json")} == {tmp_path / "s"}
    assert set(await store.ids()) == set(ids)


async def test_an_id_too_long_for_a_file_name_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="180 bytes"):
        await FileStore(tmp_path).write("é" * 200, RECORD, later())


async def test_a_relative_folder_lives_in_the_apps_instance_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not in whatever directory the server happened to start from."""
    monkeypatch.chdir(tmp_path)
    app = Quart(__name__, instance_path=str(tmp_path / "instance"))
    store = FileStore("sessions")
    Sessions(app, secret=SECRET, store=store)
    assert store.path == tmp_path / "instance" / "sessions"
    await store.write("abc", RECORD, later())
    assert (tmp_path / "instance" / "sessions" / "abc.json").exists()
    assert not (tmp_path / "sessions").exists()


async def test_a_missing_file_answers_at_once_without_retries(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    started = time.perf_counter()
    for _ in range(100):
        assert await store.load("nobody") is None
    assert time.perf_counter() - started < 0.5  # session-file-store takes ~250 ms per miss


# ---------------------------------------------------------------- expiry


async def test_the_files_mtime_is_its_expiry_and_a_renewal_moves_it(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    expires = later(5_000)
    raw = json.dumps({"cookie": {"originalMaxAge": MINUTE, "expires": iso_from_ms(expires)}})
    await store.write("abc", raw.encode(), expires)
    assert (tmp_path / "abc.json").stat().st_mtime_ns // 1_000_000 == expires
    at = now_ms()
    renewed = await store.load("abc", Renewal(at, MINUTE, MINUTE))
    assert (tmp_path / "abc.json").stat().st_mtime_ns // 1_000_000 == at + MINUTE
    stored = await store.load("abc")
    assert renewed == stored
    assert json.loads(stored or b"")["cookie"]["expires"] == iso_from_ms(at + MINUTE)


async def test_an_expired_file_is_never_revived_by_a_renewal(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    await store.write("old", RECORD, later(50))
    await asyncio.sleep(0.1)
    mtime = (tmp_path / "old.json").stat().st_mtime_ns
    assert await store.load("old", Renewal(now_ms(), MINUTE, MINUTE)) is None
    await store.renew("old", Renewal(now_ms(), MINUTE, MINUTE))
    assert (tmp_path / "old.json").stat().st_mtime_ns == mtime
    assert await store.load("old") is None


async def test_an_expired_file_is_purged_and_stale_temporary_files_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A temporary file counts as left behind an hour after it was written; here, at once.
    monkeypatch.setattr("sessions.stores.file._STALE_TEMPORARY_MS", 0)
    store = FileStore(tmp_path)
    await store.write("old", RECORD, later(50))
    await store.write("new", RECORD, later())
    (tmp_path / ".123.abc.tmp").write_bytes(b"half")
    await asyncio.sleep(0.1)

    assert await store.purge_expired() == 1
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["new.json"]
    assert not (tmp_path / ".123.abc.tmp").exists()


async def test_purging_runs_in_the_background_not_in_the_request_that_triggers_it(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path, purge_interval=0)
    expired = 20_000
    for n in range(expired):
        path = tmp_path / f"dead{n:05d}.json"
        path.write_bytes(RECORD)
        os.utime(path, (time.time() - 100, time.time() - 100))

    await store.write("trigger", RECORD, later())  # the write that finds a purge due

    left = sum(1 for _ in tmp_path.glob("dead*.json"))
    assert left > expired // 2, "the write waited for the purge"
    deadline = time.monotonic() + 60
    while any(tmp_path.glob("dead*.json")):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert await store.load("trigger") == RECORD
    await store.close()


# ---------------------------------------------------------------- encryption at rest


async def test_encrypted_records_are_unreadable_on_disk_and_bound_to_their_id(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path, secret="disk key")
    await store.write("abc", RECORD, later())
    on_disk = (tmp_path / "abc.json").read_bytes()
    assert b"views" not in on_disk
    assert await store.load("abc") == RECORD

    (tmp_path / "xyz.json").write_bytes(on_disk)  # a file copied under another id
    os.utime(tmp_path / "xyz.json", (time.time(), time.time() + 60))
    assert await store.load("xyz") is None
    assert await FileStore(tmp_path, secret="another key").load("abc") is None


async def test_an_encrypted_store_merges_too(tmp_path: Path) -> None:
    store = FileStore(tmp_path, secret="disk key")
    await store.write("abc", RECORD, later())
    merged = await store.apply("abc", Change('{"expires":null}', (("n", "2"),)), later())
    assert merged == b'{"cookie":{"expires":null},"views":1,"n":2}'
    assert await store.load("abc") == merged
    assert b'"n"' not in (tmp_path / "abc.json").read_bytes()


# ---------------------------------------------------------------- processes


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from sessions import FileStore
    from sessions.expiry import now_ms
    store = FileStore(sys.argv[1])
    payload = b'{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"blob":"' + b"x" * 4_000_000 + b'"}'
    async def main():
        print("ready", flush=True)
        while True:
            await store.write("victim", payload, now_ms() + 60_000)
    asyncio.run(main())
    """
)


async def test_a_process_killed_mid_write_never_leaves_a_half_record(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    await store.write("victim", RECORD, later())
    for _ in range(5):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE
        )
        assert writer.stdout is not None
        writer.stdout.readline()
        await asyncio.sleep(0.15)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        raw = await store.load("victim")
        assert raw is not None
        assert parse_record(raw) is not None  # whole old or whole new record, never a torn one


MERGER = textwrap.dedent(
    """
    import asyncio, sys
    from sessions import FileStore
    from sessions.expiry import now_ms
    from sessions.record import Change
    store = FileStore(sys.argv[1])
    me = sys.argv[2]
    async def main():
        for n in range(100):
            change = Change('{"expires":null}', ((f"{me}-{n}", str(n)),))
            assert await store.apply("shared", change, now_ms() + 60_000) is not None
    asyncio.run(main())
    """
)


async def test_processes_merging_into_one_session_lose_no_update(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    await store.write("shared", RECORD, later())
    names = ("a", "b", "c")
    workers = [
        subprocess.Popen([sys.executable, "-c", MERGER, str(tmp_path), name]) for name in names
    ]
    for worker in workers:
        assert worker.wait(timeout=120) == 0

    record = json.loads(await store.load("shared") or b"")
    assert {f"{me}-{n}" for me in names for n in range(100)} <= set(record)
    assert record["views"] == 1


# ---------------------------------------------------------------- disks that break


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A private 512 KiB tmpfs, mounted for this test and unmounted after it (needs root, as CI)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(mount_point)],
        check=True,
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def remount(mount_point: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mount_point)], check=True)


def fill(mount_point: Path) -> None:
    """Fill the disk to the last byte."""
    try:
        with open(mount_point / "ballast", "wb", buffering=0) as handle:
            while True:
                handle.write(b"\0" * 4096)
    except OSError:
        pass


async def test_every_operation_on_a_read_only_disk_is_store_unavailable(small_disk: Path) -> None:
    store = FileStore(small_disk / "sessions")
    await store.write("abc", RECORD, later())
    await store.index_add("user:1", "abc")
    remount(small_disk, "ro")

    assert await store.load("abc") == RECORD  # reading still works
    operations = {
        "renew": store.load("abc", Renewal(now_ms(), MINUTE, MINUTE)),
        "write": store.write("new", RECORD, later()),
        "apply": store.apply("abc", Change("{}", (("n", "1"),)), later()),
        "delete": store.delete("abc"),
        "index_add": store.index_add("user:1", "new"),
        "index_remove": store.index_remove("user:1", "abc"),
        "ping": store.ping(),
    }
    for name, operation in operations.items():
        with pytest.raises(StoreUnavailable):
            await operation
            pytest.fail(f"{name} did not fail")


async def test_every_write_on_a_full_disk_is_store_unavailable_and_loses_nothing(
    small_disk: Path,
) -> None:
    store = FileStore(small_disk / "sessions")
    await store.write("abc", RECORD, later())
    fill(small_disk)

    big = RECORD[:-1] + b',"blob":"' + b"x" * 64_000 + b'"}'
    with pytest.raises(StoreUnavailable):
        await store.write("new", big, later())
    with pytest.raises(StoreUnavailable):
        await store.apply("abc", Change("{}", (("blob", '"' + "x" * 64_000 + '"'),)), later())
    with pytest.raises(StoreUnavailable):
        for n in range(2_000):  # index lines, until the last block is used up
            await store.index_add(f"user:{n}", "abc" * 20)
    with pytest.raises(StoreUnavailable):
        await store.ping()
    assert await store.load("abc") == RECORD
    assert [p.name for p in (small_disk / "sessions").iterdir() if p.suffix == ".tmp"] == []


async def test_a_site_on_a_broken_disk_answers_503_or_200_never_500(small_disk: Path) -> None:
    store = FileStore(small_disk / "sessions")
    app = make_app(store)
    browser = Browser(app.test_client(use_cookies=False))
    assert (await browser.get("/count")).status_code == 200
    remount(small_disk, "ro")

    counted = await browser.get("/count")
    assert counted.status_code == 503
    assert counted.headers["Retry-After"]
    assert (await Browser(app.test_client(use_cookies=False)).get("/count")).status_code == 503
    assert (await browser.get("/")).status_code in (200, 503)
    assert (await Browser(app.test_client(use_cookies=False)).get("/")).status_code == 200

    remount(small_disk, "rw")
    fill(small_disk)
    for client in (browser, Browser(app.test_client(use_cookies=False))):
        response = await client.get("/count")
        assert response.status_code == 503
        assert "Traceback" not in await response.get_data(as_text=True)
