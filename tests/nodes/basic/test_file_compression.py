"""File sink with gzip and zstd: one whole member (frame) per batch, appends across runs read
back as one stream by pandas, gzip and zstandard, a write cut off by a crash cut away at the
next start (earlier batches intact), rotation keeping the suffix, and config checks."""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flowengine.compression import Decoder, compress
from flowengine.runtime import Runtime
from flowengine.testing import check_text, run_flow
from tests.helpers.crash import cli_env, kill, start, wait_until
from tests.helpers.peers import until

zstandard = pytest.importorskip("zstandard", reason="zstd needs flowengine[zstd] (zstandard)")

ROWS = [{"sensor": "a", "value": 1.5}, {"sensor": "b", "value": 2.5}]
SUFFIX = {"gzip": ".gz", "zstd": ".zst"}


def to_file(path: Path | str, count: int = 1, **config: Any) -> dict[str, Any]:
    return {
        "src": {"type": "inject", "rows": ROWS, "count": count, "wires": ["out"]},
        "out": {"type": "file", "path": str(path), **config},
    }


def raw(path: Path) -> bytes:
    """The decompressed bytes, read by each codec's own library (every member or frame)."""
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes())
    with zstandard.open(path, "rb") as stream:
        return bytes(stream.read())


def messages(checked: Any) -> str:
    return " | ".join(p.message for p in checked.problems)


