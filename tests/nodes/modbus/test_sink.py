"""modbus_out against pymodbus's own TCP server: conversions, refusals, reconnecting."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pandas as pd
import pytest

from flowengine.node import Done, NodeConfig, Source
from flowengine.testing import run_flow
from tests.helpers.peers import free_port

pytest.importorskip("pymodbus")

from tests.nodes.modbus.device import (
    WIDTH,
    ModbusDevice,
    first_rows,
    run_until,
    source,
    wire_value,
)


def test_sink_writes_every_type_and_the_source_reads_it_back(device: ModbusDevice) -> None:
    fields, rows, address = [], [], 300  # unit 1's island 300..309 and then 0..199
    writes = [("int16", "DCBA", -2), ("uint32", "CDAB", 4_000_000_000), ("float32", "BADC", 9.5)]
    for dtype, order, value in writes:
        fields.append(
            {
                "name": f"w_{dtype}",
                "address": address,
                "type": dtype,
                "byte_order": order,
                "writable": True,
            }
        )
        rows.append({"sensor": f"w_{dtype}", "value": value})
        address += WIDTH[dtype]
    fields += [
        {"name": "w_setpoint", "address": 100, "type": "int16", "scale": 0.1, "writable": True},
        {"name": "w_label", "address": 110, "type": "string", "length": 3, "writable": True},
        {"name": "w_coil", "register": "coil", "address": 9, "writable": True},
        {"name": "w_big", "address": 120, "type": "uint64", "byte_order": "DCBA", "writable": True},
    ]
    rows += [
        {"sensor": "w_setpoint", "value": 1234.5},  # 12345 raw
        {"sensor": "w_label", "value": "ok"},
        {"sensor": "w_coil", "value": "on"},
        {"sensor": "w_big", "value": str(2**64 - 1)},
    ]
    conn = {"url": f"modbus://127.0.0.1:{device.port}", "devices": [{"fields": fields}]}
    result = run_flow(
        {
            "src": {"type": "inject", "rows": rows, "wires": ["out"]},
            "out": {"type": "modbus_out", **conn},
        }
    )
    assert result.stats("out")["errors"] == 0
    assert result.stats("out")["counters"]["writes"] == len(rows)
    for dtype, order, value in writes:
        at = fields[[f["name"] for f in fields].index(f"w_{dtype}")]["address"]
        assert wire_value(device.get("holding", at, WIDTH[dtype]), dtype, order) == value
    assert device.get("holding", 100, 1) == [12345]
    assert device.get("holding", 110, 3) == [ord("o") << 8 | ord("k"), 0, 0]
    assert device.get("coil", 9, 1) == [True]
    assert device.get("holding", 120, 4) == [0xFFFF] * 4
    read, _ = first_rows(
        {"src": source(device.port, [{"fields": fields}]), "cap": {"type": "capture"}}
    )
    got = dict(zip(read["sensor"], read["value"], strict=True))
    assert got["w_uint32"] == 4_000_000_000 and got["w_float32"] == 9.5
    assert got["w_setpoint"] == pytest.approx(1234.5) and got["w_label"] == "ok"
    assert got["w_coil"] is True and got["w_big"] == 2**64 - 1


def test_sink_refuses_rows_it_cannot_write_and_writes_the_rest(device: ModbusDevice) -> None:
    device.set("holding", 150, [0])
    fields = [
        {"name": "limit", "address": 150, "type": "int16", "writable": True},
        {"name": "measured", "address": 151, "type": "int16"},
        {"name": "beyond", "address": 260, "type": "int16", "writable": True},  # unmapped
        {"name": "pump", "register": "coil", "address": 12, "writable": True},
    ]
    rows = [
        {"sensor": "limit", "value": 70000},
        {"sensor": "measured", "value": 1},
        {"sensor": "nobody", "value": 1},
        {"sensor": "beyond", "value": 1},
        {"sensor": "pump", "value": "maybe"},
        {"sensor": "limit", "value": -300},
    ]
    flow = {
        "src": {"type": "inject", "rows": rows, "wires": ["out"]},
        "out": {
            "type": "modbus_out",
            "host": "127.0.0.1",
            "port": device.port,
            "devices": [{"fields": fields}],
            "wires": {"error": ["bad"]},
        },
        "bad": {"type": "capture"},
    }
    result = run_flow(flow)
    bad = result.frame("bad")
    assert bad["sensor"].tolist() == ["limit", "measured", "nobody", "beyond", "pump"]
    reasons = bad["error"].tolist()
    assert reasons[0] == "limit: 70000 does not fit int16 (-32768..32767)"
    assert "field 'measured' is not writable" in reasons[1]
    assert "no field 'nobody'" in reasons[2]
    assert "illegal data address (exception 2)" in reasons[3]
    assert "'maybe' is not a bool" in reasons[4]
    assert bad["exception_code"].tolist() == [0, 0, 0, 2, 0]
    assert result.stats("out")["errors"] == 5 and result.stats("out")["counters"]["writes"] == 1
    assert wire_value(device.get("holding", 150, 1), "int16", "ABCD") == -300


class ObjectRows(Source[NodeConfig]):
    """One batch whose value column holds Python objects (None, NaN, text) as they are."""

    frame: pd.DataFrame

    async def read(self) -> pd.DataFrame:
        if self.frame.empty:
            raise Done
        frame, self.frame = self.frame, self.frame.iloc[:0]
        return frame


def test_a_missing_value_goes_to_error_never_written_as_text(device: ModbusDevice) -> None:
    """None/NaN (a row whose value was never read) must not reach a string field as the text
    'None'/'nan', nor a number field as anything: each such row to `error`, the rest written."""
    device.set("holding", 160, [0x4142, 0, 0, 7])  # "AB" and a setpoint of 7 already there
    fields = [
        {"name": "label", "address": 160, "type": "string", "length": 3, "writable": True},
        {"name": "sp", "address": 163, "type": "uint16", "writable": True},
    ]
    values = pd.Series([None, math.nan, None, math.nan, "ok"], dtype=object)
    ObjectRows.frame = pd.DataFrame({"sensor": ["label", "label", "sp", "sp", "label"]})
    ObjectRows.frame["value"] = values
    flow = {
        "src": {"type": "rows", "wires": ["out"]},
        "out": {
            "type": "modbus_out",
            "host": "127.0.0.1",
            "port": device.port,
            "devices": [{"fields": fields}],
            "wires": {"error": ["bad"]},
        },
        "bad": {"type": "capture"},
    }
    result = run_flow(flow, types={"rows": ObjectRows})
    bad = result.frame("bad")
    assert bad["sensor"].tolist() == ["label", "label", "sp", "sp"]
    assert bad["error"].tolist()[:2] == ["label: None is missing", "label: nan is missing"]
    assert all(reason.endswith(" is missing") for reason in bad["error"])
    assert result.stats("out")["counters"]["writes"] == 1
    assert device.get("holding", 160, 4) == [ord("o") << 8 | ord("k"), 0, 0, 7]


class SlowWrites(ModbusDevice):
    """A device (unit 1) that answers writes to holding registers from ``slow_holding`` on only
    after ``delay`` seconds, with the connection up: a slow unit behind a gateway."""

    slow_holding = 10

    async def _action(self, fc: int, start: int, address: int, *rest: Any) -> None:
        if fc in (6, 16) and address >= self.slow_holding:
            await asyncio.sleep(self.delay)
        await super()._action(fc, start, address, *rest)


def test_a_write_that_times_out_fails_its_row_only() -> None:
    """Rows before the unanswered write are written and not reported; rows after it are tried."""
    device = SlowWrites(free_port(), delay=60.0).start()
    try:
        fields = [
            {"name": n, "address": a, "writable": True}
            for n, a in (("a", 0), ("slow", 10), ("c", 5), ("d", 6))
        ]
        rows = [{"sensor": n, "value": v} for n, v in (("a", 1), ("slow", 2), ("c", 3), ("d", 4))]
        flow = {
            "src": {"type": "inject", "rows": rows, "wires": ["out"]},
            "out": {
                "type": "modbus_out",
                "host": "127.0.0.1",
                "port": device.port,
                "timeout": 1.0,  # the other writes answer at once; this one never
                "retries": 0,
                "devices": [{"fields": fields}],
                "wires": {"error": ["bad"]},
            },
            "bad": {"type": "capture"},
        }
        result = run_flow(flow)
        bad = result.frame("bad")
        assert bad["sensor"].tolist() == ["slow"]
        assert bad["error"].tolist() == ["slow: timeout"]
        assert bad["exception_code"].tolist() == [0]
        assert result.stats("out")["counters"]["writes"] == 3
        assert device.get("holding", 0, 1) == [1] and device.get("holding", 5, 2) == [3, 4]
    finally:
        device.close()


def test_two_devices_with_one_sensor_name_need_the_device_column(device: ModbusDevice) -> None:
    field = {"name": "sp", "address": 40, "type": "uint16", "writable": True}
    conn = {
        "host": "127.0.0.1",
        "port": device.port,
        "devices": [{"device_id": 1, "fields": [field]}, {"device_id": 2, "fields": [field]}],
    }
    rows = [
        {"sensor": "sp", "value": 11, "device_id": 1},
        {"sensor": "sp", "value": 22, "device_id": 2},
    ]
    result = run_flow(
        {
            "src": {"type": "inject", "rows": rows, "wires": ["out"]},
            "out": {"type": "modbus_out", **conn},
        }
    )
    assert result.stats("out")["errors"] == 0
    assert device.get("holding", 40, 1, device_id=1) == [11]
    assert device.get("holding", 40, 1, device_id=2) == [22]
    ambiguous = {
        "src": {"type": "inject", "rows": [{"sensor": "sp", "value": 1}], "wires": ["out"]},
        "out": {"type": "modbus_out", **conn, "wires": {"error": ["bad"]}},
        "bad": {"type": "capture"},
    }
    reason = run_flow(ambiguous).frame("bad")["error"].iloc[0]
    assert "'sp' is on devices 1, 2: add a 'device_id' column" in reason


def test_sink_reconnects_after_the_device_restarted() -> None:
    port = free_port()
    first = ModbusDevice(port).start()
    second: ModbusDevice | None = None
    field = {"name": "sp", "address": 7, "writable": True}
    flow = {
        "src": {
            "type": "inject",
            "rows": [{"sensor": "sp", "value": 5}],
            "interval": 0.05,
            "wires": ["out"],
        },
        "out": {
            "type": "modbus_out",
            "host": "127.0.0.1",
            "port": port,
            "timeout": 1.0,
            "devices": [{"fields": [field]}],
        },
    }

    def restart() -> None:
        nonlocal second
        first.close()
        second = ModbusDevice(port).start()

    try:
        runtime = run_until(
            flow,
            lambda r: first.get("holding", 7, 1) == [5],
            lambda r: (
                restart,
                lambda r: second is not None and second.get("holding", 7, 1) == [5],
            ),
        )
        assert runtime.stats["out"].counters["writes"] >= 2
    finally:
        first.close()
        if second is not None:
            second.close()
