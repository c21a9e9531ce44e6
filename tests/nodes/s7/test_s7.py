"""S7 against python-snap7's own server on 127.0.0.1 (no protocol mocks): reads, writes,
packing, bad quality per tag, a PLC down at start and restarted under a running flow."""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any

import pandas as pd
import pytest

from flowengine.runtime import Runtime
from flowengine.testing import check_text, run_flow
from tests.helpers.peers import free_port, until

snap7 = pytest.importorskip("snap7", reason="python-snap7 (flowengine[s7]) is not installed")

from flowengine.nodes.s7.address import decode, encode, parse_address  # noqa: E402
from flowengine.nodes.s7.client import S7Client  # noqa: E402
from flowengine.nodes.s7.config import S7Config  # noqa: E402
from flowengine.nodes.s7.server import bit_server  # noqa: E402

SrvArea = snap7.type.SrvArea
RETRY = {"retry": {"initial": 0.2, "max": 0.5}}


class PLC:
    """python-snap7's S7 server on 127.0.0.1; its memory outlives a restart, like a PLC's.

    ``bits=True`` applies BIT writes to their bit alone (the simulator's server, as a CPU
    does); ``bits=False`` is the library's server as shipped.
    """

    def __init__(self, port: int | None = None, *, bits: bool = True) -> None:
        self.port = port or free_port()
        self.bits = bits
        self.areas = {
            (SrvArea.DB, 10): bytearray(128),
            (SrvArea.DB, 20): bytearray(128),
            (SrvArea.MK, 0): bytearray(64),
            (SrvArea.PE, 0): bytearray(16),
            (SrvArea.PA, 0): bytearray(16),
        }
        self.server: Any = None

    def start(self) -> PLC:
        server = (bit_server() if self.bits else snap7.server.Server)(log=False)
        for (area, index), memory in self.areas.items():
            server.register_area(area, index, memory)
        server.start_to("127.0.0.1", self.port)
        self.server = server
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def memory(self, address: str) -> bytearray:
        a = parse_address(address)
        kind = {"DB": SrvArea.DB, "M": SrvArea.MK, "I": SrvArea.PE, "Q": SrvArea.PA}[a.area]
        return self.areas[(kind, a.db)]

    def set(self, address: str, value: Any, declared: str | None = None) -> None:
        a = parse_address(address, declared)
        memory = self.memory(address)
        data = encode(a, value)
        if a.type == "BOOL":
            mask = 1 << a.bit
            data = bytes([memory[a.byte] | mask if data[0] else memory[a.byte] & ~mask])
        memory[a.byte : a.byte + len(data)] = data

    def get(self, address: str, declared: str | None = None) -> Any:
        a = parse_address(address, declared)
        return decode(a, self.memory(address)[a.byte : a.byte + a.size])


@pytest.fixture
def plc() -> Any:
    server = PLC().start()
    server.set("DB10.DBD0", 1234.5)
    server.set("DB10.DBW4", -7)
    server.set("DB10.DBX6.1", True)
    server.set("MW2", 42)
    server.set("I0.3", True)
    yield server
    server.stop()


def src(port: int, tags: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "type": "s7_in",
        "host": "127.0.0.1",
        "port": port,
        "tags": tags,
        "poll_interval": 0.05,
        "wires": ["cap"],
        **extra,
    }


def _rows(runtime: Runtime, node: str = "cap") -> pd.DataFrame:
    frames = [b.frame for b in runtime.node(node).batches]  # type: ignore[attr-defined]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def test_poll_rows_values_quality_and_timestamps(plc: PLC) -> None:
    plc.memory("DB10.DBD8")[8:12] = struct.pack(">f", float("nan"))
    tags = [
        {"address": "DB10.DBD0", "sensor": "furnace_temp"},
        {"address": "DB10,INT4", "sensor": "speed", "scale": 0.5, "offset": 100},
        {"address": "DB10.DBX6.1", "sensor": "running"},
        {"address": "MW2"},
        {"address": "I0.3"},
        {"address": "DB99.DBW0", "sensor": "no_such_db"},
        {"address": "DB10.DBD126", "sensor": "past_the_end"},
        {"address": "DB10.DBD8", "sensor": "nan"},
    ]
    result = run_flow({"plc": src(plc.port, tags), "cap": {"type": "capture"}}, duration=0.6)
    batches = result.batches("cap")
    assert len(batches) >= 3 and all(len(b) == len(tags) for b in batches)
    frame = batches[0].frame.set_index("sensor")
    assert list(frame.columns) == ["timestamp", "value", "quality", "status", "source", "address"]
    assert frame.loc["furnace_temp", "value"] == 1234.5
    assert frame.loc["speed", "value"] == -7 * 0.5 + 100
    assert frame.loc["running", "value"] is True and frame.loc["I0.3", "value"] is True
    assert frame.loc["MW2", "value"] == 42
    assert frame.loc["no_such_db", "status"] == "Object does not exist (0x0a)"
    assert frame.loc["past_the_end", "status"] == "Invalid address (0x05)"
    assert frame.loc["nan", "status"] == "value is not finite"
    bad = {"no_such_db", "past_the_end", "nan"}
    assert (frame.loc[sorted(bad), "quality"] == "bad").all()
    assert (frame.drop(sorted(bad))["quality"] == "good").all()
    assert (frame.drop(sorted(bad))["status"] == "").all()
    assert (frame["source"] == f"s7://127.0.0.1:{plc.port}").all()
    assert frame.loc["speed", "address"] == "DB10,INT4"
    assert str(frame["timestamp"].dt.tz) == "UTC" and frame["timestamp"].nunique() == 1
    stats = result.stats("plc")
    assert stats["rows_out"] == len(tags) * len(batches) and stats["state"] == "stopped"


