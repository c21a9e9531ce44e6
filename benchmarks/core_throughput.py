"""Core throughput: the simulator at full speed through 5 transforms into a null sink.

For batch sizes 1, 100, 1000 and 10000 this measures, in one process:

* ``simulate -> null``: the source and one wire (the 0-hop reference);
* ``simulate -> 5 x passthrough -> null``: like Node-RED's 5 pass-through function nodes;
* ``simulate -> filter -> compute -> select -> rename -> compute -> null``: an analytic chain of
  built-in nodes;
* 0 and 5 hops of plain ``asyncio.Queue(maxsize=8)`` stages passing real simulator frames.

Per-hop overhead is ``(t(5 hops) - t(0 hops)) / 5 / batches``: what one wire plus one node task
costs per batch, with the simulator's own cost taken out. Runs of one batch size are interleaved
and each figure is the best of ``--repeat``; ``±`` is the spread of the repeats, so a per-hop
figure smaller than its ``±`` is noise. ``--nodered`` runs Node-RED's analytic chain first
(``nodered_inproc.py``) for the verdict. Run ``python benchmarks/core_throughput.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import math
import platform
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import pandas as pd
from nodered_inproc import node_red_chain

from flowengine import loops
from flowengine.node import NodeConfig, Sink, Transform
from flowengine.runtime import Runtime
from flowengine.testing import check_text, run_flow
from flowengine.types import Batch, Result

HOPS = 5
#: Sensors of the simulated line; one tick is one reading of each.
SENSORS = 6
BATCH_SIZES = (1, 100, 1000, 10000)
#: Batches per run of the pass-through chains and the asyncio baseline (about 1-3 s each).
BATCHES = {1: 30_000, 100: 25_000, 1000: 8_000, 10000: 1_500}
#: Batches per run of the analytic chain, whose built-in nodes cost more per batch.
ANALYTIC_BATCHES = {1: 12_000, 100: 6_000, 1000: 1_500, 10000: 200}
#: Node-RED 5.0.7 on this machine kind: 5 pass-through function nodes (msg/s, us per hop) and
#: its 4-node analytic chain at a window of 1,000 in flight (msg/s; ``--nodered`` measures it).
NODE_RED_5_HOPS = (7_500, 8_700)
NODE_RED_HOP_US = (16, 22)
NODE_RED_ANALYTIC = 24_900
#: Issue 12's targets: runtime overhead per hop per batch, readings/s through 5 hops at 1,000.
TARGET_HOP_US = 5.0
TARGET_BATCH_1000 = 10_000_000

#: Five built-in transforms that keep every row, so readings in equal readings out.
ANALYTIC_CHAIN: list[dict[str, Any]] = [
    {"type": "filter", "query": "quality == 'good'"},
    {"type": "compute", "columns": {"value_f": "value * 9 / 5 + 32"}},
    {"type": "select", "columns": ["timestamp", "sensor", "value", "value_f"]},
    {"type": "rename", "columns": {"value": "value_c"}},
    {"type": "compute", "columns": {"deviation": "value_c - 1200.0"}},
]


class Passthrough(Transform):
    """Returns the batch unchanged, like a Node-RED function node doing ``return msg;``."""

    def process(self, batch: Batch) -> Result:
        return batch


class NullSink(Sink):
    """Counts what arrives and keeps nothing (``len(batch)``: a batch of columns builds no
    frame here, as it builds none in the built-in nodes; see flowengine/columns.py)."""

    def __init__(self, config: NodeConfig, ctx: Any) -> None:
        super().__init__(config, ctx)
        self.batches = 0
        self.rows = 0

    def write(self, batch: Batch) -> None:
        self.batches += 1
        self.rows += len(batch)


TYPES: dict[str, Any] = {"passthrough": Passthrough, "null": NullSink}


# ---- flows ----------------------------------------------------------------------------------
def whole_ticks(batches: int, batch_size: int) -> int:
    """``batches`` rounded up so that they hold a whole number of ticks of every sensor."""
    step = SENSORS // math.gcd(SENSORS, batch_size)
    return -(-batches // step) * step


def source_node(batch_size: int, batches: int) -> dict[str, Any]:
    """The simulator, unthrottled, ending after ``batches`` batches of ``batch_size`` readings."""
    return {
        "type": "simulate",
        "realtime": False,
        "sensors": SENSORS,
        "batch_size": batch_size,
        "count": batches * batch_size // SENSORS,
        "seed": 1,
    }


def chain_flow(stages: list[dict[str, Any]], batch_size: int, batches: int) -> dict[str, Any]:
    """``src -> stages... -> sink`` as a flow's nodes."""
    ids = [f"t{i + 1}" for i in range(len(stages))] + ["sink"]
    nodes: dict[str, Any] = {"src": {**source_node(batch_size, batches), "wires": [ids[0]]}}
    for node_id, stage, nxt in zip(ids, stages, ids[1:], strict=False):
        nodes[node_id] = {**stage, "wires": [nxt]}
    nodes["sink"] = {"type": "null"}
    return nodes


