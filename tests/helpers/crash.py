"""Run a flow through the CLI in a subprocess, stop it hard or softly, and read its SQLite rows.

For crash tests of checkpointed flows: the test waits on the database (rows written), never on
the clock, so where the stop lands depends on progress, not on the speed of the machine.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from flowengine.checkpoint import CheckpointStore

#: Row of a table with its floats rounded (a comparable, hashable value).
Row = tuple[Any, ...]


def cli_env() -> dict[str, str]:
    """The environment of this process, without what would colour the CLI's output."""
    env = dict(os.environ)
    env.pop("FORCE_COLOR", None)
    return env


def start(flow: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """``flowengine run FLOW --no-live`` in the background (stderr kept for failures)."""
    return subprocess.Popen(
        [sys.executable, "-m", "flowengine.cli", "run", str(flow), "--no-live"],
        env=env,
        cwd=flow.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_to_end(flow: Path, env: dict[str, str], timeout: float = 120) -> str:
    """Run ``flow`` until its sources end; its stderr. Fails on a non-zero exit."""
    proc = start(flow, env)
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return err


def count_rows(db: Path, table: str) -> int:
    """Rows in ``table`` now (0 while the database or the table does not exist yet, or while
    the writer holds the lock: the next poll sees them)."""
    if not db.exists():
        return 0
    try:
        with closing(_connect(db)) as con:
            return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:  # no such table yet, or locked by the writer
        return 0


def wait_until(
    proc: subprocess.Popen[str], done: Callable[[], bool], what: str, timeout: float = 60
) -> None:
    """Wait (on the flow's progress, not the clock) until ``done()``; fails when the flow ends
    first or ``timeout`` seconds pass without it."""
    deadline = time.monotonic() + timeout
    while not done():
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"the flow ended before {what}: {err}")
        assert time.monotonic() < deadline, f"the flow made no progress towards {what}"
        time.sleep(0.01)


def wait_for_rows(db: Path, table: str, proc: subprocess.Popen[str], at_least: int) -> None:
    """Wait until ``table`` holds ``at_least`` rows."""
    wait_until(proc, lambda: count_rows(db, table) >= at_least, f"{at_least} rows in {table}")


def wait_for_checkpoint(folder: Path, proc: subprocess.Popen[str], at_least: int) -> None:
    """Wait until the flow whose state lives in ``folder`` has completed checkpoint
    ``at_least`` (or a later one)."""
    store = CheckpointStore(folder)

    def saved() -> bool:
        last = store.load()
        return last is not None and last.id >= at_least

    wait_until(proc, saved, f"checkpoint {at_least}")


def kill(proc: subprocess.Popen[str], sig: signal.Signals, timeout: float = 60) -> int:
    """Send ``sig`` to the flow and wait for it to end; its exit code."""
    proc.send_signal(sig)
    proc.communicate(timeout=timeout)
    return proc.returncode


def rows(db: Path, table: str, digits: int = 9) -> list[Row]:
    """Every row of ``table`` (all columns, in storage order), floats rounded to ``digits``."""
    with closing(_connect(db)) as con:
        found = con.execute(f"SELECT * FROM {table}").fetchall()
    return [tuple(round(v, digits) if isinstance(v, float) else v for v in r) for r in found]


def duplicates(found: list[Row]) -> int:
    """How many rows are repeats of an earlier one."""
    return sum(n - 1 for n in Counter(found).values())


def differences(expected: list[Row], found: list[Row], limit: int = 5) -> str:
    """A short account of rows in one list and not the other (for an assertion message)."""
    a, b = set(expected), set(found)
    missing, extra = sorted(a - b, key=str), sorted(b - a, key=str)
    return (
        f"{len(missing)} missing, e.g. {missing[:limit]}; {len(extra)} unexpected, "
        f"e.g. {extra[:limit]}"
    )


def _connect(db: Path) -> sqlite3.Connection:
    """A short-lived read connection that gives way quickly to the flow's writer."""
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5)
