"""Durability: what checkpoints and ingest journals cost, and whether kill -9 loses anything.

Everything is measured in one run, side by side, and reported as ratios:

1. Rows/s through ``source -> null`` in memory and with ``settings: {checkpoint: 1s}`` (the
   source journals every batch before sending it) with ``journal_sync: full`` and ``normal``, at
   batch sizes 1, 100 and 1000 of long-format rows (timestamp, sensor, value, quality, source);
   plus the raw ``Journal.append`` rate of the same batches, for reference.
2. ``flows/line3-history.yaml`` (hours of simulated plant history as fast as possible) as
   shipped and with checkpoints every second: wall time, rows/s, and what the checkpoints cost.
3. The kill -9 loop: a subprocess flow (a counter source -> the built-in ``file`` sink,
   checkpoints every 100 ms) killed with SIGKILL after a random number of rows reached the file,
   then restarted to completion; rows lost and duplicated.

Runs of one case group are interleaved and each figure is the best of ``--repeat``.
Run ``python benchmarks/durability.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from flowengine.checkpoint import CheckpointStore
from flowengine.journal import Journal, Sync
from flowengine.node import Done, NodeConfig, Sink, Source, option
from flowengine.runtime import Runtime
from flowengine.testing import check_text
from flowengine.types import Batch

REPO = Path(__file__).resolve().parent.parent
HISTORY_FLOW = REPO / "flows" / "line3-history.yaml"
BATCH_SIZES = (1, 100, 1000)
#: Batches per run at each batch size (about 1-2 s with a journal on this machine).
BATCHES = {1: 2_000, 100: 1_500, 1000: 1_000}
SYNCS: tuple[Sync, ...] = ("full", "normal")
SENSORS = ("furnace_temp", "roll_force", "cooling_water_flow", "strip_speed", "strip_thickness")
#: Targets of the issue.
TARGET_JOURNAL_ROWS = 200_000
TARGET_CHECKPOINT_COST = 0.10
#: The kill -9 loop's source: numbered rows, a short pause per batch (about 2 s per run).
KILL_BATCHES, KILL_ROWS = 400, 50
KILL_SOURCE = {"batches": KILL_BATCHES, "rows": KILL_ROWS, "pause": 0.003}
KILL_TOTAL = KILL_BATCHES * KILL_ROWS


# ---- 1. throughput with and without journals ------------------------------------------------
def long_frame(rows: int) -> pd.DataFrame:
    """``rows`` readings in the long format, as a source would read them."""
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2026-01-01", periods=rows, freq="100ms", tz="UTC"),
            "sensor": [SENSORS[i % len(SENSORS)] for i in range(rows)],
            "value": [1200.0 + (i % 97) * 0.25 for i in range(rows)],
            "quality": "good",
            "source": "plc",
        }
    )


class RowsConfig(NodeConfig):
    batch_size: int = option(1, description="Rows per batch.")
    batches: int = option(1, description="Batches, then end.")


class Rows(Source[RowsConfig]):
    """The same long-format batch ``batches`` times: a source that costs next to nothing, so
    what is measured is the journal and the runtime. Its count is its state, like a real
    source's cursor."""

    state_attrs = ("n",)

    async def start(self) -> None:
        self.n = 0
        self.frame = long_frame(self.config.batch_size)

    async def read(self) -> pd.DataFrame:
        if self.n >= self.config.batches:
            raise Done
        self.n += 1
        return self.frame


class NullSink(Sink[NodeConfig]):
    """Keeps nothing."""

    def write(self, batch: Batch) -> None:
        pass


TYPES: dict[str, Any] = {"rows": Rows, "null": NullSink}


@dataclass
class Timing:
    """Wall times of the repeats of one case, and the rows it moved."""

    times: list[float] = field(default_factory=list)
    rows: int = 0
    checkpoints: int = 0

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def rate(self) -> float:
        return self.rows / self.best