def sample_frames(batch_size: int) -> list[pd.DataFrame]:
    """A few real simulator batches, for the asyncio baseline."""
    result = run_flow(
        {"src": {**source_node(batch_size, 12), "wires": ["cap"]}, "cap": {"type": "capture"}},
        types=TYPES,
    )
    return [b.frame for b in result.batches("cap")]


# ---- cases ----------------------------------------------------------------------------------
#: Builds what one timed run needs (untimed) and returns the coroutine to time; the coroutine
#: returns the readings that reached the end.
Prepare = Callable[[], Callable[[], Coroutine[Any, Any, int]]]


def flow_case(nodes: dict[str, Any]) -> Prepare:
    """A fresh runtime per run; checking and building are not timed."""

    def prepare() -> Callable[[], Coroutine[Any, Any, int]]:
        runtime = Runtime(check_text(nodes, types=TYPES))

        async def run() -> int:
            report = await runtime.run()
            if not report.drained or report.errors:
                raise RuntimeError(f"benchmark flow did not run cleanly: {report}")
            return runtime.stats["sink"].rows_in

        return run

    return prepare


async def queue_chain(frames: list[pd.DataFrame], batches: int, hops: int) -> int:
    """Producer -> ``hops`` relay tasks -> consumer, over ``asyncio.Queue(maxsize=8)``."""
    queues: list[asyncio.Queue[pd.DataFrame | None]] = [
        asyncio.Queue(maxsize=8) for _ in range(hops + 1)
    ]

    async def produce() -> None:
        for frame in itertools.islice(itertools.cycle(frames), batches):
            await queues[0].put(frame)
        await queues[0].put(None)

    async def relay(inbox: asyncio.Queue[Any], outbox: asyncio.Queue[Any]) -> None:
        while (item := await inbox.get()) is not None:
            await outbox.put(item)
        await outbox.put(None)

    async def consume() -> int:
        rows = 0
        while (item := await queues[-1].get()) is not None:
            rows += len(item)
        return rows

    async with asyncio.TaskGroup() as group:
        group.create_task(produce())
        for inbox, outbox in itertools.pairwise(queues):
            group.create_task(relay(inbox, outbox))
        consumer = group.create_task(consume())
    return consumer.result()


def queue_case(frames: list[pd.DataFrame], batches: int, hops: int) -> Prepare:
    return lambda: lambda: queue_chain(frames, batches, hops)


@dataclass
class Timing:
    """Wall times of the repeats of one case."""

    times: list[float]
    rows: int

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def spread(self) -> float:
        """Slowest minus fastest repeat: the noise of this machine during this case."""
        return max(self.times) - self.best


def time_cases(cases: dict[str, Prepare], repeat: int) -> dict[str, Timing]:
    """Run every case ``repeat`` times, interleaved, each in a fresh event loop (uvloop when
    installed, as ``flowengine run`` does; ``FLOWENGINE_LOOP=asyncio`` for asyncio's)."""

    async def timed(run: Callable[[], Coroutine[Any, Any, int]]) -> tuple[float, int]:
        began = time.perf_counter()
        rows = await run()
        return time.perf_counter() - began, rows

    timings = {name: Timing([], 0) for name in cases}
    for _ in range(repeat):
        for name, prepare in cases.items():
            run = prepare()
            gc.collect()
            elapsed, rows = loops.run(timed(run))  # the loop `flowengine run` uses
            timings[name].times.append(elapsed)
            timings[name].rows = rows
    return timings