def test_tags_are_packed_into_pdu_sized_requests(plc: PLC) -> None:
    near = [{"address": f"DB10.DBW{2 * i}", "sensor": f"w{i}"} for i in range(40)]
    result = run_flow({"plc": src(plc.port, near), "cap": {"type": "capture"}}, duration=0.4)
    stats = result.stats("plc")
    assert stats["counters"]["requests"] == stats["batches_out"]  # one request per poll
    far = [{"address": f"DB20.DBB{3 * i}", "sensor": f"b{i}"} for i in range(40)]
    plc.set("DB20.DBB117", 7)

    async def main() -> tuple[int, pd.DataFrame]:
        # 40 one-byte tags 3 bytes apart, not merged (max_gap 1): 40 items need 3 requests of
        # a 240-byte PDU ((240 - 14) // 12 = 18 items each)
        client = S7Client(
            S7Config(host="127.0.0.1", port=plc.port, tags=far, pdu_size=240, max_gap=1)
        )
        await client.connect()
        try:
            return client.pdu, await client.read()
        finally:
            await client.close()

    pdu, frame = asyncio.run(main())
    assert pdu == 240
    assert (frame["quality"] == "good").all() and frame["value"].iloc[-1] == 7


def test_a_merged_block_with_a_bad_tag_is_read_apart_from_then_on(plc: PLC) -> None:
    plc.set("DB10.DBD120", 99.5)
    tags = [{"address": "DB10.DBD120", "sensor": "ok"}, {"address": "DB10.DBD126", "sensor": "bad"}]

    async def main() -> tuple[list[pd.DataFrame], int, int]:
        client = S7Client(S7Config(host="127.0.0.1", port=plc.port, tags=tags))
        await client.connect()
        merged = len(client.packets[0])
        try:
            frames = [await client.read(), await client.read()]
        finally:
            await client.close()
        return frames, merged, len(client.packets[0])

    frames, merged, after = asyncio.run(main())
    assert (merged, after) == (1, 2)  # one block 120..130, then one per tag
    for frame in frames:
        rows = frame.set_index("sensor")
        assert rows.loc["ok", "value"] == 99.5 and rows.loc["ok", "quality"] == "good"
        assert rows.loc["bad", "quality"] == "bad" and "0x05" in rows.loc["bad", "status"]


def test_each_type_round_trips_through_s7_out_and_s7_in(plc: PLC) -> None:
    cases = [
        ("DB20.DBX0.0", "BOOL", True),
        ("DB20.DBB1", "BYTE", 200),
        ("DB20.DBB2", "SINT", -100),
        ("DB20.DBB3", "CHAR", "Z"),
        ("DB20.DBW4", "INT", -1234),
        ("DB20.DBW6", "UINT", 60000),
        ("DB20.DBW8", "WORD", 0xBEEF),
        ("DB20.DBD10", "DINT", -123456),
        ("DB20.DBD14", "UDINT", 4_000_000_000),
        ("DB20.DBD18", "DWORD", 0xDEADBEEF),
        ("DB20.DBD22", "REAL", 1.5),
        ("DB20.DBB26", "LREAL", 1e100),
        ("DB20.DBB34", "LINT", -(2**40)),
        ("DB20.DBB42", "STRING[10]", "Stahl"),
        ("MW10", "INT", 321),
        ("Q1.2", "BOOL", True),
    ]
    tags = [
        {"address": a, "type": t, "sensor": t.lower() + a[-3:], "writable": True}
        for a, t, _ in cases
    ]
    rows = [
        {"sensor": tag["sensor"], "value": v} for tag, (_, _, v) in zip(tags, cases, strict=True)
    ]
    out = {"type": "s7_out", "host": "127.0.0.1", "port": plc.port, "tags": tags}
    written = run_flow({"src": {"type": "inject", "rows": rows, "wires": ["out"]}, "out": out})
    assert written.stats("out")["errors"] == 0
    assert written.stats("out")["counters"]["writes"] == len(cases)
    for address, declared, value in cases:
        assert plc.get(address, declared) == value, address
    result = run_flow({"plc": src(plc.port, tags), "cap": {"type": "capture"}}, duration=0.3)
    frame = result.batches("cap")[0].frame
    assert frame["value"].tolist() == [v for _, _, v in cases]
    assert (frame["quality"] == "good").all()


