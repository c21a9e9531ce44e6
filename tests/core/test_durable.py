"""Checkpoints and journals in a running flow: restart where it stopped, nothing lost."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flowengine.checkpoint import CheckpointStore
from flowengine.journal import Journal
from flowengine.node import NodeConfig, Source, Transform
from flowengine.testing import Counter, run_flow
from flowengine.types import Batch, Result
from tests.helpers.crash import start


class Total(Transform[NodeConfig]):
    """A running total of `seq`: state that must survive a restart."""

    state_attrs = ("total",)

    async def start(self) -> None:
        self.total = 0

    def process(self, batch: Batch) -> Result:
        sums = batch.frame["seq"].cumsum() + self.total
        self.total = int(sums.iloc[-1])
        return batch.frame.assign(total=sums)


TYPES: dict[str, Any] = {"count": Counter, "total": Total}


def flow_text(batches: int, checkpoint: str = "50ms", pause: float = 0.0) -> str:
    return f"""
version: 1
settings: {{checkpoint: {checkpoint}}}
nodes:
  src: {{type: count, batches: {batches}, rows: 5, pause: {pause}, wires: [sum]}}
  sum: {{type: total, wires: [cap]}}
  cap: {{type: capture}}
"""


def test_a_clean_run_leaves_a_checkpoint_and_empty_journals(tmp_path: Path) -> None:
    path = tmp_path / "line.yaml"
    result = run_flow(flow_text(20), types=TYPES, path=path)
    out = result.frame("cap")
    assert out["seq"].tolist() == list(range(100))
    folder = tmp_path / ".flowengine" / "line"
    saved = CheckpointStore(folder).load()
    assert saved is not None and set(saved.configs) == {"src", "sum", "cap"}
    journal = Journal(folder / "journal-src.db")
    assert journal.stats.batches == 0 and journal.last_seq() == 20  # all delivered, all gone
    again = run_flow(flow_text(20), types=TYPES, path=path)  # done already: nothing more
    assert again.batches("cap") == [] and again.report.drained


def test_a_stopped_flow_goes_on_where_it_stopped_without_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "line.yaml"
    text = flow_text(40, pause=0.01)
    first = run_flow(text, types=TYPES, path=path, duration=0.15)
    second = run_flow(text, types=TYPES, path=path)
    seqs = [s for r in (first, second) for b in r.batches("cap") for s in b.frame["seq"]]
    assert seqs == list(range(200))  # every row once, in order, across the stop
    after = second.frame("cap")
    assert after["total"].tolist() == [sum(range(s + 1)) for s in after["seq"]]


class Picky(Total):
    """A total whose ``restore`` refuses what an older version of it saved."""

    def restore(self, state: Any) -> None:
        raise KeyError("keys")


def test_a_state_the_node_refuses_is_logged_and_the_flow_starts_without_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "line.yaml"
    text = flow_text(40, pause=0.01)
    first = run_flow(text, types=TYPES, path=path, duration=0.15)  # stopped: sum has a total
    again = run_flow(text, types={**TYPES, "total": Picky}, path=path)
    done = [s for b in first.batches("cap") for s in b.frame["seq"]]
    after = again.frame("cap")
    assert after["seq"].tolist() == list(range(len(done), 200))  # the source went on
    assert after["total"].iloc[0] == after["seq"].iloc[0]  # sum started afresh
    assert again.stats("sum")["errors"] == 1 and again.report.drained
    assert "its saved state could not be restored (KeyError" in caplog.text


def test_without_checkpoints_no_state_folder_is_made(tmp_path: Path) -> None:
    text = flow_text(3).replace("settings: {checkpoint: 50ms}", "")
    run_flow(text, types=TYPES, path=tmp_path / "plain.yaml")
    assert not (tmp_path / ".flowengine").exists()


CRASH_FLOW = """
version: 1
settings: {checkpoint: 100ms}
nodes:
  src: {type: tick, count: 300, rows: 50, wires: [out]}
  out: {type: slowfile, path: OUT, delay: 0.004}