# ---- the benchmark --------------------------------------------------------------------------
@dataclass
class Row:
    """The figures of one batch size."""

    batch_size: int
    batches: int
    analytic_batches: int
    t: dict[str, Timing]

    def rate(self, case: str) -> float:
        batches = self.analytic_batches if case.startswith("analytic") else self.batches
        return batches * self.batch_size / self.t[case].best

    def per_stage_us(self, base: str, chain: str, stages: int = HOPS) -> tuple[float, float]:
        """Microseconds per batch per stage, and the noise of that figure."""
        batches = self.analytic_batches if chain.startswith("analytic") else self.batches
        scale = 1e6 / stages / batches
        a, b = self.t[base], self.t[chain]
        return (b.best - a.best) * scale, (a.spread + b.spread) * scale

    def as_dict(self) -> dict[str, Any]:
        hop, hop_noise = self.per_stage_us("direct", "chain")
        queue, queue_noise = self.per_stage_us("queue 0", "queue 5")
        node, node_noise = self.per_stage_us("analytic 0", "analytic", len(ANALYTIC_CHAIN))
        return {
            "batch_size": self.batch_size,
            "batches": self.batches,
            "analytic_batches": self.analytic_batches,
            "readings_per_s": {name: self.rate(name) for name in self.t},
            "hop_us": hop,
            "hop_us_noise": hop_noise,
            "queue_hop_us": queue,
            "queue_hop_us_noise": queue_noise,
            "analytic_node_us": node,
            "analytic_node_us_noise": node_noise,
            "times_s": {name: t.times for name, t in self.t.items()},
        }


def measure(batch_size: int, scale: float, repeat: int) -> Row:
    batches = whole_ticks(max(30, int(BATCHES[batch_size] * scale)), batch_size)
    analytic = whole_ticks(max(12, int(ANALYTIC_BATCHES[batch_size] * scale)), batch_size)
    frames = sample_frames(batch_size)
    cases = {
        "direct": flow_case(chain_flow([], batch_size, batches)),
        "chain": flow_case(chain_flow([{"type": "passthrough"}] * HOPS, batch_size, batches)),
        "queue 0": queue_case(frames, batches, 0),
        "queue 5": queue_case(frames, batches, HOPS),
        "analytic 0": flow_case(chain_flow([], batch_size, analytic)),
        "analytic": flow_case(chain_flow(ANALYTIC_CHAIN, batch_size, analytic)),
    }
    timings = time_cases(cases, repeat)
    for name, timing in timings.items():
        expect = (analytic if name.startswith("analytic") else batches) * batch_size
        if timing.rows != expect:
            raise RuntimeError(f"'{name}' delivered {timing.rows} readings, expected {expect}")
    return Row(batch_size, batches, analytic, timings)


def _us(value: float, noise: float, repeat: int) -> str:
    return f"{value:,.1f} ± {noise:,.1f}" if repeat > 1 else f"{value:,.1f}"


