"""py-spy's raw stacks are shared out by package and frame, plumbing left out of "on stack"."""

from __future__ import annotations

from pathlib import Path

from bench.profile import NATIVE, package, profile_lines, summarise

GRANIAN_ROOT = (
    'process 10:"python -m granian";process 11:"python -m granian";'
    "<module> (granian/__main__.py:4);MPServer.serve (granian/server/mp.py:20)"
)
RAW = "\n".join(
    [
        f"{GRANIAN_ROOT};Quart.handle_request (quart/app.py:10);open_session (sessions/engine.py:5);verify (sessions/signing.py:40) 6",
        f"{GRANIAN_ROOT};Quart.handle_request (quart/app.py:10);JSONEncoder.encode (json/encoder.py:200) 2",
        'process 10:"python -m granian";process 11:"python -m granian" 2',
    ]
)


def test_own_time_adds_up_by_package_and_native_threads_are_named(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text(RAW + "\n")
    profile = summarise(raw)
    assert profile.samples == 10
    assert dict(profile.package_own) == {"sessions": 6, "json": 2, NATIVE: 2}
    # On the stack: quart under everything Python; granian's start-up frames are plumbing.
    assert profile.package_total["quart"] == 8
    assert "granian" not in profile.package_total
    assert profile.total["verify (sessions/signing.py)"] == 6  # line numbers merged


def test_within_keeps_only_the_stacks_of_one_loop(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text(RAW + "\n")
    assert summarise(raw, within="open_session").samples == 6


def test_microseconds_per_request_are_the_share_of_the_measured_cpu(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text(RAW + "\n")
    text = "\n".join(profile_lines("t", summarise(raw), us_per_request=200.0))
    assert "| `sessions` | 60.0% | 120.0 | 60.0% | 120.0 |" in text
    assert package("Quart.handle_request (quart/app.py)") == "quart"