"""


def _lines(path: Path) -> list[int]:
    text = path.read_text() if path.exists() else ""
    return [int(x) for x in text.split()]


def _wait_for_lines(path: Path, proc: subprocess.Popen[str], at_least: int) -> None:
    """Wait (on the file, not the clock) until the sink has written ``at_least`` rows."""
    import time

    deadline = time.monotonic() + 60
    while len(_lines(path)) < at_least:
        assert proc.poll() is None, f"the flow ended early: {proc.stderr and proc.stderr.read()}"
        assert time.monotonic() < deadline, "the flow made no progress"
        time.sleep(0.02)


@pytest.mark.parametrize("kill_after", [1_000, 6_000, 11_000])
def test_kill_9_and_restart_loses_nothing(
    tmp_path: Path, cli_env: dict[str, str], kill_after: int
) -> None:
    out = tmp_path / "out.txt"
    flow = tmp_path / "crash.yaml"
    flow.write_text(CRASH_FLOW.replace("OUT", str(out)))
    proc = start(flow, cli_env)
    _wait_for_lines(out, proc, kill_after)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    written_before = len(_lines(out))
    again = start(flow, cli_env)  # runs to the end of the source (300 batches)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    seqs = _lines(out)
    assert set(seqs) == set(range(15_000))  # nothing lost
    duplicated = len(seqs) - 15_000
    assert 0 <= duplicated <= written_before  # the source went on; only the journal replayed
    if kill_after >= 6_000:  # checkpoints completed meanwhile: only what came after the last
        assert duplicated < written_before // 2


def test_sigterm_and_restart_neither_loses_nor_duplicates(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    out = tmp_path / "out.txt"
    flow = tmp_path / "stop.yaml"
    flow.write_text(CRASH_FLOW.replace("OUT", str(out)))
    proc = start(flow, cli_env)
    _wait_for_lines(out, proc, 4_000)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    again = start(flow, cli_env)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert _lines(out) == list(range(15_000))  # each once, in order


class Replay(Counter):
    """The same numbered rows, declared able to replay itself from its position."""

    replayable = True


def test_a_replayable_source_keeps_no_journal_and_goes_on_after_a_stop(tmp_path: Path) -> None:
    path = tmp_path / "sim.yaml"
    text = flow_text(40, pause=0.01).replace("type: count", "type: replay")
    types = {**TYPES, "replay": Replay}
    first = run_flow(text, types=types, path=path, duration=0.15)
    second = run_flow(text, types=types, path=path)
    seqs = [s for r in (first, second) for b in r.batches("cap") for s in b.frame["seq"]]
    assert seqs == list(range(200))
    assert not list((tmp_path / ".flowengine" / "sim").glob("journal-*"))


class Unreachable(Source[NodeConfig]):
    """A PLC that never answers: its start fails, the runtime retries it forever."""

    async def start(self) -> None:
        raise ConnectionRefusedError("PLC unreachable")

    async def read(self) -> pd.DataFrame:
        raise AssertionError("never started")


def test_a_source_that_never_connects_does_not_hold_up_checkpoints(tmp_path: Path) -> None:
    text = f"""
version: 1
settings: {{checkpoint: 20ms, state_dir: {tmp_path}}}
nodes:
  ok: {{type: count, batches: 400, rows: 1, pause: 0.005, wires: [cap]}}
  plc: {{type: unreachable, retry: {{initial: 0.05, max: 0.1}}, wires: [cap]}}
  cap: {{type: capture}}
"""
    types = {**TYPES, "unreachable": Unreachable}
    result = run_flow(text, types=types, path=tmp_path / "two.yaml", duration=1.0)
    durable = result.runtime._durable
    assert durable is not None and durable.coordinator.completed >= 5  # barriers went round
    seqs = result.frame("cap")["seq"].tolist()
    assert seqs == list(range(len(seqs))) and len(seqs) > 20  # the other source's rows flowed


class Hold(Transform[NodeConfig]):
    """Holds every row until the end of the stream, and keeps no checkpoint state."""

    async def start(self) -> None:
        self.held: list[pd.DataFrame] = []

    def process(self, batch: Batch) -> Result:
        self.held.append(batch.frame)
        return None

    async def flush(self) -> Result:
        return pd.concat(self.held, ignore_index=True) if self.held else None


def test_a_stopped_node_without_checkpoint_state_still_flushes(tmp_path: Path) -> None:
    text = flow_text(40, pause=0.01).replace("type: total", "type: hold")
    result = run_flow(text, types={**TYPES, "hold": Hold}, path=tmp_path / "h.yaml", duration=0.15)
    seqs = result.frame("cap")["seq"].tolist()
    assert seqs and seqs == list(range(len(seqs)))  # what it held came out at the stop
