"""`python -m bench.budget` times every piece of a request's session work and counts its calls.

Not a timed assertion: it checks that the tool runs, that each request kind and piece got a
number, that the counted calls follow the code (a returning visitor's cookie is verified once,
a cookieless request verifies nothing), and that a renamed name fails loudly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.budget import KINDS, BudgetError, need

ROOT = Path(__file__).resolve().parents[2]
VERIFY = "signing.verify (HMAC-SHA256)"
LOAD = "store.load(sid, renewal)"


@pytest.fixture(scope="module")
def budget(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("budget") / "budget.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench.budget", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    data: dict[str, Any] = json.loads(out.read_text())
    data["report"] = completed.stdout
    return data


def test_every_request_kind_and_piece_gets_a_time(budget: dict[str, Any]) -> None:
    assert set(budget["steps"]) == {kind.key for kind in KINDS}
    assert len(budget["whole"]) == 5
    assert len(budget["pieces"]) >= 12
    for timing in [
        *budget["steps"].values(),
        *budget["whole"].values(),
        *budget["pieces"].values(),
    ]:
        assert timing["us"] > 0 and timing["calls_per_repeat"] >= 1, timing


def test_calls_are_counted_from_the_code_that_ran(budget: dict[str, Any]) -> None:
    calls = budget["calls"]
    # A returning visitor's record is loaded once; its signed cookie is verified once per process
    # (the engine remembers a Cookie header it has verified), so not again on a repeat request.
    for kind in ("read", "modified"):
        assert calls[kind][VERIFY] == 0, calls[kind]
        assert calls[kind][LOAD] == 1, calls[kind]
    # Without a cookie there is nothing to verify and nothing to load.
    for kind in ("cookieless", "new"):
        assert calls[kind][VERIFY] == 0 and calls[kind][LOAD] == 0, calls[kind]
    # Only a new session's cookie is signed and sent (resave, rolling false; browser cookie).
    assert calls["new"]["signing.encode_cookie_value"] == 1
    assert calls["read"]["signing.encode_cookie_value"] == 0


def test_the_report_shares_out_each_kind_s_session_layer(budget: dict[str, Any]) -> None:
    report = budget["report"]
    for kind in KINDS:
        assert kind.title in report
    assert report.count("| **total session layer** |") == 4
    assert report.count("| the rest (glue, objects, Quart's hooks) |") == 4


def test_a_name_that_moved_fails_with_what_to_update() -> None:
    with pytest.raises(
        BudgetError, match=r"sessions\.signing\.no_such_piece is gone.*bench/budget\.py"
    ):
        need("sessions.signing.no_such_piece")
    with pytest.raises(BudgetError, match="no module of it can be imported"):
        need("no_such_package.thing")
    assert need("sessions.Cookie.from_json") is not None
