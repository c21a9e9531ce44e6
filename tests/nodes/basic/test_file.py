"""File sink: CSV with one header per file, JSON Lines, truncation, rotation, relative paths."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flowengine.testing import run_flow

ROWS = [{"sensor": "a", "value": 1.5}, {"sensor": "b", "value": 2.5}]


def to_file(path: Path | str, rows: list[dict[str, Any]] = ROWS, count: int = 1, **config: Any):
    return {
        "src": {"type": "inject", "rows": rows, "count": count, "wires": ["out", "cap"]},
        "out": {"type": "file", "path": str(path), **config},
        "cap": {"type": "capture"},
    }


def header_count(path: Path) -> int:
    return sum(line.startswith("timestamp,") for line in path.read_text().splitlines())


def test_csv_header_written_once_across_batches(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    run_flow(to_file(path, count=3))
    assert header_count(path) == 1
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["timestamp", "sensor", "value"]
    assert frame[["sensor", "value"]].to_dict("records") == ROWS * 3


def test_csv_appends_to_an_existing_file_without_a_second_header(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    run_flow(to_file(path, count=2))
    run_flow(to_file(path, count=1))
    assert header_count(path) == 1
    assert pd.read_csv(path)[["sensor", "value"]].to_dict("records") == ROWS * 3


def test_jsonl_records_round_trip_with_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    rows = [
        {"timestamp": "2024-05-01T12:00:00.123456+02:00", "sensor": "a", "value": 1.5},
        {"timestamp": "2024-05-01T10:00:01Z", "sensor": "b", "value": None},
    ]
    result = run_flow(to_file(path, rows, count=2))
    back = pd.read_json(io.StringIO(path.read_text()), lines=True)
    sent = result.frame("cap")
    assert len(back) == len(rows) * 2
    assert str(back["timestamp"].dt.tz) == "UTC"
    assert back["timestamp"].tolist() == sent["timestamp"].tolist()
    assert back["timestamp"].iloc[0] == pd.Timestamp("2024-05-01T10:00:00.123456Z")
    assert back["sensor"].tolist() == sent["sensor"].tolist()
    assert back["value"].iloc[0] == 1.5 and pd.isna(back["value"].iloc[1])


def test_format_overrides_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    run_flow(to_file(path, format="csv"))
    assert pd.read_csv(path)[["sensor", "value"]].to_dict("records") == ROWS


@pytest.mark.parametrize("name", ["out.jsonl", "out.ndjson"])
def test_auto_picks_json_lines_for_its_extensions(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    run_flow(to_file(path))
    back = pd.read_json(io.StringIO(path.read_text()), lines=True)
    assert back[["sensor", "value"]].to_dict("records") == ROWS


def test_append_false_truncates_at_start(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    path.write_text("old,stuff\n1,2\n")
    run_flow(to_file(path, append=False))
    run_flow(to_file(path, append=False, count=2))
    assert header_count(path) == 1
    assert "old" not in path.read_text()
    assert pd.read_csv(path)[["sensor", "value"]].to_dict("records") == ROWS * 2


def test_rotation_by_size_keeps_at_most_keep_files(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    keep, count = 2, 5
    flow = to_file(path, rows=ROWS[:1], count=count, rotate_bytes=1, keep=keep)
    flow["src"]["interval"] = 0.001  # distinct firing times tell the batches apart
    result = run_flow(flow)
    stamps = [b.frame["timestamp"].iloc[0] for b in result.batches("cap")]
    assert len(set(stamps)) == count
    # every write finds the file over the limit: newest in `path`, older ones in .1, .2, ...
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["out.csv", *(f"out.csv.{i}" for i in range(1, keep + 1))]
    for age, name in enumerate(["out.csv", *(f"out.csv.{i}" for i in range(1, keep + 1))]):
        frame = pd.read_csv(tmp_path / name, parse_dates=["timestamp"])
        assert frame["timestamp"].tolist() == [stamps[-1 - age]]


def test_rotation_waits_for_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    run_flow(to_file(path, count=3, rotate_bytes=10_000))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
    assert len(pd.read_csv(path)) == len(ROWS) * 3


def test_relative_path_resolves_beside_the_flow_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    flow_dir = tmp_path / "flows"
    run_flow(to_file("out/line3.csv"), path=flow_dir / "line3.yaml")
    written = flow_dir / "out" / "line3.csv"
    assert pd.read_csv(written)[["sensor", "value"]].to_dict("records") == ROWS
    assert list(elsewhere.iterdir()) == []