def test_s7_out_sends_rows_that_do_not_fit_to_error(plc: PLC) -> None:
    tags = [
        {"address": "DB20.DBW0", "sensor": "setpoint", "writable": True},
        {"address": "DB20.DBD2", "sensor": "limit", "type": "REAL", "writable": True},
        {"address": "DB20.DBD6", "sensor": "readonly"},
        {"address": "DB99.DBW0", "sensor": "missing_db", "writable": True},
        {"address": "DB20.DBW10", "sensor": "scaled", "scale": 0.1, "writable": True},
    ]
    rows = [
        {"sensor": "setpoint", "value": 40000},
        {"sensor": "setpoint", "value": 1200},
        {"sensor": "limit", "value": "high"},
        {"sensor": "readonly", "value": 1.0},
        {"sensor": "nobody", "value": 1.0},
        {"sensor": "missing_db", "value": 1},
        {"sensor": "DB20.DBD2", "value": 2.5},  # a writable tag's address names it too
        {"sensor": "scaled", "value": 123.4},
    ]
    nodes = {
        "src": {"type": "inject", "rows": rows, "wires": ["out"]},
        "out": {
            "type": "s7_out",
            "host": "127.0.0.1",
            "port": plc.port,
            "tags": tags,
            "wires": {"error": ["errors"]},
        },
        "errors": {"type": "capture"},
    }
    result = run_flow(nodes)
    errors = result.frame("errors")
    assert errors["sensor"].tolist() == ["setpoint", "limit", "readonly", "nobody", "missing_db"]
    reasons = errors["error"].tolist()
    assert reasons[0] == "setpoint (INT): 40000 is out of INT range -32768..32767"
    assert reasons[1] == "limit (REAL): 'high' is not a number"
    assert reasons[2:4] == ["no writable tag 'readonly'", "no writable tag 'nobody'"]
    assert reasons[4].startswith("write to DB99.DBW0 refused")
    assert plc.get("DB20.DBW0") == 1200 and plc.get("DB20.DBD2") == 2.5
    assert plc.get("DB20.DBW10") == 1234  # 123.4 / scale 0.1
    stats = result.stats("out")
    assert stats["errors"] == 5 and stats["counters"]["writes"] == 3


@pytest.mark.parametrize("mode", ["native", "read_modify_write"])
def test_bool_writes_leave_the_other_bits_alone(mode: str) -> None:
    # native BIT writes need a server that applies them as a CPU does (the simulator's);
    # read-modify-write works with the library's server as shipped
    plc = PLC(bits=mode == "native").start()
    plc.memory("DB20.DBB0")[0] = 0b1010_0101
    plc.memory("MB0")[0] = 0b0000_0001
    try:
        tags = [
            {"address": "DB20.DBX0.1", "sensor": "a", "writable": True},
            {"address": "DB20.DBX0.0", "sensor": "b", "writable": True},
            {"address": "M0.7", "sensor": "c", "writable": True},
        ]
        rows = [
            {"sensor": "a", "value": True},
            {"sensor": "b", "value": "off"},
            {"sensor": "c", "value": 1},
        ]
        out = {"type": "s7_out", "host": "127.0.0.1", "port": plc.port, "tags": tags}
        out["bit_writes"] = mode
        result = run_flow({"src": {"type": "inject", "rows": rows, "wires": ["out"]}, "out": out})
        assert result.stats("out")["errors"] == 0
        assert plc.memory("DB20.DBB0")[0] == 0b1010_0110
        assert plc.memory("MB0")[0] == 0b1000_0001
    finally:
        plc.stop()


