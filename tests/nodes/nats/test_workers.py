"""``flowengine run --worker I/N`` on a partitioned JetStream stream, with real processes.

A simulated plant (16 lines, one reading per line and second, 240 s) goes through ``nats_out``
partitioned by ``line`` into 8 partitions. The analytics flow is ``nats_in -> window (10 s per
line) -> alert (per line) -> sql_out`` (one SQLite file per partition). A single-process run
of it is the reference; then two worker processes split the partitions, one is killed with
SIGKILL and started again elsewhere (a fresh folder: its state comes from the KV bucket), the
NATS server itself is restarted under producer and workers, and a worker with another N is
refused. Outputs are compared per line: the same windows and alerts as the reference.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flowengine.checkpoint import StoreUnavailable, open_backend
from flowengine.node import Done, NodeConfig, Source, option
from flowengine.nodes.nats.partition import partition_of
from flowengine.nodes.nats.workers import NatsPartitioning
from flowengine.testing import run_flow
from flowengine.worker import WorkerRefused
from tests.helpers.crash import cli_env, rows
from tests.helpers.nats import PrivateServer, drop_stream, sync
from tests.helpers.peers import free_port, wait_until

LINES = [f"L{i:02d}" for i in range(16)]  # two lines in each of 8 partitions
TICKS, LATENESS, SIZE = 240, 60, 10
T0 = pd.Timestamp("2026-03-02T00:00:00Z")
#: Windows closed per line: those ending by the last reading's time minus the lateness.
PER_LINE = (TICKS - 1 - LATENESS) // SIZE
Row = tuple[Any, ...]


class PlantConfig(NodeConfig):
    ticks: int = option(TICKS, description="Seconds of readings.")
    pause: float = option(0.0, description="Wall seconds between ticks.")


class Plant(Source[PlantConfig]):
    """One reading per line and simulated second: a slow wave with a fixed ripple, so some
    windows run over 90 (alerts raise) and back under 75 (they clear)."""

    state_attrs = ("k",)

    async def start(self) -> None:
        self.k = 0

    async def read(self) -> pd.DataFrame:
        if self.k >= self.config.ticks:
            raise Done
        if self.config.pause:
            await asyncio.sleep(self.config.pause)
        k, self.k = self.k, self.k + 1
        return pd.DataFrame(
            {
                "timestamp": [T0 + pd.Timedelta(seconds=k)] * len(LINES),
                "line": LINES,
                "sensor": "temp",
                "value": [
                    60 + 35 * math.sin(2 * math.pi * (k + 7 * i) / 50) + (k * 13 + i * 7) % 11 - 5
                    for i in range(len(LINES))
                ],
            }
        )


def produce(url: str, stream: str, subject: str, pause: float = 0.0) -> None:
    nodes = {
        "plc": {"type": "plant", "pause": pause, "wires": ["bus"]},
        "bus": {
            "type": "nats_out",
            "servers": url,
            "stream": stream,
            "subject": subject,
            "partition_by": "line",
            "partitions": 8,
        },
    }
    flow = {"version": 1, "settings": {"retry": {"initial": 0.1, "max": 0.5}}, "nodes": nodes}
    run_flow(flow, types={"plant": Plant}, timeout=180)


ANALYTICS = """
version: 1
name: {name}
settings: {{checkpoint: 300ms, retry: {{initial: 0.2, max: 1}}}}
nodes:
  bus:
    type: nats_in
    servers: {url}
    stream: {stream}
    subject: {subject}
    durable: {durable}
    state_bucket: {bucket}
    fetch_batch: 5
    fetch_timeout: 0.2
    wires: [win]
  win:
    type: window
    size: {size}s
    key: line
    aggregations: [count, mean, max]
    lateness: {lateness}s
    wires: [windows, hot]
  hot:
    type: alert
    column: value_max
    raise_at: 90
    clear_at: 75
    key: [line]
    wires: [alerts]
  windows:
    type: sql_out
    connection_string: "sqlite:///windows-${{FLOWENGINE_PARTITION:-all}}.db"
    table: windows
  alerts:
    type: sql_out
    connection_string: "sqlite:///alerts-${{FLOWENGINE_PARTITION:-all}}.db"
    table: alerts
"""


@dataclass
class Setup:
    """One stream and what the analytics flow needs to read it."""

    url: str
    stream: str
    subject: str
    name: str = field(default_factory=lambda: f"fe_test_{uuid.uuid4().hex[:8]}")

    @property
    def bucket(self) -> str:
        return f"{self.name}_state"

    def flow(self, folder: Path, durable: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "analytics.yaml"
        path.write_text(
            ANALYTICS.format(
                name=self.name,
                url=self.url,
                stream=self.stream,
                subject=self.subject,
                durable=durable,
                bucket=self.bucket,
                size=SIZE,
                lateness=LATENESS,
            )
        )
        return path

    def clean(self) -> None:
        for bucket in (self.bucket, f"flowengine_workers_{self.name}"):
            drop_stream(f"KV_{bucket}", self.url)


RUNNING: list[subprocess.Popen[str]] = []


def start(flow: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``flowengine run FLOW ARGS`` in FLOW's folder, its log in a file beside it."""
    log = (flow.parent / "run.log").open("a")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowengine.cli", "run", str(flow), "--no-live", *args],
        env=env or cli_env(),
        cwd=flow.parent,
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
    )
    RUNNING.append(proc)
    return proc


@pytest.fixture(autouse=True)
def no_worker_left() -> Iterator[None]:
    """Workers a failed test left running are killed."""
    yield
    while RUNNING:
        proc = RUNNING.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def log_of(folder: Path) -> str:
    return (folder / "run.log").read_text()


def table(folders: list[Path], name: str) -> list[Row]:
    """Every row of table ``name`` in the partition databases under ``folders``."""
    found: list[Row] = []
    for folder in folders:
        for db in sorted(folder.glob(f"{name}-*.db")):
            try:
                found += rows(db, name, digits=6)
            except Exception:  # created, table not yet: nothing written
                continue
    return found


def lines_of(found: list[Row], column: int = 2) -> set[str]:
    return {r[column] for r in found}


def stop(*procs: subprocess.Popen[str]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        assert proc.wait(90) == 0, "a worker did not stop cleanly"


def until_windows(
    folders: list[Path], procs: list[subprocess.Popen[str]], count: int, timeout: float = 180
) -> None:
    """Wait until the distinct windows under ``folders`` number ``count``."""

    def done() -> bool:
        for proc in procs:
            assert proc.poll() is None, f"a worker ended: {proc.returncode}"
        return len(set(table(folders, "windows"))) >= count

    wait_until(done, timeout, f"{count} windows")


@dataclass
class Reference:
    windows: list[Row]
    alerts: list[Row]


@pytest.fixture(scope="module")
def plant(
    nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Setup, Reference]]:
    """The plant's readings in a stream, and the single-process run of the analytics flow."""
    tag = uuid.uuid4().hex[:10]
    setup = Setup(nats_url, f"FE_TEST_{tag}", f"fe.test.{tag}")
    assert {partition_of(line, 8) for line in LINES} == set(range(8))
    produce(nats_url, setup.stream, setup.subject)
    folder = tmp_path_factory.mktemp("reference")
    proc = start(setup.flow(folder, "reference"))
    RUNNING.remove(proc)  # the module's, not a test's
    try:
        until_windows([folder], [proc], PER_LINE * len(LINES))
        stop(proc)
        ref = Reference(table([folder], "windows"), table([folder], "alerts"))
        yield setup, ref
    finally:
        if proc.poll() is None:
            proc.kill()
        drop_stream(setup.stream, nats_url)
        setup.clean()


def check_against(ref: Reference, windows: list[Row], alerts: list[Row]) -> tuple[int, int]:
    """Per line the same windows and alerts as the reference (repeats allowed); the repeats."""
    assert len(ref.windows) == PER_LINE * len(LINES) == len(set(ref.windows))
    assert {"raise", "clear"} <= {a[1] for a in ref.alerts}  # the flow does raise and clear
    for line in LINES:
        assert {w for w in windows if w[2] == line} == {w for w in ref.windows if w[2] == line}
        assert {a for a in alerts if a[2] == line} == {a for a in ref.alerts if a[2] == line}
    readings = sum(w[3] for w in set(windows))
    assert readings == PER_LINE * SIZE * len(LINES)  # every reading in a closed window counted
    return len(windows) - len(set(windows)), len(alerts) - len(set(alerts))