def _ends(path: Path, codec: str) -> list[int]:
    data, ends, decoder = path.read_bytes(), [], Decoder(codec)  # type: ignore[arg-type]
    for i in range(len(data)):
        for _ in decoder.feed(data[i : i + 1]):
            pass
        if decoder.complete > (ends[-1] if ends else 0):
            ends.append(decoder.complete)
    return ends


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_csv_appends_across_runs_read_back_by_pandas_and_the_codec(
    tmp_path: Path, codec: str
) -> None:
    path = tmp_path / f"out.csv{SUFFIX[codec]}"
    run_flow(to_file(path, count=2))
    run_flow(to_file(path, count=1))
    assert path.read_bytes().startswith(b"\x1f\x8b" if codec == "gzip" else b"\x28\xb5\x2f\xfd")
    assert len(_ends(path, codec)) == 3  # one member per batch, none rewritten
    frame = pd.read_csv(path)  # pandas picks the codec from the suffix
    assert list(frame.columns) == ["timestamp", "sensor", "value"]
    assert frame[["sensor", "value"]].to_dict("records") == ROWS * 3
    assert raw(path).decode().count("timestamp,") == 1  # one header per file


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_jsonl_round_trip_with_timestamps(tmp_path: Path, codec: str) -> None:
    path = tmp_path / f"out.jsonl{SUFFIX[codec]}"
    result = run_flow(to_file(path, count=2, compression_level=1))
    back = pd.read_json(io.BytesIO(raw(path)), lines=True)
    assert back[["sensor", "value"]].to_dict("records") == ROWS * 2
    assert str(back["timestamp"].dt.tz) == "UTC"
    assert pd.read_json(path, lines=True)["value"].tolist() == [1.5, 2.5] * 2
    assert result.stats("out")["state"] == "stopped"


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_a_write_cut_off_by_a_crash_is_cut_away_and_earlier_batches_stay(
    tmp_path: Path, codec: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch is written as one blob: a crash leaves a prefix of it at the end. The next start
    cuts exactly that prefix; the batches before it and after it read back whole."""
    path = tmp_path / f"out.csv{SUFFIX[codec]}"
    run_flow(to_file(path, count=2))
    good = path.read_bytes()
    blob = compress(b"2026-01-01T00:00:00Z,lost,9.0\n" * 50, codec)  # type: ignore[arg-type]
    with path.open("ab") as out:
        out.write(blob[: len(blob) // 2])
    if codec == "gzip":  # zstandard's reader stops quietly inside a cut-off frame
        with pytest.raises(EOFError):
            pd.read_csv(path)
    run_flow(to_file(path, count=1))
    assert path.read_bytes().startswith(good)  # nothing before the cut rewritten
    frame = pd.read_csv(path)
    assert frame[["sensor", "value"]].to_dict("records") == ROWS * 3
    assert "lost" not in raw(path).decode()
    assert f"cut {len(blob) // 2} bytes of a write a crash left unfinished" in caplog.text


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_killed_mid_run_then_restarted_reads_back_every_whole_batch(tmp_path: Path) -> None:
    """kill -9 while batches stream into a .csv.gz; the restart appends after whole members."""
    path = tmp_path / "out.csv.gz"
    flow = tmp_path / "flow.yaml"
    rows = ", ".join(f"{{sensor: s{i}, value: {i}.5}}" for i in range(20))
    flow.write_text(
        "version: 1\nnodes:\n"
        f"  src: {{type: inject, rows: [{rows}], interval: 0.001, count: 1000000, wires: [out]}}\n"
        f"  out: {{type: file, path: {path.name}}}\n"
    )
    proc = start(flow, cli_env())
    wait_until(proc, lambda: path.exists() and path.stat().st_size > 50_000, "50 kB written")
    kill(proc, signal.SIGKILL)
    before = len(_ends(path, "gzip"))
    run_flow(to_file(path, count=1))
    frame = pd.read_csv(path)
    assert len(frame) == before * 20 + len(ROWS)
    assert frame["sensor"].tolist()[: before * 20] == [f"s{i}" for i in range(20)] * before
    assert frame["value"].notna().all()


def test_rotation_keeps_the_codec_suffix(tmp_path: Path) -> None:
    path = tmp_path / "out.csv.gz"
    run_flow(to_file(path, count=3, rotate_bytes=1, keep=2))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["out.csv.1.gz", "out.csv.2.gz", "out.csv.gz"]
    for name in names:  # each file has its own header
        assert pd.read_csv(tmp_path / name)[["sensor", "value"]].to_dict("records") == ROWS


def test_explicit_codec_without_suffix_and_truncation(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    path.write_text("old,stuff\n")
    run_flow(to_file(path, compression="zstd", append=False))
    assert path.read_bytes().startswith(b"\x28\xb5\x2f\xfd")
    frame = pd.read_csv(path, compression="zstd")
    assert frame[["sensor", "value"]].to_dict("records") == ROWS


def test_plain_file_is_untouched_by_auto(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    run_flow(to_file(path))
    assert path.read_text().startswith('{"timestamp"')


def test_a_corrupt_file_is_never_appended_to_and_the_message_says_how_to_recover(
    tmp_path: Path,
) -> None:
    """Garbage inside the file: the sink does not start (retrying, nothing cut or appended)
    until the file is fixed as the message says; then the waiting batch is written."""
    path = tmp_path / "out.csv.gz"
    run_flow(to_file(path))
    good = path.stat().st_size
    path.write_bytes(path.read_bytes() + b"this is not gzip" + compress(b"x\n", "gzip"))
    before = path.read_bytes()
    runtime = Runtime(check_text(to_file(path)))

    async def main() -> None:
        task = asyncio.create_task(runtime.run())
        stats = runtime.stats["out"]
        await until(lambda: "corrupt gzip data" in stats.last_error, task, what="the error")
        assert path.read_bytes() == before
        assert f"truncate -s {good} '{path}'" in stats.last_error
        os.truncate(path, good)  # what the message says
        report = await asyncio.wait_for(task, 30)
        assert report.drained

    asyncio.run(main())
    assert pd.read_csv(path)[["sensor", "value"]].to_dict("records") == ROWS * 2


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"path": "a.csv.gz", "compression": "zstd"}, "ends in .gz but compression is zstd"),
        ({"path": "a.csv.zst", "compression": "none"}, "ends in .zst but compression is none"),
        ({"path": "a.csv.gz", "compression_level": 12}, "level 12 is out of range for gzip"),
        ({"path": "a.csv", "compression": "brotli"}, "compression"),
    ],
)
def test_bad_config_names_the_field(config: dict[str, Any], message: str) -> None:
    checked = check_text({"out": {"type": "file", **config}})
    assert not checked.ok and message in messages(checked)


def test_missing_zstandard_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)
    checked = check_text({"out": {"type": "file", "path": "a.csv.zst"}})
    assert not checked.ok and "Install 'flowengine[zstd]'" in messages(checked)
    assert check_text({"out": {"type": "file", "path": "a.csv.gz"}}).ok  # gzip needs nothing
