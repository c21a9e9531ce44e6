"""sql_in's watermark is node state: a checkpoint restores it, a test seeds it, and polls run on
the flow's clock (SQLite files: the other engines are covered in test_sql.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from flowengine.cli import main
from flowengine.harness import StateRejected
from flowengine.testing import FakeClock, FlowHarness, check_text, run_flow

pytest.importorskip("sqlalchemy")

QUERY = "SELECT id, sensor, value FROM readings WHERE id > :last_id ORDER BY id"


def add_rows(db: Path, ids: range) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS readings (id INTEGER, sensor TEXT, value REAL)")
        conn.executemany(
            "INSERT INTO readings VALUES (?, ?, ?)", [(i, f"s{i % 2}", i * 1.5) for i in ids]
        )


def source(**extra: Any) -> dict[str, Any]:
    return {
        "type": "sql_in",
        "connection_string": "sqlite:///readings.db",  # beside the flow
        "query": QUERY,
        "watermark_column": "id",
        "initial": 0,
        "poll_interval": 30,
        **extra,
    }


def ids(frames: list[pd.DataFrame]) -> list[int]:
    return [int(i) for f in frames for i in f["id"]]


def harness_run(tmp_path: Path, state: dict[str, Any], between: range | None = None) -> Any:
    flow = {"src": {**source(), "wires": ["out"]}, "out": {"type": "debug"}}
    checked = check_text(flow, path=tmp_path / "flow.yaml")

    async def main() -> tuple[list[int], list[int], Any]:
        harness = FlowHarness(checked, clock=FakeClock(), replace_io=False, state=state)
        async with harness as h:
            first = ids(h.outputs("src"))
            if between is not None:
                add_rows(tmp_path / "readings.db", between)
            await h.advance(30)  # the next poll: on the fake clock, no waiting
            second = ids(h.outputs("src"))[len(first) :]
            snapshot = h.node("src").snapshot()
        return first, second, snapshot

    return asyncio.run(asyncio.wait_for(main(), 60))


def test_a_seeded_watermark_is_where_reading_starts_and_polls_follow_the_clock(tmp_path: Path):
    add_rows(tmp_path / "readings.db", range(1, 6))
    first, second, snapshot = harness_run(tmp_path, {"src": {"watermark": 2}}, range(6, 8))
    assert first == [3, 4, 5]
    assert second == [6, 7]
    assert snapshot == {"watermark": 7}


@pytest.mark.parametrize(
    ("state", "why"),
    [({"mark": 2}, "sql_in's state is {watermark: VALUE}"), (7, "sql_in's state is")],
)
def test_a_state_it_cannot_take_fails_the_run(tmp_path: Path, state: Any, why: str):
    add_rows(tmp_path / "readings.db", range(1, 3))
    with pytest.raises(
        StateRejected, match=f"node 'src' rejected the given state: ValueError: {why}"
    ):
        harness_run(tmp_path, {"src": state})


def test_a_checkpoint_restores_the_watermark(tmp_path: Path):
    db, state_file = tmp_path / "readings.db", tmp_path / ".flowengine-state" / "src.json"
    add_rows(db, range(1, 6))
    flow = {
        "version": 1,
        "settings": {"checkpoint": 0.05, "state_dir": str(tmp_path / "checkpoints")},
        "nodes": {"src": {**source(polls=1), "wires": ["cap"]}, "cap": {"type": "capture"}},
    }
    first = run_flow(flow, path=tmp_path / "flow.yaml").frame("cap")
    assert first["id"].tolist() == [1, 2, 3, 4, 5]
    state_file.unlink()  # only the checkpoint knows where reading got to now
    add_rows(db, range(6, 8))
    second = run_flow(flow, path=tmp_path / "flow.yaml").frame("cap")
    assert second["id"].tolist() == [6, 7]


def test_given_watermark_seeds_it_in_a_flow_test(tmp_path: Path):
    add_rows(tmp_path / "readings.db", range(1, 6))
    (tmp_path / "plant.yaml").write_text(
        "version: 1\nnodes:\n"
        f"  src: {{type: sql_in, connection_string: 'sqlite:///readings.db', query: '{QUERY}', "
        "watermark_column: id, initial: 0, poll_interval: 30, wires: [out]}\n"
        "  out: {type: debug}\n"
    )
    (tmp_path / "plant.test.yaml").write_text(
        textwrap.dedent(
            """\
            cases:
              - name: reads after the seeded watermark only
                replace_io: false
                given: {watermark: {src: 3}}
                input: [{advance: 1min}]
                expect:
                  src: {rows: [{id: 4}, {id: 5}], columns: [id]}
              - name: a replaced source takes no watermark
                given: {watermark: {src: 3}}
                expect:
                  out: {no_output: true}
            """
        )
    )
    result = CliRunner().invoke(main, ["test", "-v", str(tmp_path / "plant.test.yaml")])
    assert result.exit_code == 2, result.output  # the second case is a problem, not run
    assert "::reads after the seeded watermark only PASSED" in result.output
    assert (
        "case 'a replaced source takes no watermark': 'given.watermark.src': node 'src' runs as "
        "a stand-in in this case (external I/O is replaced unless replace_io is false)"
    ) in result.output
