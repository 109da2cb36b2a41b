"""`quart sessions stats | clear | purge-expired`, run as a user would, against a real store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECORD = b'{"cookie":{"originalMaxAge":null,"expires":null},"a":1}'

APP = """
import os
from quart import Quart
from sessions import FileStore, MemoryStore, Sessions
app = Quart(__name__)
store = MemoryStore() if os.environ["KIND"] == "memory" else FileStore(os.environ["FOLDER"])
Sessions(app, secret="s", store=store)
"""


def quart(tmp_path: Path, kind: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "cliapp.py").write_text(APP)
    env = {**os.environ, "KIND": kind, "FOLDER": str(tmp_path / "sessions"), "QUART_APP": "cliapp",
           "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "quart", "sessions", *args],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def write_sessions(folder: Path, live: int, expired: int) -> None:
    folder.mkdir()
    for n in range(live + expired):
        path = folder / f"s{n}.json"
        path.write_bytes(RECORD)
        if n >= live:
            os.utime(path, (time.time() - 10, time.time() - 10))
        else:
            os.utime(path, (time.time(), time.time() + 3600))


def test_stats_counts_the_live_sessions(tmp_path: Path) -> None:
    write_sessions(tmp_path / "sessions", live=3, expired=2)
    result = quart(tmp_path, "file", "stats")
    assert result.returncode == 0, result.stderr
    assert "FileStore: 3 session(s)" in result.stdout


def test_purge_expired_deletes_only_the_expired(tmp_path: Path) -> None:
    write_sessions(tmp_path / "sessions", live=3, expired=2)
    result = quart(tmp_path, "file", "purge-expired")
    assert result.returncode == 0, result.stderr
    assert "2 expired session(s) deleted" in result.stdout
    assert len(list((tmp_path / "sessions").glob("*.json"))) == 3


def test_clear_asks_first_and_then_deletes_everything(tmp_path: Path) -> None:
    write_sessions(tmp_path / "sessions", live=3, expired=0)
    refused = quart(tmp_path, "file", "clear")
    assert refused.returncode != 0 and len(list((tmp_path / "sessions").glob("*.json"))) == 3
    done = quart(tmp_path, "file", "clear", "--yes")
    assert done.returncode == 0 and list((tmp_path / "sessions").glob("*.json")) == []


def test_a_memory_store_is_refused_with_the_reason(tmp_path: Path) -> None:
    """Its sessions live in the server processes: a count of 0 here would be a lie."""
    result = quart(tmp_path, "memory", "stats")
    assert result.returncode != 0
    assert "cannot see them" in result.stderr
