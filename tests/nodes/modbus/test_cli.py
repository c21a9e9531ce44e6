"""`flowengine simulate --modbus` serves the plant, a modbus_in flow reads it and `flowengine
browse modbus://...` lists it (the server runs in another process, as users run it)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pandas as pd
import pytest

from tests.helpers.peers import free_port, port_open, wait_until

pytest.importorskip("pymodbus")

from tests.nodes.modbus.device import frames, run_until, values

CLI = [sys.executable, "-m", "flowengine.cli"]
SIMULATE = [*CLI, "simulate", "--opcua", "off", "--rate", "10", "--duration", "120"]


@pytest.fixture(scope="module")
def plant() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [*SIMULATE, "--modbus", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: port_open(port) or proc.poll() is not None, 30, "the Modbus plant")
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_modbus_in_flow_reads_the_simulated_line(plant: int) -> None:
    fields = [
        {"name": "furnace_temp", "address": 0, "type": "float32"},
        {"name": "roll_force", "register": "input", "address": 2, "type": "float32"},
        {
            "name": "flow64",
            "register": "input",
            "address": 1008,
            "type": "float64",
            "sensor": "cooling_water_flow",
        },
        {"name": "tick", "register": "input", "address": 3000, "type": "uint32"},
        {"name": "stamp_ms", "register": "input", "address": 3002, "type": "uint64"},
        {"name": "line", "address": 600, "type": "string", "length": 8},
        {"name": "running", "register": "discrete", "address": 0},
    ]
    nodes = {
        "src": {
            "type": "modbus_in",
            "url": f"modbus://127.0.0.1:{plant}",
            "interval": 0.2,
            "devices": [{"device_id": 1, "name": "line3", "fields": fields}],
            "wires": ["cap"],
        },
        "cap": {"type": "capture"},
    }
    runtime = run_until(nodes, lambda r: len(set(values(r, "tick"))) >= 3)  # three ticks seen
    frame = pd.concat(frames(runtime), ignore_index=True)
    assert (frame["quality"] == "good").all()
    temps = frame.loc[frame["sensor"] == "furnace_temp", "value"]
    assert ((temps > 1000) & (temps < 1400)).all()
    assert frame.loc[frame["sensor"] == "roll_force", "value"].between(5, 40).all()
    assert frame.loc[frame["sensor"] == "cooling_water_flow", "value"].between(500, 2000).all()
    ticks = frame.loc[frame["sensor"] == "tick", "value"].tolist()
    assert ticks == sorted(ticks) and ticks[-1] > ticks[0]
    assert set(frame.loc[frame["sensor"] == "line", "value"]) == {"flowengine line3"}
    assert set(frame.loc[frame["sensor"] == "running", "value"]) == {True}
    stamps = frame.loc[frame["sensor"] == "stamp_ms", "value"].astype("int64")
    now_ms = frame["timestamp"].iloc[-1].timestamp() * 1000
    assert (abs(stamps - now_ms) < 60_000).all()


def test_browse_lists_units_ranges_and_values(plant: int) -> None:
    out = subprocess.run(
        [*CLI, "browse", f"modbus://127.0.0.1:{plant}?unit=1", "--json", "--depth", "3"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    rows = json.loads(out)
    names = {row["name"] for row in rows if row["depth"] <= 2}
    assert {"unit 1", "holding 0..11", "input 0..11", "coil 0..15", "discrete 0..15"} <= names
    temp = next(r for r in rows if r["address"] == "1/holding/0")
    assert temp["data_type"] == "uint16" and 1000 < temp["float32"] < 1400
    assert next(r for r in rows if r["address"] == "1/discrete/0")["value"] is True
    text = subprocess.run(
        [*CLI, "browse", f"modbus://127.0.0.1:{plant}?start=590&end=620", "--depth", "2"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert (
        "unit 1  [127.0.0.1:" in text
        and "  holding 600..607  [1/holding/600..607]  8 registers" in text
    )


def test_browse_an_unreachable_device_says_so() -> None:
    done = subprocess.run(
        [*CLI, "browse", f"modbus://127.0.0.1:{free_port()}", "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "Failed to connect to Modbus device" in done.stderr and "127.0.0.1:" in done.stderr


def test_simulate_on_a_taken_port_is_a_clear_error(plant: int) -> None:
    done = subprocess.run(
        [*CLI, "simulate", "--opcua", "off", "--modbus", f"127.0.0.1:{plant}", "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"cannot serve modbus at 127.0.0.1:{plant}" in done.stderr