#: Builds a fresh runtime (untimed) for one timed run.
Prepare = Callable[[], Runtime]


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table, numbers right-aligned."""
    lines = [header, ["---:"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def settings(sync: Sync | None, state_dir: Path) -> dict[str, Any]:
    """The ``settings:`` of a run: none in memory, else checkpoints every second."""
    if sync is None:
        return {}
    return {"checkpoint": "1s", "journal_sync": sync, "state_dir": str(state_dir)}


def runtime_case(doc: dict[str, Any], path: Path, types: dict[str, Any] | None) -> Prepare:
    """A fresh runtime per run, its state folder (if any) emptied first."""

    def prepare() -> Runtime:
        state = doc.get("settings", {}).get("state_dir")
        if state:
            shutil.rmtree(state, ignore_errors=True)
        return Runtime(check_text(doc, types=types, path=path))

    return prepare


def time_cases(cases: dict[str, Prepare], repeat: int, counted: str) -> dict[str, Timing]:
    """Run every case ``repeat`` times, interleaved; rows are those node ``counted`` sent."""
    timings = {name: Timing() for name in cases}
    for _ in range(repeat):
        for name, prepare in cases.items():
            runtime = prepare()
            gc.collect()
            began = time.perf_counter()
            report = asyncio.run(runtime.run())
            timings[name].times.append(time.perf_counter() - began)
            if not report.drained or report.errors:
                raise RuntimeError(f"'{name}' did not run cleanly: {report}")
            timings[name].rows = runtime.stats[counted].rows_out
            state = runtime.settings.state_dir
            saved = CheckpointStore(Path(state)).load() if state else None
            timings[name].checkpoints = saved.id if saved else 0
    return timings


def throughput(batch_size: int, batches: int, repeat: int, tmp: Path) -> dict[str, Timing]:
    """``rows -> null`` in memory and journaled with each sync mode."""
    source = {"type": "rows", "batch_size": batch_size, "batches": batches, "wires": ["sink"]}
    cases: dict[str, Prepare] = {}
    for sync in (None, *SYNCS):
        doc = {
            "version": 1,
            "settings": settings(sync, tmp / f"state-{sync}"),
            "nodes": {"src": source, "sink": {"type": "null"}},
        }
        cases[sync or "memory"] = runtime_case(doc, tmp / "bench.yaml", TYPES)
    # store-and-forward: no checkpoints, the sink's inbox drains to a disk buffer (sync full)
    doc = {
        "version": 1,
        "settings": {"state_dir": str(tmp / "state-buffer")},
        "nodes": {"src": source, "sink": {"type": "null", "buffer": {"sync": "full"}}},
    }
    cases["buffer"] = runtime_case(doc, tmp / "bench.yaml", TYPES)
    return time_cases(cases, repeat, "src")


def append_rate(batch_size: int, batches: int, sync: Sync, tmp: Path) -> float:
    """Seconds per ``Journal.append`` of one batch (encoding included), one commit each."""
    path = tmp / f"append-{sync}-{batch_size}.db"
    journal = Journal(path, sync=sync)
    frame = long_frame(batch_size)
    began = time.perf_counter()
    for _ in range(batches):
        journal.append([(frame, {"port": "out"})])
    elapsed = time.perf_counter() - began
    journal.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return elapsed / batches


def throughput_tables(scale: float, repeat: int, tmp: Path) -> list[str]:
    """Part 1: flow rows/s with and without journals, then the raw append rate."""
    flow, raw, full_1000 = [], [], 0.0
    for size in BATCH_SIZES:
        print(f"throughput, batch size {size} ...", file=sys.stderr, flush=True)
        batches = max(50, int(BATCHES[size] * scale))
        t = throughput(size, batches, repeat, tmp)
        mem = t["memory"]
        cells = [f"{size:,}", f"{batches:,}", f"{mem.rate:,.0f}"]
        for sync in SYNCS:
            added = (t[sync].best - mem.best) / batches * 1e3
            cells += [f"{t[sync].rate:,.0f}", f"{t[sync].rate / mem.rate:.2%}", f"{added:.2f}"]
            each = min(append_rate(size, batches, sync, tmp) for _ in range(repeat))
            raw.append([f"{size:,}", sync, f"{1 / each:,.0f}", f"{size / each:,.0f}"])
            raw[-1].append(f"{each * 1e3:.2f}")
        buffered = (t["buffer"].best - mem.best) / batches * 1e3
        cells += [f"{t['buffer'].rate:,.0f}", f"{t['buffer'].rate / mem.rate:.2%}"]
        cells.append(f"{buffered:.2f}")
        flow.append(cells)
        full_1000 = t["full"].rate if size == 1000 else full_1000
    verdict = "met" if full_1000 >= TARGET_JOURNAL_ROWS else "NOT met"
    journaled = [
        c
        for sync in SYNCS
        for c in (f"checkpoints, sync {sync} rows/s", "of in memory", "+ ms/batch")
    ]
    buffered = ["store-and-forward, sync full rows/s", "of in memory", "+ ms/batch"]
    return [
        table(["batch size", "batches", "in memory rows/s", *journaled, *buffered], flow),
        table(["batch size", "sync", "appends/s", "rows/s", "ms per append"], raw),
        f"- Batch size 1,000 through a journal with `sync: full`: {full_1000:,.0f} rows/s vs. "
        f"{TARGET_JOURNAL_ROWS:,}: target {verdict}.",
    ]


# ---- 2. checkpoint cost on the line 3 history -----------------------------------------------
def history_doc(hours: float, state_dir: Path | None, sync: Sync = "full") -> dict[str, Any]:
    """flows/line3-history.yaml for ``hours`` of plant time, with checkpoints every second
    (journals synced per ``sync``) when ``state_dir`` is given."""
    doc: dict[str, Any] = yaml.safe_load(HISTORY_FLOW.read_text(encoding="utf-8"))
    doc["nodes"]["plc"]["duration"] = hours * 3600
    if state_dir is not None:
        doc["settings"] = {**doc.get("settings", {}), **settings(sync, state_dir)}
    return doc


def history_table(spans: list[float], repeat: int, tmp: Path) -> list[str]:
    """Part 2: the history flow as shipped and with checkpoints every second, per span."""
    # a copy in tmp/flows/ so that its relative output path (../out/) lands in tmp/out/
    path = tmp / "flows" / HISTORY_FLOW.name
    path.parent.mkdir(parents=True, exist_ok=True)
    rows, worst = [], 0.0
    for hours in spans:
        print(f"line3-history, {hours:g} h ...", file=sys.stderr, flush=True)
        cases = {"plain": runtime_case(history_doc(hours, None), path, None)}
        for sync in SYNCS:
            cases[sync] = runtime_case(history_doc(hours, tmp / f"h-{sync}", sync), path, None)
        t = time_cases(cases, repeat, "plc")
        plain = t["plain"]
        cells = [f"{hours:g} h", f"{plain.rows:,}", f"{plain.best:.2f}", f"{plain.rate:,.0f}"]
        for sync in SYNCS:
            cost = 1 - t[sync].rate / plain.rate
            cells += [f"{t[sync].best:.2f}", f"{t[sync].rate:,.0f}", f"{cost:.0%}"]
        rows.append([*cells, str(t["full"].checkpoints)])
        worst = max(worst, 1 - t["full"].rate / plain.rate)
    verdict = "met" if worst <= TARGET_CHECKPOINT_COST else "NOT met"
    journaled = [c for sync in SYNCS for c in (f"checkpoint 1s, sync {sync} s", "rows/s", "cost")]
    header = ["simulated span", "rows", "as shipped s", "rows/s", *journaled, "checkpoints"]
    return [
        table(header, rows),
        f"- Checkpoints every second (`sync: full`) cost at most {worst:.0%} of throughput vs. "
        f"{TARGET_CHECKPOINT_COST:.0%}: target {verdict}.",
    ]


# ---- 3. kill -9 and restart -----------------------------------------------------------------
PLUGIN = '''"""Numbered rows for benchmarks/durability.py's kill -9 loop."""
from flowengine.testing import Counter  # noqa: F401  (the entry point names it)
'''


def install_counter(root: Path) -> dict[str, str]:
    """Write the ``counter`` node pack (package + dist-info with its entry point) to ``root``;
    the environment under which a subprocess finds it."""
    (root / "fe_durability").mkdir(parents=True)
    (root / "fe_durability" / "__init__.py").write_text(PLUGIN)
    info = root / "fe_durability-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fe-durability\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[flowengine.nodes]\ncounter = fe_durability:Counter\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    return env


def crash_flow(folder: Path) -> Path:
    """The flow of one kill -9 trial, with its own state folder and output file."""
    doc = {
        "version": 1,
        "settings": {"checkpoint": "100ms", "state_dir": str(folder / "state")},
        "nodes": {
            "src": {"type": "counter", "wires": ["out"], **KILL_SOURCE},
            "out": {"type": "file", "path": str(folder / "out.jsonl"), "format": "jsonl"},
        },
    }
    path = folder / "crash.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def start(flow: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "flowengine.cli", "run", str(flow), "--no-live"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def written(path: Path) -> int:
    """Complete lines in the sink's file."""
    return path.read_bytes().count(b"\n") if path.exists() else 0


def kill_after(proc: subprocess.Popen[bytes], out: Path, rows: int) -> int | None:
    """SIGKILL ``proc`` once ``rows`` rows are in ``out`` (waiting on the file, not the clock);
    the rows in the file after the kill, or None when the flow ended first."""
    deadline = time.monotonic() + 120
    while written(out) < rows:
        if proc.poll() is not None:
            return None
        if time.monotonic() > deadline:
            raise RuntimeError("the crash flow made no progress")
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return written(out)


@dataclass
class Trial:
    """One kill -9 and restart: the rows in the file at the kill and at the end."""

    before: int
    rows: int
    lost: int
    duplicated: int
    torn: int
    restart_s: float


def trial(folder: Path, env: dict[str, str], at: int) -> Trial | None:
    """Run, kill -9 after ``at`` rows, restart to completion; None when it ended before.
    A line of the file that does not parse is a torn write."""
    folder.mkdir(parents=True)
    flow, out = crash_flow(folder), folder / "out.jsonl"
    before = kill_after(start(flow, env), out, at)
    if before is None:
        return None
    began = time.perf_counter()
    if start(flow, env).wait(timeout=300) != 0:
        raise RuntimeError(f"the restarted flow failed; run {flow} to see why")
    restart_s = time.perf_counter() - began
    seqs, torn = [], 0
    for line in out.read_text().splitlines():
        try:
            seqs.append(int(json.loads(line)["seq"]))
        except (ValueError, KeyError, TypeError):
            torn += 1
    lost = len(set(range(KILL_TOTAL)) - set(seqs))
    return Trial(before, len(seqs), lost, len(seqs) - (KILL_TOTAL - lost), torn, restart_s)


def kill_table(kills: int, seed: int, tmp: Path) -> list[str]:
    """Part 3: ``kills`` trials of kill -9 at a random row, restart, count."""
    env = install_counter(tmp / "plugin")
    rng = random.Random(seed)
    rows, done = [], []
    for i in range(1, kills + 1):
        at = rng.randint(KILL_ROWS, KILL_TOTAL * 9 // 10)
        print(f"kill -9 trial {i}/{kills} at {at:,} rows ...", file=sys.stderr, flush=True)
        t = trial(tmp / f"trial-{i}", env, at)
        if t is None:
            rows.append([str(i), f"{at:,}", "ended before the kill", "", "", "", "", ""])
            continue
        done.append(t)
        counts = (t.before, t.rows, t.lost, t.duplicated, t.torn)
        rows.append([str(i), f"{at:,}", *(f"{n:,}" for n in counts), f"{t.restart_s:.1f}"])
    lost, dup = sum(t.lost for t in done), sum(t.duplicated for t in done)
    header = ["trial", "kill -9 after rows", "rows in file at kill", "rows in file at end"]
    header += ["lost", "duplicated", "torn lines", "restart to end s"]
    return [
        table(header, rows),
        f"- {len(done)} runs killed with SIGKILL and restarted to the end, {KILL_TOTAL:,} rows "
        f"each: {lost:,} lost, {dup:,} duplicated ({dup / max(1, KILL_TOTAL * len(done)):.1%} of "
        "the rows: at-least-once delivery replays what came after the last checkpoint).",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the work, one repeat")
    parser.add_argument("--repeat", type=int, help="runs per figure, best kept (default 3)")
    parser.add_argument("--kills", type=int, help="kill -9 trials (default 5, --quick 2)")
    parser.add_argument(
        "--hours", type=float, nargs="+", help="simulated spans of line3-history (default 4 12)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill points")
    args = parser.parse_args(argv)
    scale = 0.25 if args.quick else 1.0
    repeat = args.repeat or (1 if args.quick else 3)
    kills = args.kills if args.kills is not None else (2 if args.quick else 5)
    spans = args.hours or ([4.0] if args.quick else [4.0, 12.0])

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fe-durability-") as name:
        tmp = Path(name)
        parts = throughput_tables(scale, repeat, tmp)
        parts += history_table(spans, repeat, tmp)
        parts += kill_table(kills, args.seed, tmp) if kills else []
    print(
        f"flowengine durability: Python {platform.python_version()}, pandas {pd.__version__}, "
        f"{os.cpu_count()} cores, best of {repeat}, {time.perf_counter() - began:.0f} s in all\n"
    )
    print("\n\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
