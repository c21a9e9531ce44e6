"""modbus_in and the seed's connector against pymodbus's own TCP server (no mocks)."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.helpers.peers import free_port

pytest.importorskip("pymodbus")

from tests.nodes.modbus.device import (
    WIDTH,
    ModbusDevice,
    first_rows,
    frames,
    run_until,
    source,
    values,
    wire_registers,
)

ORDERS = ("ABCD", "DCBA", "BADC", "CDAB")
SAMPLES: dict[str, int | float] = {
    "int16": -12345,
    "uint16": 54321,
    "int32": -123456789,
    "uint32": 3_000_000_000,
    "int64": -(2**62) + 5,
    "uint64": 2**63 + 12345,
    "float32": -273.25,
    "float64": 3.141592653589793,
}
FAST = {"retry": {"initial": 0.2, "max": 0.5}}


def test_every_type_and_byte_order_is_decoded(device: ModbusDevice) -> None:
    fields, expected, address = [], {}, 0
    for dtype, value in SAMPLES.items():
        for order in ORDERS:
            name = f"{dtype}_{order}"
            device.set("holding", address, wire_registers(value, dtype, order))
            fields.append({"name": name, "address": address, "type": dtype, "byte_order": order})
            expected[name] = value
            address += WIDTH[dtype]
    device.set("holding", address, [0x4C49, 0x4E45, 0x3300, 0x0000])  # "LINE3"
    device.set("holding", address + 4, [0x494C, 0x454E, 0x0033, 0x0000])  # byte-swapped
    fields += [
        {"name": "label", "address": address, "type": "string", "length": 4},
        {
            "name": "label_ba",
            "address": address + 4,
            "type": "string",
            "length": 4,
            "byte_order": "BADC",
        },
        {"name": "run", "register": "coil", "address": 3},
        {"name": "trip", "register": "discrete", "address": 5},
        {
            "name": "temp_c",
            "register": "input",
            "address": 10,
            "type": "int16",
            "scale": 0.1,
            "offset": -5,
        },
    ]
    device.set("coil", 0, [False, False, False, True])
    device.set("discrete", 0, [False] * 5 + [True])
    device.set("input", 10, [1234])
    device.requests.clear()
    rows, _ = first_rows(
        {
            "src": source(device.port, [{"name": "plc", "fields": fields}]),
            "cap": {"type": "capture"},
        }
    )
    got = dict(zip(rows["sensor"], rows["value"], strict=True))
    for name, value in expected.items():
        assert got[name] == value, name
    assert got["label"] == got["label_ba"] == "LINE3"
    assert got["run"] is True and got["trip"] is True
    assert got["temp_c"] == pytest.approx(118.4)
    assert (rows["quality"] == "good").all() and (rows["exception_code"] == 0).all()
    assert str(rows["timestamp"].dt.tz) == "UTC" and (rows["source"] == "plc").all()
    # one request per register kind: 80 holding registers of numbers and 8 of strings in one
    assert device.requests[:4] == [
        (1, 1, 3, 1),
        (1, 2, 5, 1),
        (1, 3, 0, address + 8),
        (1, 4, 10, 1),
    ]


def test_packing_matches_what_the_device_receives(device: ModbusDevice) -> None:
    fields = [
        {"name": "a", "address": 0},
        {"name": "b", "address": 5},
        {"name": "c", "address": 30, "type": "float32"},
        {"name": "d", "address": 150},
    ]
    for max_gap, expected in [
        (10, [(3, 0, 6), (3, 30, 2), (3, 150, 1)]),
        (120, [(3, 0, 32), (3, 150, 1)]),  # 0..150 would be more than 125 registers
        (0, [(3, 0, 1), (3, 5, 1), (3, 30, 2), (3, 150, 1)]),
    ]:
        device.requests.clear()
        flow = {
            "src": source(device.port, [{"fields": fields}], max_gap=max_gap),
            "cap": {"type": "capture"},
        }
        first_rows(flow)
        assert [r[1:] for r in device.requests[: len(expected)]] == expected, max_gap


def test_a_refused_block_is_bad_while_the_others_go_on(device: ModbusDevice) -> None:
    device.set("holding", 0, wire_registers(1200.5, "float32", "ABCD"))
    device.set("input", 0, [42])
    devices = [
        {
            "device_id": 1,
            "name": "furnace",
            "fields": [
                {"name": "temp", "address": 0, "type": "float32"},
                {"name": "missing", "address": 250, "type": "int16"},  # not in the device's map
                {"name": "count", "register": "input", "address": 0},
            ],
        },
        {"device_id": 2, "fields": [{"name": "far", "address": 120}]},  # unit 2 has 0..49
        {"device_id": 7, "fields": [{"name": "ghost", "address": 0}]},  # no unit 7
    ]
    flow = {"src": source(device.port, devices), "cap": {"type": "capture"}}
    rows, runtime = first_rows(flow, batches=2)  # the poll after the failures ran too
    by = rows.set_index("sensor")
    assert by.loc["temp", "value"] == 1200.5 and by.loc["count", "value"] == 42
    assert (by.loc[["temp", "count"], "quality"] == "good").all()
    assert by.loc["missing", "quality"] == "bad" and by.loc["missing", "exception_code"] == 2
    assert by.loc["missing", "error"] == "illegal data address (exception 2)"
    assert pd.isna(by.loc["missing", "value"])
    assert by.loc["far", "exception_code"] == 2 and by.loc["far", "device_id"] == 2
    assert by.loc["ghost", "quality"] == "bad" and by.loc["ghost", "exception_code"] == 4
    assert by.loc["far", "source"] == f"127.0.0.1:{device.port}/2"
    stats = runtime.stats["src"]
    assert stats.counters["bad_blocks"] >= 6 and stats.retries == 0


def test_non_finite_floats(device: ModbusDevice) -> None:
    device.set("input", 20, wire_registers(float("nan"), "float32", "ABCD"))
    device.set("input", 22, wire_registers(7.25, "float32", "ABCD"))
    fields = [
        {"name": "nan", "register": "input", "address": 20, "type": "float32"},
        {"name": "ok", "register": "input", "address": 22, "type": "float32"},
    ]
    rows, _ = first_rows(
        {"src": source(device.port, [{"fields": fields}]), "cap": {"type": "capture"}}
    )
    assert rows.set_index("sensor").loc["nan", "quality"] == "bad"
    assert rows.set_index("sensor").loc["ok", "quality"] == "good"
    flow = {
        "src": {
            **source(device.port, [{"fields": fields}]),
            "non_finite": "error",
            "wires": {"out": ["cap"], "error": ["bad"]},
        },
        "cap": {"type": "capture"},
        "bad": {"type": "capture"},
    }
    runtime = run_until(flow, lambda r: bool(frames(r, "bad")) and bool(frames(r)))
    assert frames(runtime)[0]["sensor"].tolist() == ["ok"]
    bad = frames(runtime, "bad")[0]
    assert bad["sensor"].tolist() == ["nan"] and "not finite" in bad["error"].iloc[0]


def test_device_down_at_start_then_data() -> None:
    port = free_port()
    late: ModbusDevice | None = None
    flow = {
        "version": 1,
        "settings": FAST,
        "nodes": {
            "src": source(port, [{"fields": [{"name": "v", "address": 0}]}]),
            "cap": {"type": "capture"},
        },
    }

    def start() -> None:
        nonlocal late
        late = ModbusDevice(port).start()
        late.set("holding", 0, [77])

    try:
        runtime = run_until(
            flow,
            lambda r: r.stats["src"].retries >= 2 and r.stats["src"].state == "retrying",
            lambda r: (start, lambda r: values(r, "v")[:1] == [77]),
        )
        assert "Failed to connect to Modbus device 127.0.0.1:" in str(
            runtime.stats["src"].last_error
        )
    finally:
        if late is not None:
            late.close()


def test_device_restarted_under_a_running_flow() -> None:
    port = free_port()
    first = ModbusDevice(port).start()
    first.set("holding", 0, [1])
    second: ModbusDevice | None = None
    flow = {
        "version": 1,
        "settings": FAST,
        "nodes": {
            "src": source(port, [{"fields": [{"name": "v", "address": 0}]}]),
            "cap": {"type": "capture"},
        },
    }

    def restart() -> None:
        nonlocal second
        second = ModbusDevice(port).start()
        second.set("holding", 0, [2])

    try:
        runtime = run_until(
            flow,
            lambda r: len(values(r, "v")) >= 3,
            lambda r: (first.close, lambda r: r.stats["src"].state == "retrying"),
            lambda r: (restart, lambda r: values(r, "v")[-1:] == [2]),
        )
        got = values(runtime, "v")
        before = got.index(2)
        assert before >= 3 and set(got[:before]) == {1}  # what was read before stays
        assert "lost" in str(runtime.stats["src"].last_error)
        assert runtime.stats["src"].state != "retrying"
    finally:
        first.close()
        if second is not None:
            second.close()


def test_seed_connector_api(device: ModbusDevice, caplog: pytest.LogCaptureFixture) -> None:
    from flowengine.connectors import BaseDataConnector, ModbusConnector

    device.set("holding", 60, wire_registers(1234.5, "float32", "CDAB"))
    config = {
        "host": "127.0.0.1",
        "port": device.port,
        "devices": [
            {
                "device_id": 1,
                "name": "furnace",
                "fields": [
                    {"name": "temp", "address": 60, "type": "float32", "byte_order": "CDAB"}
                ],
            }
        ],
    }
    modbus = ModbusConnector(config)
    assert isinstance(modbus, BaseDataConnector) and modbus.label == "Modbus"
    assert modbus.is_connection_active() is False
    assert modbus.connect() is True and modbus.is_connection_active()
    data = modbus.read_data()
    assert isinstance(data, pd.DataFrame)
    assert data["value"].tolist() == [1234.5] and data["quality"].tolist() == ["good"]
    assert data["source"].tolist() == ["furnace"]
    assert modbus.disconnect() is True and modbus.is_connection_active() is False

    port = free_port()
    down = ModbusConnector({**config, "port": port, "timeout": 1.0})
    assert down.connect() is False and down.read_data() is None
    assert f"Failed to connect to Modbus device 127.0.0.1:{port}: Connection refused" in caplog.text
    down.disconnect()


def test_a_block_that_times_out_is_bad_and_the_others_good() -> None:
    slow = ModbusDevice(free_port(), slow_input=50).start()
    try:
        slow.set("holding", 0, [5])
        fields = [
            {"name": "fast", "address": 0},
            {"name": "slow", "register": "input", "address": 60},  # the last request of a poll
        ]
        rows, runtime = first_rows(
            {
                "src": source(slow.port, [{"fields": fields}], timeout=0.5),
                "cap": {"type": "capture"},
            }
        )
        by = rows.set_index("sensor")
        assert by.loc["fast", "value"] == 5 and by.loc["fast", "quality"] == "good"
        assert by.loc["slow", "quality"] == "bad" and by.loc["slow", "error"] == "timeout"
        assert runtime.stats["src"].retries == 0
    finally:
        slow.close()


def test_a_device_that_stops_answering_is_a_lost_connection() -> None:
    silent = ModbusDevice(free_port(), slow_input=0, delay=30).start()
    field = {"name": "v", "register": "input", "address": 0}
    flow = {
        "version": 1,
        "settings": FAST,
        "nodes": {
            "src": source(silent.port, [{"fields": [field]}], timeout=0.3),
            "cap": {"type": "capture"},
        },
    }
    try:
        runtime = run_until(flow, lambda r: r.stats["src"].retries >= 1)
        bad = pd.concat(frames(runtime)) if frames(runtime) else pd.DataFrame()
        assert bad.empty or set(bad["quality"]) == {"bad"}
        assert "no response" in str(runtime.stats["src"].last_error)
    finally:
        silent.close()


def test_a_64_bit_counter_beside_floats_stays_exact(device: ModbusDevice) -> None:
    device.set("holding", 170, wire_registers(2**63 + 7, "uint64", "ABCD"))
    device.set("holding", 174, wire_registers(0.5, "float32", "ABCD"))
    fields = [
        {"name": "energy", "address": 170, "type": "uint64"},
        {"name": "level", "address": 174, "type": "float32"},
    ]
    flow = {"src": source(device.port, [{"fields": fields}]), "cap": {"type": "capture"}}
    rows, _ = first_rows(flow)
    assert rows["value"].tolist() == [2**63 + 7, 0.5]  # not 9.223372036854776e18
