"""Run the installed CLI in a subprocess, as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: The repository root (flows/, docs/ and pyproject.toml are here).
REPO = Path(__file__).resolve().parents[2]


def flowengine(*args: str, env: dict[str, str], cwd=None, timeout: float = 60):
    return subprocess.run(
        [sys.executable, "-m", "flowengine.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )
