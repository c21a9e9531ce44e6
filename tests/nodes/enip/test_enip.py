"""EtherNet/IP against cpppo's Logix simulator, started by the tests (no protocol mocks).

cpppo serves Read/Write Tag [Fragmented] and Multiple Service packets but not the tag list
(Get Instance Attribute List), so these flows learn tag types by probing (``tag_list: auto``
falls back to it); see docs/connectors-enip.md for what that leaves untested.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flowengine.runtime import Runtime
from flowengine.testing import check_text, run_flow
from tests.helpers.peers import free_port, port_open, until, wait_until

pytest.importorskip("pycomm3", reason="pycomm3 (the enip extra) is not installed")
pytest.importorskip("cpppo", reason="cpppo (EtherNet/IP simulator, test extra) is not installed")

from flowengine.nodes.enip.client import EnipClient
from flowengine.nodes.enip.config import EnipConnection

CLI = [sys.executable, "-m", "flowengine.cli"]
SERVER = [sys.executable, "-m", "cpppo.server.enip", "--no-udp", "--no-config"]
SIMULATE = [*CLI, "simulate", "--opcua", "off", "--rate", "10", "--duration", "120"]
TAGS = [
    "Temps=REAL[10]",
    "Speed=REAL",
    "Count=DINT",
    "Small=SINT",
    "Flag=BOOL",
    "Line3.Temp=REAL",
    "Line3.Speed=REAL",
    "Big=REAL[300]",
    "Setpoint=DINT",
    "Target=REAL",
]


class Cpppo:
    """``python -m cpppo.server.enip`` on 127.0.0.1:port, as a separate process."""

    def __init__(self, port: int, log: Path) -> None:
        self.port, self.log = port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Cpppo:
        address = f"127.0.0.1:{self.port}"
        with self.log.open("ab") as log:  # not a pipe: a full pipe would stall the server
            self.proc = subprocess.Popen(
                [*SERVER, "--address", address, *TAGS],
                stdout=log,
                stderr=log,
            )
        proc = self.proc
        wait_until(lambda: port_open(self.port) or proc.poll() is not None, 30, "cpppo")
        assert proc.poll() is None, self.log.read_text()
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def write(self, *pairs: tuple[str, Any]) -> None:
        """Set tags through our own client (Write Tag), as another HMI would."""

        async def main() -> None:
            client = EnipClient(EnipConnection(host="127.0.0.1", port=self.port, tag_list="probe"))
            await client.connect()
            try:
                await client.write(list(pairs))
            finally:
                await client.close()

        asyncio.run(main())

    def read(self, *tags: str) -> list[Any]:
        async def main() -> list[Any]:
            cfg = EnipConnection(host="127.0.0.1", port=self.port, tags=list(tags))
            client = EnipClient(cfg)
            await client.connect()
            try:
                return [result.value for _, result in await client.read()]
            finally:
                await client.close()

        return asyncio.run(main())


@pytest.fixture(scope="module")
def plc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cpppo]:
    server = Cpppo(free_port(), tmp_path_factory.mktemp("cpppo") / "cpppo.log").start()
    yield server
    server.stop()


def source(port: int, tags: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "settings": {"retry": {"initial": 0.2, "max": 0.5}},
        "nodes": {
            "src": {
                "type": "enip_in",
                "host": "127.0.0.1",
                "port": port,
                "tags": tags,
                "poll_interval": 0.1,
                "timeout": 2.0,
                "wires": ["cap"],
                **extra,
            },
            "cap": {"type": "capture"},
        },
    }


def captured(runtime: Runtime) -> pd.DataFrame:
    frames = [b.frame for b in runtime.node("cap").batches]  # type: ignore[attr-defined]
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["sensor", "value"])
    )


def values(runtime: Runtime, sensor: str) -> list[Any]:
    frame = captured(runtime)
    return frame.loc[frame["sensor"] == sensor, "value"].tolist()


def run_until(flow: dict[str, Any], done: Callable[[Runtime], bool], what: str) -> Runtime:
    """Run ``flow`` until ``done(runtime)``, then stop it; the stopped runtime."""

    async def main() -> Runtime:
        runtime = Runtime(check_text(flow))
        task = asyncio.create_task(runtime.run())
        await until(lambda: done(runtime), task, what=what)
        runtime.stop()
        await task
        return runtime

    return asyncio.run(main())


def test_reads_scalars_arrays_members_and_bits(plc: Cpppo) -> None:
    plc.write(
        ("Temps{10}", [float(i) * 1.5 for i in range(10)]),
        ("Speed", 7.25),
        ("Count", 6),
        ("Line3.Temp", 1234.5),
    )
    tags = [
        "Temps{10}",
        {"tag": "Temps[2]{3}", "sensor": "zone"},
        {"tag": "Speed", "sensor": "speed", "scale": 2.0, "offset": 1.0},
        "Line3.Temp",
        "Count",
        "Count.1",
        "Flag",
    ]
    runtime = run_until(
        source(plc.port, tags), lambda r: len(r.node("cap").batches) >= 2, "2 polls"
    )
    frame = captured(runtime)
    first = frame.iloc[: 10 + 3 + 5]
    assert first["sensor"].tolist() == [f"Temps[{i}]" for i in range(10)] + [
        "zone[2]",
        "zone[3]",
        "zone[4]",
        "speed",
        "Line3.Temp",
        "Count",
        "Count.1",
        "Flag",
    ]
    by_sensor = first.set_index("sensor")
    assert by_sensor.loc["Temps[9]", "value"] == 13.5
    assert (
        by_sensor.loc["zone[3]", "value"] == 4.5 and by_sensor.loc["zone[3]", "tag"] == "Temps[3]"
    )
    assert by_sensor.loc["speed", "value"] == 15.5  # 7.25 * 2 + 1
    assert by_sensor.loc["Line3.Temp", "value"] == 1234.5
    assert by_sensor.loc["Count", "value"] == 6 and by_sensor.loc["Count", "data_type"] == "DINT"
    assert by_sensor.loc["Count.1", "value"] is True or by_sensor.loc["Count.1", "value"] == 1
    assert by_sensor.loc["Temps[0]", "data_type"] == "REAL"
    assert (first["quality"] == "good").all() and (first["status"] == "Success").all()
    assert (first["source"] == f"127.0.0.1:{plc.port}").all()
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert runtime.stats["src"].state in ("ok", "stopped")


def test_unknown_and_out_of_range_tags_are_bad_while_others_go_on(plc: Cpppo) -> None:
    plc.write(("Speed", 3.5))
    tags = ["Speed", "NoSuchTag", "Temps{11}", {"tag": "Line3.Missing", "sensor": "missing"}]
    runtime = run_until(source(plc.port, tags), lambda r: len(r.node("cap").batches) >= 3, "polls")
    frame = captured(runtime)
    assert values(runtime, "Speed")[:3] == [3.5, 3.5, 3.5]
    bad = frame[frame["quality"] == "bad"]
    assert set(bad["sensor"]) == {"NoSuchTag", "missing"} | {f"Temps[{i}]" for i in range(11)}
    unknown = bad.loc[bad["sensor"] == "NoSuchTag", "status"].iloc[0]
    assert "Destination unknown" in unknown  # the CIP general status 0x05 text
    beyond = bad.loc[bad["sensor"] == "Temps[10]", "status"].iloc[0]
    assert "General Error" in beyond and "(ff, 2105)" in beyond  # beyond the end of the tag
    member = bad.loc[bad["sensor"] == "missing", "status"].iloc[0]
    assert "Destination unknown" in member
    assert bad["value"].isna().all()
    assert runtime.stats["src"].counters.get("bad", 0) >= 3 * len(set(bad["sensor"]))
    assert runtime.stats["src"].retries == 0  # a bad tag is data, not a lost connection


def test_non_finite_values_are_bad(plc: Cpppo) -> None:
    plc.write(("Target", math.nan), ("Speed", math.inf))
    try:
        runtime = run_until(
            source(plc.port, ["Target", "Speed", "Count"]),
            lambda r: len(r.node("cap").batches) >= 1,
            "a poll",
        )
        frame = captured(runtime).iloc[:3].set_index("sensor")
        assert frame.loc["Target", "quality"] == "bad" and math.isnan(frame.loc["Target", "value"])
        assert frame.loc["Speed", "status"].startswith("value is not finite")
        assert frame.loc["Count", "quality"] == "good"
    finally:
        plc.write(("Target", 0.0), ("Speed", 0.0))


def test_big_array_is_read_in_fragments(plc: Cpppo) -> None:
    """cpppo answers at most 488 bytes per Read Tag; 300 REALs (1,200 bytes) need fragments."""
    plc.write(("Big{300}", [float(i) for i in range(300)]))
    runtime = run_until(
        source(plc.port, ["Big{300}", "Speed"]),
        lambda r: len(r.node("cap").batches) >= 2,
        "2 polls",
    )
    frame = captured(runtime)
    big = frame[frame["tag"].str.startswith("Big")].iloc[:300]
    assert big["value"].tolist() == [float(i) for i in range(300)]
    assert (frame["quality"] == "good").all()


def test_server_down_at_start_then_up(tmp_path: Path) -> None:
    port = free_port()
    server = Cpppo(port, tmp_path / "cpppo.log")
    flow = source(port, ["Speed"])

    async def main() -> None:
        runtime = Runtime(check_text(flow))
        task = asyncio.create_task(runtime.run())
        await until(lambda: runtime.stats["src"].retries >= 2, task, what="retries")
        stats = runtime.stats["src"]
        assert stats.state == "retrying"
        assert f"127.0.0.1:{port}" in str(stats.last_error)
        assert "refused" in str(stats.last_error).lower()
        await asyncio.to_thread(server.start)
        await until(lambda: len(values(runtime, "Speed")) >= 2, task, what="readings")
        assert runtime.stats["src"].state == "ok"
        runtime.stop()
        await task

    try:
        asyncio.run(main())
    finally:
        server.stop()


def test_restart_under_a_running_flow_reconnects(tmp_path: Path) -> None:
    port = free_port()
    first = Cpppo(port, tmp_path / "first.log").start()
    second = Cpppo(port, tmp_path / "second.log")
    first.write(("Speed", 11.0))

    async def main() -> None:
        runtime = Runtime(check_text(source(port, ["Speed", "Count"])))
        task = asyncio.create_task(runtime.run())
        await until(lambda: 11.0 in values(runtime, "Speed"), task, what="the first value")
        await asyncio.to_thread(first.stop)
        await until(lambda: runtime.stats["src"].state == "retrying", task, what="retrying")
        before = values(runtime, "Speed")
        await asyncio.to_thread(second.start)
        await asyncio.to_thread(second.write, ("Speed", 22.0))
        await until(lambda: 22.0 in values(runtime, "Speed"), task, what="the new server")
        runtime.stop()
        await task
        after = values(runtime, "Speed")
        assert after[: len(before)] == before  # nothing read before the restart is lost
        assert set(after) <= {11.0, 0.0, 22.0} and after[0] == 11.0 and after[-1] == 22.0
        assert runtime.stats["src"].retries >= 1

    try:
        asyncio.run(main())
    finally:
        first.stop()
        second.stop()


def test_sink_writes_with_type_checks_then_reads_back(plc: Cpppo) -> None:
    tags = [
        {"tag": "Setpoint", "sensor": "setpoint", "writable": True},
        {"tag": "Temps{10}", "writable": True},
        {"tag": "Target", "sensor": "target", "scale": 0.5, "writable": True},
        {"tag": "Small", "sensor": "small", "writable": True},
        {"tag": "Speed", "sensor": "speed"},  # readable only
    ]
    out = {"type": "enip_out", "host": "127.0.0.1", "port": plc.port, "tags": tags}

    def flow(rows: list[dict[str, Any]]) -> Any:
        return run_flow({"src": {"type": "inject", "rows": rows, "wires": ["out"]}, "out": out})

    good = [
        {"sensor": "setpoint", "value": 41.0},
        {"sensor": "Temps[4]", "value": 2.5},
        {"sensor": "target", "value": 12.5},
        {"sensor": "small", "value": "-7"},
    ]
    result = flow(good)
    assert result.stats("out")["errors"] == 0
    assert plc.read("Setpoint", "Temps[4]", "Target", "Small") == [41, 2.5, 25.0, -7]
    for rows, message in [
        ([{"sensor": "setpoint", "value": 2.5}], "not a whole number"),
        ([{"sensor": "small", "value": 300}], "out of range -128..127"),
        ([{"sensor": "target", "value": float("nan")}], "not a finite REAL"),
        ([{"sensor": "setpoint", "value": "abc"}], "not a number"),
        ([{"sensor": "speed", "value": 1.0}], "'speed' is not a writable tag"),
        ([{"sensor": "setpoint", "value": 5}, {"sensor": "small", "value": 999}], "Small (SINT)"),
    ]:
        result = flow(rows)
        stats = result.stats("out")
        assert stats["errors"] == 1, rows
        assert message in str(stats["last_error"]), (rows, stats["last_error"])
    assert plc.read("Setpoint", "Small", "Speed")[:2] == [41, -7]  # nothing half-written


def test_seed_connector_api(plc: Cpppo, caplog: pytest.LogCaptureFixture) -> None:
    from flowengine.connectors import EtherNetIPConnector

    plc.write(("Line3.Speed", 4.5))
    config = {"host": "127.0.0.1", "port": plc.port, "tags": ["Line3.Speed", "Temps{2}"]}
    connector = EtherNetIPConnector(config)
    data = None
    if connector.connect():
        assert connector.is_connection_active()
        data = connector.read_data()
        connector.disconnect()
    assert isinstance(data, pd.DataFrame)
    assert data["sensor"].tolist() == ["Line3.Speed", "Temps[0]", "Temps[1]"]
    assert data["value"].iloc[0] == 4.5 and (data["quality"] == "good").all()
    assert not connector.is_connection_active()

    port = free_port()
    down = EtherNetIPConnector({"host": "127.0.0.1", "port": port, "tags": ["Speed"]})
    assert down.connect() is False
    assert f"Failed to connect to EtherNet/IP device 127.0.0.1:{port}: " in caplog.text
    assert "refused" in caplog.text.lower()
    down.disconnect()


def test_browse_lists_identity_and_says_why_no_tags(plc: Cpppo) -> None:
    url = f"enip://127.0.0.1:{plc.port}"
    out = subprocess.run(
        [*CLI, "browse", url, "--json"], capture_output=True, text=True, timeout=60, check=True
    )
    import json

    rows = json.loads(out.stdout)
    assert rows[0]["depth"] == 1 and rows[0]["name"].startswith("1756-L61")
    by_name = {r["name"]: r for r in rows[1:]}
    assert by_name["vendor"]["value"] == "Rockwell Automation/Allen-Bradley"
    assert "does not serve the Logix tag list" in by_name["tags"]["value"]
    assert "Traceback" not in out.stderr
    text = subprocess.run([*CLI, "browse", url], capture_output=True, text=True, timeout=60)
    assert text.returncode == 0 and "1756-L61" in text.stdout and "not listed" in text.stdout

    port = free_port()
    down = subprocess.run(
        [*CLI, "browse", f"enip://127.0.0.1:{port}", "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode != 0
    assert "Failed to connect to EtherNet/IP device" in down.stderr
    assert f"127.0.0.1:{port}" in down.stderr and "Traceback" not in down.stderr
    bad = subprocess.run([*CLI, "browse", "enip://"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "enip://host" in bad.stderr and "Traceback" not in bad.stderr


def test_simulate_serves_the_line_as_enip_tags() -> None:
    port = free_port()
    sim = subprocess.Popen(
        [*SIMULATE, "--enip", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: port_open(port) or sim.poll() is not None, 30, "the simulator")
        assert sim.poll() is None, sim.stdout.read() if sim.stdout else ""
        tags = ["furnace_temp", "roll_force", {"tag": "cooling_water_flow", "sensor": "flow"}]
        runtime = run_until(
            source(port, tags),
            lambda r: len(set(values(r, "furnace_temp"))) >= 3,
            "changing furnace temperatures",
        )
    finally:
        sim.terminate()
        out = sim.communicate(timeout=10)[0].decode()
    assert f"serving 6 sensors as EtherNet/IP REAL tags at 127.0.0.1:{port}" in out
    frame = captured(runtime)
    assert set(frame["sensor"]) == {"furnace_temp", "roll_force", "flow"}
    assert (frame["quality"] == "good").all()
    temps = frame.loc[frame["sensor"] == "furnace_temp", "value"]
    assert temps.between(1000, 1400).all()
    assert (frame["data_type"] == "REAL").all()


def test_sink_reconnects_after_a_restart(tmp_path: Path) -> None:
    port = free_port()
    first = Cpppo(port, tmp_path / "first.log").start()
    second = Cpppo(port, tmp_path / "second.log")
    flow = {
        "src": {
            "type": "inject",
            "rows": [{"sensor": "setpoint", "value": 77}],
            "interval": 0.1,
            "wires": ["out"],
        },
        "out": {
            "type": "enip_out",
            "host": "127.0.0.1",
            "port": port,
            "timeout": 2.0,
            "tags": [{"tag": "Setpoint", "sensor": "setpoint", "writable": True}],
        },
    }

    async def main() -> None:
        runtime = Runtime(check_text(flow))
        task = asyncio.create_task(runtime.run())
        await until(lambda: runtime.stats["out"].counters.get("writes", 0) >= 2, task)
        await asyncio.to_thread(first.stop)
        await until(lambda: runtime.stats["out"].errors >= 1, task, what="a failed write")
        assert "127.0.0.1" in str(runtime.stats["out"].last_error)
        await asyncio.to_thread(second.start)
        writes = runtime.stats["out"].counters["writes"]
        await until(lambda: runtime.stats["out"].counters["writes"] > writes, task, what="writes")
        runtime.stop()
        await task
        assert await asyncio.to_thread(second.read, "Setpoint") == [77]  # the new PLC has it

    try:
        asyncio.run(main())
    finally:
        first.stop()
        second.stop()
