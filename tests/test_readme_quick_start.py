"""A newcomer's first hour: `sessions/` copied alone into an empty project, the README's quick
start written out as it stands, and its tests run with pytest against a real Redis."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILE_BLOCK = re.compile(r"```python\n# (\S+\.py)\n(.*?)```", re.S)


def quick_start_files() -> dict[str, str]:
    """The files the README's quick start shows: each python block that begins with its name."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Quick start", 1)[1].split("\n### ", 1)[0]
    return {name: body for name, body in FILE_BLOCK.findall(section)}


def test_the_quick_start_names_an_app_and_its_tests() -> None:
    assert set(quick_start_files()) == {"app.py", "test_app.py"}


def test_a_copied_sessions_folder_and_the_quick_start_pass_their_tests(
    tmp_path: Path, redis_url: str
) -> None:
    project = tmp_path / "newcomer"
    project.mkdir()
    shutil.copytree(ROOT / "sessions", project / "sessions")
    for name, body in quick_start_files().items():
        (project / name).write_text(body)
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "REDIS"))
    }
    env.update(SECRET_KEY="change-me", REDIS_URL=redis_url, PYTHONPATH=str(project))

    # The copy, not this repository's package, is what the project imports.
    where = subprocess.run(
        [sys.executable, "-c", "import sessions; print(sessions.__file__)"],
        cwd=project, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(project)

    # As the README says to run them (pytest -o asyncio_mode=auto), with nothing of ours around.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-o", "asyncio_mode=auto", "-p", "no:cacheprovider",
         "-q", "--rootdir", str(project), "test_app.py"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 passed" in result.stdout