def test_two_workers_split_8_partitions_like_one_process(
    plant: tuple[Setup, Reference], tmp_path: Path
) -> None:
    base, ref = plant
    setup = Setup(base.url, base.stream, base.subject)
    port = free_port()
    w0, w1 = tmp_path / "w0", tmp_path / "w1"
    try:
        p0 = start(setup.flow(w0, "split"), "--worker", "0/2", "--metrics-port", str(port))
        env = {**cli_env(), "FLOWENGINE_WORKER": "1/2"}  # the other one says it so
        p1 = start(setup.flow(w1, "split"), env=env)
        until_windows([w0, w1], [p0, p1], PER_LINE * len(LINES))
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        stop(p0, p1)
        mine = [table([w], "windows") for w in (w0, w1)]
        for index, found in enumerate(mine):  # each line in exactly one worker: its own
            assert {partition_of(line, 8) % 2 for line in lines_of(found)} == {index}
        assert not lines_of(mine[0]) & lines_of(mine[1])
        assert lines_of(mine[0]) | lines_of(mine[1]) == set(LINES)
        windows, alerts = mine[0] + mine[1], table([w0, w1], "alerts")
        assert check_against(ref, windows, alerts) == (0, 0)  # nothing twice either
        lags = [m for m in metrics.splitlines() if m.startswith("flowengine_partition_lag{")]
        owned = [
            f'flowengine_partition_lag{{node="bus@p{p}",partition="{p}"}}' for p in (0, 2, 4, 6)
        ]
        assert sorted(m.rpartition(" ")[0] for m in lags) == owned  # its partitions, and only
        assert "worker 0/2 owns partitions [0, 2, 4, 6] of 8" in log_of(w0)
        assert "worker 1/2 owns partitions [1, 3, 5, 7] of 8" in log_of(w1)

        async def keys(js: Any) -> list[str]:
            return sorted(await (await js.key_value(setup.bucket)).keys())

        assert sync(keys, setup.url) == [f"{setup.name}.p{p}" for p in range(8)]
    finally:
        setup.clean()


def test_a_worker_killed_mid_stream_is_taken_over_with_nothing_lost(
    plant: tuple[Setup, Reference], tmp_path: Path
) -> None:
    """kill -9 of worker 0, started again in another folder (another host: no local state):
    its partitions go on from the checkpoints in the KV bucket. Every window of every line
    is there, the same as the reference; some twice (after the last checkpoint)."""
    base, ref = plant
    setup = Setup(base.url, base.stream, base.subject)
    w0, w1, again = tmp_path / "w0", tmp_path / "w1", tmp_path / "elsewhere"
    try:
        p0 = start(setup.flow(w0, "kill"), "--worker", "0/2")
        p1 = start(setup.flow(w1, "kill"), "--worker", "1/2")
        until_windows([w0], [p0, p1], PER_LINE * len(LINES) // 6)
        p0.kill()
        p0.wait(30)
        at_kill = len(table([w0], "windows"))
        p2 = start(setup.flow(again, "kill"), "--worker", "0/2")
        until_windows([w0, w1, again], [p1, p2], PER_LINE * len(LINES))
        stop(p1, p2)
        windows = table([w0, w1, again], "windows")
        alerts = table([w0, w1, again], "alerts")
        repeated = check_against(ref, windows, alerts)
        print(f"killed at {at_kill} windows of worker 0; repeated windows, alerts: {repeated}")
        assert repeated[0] <= at_kill
        restored = log_of(again).count("state restored")
        assert restored >= 4 * 3  # bus, win, hot of its 4 partitions (sinks keep no state)
        assert not list(again.rglob("checkpoint"))  # the state lives in the KV bucket only
    finally:
        setup.clean()


def test_the_nats_server_restarted_mid_stream_both_sides_resume(
    plant: tuple[Setup, Reference], private: Callable[[str], PrivateServer], tmp_path: Path
) -> None:
    _, ref = plant
    server = private("")
    tag = uuid.uuid4().hex[:10]
    setup = Setup(server.url, f"FE_TEST_{tag}", f"fe.test.{tag}")
    produced = threading.Event()

    def producer() -> None:
        produce(server.url, setup.stream, setup.subject, pause=0.02)
        produced.set()

    run_flow(  # the stream exists before the workers look for it
        {
            "plc": {"type": "plant", "ticks": 0, "wires": ["bus"]},
            "bus": {
                "type": "nats_out",
                "servers": server.url,
                "stream": setup.stream,
                "subject": setup.subject,
                "partition_by": "line",
                "partitions": 8,
            },
        },
        types={"plant": Plant},
    )
    threading.Thread(target=producer, daemon=True).start()
    w0, w1 = tmp_path / "w0", tmp_path / "w1"
    p0 = start(setup.flow(w0, "restart"), "--worker", "0/2")
    p1 = start(setup.flow(w1, "restart"), "--worker", "1/2")
    until_windows([w0, w1], [p0, p1], PER_LINE * len(LINES) // 4)
    server.restart()
    until_windows([w0, w1], [p0, p1], PER_LINE * len(LINES))
    wait_until(produced.is_set, 120, "the producer to finish")
    stop(p0, p1)
    windows, alerts = table([w0, w1], "windows"), table([w0, w1], "alerts")
    print(f"repeated windows, alerts: {check_against(ref, windows, alerts)}")
    assert "lost" in log_of(w0) + log_of(w1)  # they did see the server go


def test_a_worker_with_another_n_than_its_peers_is_refused(
    plant: tuple[Setup, Reference], tmp_path: Path
) -> None:
    base, _ = plant
    setup = Setup(base.url, base.stream, base.subject)
    flow = setup.flow(tmp_path, "refused")
    peer = NatsPartitioning(_nats_in(setup))

    async def hold() -> None:  # a live worker 0 of 2 (this process)
        await peer.open()
        await peer.join(setup.name, 0, 2)
        await peer.close()

    try:
        asyncio.run(hold())
        done = subprocess.run(
            [sys.executable, "-m", "flowengine.cli", "run", str(flow), "--worker", "1/3"],
            env=cli_env(),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1
        assert (
            f"worker 1/3 refused: workers of flow {setup.name} with another worker count are "
            f"running: 0/2 on {os.uname().nodename} (pid {os.getpid()}). All workers of a flow "
            "run with the same N"
        ) in done.stderr
        too_many = subprocess.run(
            [sys.executable, "-m", "flowengine.cli", "run", str(flow), "--worker", "0/9"],
            env=cli_env(),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert too_many.returncode == 1
        assert "9 workers for 8 partitions would leave some workers with none" in too_many.stderr
        assert "Traceback" not in done.stderr + too_many.stderr
    finally:
        setup.clean()


def _nats_in(setup: Setup) -> Any:
    from flowengine.nodes.nats.source import NatsInConfig

    return NatsInConfig(
        servers=setup.url,
        stream=setup.stream,
        subject=setup.subject,
        durable="refused",
        state_bucket=setup.bucket,
    )


def test_the_kv_store_keeps_checkpoints_whole_and_big_ones_in_parts(nats_url: str) -> None:
    """The ``nats-kv`` checkpoint store: a small checkpoint in one value, one larger than the
    server's max_payload in parts (alternating sets, so the saved one is never overwritten
    mid-write); a server that is not there is ``StoreUnavailable``, not an empty state."""
    bucket = f"fe_test_{uuid.uuid4().hex[:8]}"
    address = nats_url.split("://")[1]
    store = open_backend(f"nats-kv://{address}/{bucket}", "flow.p0")
    try:
        assert store.read() is None
        big = os.urandom(3 << 20)  # does not compress: four parts of 768 KiB
        for data in (b"small", big, big[::-1], b"small again", big):
            store.write(data)
            assert store.read() == data
        again = open_backend(f"nats-kv://{address}/{bucket}", "flow.p0")  # another host
        assert again.read() == big
        again.close()
    finally:
        store.close()
        drop_stream(f"KV_{bucket}", nats_url)
    away = open_backend(f"nats-kv://127.0.0.1:{free_port()}/{bucket}", "flow.p0")
    with pytest.raises(StoreUnavailable, match="connection refused"):
        away.read()
    away.close()


def test_a_held_worker_index_waits_for_its_holder_and_a_lost_lease_stops_it(
    plant: tuple[Setup, Reference],
) -> None:
    """Worker 0 of 2 started twice: the second waits while the first holds the index, takes
    it when the first leaves; the first's next heartbeat then finds it taken: refused."""
    base, _ = plant
    setup = Setup(base.url, base.stream, base.subject)
    first, second = NatsPartitioning(_nats_in(setup)), NatsPartitioning(_nats_in(setup))

    async def main() -> str:
        await first.join(setup.name, 0, 2)
        waiting = asyncio.create_task(second.join(setup.name, 0, 2))
        async with asyncio.timeout(10):
            while second._waiting_for is None:  # it found the index held, and said so
                await asyncio.sleep(0.05)
        assert not waiting.done() and second._waiting_for["pid"] == os.getpid()
        await first.beat()
        await first.leave()
        await asyncio.wait_for(waiting, 10)
        await second.beat()
        with pytest.raises(WorkerRefused) as lost:
            await first.beat()
        for side in (first, second):
            await side.close()
        return str(lost.value)

    try:
        assert asyncio.run(main()) == "worker 0 lost its registration to another process"
    finally:
        setup.clean()
