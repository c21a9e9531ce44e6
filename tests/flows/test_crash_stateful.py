"""A stateful flow killed and restarted writes the rows of an uninterrupted run (issue 10).

simulate -> features -> predict -> alert, with features+predictions and alerts archived to
SQLite by `sql_out`, checkpointed every 100 ms. The simulator runs in history mode (not
realtime: timestamps from its fixed epoch, as fast as possible), so two runs are comparable
row for row. One uninterrupted run is the reference; then the same flow, in its own folder, is
stopped mid-run and restarted to the end:

* ``kill -9``: everything after the last complete checkpoint is processed again, so rows may
  repeat (at-least-once), but the distinct rows equal the reference's: the windows in
  `features` and the per-line alert state in `alert` came back from the checkpoint.
* ``SIGTERM``: a clean stop drains and checkpoints, so the restart repeats no row, and gives
  exactly the reference's rows: a checkpointed flow that is stopped does not flush its open
  windows as if the stream had ended; the final checkpoint keeps them for the restart.
"""

from __future__ import annotations

import shutil
import signal
from collections import Counter
from pathlib import Path

import pytest

from flowengine.checkpoint import CheckpointStore
from tests.helpers.cli import REPO
from tests.helpers.crash import (
    Row,
    cli_env,
    differences,
    duplicates,
    kill,
    rows,
    run_to_end,
    start,
    wait_for_checkpoint,
    wait_for_rows,
)

#: Simulated seconds: a row of features and prediction per second (plus the windows still open
#: at the end); a few seconds of wall time.
DURATION = 2400
TABLES = ("predictions", "alerts")
#: How many leading columns make a row's natural key: (timestamp, line) for a prediction,
#: (timestamp, event, line) for an alert.
KEYS = {"predictions": 2, "alerts": 3}
#: Checkpoints completed before the stop, at least.
CHECKPOINTS = 3

FLOW = f"""
version: 1
name: Line 3 history, archived (crash test)
settings: {{checkpoint: 100ms, queue_size: 2}}  # short queues: barriers pass quickly
nodes:
  plc:
    type: simulate
    seed: 163
    realtime: false
    duration: {DURATION}
    batch_size: 1800      # 30 s of readings per batch
    defect_interval: 120
    line: "3"
    wires: [features]
  features:
    type: features
    size: 10s
    step: 1s
    aggregations: [mean, std, min, max, slope]
    labels: [defect]
    wires: [predict]
  predict:
    type: predict
    model: models/line3.joblib
    reload: false
    wires: [alert, archive]
  alert:
    type: alert
    column: defect_probability
    levels: {{warning: 0.7, critical: 0.9}}
    clear_at: 0.4
    for: 2s
    cooldown: 20s
    key: [line]
    wires: [alerts]
  archive:
    type: sql_out
    connection_string: sqlite:///out.db
    table: predictions
  alerts:
    type: sql_out
    connection_string: sqlite:///out.db
    table: alerts
"""

Tables = dict[str, list[Row]]


def make_flow(folder: Path) -> Path:
    """The flow in its own folder, with the model beside it (its state folder goes there too)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "flows" / "models", folder / "models")
    flow = folder / "crash.yaml"
    flow.write_text(FLOW)
    return flow


def read_tables(flow: Path) -> Tables:
    return {table: rows(flow.parent / "out.db", table) for table in TABLES}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Tables:
    """The rows of one uninterrupted run."""
    flow = make_flow(tmp_path_factory.mktemp("uninterrupted"))
    run_to_end(flow, cli_env())
    found = read_tables(flow)
    assert len(found["predictions"]) > DURATION and found["alerts"], "nothing to compare"
    for table, n in KEYS.items():  # so equal sets of rows are equal rows per key
        assert len({r[:n] for r in found[table]}) == len(found[table]), table
    return found


def interrupted(folder: Path, sig: signal.Signals) -> tuple[Tables, int]:
    """Run; once 40% of the predictions are written and a few checkpoints completed, stop with
    ``sig``; restart to the end. The rows, and how many predictions there were at the stop."""
    flow = make_flow(folder)
    db, state = folder / "out.db", folder / ".flowengine" / "crash"
    proc = start(flow, cli_env())
    wait_for_rows(db, "predictions", proc, DURATION * 2 // 5)
    wait_for_checkpoint(state, proc, CHECKPOINTS)
    code = kill(proc, sig)
    assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
    before = len(rows(db, "predictions"))
    last = CheckpointStore(state).load()
    print(f"{sig.name} at {before} predictions, after checkpoint {last and last.id}")
    run_to_end(flow, cli_env())
    return read_tables(flow), before


def test_kill_9_and_restart_gives_the_rows_of_an_uninterrupted_run(
    tmp_path: Path, reference: Tables
) -> None:
    found, before = interrupted(tmp_path, signal.SIGKILL)
    for table in TABLES:
        expected, got = reference[table], found[table]
        repeated = duplicates(got)
        print(f"{table}: {len(got)} rows, {repeated} duplicates, {len(expected)} expected")
        assert set(got) == set(expected), f"{table}: {differences(expected, got)}"
        assert len(got) == len(expected) + repeated  # nothing but repeats of the same rows
    assert duplicates(found["predictions"]) <= before  # only what came after the checkpoint


@pytest.fixture(scope="module")
def after_sigterm(tmp_path_factory: pytest.TempPathFactory) -> Tables:
    """The rows of a run stopped cleanly mid-way and restarted to the end."""
    found, _ = interrupted(tmp_path_factory.mktemp("sigterm"), signal.SIGTERM)
    return found


def test_sigterm_and_restart_repeats_no_row(after_sigterm: Tables) -> None:
    for table in TABLES:
        assert duplicates(after_sigterm[table]) == 0, table


def test_sigterm_and_restart_gives_the_rows_of_an_uninterrupted_run(
    reference: Tables, after_sigterm: Tables
) -> None:
    wrong = {
        table: differences(reference[table], after_sigterm[table])
        for table in TABLES
        if Counter(after_sigterm[table]) != Counter(reference[table])
    }
    assert not wrong, wrong
