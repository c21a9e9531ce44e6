"""`flowengine simulate --s7` serves the plant as an S7 PLC (in another process, as users run
it); an `s7_in` flow reads it and `flowengine browse s7://...` lists it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from flowengine.testing import run_flow
from tests.helpers.peers import free_port, port_open, wait_until

pytest.importorskip("snap7", reason="python-snap7 (flowengine[s7]) is not installed")

CLI = [sys.executable, "-m", "flowengine.cli"]


@pytest.fixture(scope="module")
def plant() -> Iterator[int]:
    port = free_port()
    args = ["--opcua", "off", "--s7", f"127.0.0.1:{port}", "--rate", "10", "--duration", "120"]
    proc = subprocess.Popen(
        [*CLI, "simulate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: port_open(port) or proc.poll() is not None, 30, "the S7 simulator")
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        yield port
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert "serving 6 sensors as an S7 PLC" in out and "DB1.DBD0 furnace_temp" in out, out


def test_s7_in_flow_reads_the_simulated_line(plant: int) -> None:
    tags = [
        {"address": "DB1.DBD0", "sensor": "furnace_temp"},
        {"address": "DB1.DBD4", "sensor": "roll_force"},
        {"address": "DB1,REAL8", "sensor": "cooling_water_flow"},
    ]
    nodes = {
        "plc": {
            "type": "s7_in",
            "host": "127.0.0.1",
            "port": plant,
            "tags": tags,
            "poll_interval": 0.1,
            "wires": ["cap"],
        },
        "cap": {"type": "capture"},
    }
    frame = run_flow(nodes, duration=1.5).frame("cap")
    assert set(frame["sensor"]) == {"furnace_temp", "roll_force", "cooling_water_flow"}
    assert (frame["quality"] == "good").all()
    temps = frame.loc[frame["sensor"] == "furnace_temp", "value"]
    assert ((temps > 1000) & (temps < 1400)).all() and temps.nunique() > 1
    assert frame["timestamp"].is_monotonic_increasing


def test_browse_lists_cpu_and_data_blocks(plant: int) -> None:
    url = f"s7://127.0.0.1:{plant}?rack=0&slot=1"
    out = subprocess.run(
        [*CLI, "browse", url, "--json"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    rows = json.loads(out)
    cpu = rows[0]
    assert cpu["depth"] == 1 and cpu["address"] == "CPU" and cpu["value"] == "RUN"
    blocks = {row["name"]: row for row in rows if row["data_type"] == "DB" and row["depth"] == 2}
    assert blocks["DB1"]["size"] == 6 * 4 and blocks["DB2"]["size"] == 64
    assert any(row["name"] == "pdu size" and row["value"] == 480 for row in rows)
    text = subprocess.run(
        [*CLI, "browse", url, "--depth", "1"], capture_output=True, text=True, timeout=60
    ).stdout
    assert "[CPU]  CPU = 'RUN'" in text and "data blocks  [DB]  DB = 2" in text


def test_browse_unreachable_and_bad_urls() -> None:
    port = free_port()
    out = subprocess.run(
        [*CLI, "browse", f"s7://127.0.0.1:{port}", "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and "Failed to connect to S7 PLC" in out.stderr
    assert "Traceback" not in out.stderr
    bad = subprocess.run(
        [*CLI, "browse", f"s7://127.0.0.1:{port}?slot=99"], capture_output=True, text=True
    )
    assert bad.returncode != 0 and "is not an S7 URL" in bad.stderr and "slot" in bad.stderr
