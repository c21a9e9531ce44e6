"""opcua_in against hostile values: NaN, +/-inf and timestamps pandas cannot hold are judged
per reading (``non_finite``), so the good readings of the same read still arrive and the source
never restarts. The server is asyncua's own, in the test's event loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pandas as pd
import pytest

from flowengine.runtime import Runtime
from flowengine.testing import check_text
from tests.helpers.peers import free_port

asyncua = pytest.importorskip("asyncua")
ua = asyncua.ua

GOOD_TIME = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
#: (node number, sensor, value, source timestamp)
VARIABLES = [
    (1, "good_a", 1.5, GOOD_TIME),
    (2, "nan", math.nan, GOOD_TIME),
    (3, "plus_inf", math.inf, GOOD_TIME),
    (4, "null_time", 4.0, dt.datetime(1601, 1, 1, tzinfo=dt.UTC)),  # OPC UA's null DateTime
    (5, "year_9999", 5.0, dt.datetime(9999, 12, 31, tzinfo=dt.UTC)),
    (6, "good_b", 6.0, GOOD_TIME),
]
NODES = {f"ns=2;i={n}": name for n, name, _, _ in VARIABLES}


@asynccontextmanager
async def poison_server() -> AsyncIterator[str]:
    """A server whose variables hold the VARIABLES, each with its source timestamp."""
    server = asyncua.Server()
    await server.init()
    url = f"opc.tcp://127.0.0.1:{free_port()}/"
    server.set_endpoint(url)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace("urn:flowengine:poison")
    double = ua.VariantType.Double
    for number, name, value, stamp in VARIABLES:
        var = await server.nodes.objects.add_variable(ua.NodeId(number, idx), name, 0.0, double)
        await var.write_value(ua.DataValue(ua.Variant(value, double), SourceTimestamp=stamp))
    async with server:
        yield url


def run(mode: str, non_finite: str) -> tuple[Runtime, pd.DataFrame, pd.DataFrame]:
    """Run opcua_in for a second; the runtime, what reached ``out`` and what reached ``error``."""

    async def main() -> Runtime:
        async with poison_server() as url:
            flow = {
                "src": {
                    "type": "opcua_in",
                    "server_url": url,
                    "nodes": NODES,
                    "mode": mode,
                    "sampling_interval": 0.1,
                    "batch_interval": 0.2,
                    "non_finite": non_finite,
                    "wires": {"out": ["cap"], "error": ["err"]},
                },
                "cap": {"type": "capture"},
                "err": {"type": "capture"},
            }
            runtime = Runtime(check_text(flow))
            await asyncio.wait_for(runtime.run(1.2), 30)
            return runtime

    runtime = asyncio.run(main())

    def frame(node_id: str) -> pd.DataFrame:
        batches = runtime.node(node_id).batches  # type: ignore[attr-defined]
        return pd.concat([b.frame for b in batches]) if batches else pd.DataFrame()

    return runtime, frame("cap"), frame("err")


def first(frame: pd.DataFrame) -> pd.DataFrame:
    """The first row of each sensor, indexed by sensor."""
    return frame.drop_duplicates("sensor").set_index("sensor")


def assert_good_and_untimed(runtime: Runtime, out: pd.DataFrame) -> pd.DataFrame:
    """The good readings arrive unchanged; a 1601 or 9999 source time is replaced by a recent
    time with quality bad; the source never restarted. Returns the first row of each sensor."""
    assert runtime.stats["src"].retries == 0
    assert runtime.stats["src"].state != "error"
    rows = first(out)
    for name in ("good_a", "good_b"):
        assert rows.loc[name, "quality"] == "good"
        assert rows.loc[name, "timestamp"] == pd.Timestamp(GOOD_TIME)
    recent = pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=5)
    for name, value in (("null_time", 4.0), ("year_9999", 5.0)):
        assert rows.loc[name, "value"] == value
        assert rows.loc[name, "quality"] == "bad"
        assert rows.loc[name, "timestamp"] > recent
    assert str(out["timestamp"].dt.tz) == "UTC"
    assert out["timestamp"].max() < pd.Timestamp("2262-01-01", tz="UTC")
    return rows


@pytest.mark.parametrize("mode", ["polling", "subscription"])
def test_non_finite_bad_keeps_readings_with_quality_bad(mode: str) -> None:
    runtime, out, err = run(mode, "bad")
    rows = assert_good_and_untimed(runtime, out)
    assert math.isnan(rows.loc["nan", "value"])
    assert rows.loc["plus_inf", "value"] == math.inf
    assert (rows.loc[["nan", "plus_inf"], "quality"] == "bad").all()
    assert err.empty
    assert runtime.stats["src"].errors == 0


@pytest.mark.parametrize("mode", ["polling", "subscription"])
def test_non_finite_error_sends_those_readings_to_the_error_port(mode: str) -> None:
    runtime, out, err = run(mode, "error")
    assert_good_and_untimed(runtime, out)
    assert not out["sensor"].isin(["nan", "plus_inf"]).any()
    bad = first(err)
    assert sorted(bad.index) == ["nan", "plus_inf"]
    assert bad.loc["plus_inf", "error"] == "value is not finite: inf"
    assert bad.loc["nan", "node_id"] == "ns=2;i=2"
    stats = runtime.stats["src"]
    assert stats.errors == len(err) == stats.counters["non_finite"]
    assert "value is not finite" in str(stats.last_error)


def test_non_finite_keep_marks_them_as_the_server_does() -> None:
    runtime, out, err = run("polling", "keep")
    rows = assert_good_and_untimed(runtime, out)
    assert (rows.loc[["nan", "plus_inf"], "quality"] == "good").all()
    assert err.empty


def test_frame_of_judges_each_reading_alone() -> None:
    from flowengine.nodes.opcua.parse import Reading, frame_of

    def dv(value: Any, source: Any, server: Any = None) -> Any:
        return ua.DataValue(
            ua.Variant(value, ua.VariantType.Double), SourceTimestamp=source, ServerTimestamp=server
        )

    readings = [
        Reading("a", "ns=2;i=1", dv(1.0, GOOD_TIME)),
        Reading("b", "ns=2;i=2", dv(2.0, dt.datetime(1601, 1, 1, tzinfo=dt.UTC), GOOD_TIME)),
        Reading("c", "ns=2;i=3", dv(3.0, None, GOOD_TIME)),
        Reading("d", "ns=2;i=4", dv(-math.inf, GOOD_TIME)),
    ]
    frames = frame_of(readings, "error")
    rows = frames.rows.set_index("sensor")
    assert rows["quality"].to_dict() == {"a": "good", "b": "bad", "c": "good"}
    assert (rows["timestamp"] == pd.Timestamp(GOOD_TIME)).all()  # b: the server's time
    assert frames.errors is not None and frames.errors["sensor"].tolist() == ["d"]
