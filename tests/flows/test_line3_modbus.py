"""flows/line3-modbus.yaml against `flowengine simulate --modbus` in another process, as a user
runs them: readings are checked and archived, and when the device dies the watchdog raises one
alert per silent sensor (and clears them when it is back)."""

from __future__ import annotations

import gzip
import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.cli import REPO
from tests.helpers.crash import cli_env, kill, start
from tests.helpers.peers import free_port, port_open, wait_until

pytest.importorskip("pymodbus")

SENSORS = {"furnace_temp", "roll_force", "cooling_water_flow", "strip_speed"}


def _simulator(port: int) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "flowengine.cli", "simulate", "--opcua", "off"]
    proc = subprocess.Popen(
        [*cmd, "--modbus", f"127.0.0.1:{port}", "--rate", "5"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: port_open(port) or proc.poll() is not None, 30, "the Modbus simulator")
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    return proc


def _events(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _archived_sensors(path: Path) -> set[str]:
    if not path.exists():
        return set()
    try:
        with gzip.open(path, "rt") as fh:
            return set(pd.read_csv(fh)["sensor"])
    except (EOFError, OSError, pd.errors.EmptyDataError):  # a member still being written
        return set()


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "flows").mkdir()
    shutil.copy(REPO / "flows" / "line3-modbus.yaml", tmp_path / "flows" / "line3-modbus.yaml")
    yield tmp_path


def test_device_loss_raises_one_alert_per_sensor_and_return_clears(folder: Path) -> None:
    port = free_port()
    env = cli_env() | {"LINE3_MODBUS": f"127.0.0.1:{port}", "LINE3_SILENCE": "2s"}
    out = folder / "out"
    device = _simulator(port)
    flow = start(folder / "flows" / "line3-modbus.yaml", env)
    try:
        wait_until(
            lambda: _archived_sensors(out / "line3-modbus-raw.csv.gz") == SENSORS, 60, "rows"
        )
        assert _events(out / "line3-modbus-silent.jsonl") == []  # all reporting: no alert
        assert _events(out / "line3-modbus-rejects.jsonl") == []  # the simulator is plausible

        kill(device, signal.SIGKILL)
        silent = out / "line3-modbus-silent.jsonl"
        wait_until(lambda: len(_events(silent)) >= len(SENSORS), 60, "the watchdog's alerts")
        raised = [e for e in _events(silent) if e["event"] == "raise"]
        assert {e["sensor"] for e in raised} == SENSORS and len(raised) == len(SENSORS)

        device = _simulator(port)  # back on the same port: the flow reconnects by itself
        wait_until(
            lambda: sum(e["event"] == "clear" for e in _events(silent)) == len(SENSORS),
            60,
            "the watchdog's clears",
        )
        assert flow.poll() is None  # the outage never stopped the flow
    finally:
        assert kill(flow, signal.SIGTERM) == 0, flow.stderr.read() if flow.stderr else ""
        kill(device, signal.SIGTERM)