def test_plc_down_at_start_then_up() -> None:
    plc = PLC()
    plc.set("DB10.DBD0", 7.25)
    flow = {
        "version": 1,
        "settings": RETRY,
        "nodes": {
            "plc": src(plc.port, [{"address": "DB10.DBD0", "sensor": "t"}], timeout=1.0),
            "cap": {"type": "capture"},
        },
    }

    async def main() -> None:
        runtime = Runtime(check_text(flow))
        task = asyncio.create_task(runtime.run())
        await until(lambda: runtime.stats["plc"].retries >= 2, task, what="retries")
        assert runtime.stats["plc"].state == "retrying" and _rows(runtime).empty
        assert "Connect call failed" in str(runtime.stats["plc"].last_error)
        await asyncio.to_thread(plc.start)
        await until(lambda: not _rows(runtime).empty, task, what="the first values")
        runtime.stop()
        await task
        assert _rows(runtime)["value"].iloc[0] == 7.25

    try:
        asyncio.run(main())
    finally:
        plc.stop()


def test_restart_under_a_running_flow_reconnects_and_keeps_what_was_read() -> None:
    plc = PLC().start()
    plc.set("DB10.DBD0", 1.0)
    flow = {
        "version": 1,
        "settings": RETRY,
        "nodes": {
            "plc": src(plc.port, [{"address": "DB10.DBD0", "sensor": "t"}], timeout=1.0),
            "cap": {"type": "capture"},
        },
    }

    def values(runtime: Runtime) -> list[float]:
        rows = _rows(runtime)
        return [] if rows.empty else rows["value"].tolist()

    async def main() -> None:
        runtime = Runtime(check_text(flow))
        task = asyncio.create_task(runtime.run())
        await until(lambda: len(values(runtime)) >= 3, task, what="values before the restart")
        await asyncio.to_thread(plc.stop)
        await until(lambda: runtime.stats["plc"].state == "retrying", task, what="retrying")
        before = values(runtime)
        plc.set("DB10.DBD0", 2.0)
        await asyncio.to_thread(plc.start)
        await until(lambda: 2.0 in values(runtime), task, what="values after the restart")
        runtime.stop()
        await task
        after = values(runtime)
        assert after[: len(before)] == before and set(before) == {1.0}
        assert set(after[len(before) :]) == {2.0}  # nothing lost, nothing read twice
        assert runtime.stats["plc"].retries >= 1 and runtime.stats["plc"].state == "stopped"

    try:
        asyncio.run(main())
    finally:
        plc.stop()


def test_s7_out_reconnects_after_a_restart() -> None:
    plc = PLC().start()
    tags = [{"address": "DB20.DBW0", "sensor": "sp", "writable": True}]
    flow = {
        "src": {
            "type": "inject",
            "rows": [{"sensor": "sp", "value": 2}],
            "interval": 0.05,
            "count": 100_000,
            "wires": ["out"],
        },
        "out": {
            "type": "s7_out",
            "host": "127.0.0.1",
            "port": plc.port,
            "tags": tags,
            "timeout": 1.0,
            "wires": {"error": ["errors"]},
        },
        "errors": {"type": "capture"},
    }

    async def main() -> None:
        runtime = Runtime(check_text(flow))
        task = asyncio.create_task(runtime.run())
        await until(lambda: plc.get("DB20.DBW0") == 2, task, what="the first write")
        await asyncio.to_thread(plc.stop)
        plc.set("DB20.DBW0", 0)
        await until(lambda: not _rows(runtime, "errors").empty, task, what="a failed batch")
        await asyncio.to_thread(plc.start)
        await until(lambda: plc.get("DB20.DBW0") == 2, task, what="a write after the restart")
        runtime.stop()
        await task
        failed = _rows(runtime, "errors")
        assert (failed["sensor"] == "sp").all()

    try:
        asyncio.run(main())
    finally:
        plc.stop()


def test_seed_connector_api(plc: PLC, caplog: pytest.LogCaptureFixture) -> None:
    from flowengine.connectors import S7Connector

    s7 = S7Connector(
        {
            "host": "127.0.0.1",
            "port": plc.port,
            "local_tsap": "01.00",  # TSAPs instead of rack/slot (LOGO!, S7-200, CPs)
            "remote_tsap": "03.01",
            "tags": [{"address": "DB10.DBD0", "sensor": "furnace_temp"}, {"address": "MW2"}],
        }
    )
    data = None
    if s7.connect():
        assert s7.is_connection_active()
        data = s7.read_data()
        assert s7.disconnect()
    assert not s7.is_connection_active()
    assert isinstance(data, pd.DataFrame)
    assert data["value"].tolist() == [1234.5, 42] and (data["quality"] == "good").all()

    port = free_port()
    down = S7Connector({"host": "127.0.0.1", "port": port, "tags": [{"address": "MW0"}]})
    with caplog.at_level(logging.ERROR, logger="flowengine.connectors"):
        assert down.connect() is False
    assert f"Failed to connect to S7 PLC 127.0.0.1:{port}: " in caplog.text
    assert down.read_data() is None and not down.is_connection_active()
    down.disconnect()