def table(rows: list[Row], repeat: int) -> str:
    lines = [
        "| batch size | batches | simulate -> null readings/s "
        "| + 5 pass-through readings/s | us per hop per batch | asyncio.Queue us per hop "
        "| + analytic chain readings/s | analytic us per node per batch |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        hop = _us(*r.per_stage_us("direct", "chain"), repeat)
        queue = _us(*r.per_stage_us("queue 0", "queue 5"), repeat)
        node = _us(*r.per_stage_us("analytic 0", "analytic", len(ANALYTIC_CHAIN)), repeat)
        lines.append(
            f"| {r.batch_size:,} | {r.batches:,} | {r.rate('direct'):,.0f} "
            f"| {r.rate('chain'):,.0f} | {hop} | {queue} | {r.rate('analytic'):,.0f} | {node} |"
        )
    return "\n".join(lines)


def verdicts(rows: list[Row], node_red: float | None) -> list[str]:
    by_size, out = {r.batch_size: r for r in rows}, []
    met = {True: "met", False: "NOT met"}
    if 1 in by_size:
        r = by_size[1]
        rate, (hop, _) = r.rate("chain"), r.per_stage_us("direct", "chain")
        out.append(
            f"- Batch size 1, 5 hops: {rate:,.0f} msg/s (Node-RED {NODE_RED_5_HOPS[0]:,}-"
            f"{NODE_RED_5_HOPS[1]:,}); {hop:.1f} us per hop (target <= {TARGET_HOP_US:.0f}: "
            f"{met[hop <= TARGET_HOP_US]}; Node-RED {NODE_RED_HOP_US[0]}-{NODE_RED_HOP_US[1]} us)."
            f" The simulator alone delivers {r.rate('direct'):,.0f} msg/s."
        )
        analytic, (node, _) = r.rate("analytic"), r.per_stage_us("analytic 0", "analytic", 5)
        theirs = node_red or NODE_RED_ANALYTIC
        where = "measured in this run" if node_red else "the issue's figure"
        out.append(
            f"- Batch size 1, analytic chain: {analytic:,.0f} msg/s ({node:.1f} us per node) vs. "
            f"Node-RED's chain {theirs:,.0f} msg/s ({where}): {analytic / theirs:.2f}x, "
            f"target {met[analytic >= theirs]}."
        )
    if 1000 in by_size:
        rate = by_size[1000].rate("chain")
        out.append(
            f"- Batch size 1000, 5 hops: {rate:,.0f} readings/s vs. {TARGET_BATCH_1000:,}: "
            f"target {met[rate >= TARGET_BATCH_1000]}; analytic chain "
            f"{by_size[1000].rate('analytic'):,.0f} readings/s."
        )
    return out


def profile(batches: int, chain: str) -> None:
    """Profile a batch-size-1 chain (pyinstrument if installed, else cProfile)."""
    stages = ANALYTIC_CHAIN if chain == "analytic" else [{"type": "passthrough"}] * HOPS
    run = flow_case(chain_flow(stages, 1, whole_ticks(batches, 1)))()
    try:
        from pyinstrument import Profiler
    except ImportError:
        import cProfile
        import pstats

        with cProfile.Profile() as prof:
            asyncio.run(run())
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return
    profiler = Profiler(interval=0.0005)
    with profiler:
        asyncio.run(run())
    print(profiler.output_text(color=False))


def loop_name() -> str:
    """The event loop the cases run on."""
    return "uvloop" if loops.loop_factory() is not None else "asyncio's event loop"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the work, one repeat")
    parser.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    parser.add_argument("--repeat", type=int, help="runs per figure, best kept (default 3)")
    parser.add_argument("--sizes", type=int, nargs="+", choices=BATCH_SIZES, default=BATCH_SIZES)
    parser.add_argument(
        "--profile", nargs="?", const="passthrough", choices=["passthrough", "analytic"]
    )
    parser.add_argument("--nodered", action="store_true", help="run Node-RED's chain first")
    args = parser.parse_args(argv)
    scale = 0.2 if args.quick else 1.0
    repeat = args.repeat or (1 if args.quick else 3)
    if args.profile:
        profile(int(BATCHES[1] * scale), args.profile)
        return 0

    node_red = node_red_chain() if args.nodered else None
    began = time.perf_counter()
    rows = []
    for size in args.sizes:
        print(f"batch size {size} ...", file=sys.stderr, flush=True)
        rows.append(measure(size, scale, repeat))
    total = time.perf_counter() - began
    if args.json:
        doc = {
            "python": platform.python_version(),
            "pandas": pd.__version__,
            "repeat": repeat,
            "hops": HOPS,
            "sensors": SENSORS,
            "seconds": total,
            "rows": [r.as_dict() for r in rows],
            "node_red_analytic_msg_s": node_red,
        }
        print(json.dumps(doc, indent=2))
        return 0
    print(
        f"flowengine core throughput: Python {platform.python_version()}, pandas "
        f"{pd.__version__}, {loop_name()}, best of {repeat}, {total:.0f} s in all\n\n"
        f"{table(rows, repeat)}\n"
    )
    print("\n".join(verdicts(rows, node_red)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
