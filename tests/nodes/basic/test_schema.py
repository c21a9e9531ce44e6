"""Schema: bad batches and poison values first, then the rules one by one, then 100k rows
against a row-by-row reference."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flowengine.node import Done, NodeConfig, Source, option
from flowengine.testing import FlowResult, check_text, run_flow
from flowengine.types import Batch
from tests.helpers.state import Driven

#: The frames each `given` source emits, by name (frames with Python objects, as sources make).
GIVEN: dict[str, list[pd.DataFrame]] = {}

SENSORS = {
    "furnace_temp": {"min": 0, "max": 1500, "unit": "degC"},
    "roll_*": {"min": 0, "max": 30000, "unit": "kN"},
}


class GivenConfig(NodeConfig):
    slot: str = option(description="Key into GIVEN.")


class Given(Source[GivenConfig]):
    """Emits the frames stored under its name, as they are."""

    async def start(self) -> None:
        self._left = list(GIVEN[self.config.slot])

    async def read(self) -> pd.DataFrame:
        if not self._left:
            raise Done
        return self._left.pop(0)


def check(frames: list[pd.DataFrame], **config: Any) -> FlowResult:
    """Run ``frames`` through a `schema` node: `ok` captures `out`, `bad` the `error` port."""
    GIVEN["t"] = frames
    flow = {
        "src": {"type": "given", "slot": "t", "wires": ["s"]},
        "s": {"type": "schema", **config, "wires": {"out": ["ok"], "error": ["bad"]}},
        "ok": {"type": "capture"},
        "bad": {"type": "capture"},
    }
    return run_flow(flow, types={"given": Given})


def rules(result: FlowResult) -> list[str]:
    bad = result.frame("bad")
    return bad["rule"].tolist() if len(bad) else []


def counters(result: FlowResult) -> dict[str, int]:
    return dict(result.stats("s")["counters"])  # type: ignore[call-overload]


def long(rows: list[tuple[Any, ...]], columns: str = "sensor value") -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns.split())


# ---- whole batches ----------------------------------------------------------------------------


def test_a_missing_required_column_sends_the_whole_batch_to_error_with_one_error() -> None:
    frame = long([("furnace_temp", 1.0), ("furnace_temp", 2.0)], "sensor val")
    result = check([frame], columns={"sensor": "str", "value": "float"})
    assert result.frame("ok").empty
    [batch] = result.batches("bad")
    assert batch.error == "2 row(s) violate the schema; first: missing column value"
    assert batch.frame["rule"].tolist() == ["missing column value"] * 2
    assert batch.frame["val"].tolist() == [1.0, 2.0]  # the rows as they came
    assert counters(result) == {"schema_violations": 2, "missing_column": 2}
    stats = result.stats("s")
    assert stats["last_error"] == batch.error and "Traceback" not in str(stats)


def test_sensor_ranges_need_the_key_and_value_columns() -> None:
    result = check([long([(1.0,)], "value")], sensors=SENSORS)
    assert rules(result) == ["missing column sensor"]


def test_strict_refuses_extra_columns_and_lax_keeps_them() -> None:
    frame = long([("a", 1.0, "x")], "sensor value extra")
    spec = {"sensor": "str", "value": "float"}
    assert rules(check([frame], columns=spec, strict=True)) == ["unexpected column extra"]
    lax = check([frame], columns=spec)
    assert lax.frame("ok")["extra"].tolist() == ["x"] and not rules(lax)


def test_empty_batches_and_batches_without_rules_pass_as_they_are() -> None:
    frame = long([("a", "not checked")])
    result = check([frame.iloc[:0], frame], columns={"sensor": "str"})
    assert result.frame("ok").equals(frame) and not result.batches("bad")
    driven = Driven("schema", {"columns": {"value": "float"}})

    async def empty() -> Any:
        await driven.node.start()
        return driven.node.process(Batch(pd.DataFrame({"x": []})))  # missing column, no rows

    assert asyncio.run(empty()) is None
    assert driven.node.ctx.stats.counters == {}


# ---- poison values ----------------------------------------------------------------------------


def test_poison_values_each_fail_their_first_rule() -> None:
    values = [None, math.nan, "abc", True, math.inf, -math.inf, 1e308, 10**30, "3.2", "nan", [1]]
    frame = long([("furnace_temp", v) for v in values])
    result = check([frame], columns={"value": "float"}, sensors=SENSORS)
    assert rules(result) == [
        "null in column value",
        "null in column value",
        "value 'abc' in column value is not float",
        "value True in column value is not float",
        "value inf in column value is not finite",
        "value -inf in column value is not finite",
        "value 1e+308 above max 1500 for sensor furnace_temp",
        "value 1e+30 above max 1500 for sensor furnace_temp",
        "value 'nan' in column value is not float",
        "value [1] in column value is not float",
    ]
    assert result.frame("ok")["value"].tolist() == [3.2]  # coerced, as a float
    assert result.frame("ok")["value"].dtype == np.float64
    assert counters(result) == {
        "schema_violations": 10,
        "null": 2,
        "dtype": 4,
        "not_finite": 2,
        "above_max": 2,
    }


def test_nullable_columns_and_undeclared_values_under_a_range() -> None:
    frame = long([("furnace_temp", None), ("furnace_temp", "hot"), ("roll_1", -1), ("x", "hot")])
    result = check([frame], columns={"value": {"nullable": True}}, sensors=SENSORS)
    assert rules(result) == [
        "value 'hot' is not a number for sensor furnace_temp",
        "value -1.0 below min 0 for sensor roll_1",
    ]
    assert result.frame("ok")["sensor"].tolist() == ["furnace_temp", "x"]  # x has no range


def test_a_repeated_row_index_does_not_mix_up_messages() -> None:
    one = long([("furnace_temp", 2000.0), ("furnace_temp", 1.0)])
    two = long([("furnace_temp", 1.0), ("roll_9", 40000.0)])
    frame = pd.concat([one, two])  # index 0, 1, 0, 1
    result = check([frame], sensors=SENSORS)
    assert rules(result) == [
        "value 2000.0 above max 1500 for sensor furnace_temp",
        "value 40000.0 above max 30000 for sensor roll_9",
    ]
    assert len(result.frame("ok")) == 2


# ---- the rules --------------------------------------------------------------------------------


def test_each_row_reports_the_first_rule_it_fails() -> None:
    frame = long(
        [
            ("furnace_temp", 1523.0, "good", "degC"),
            ("furnace_temp", 1600.0, "bad", "degF"),  # quality before unit before range
            ("furnace_temp", None, "bad", "degC"),  # null first
            ("roll_2", 50.0, "uncertain", "N"),
            ("roll_2", 50.0, None, "kN"),
            ("roll_2", 50.0, "good", None),  # no unit given: not a wrong unit
        ],
        "sensor value quality unit",
    )
    result = check(
        [frame], columns={"value": "float"}, sensors=SENSORS, quality=["good", "uncertain"]
    )
    assert rules(result) == [
        "value 1523.0 above max 1500 for sensor furnace_temp",
        "quality 'bad' not allowed",
        "null in column value",
        "unit N is not kN for sensor roll_2",
        "null quality not allowed",
    ]
    assert result.frame("ok")["unit"].isna().tolist() == [True]


def test_units_are_checked_only_when_a_unit_column_exists() -> None:
    frame = long([("furnace_temp", 20.0)])
    assert not rules(check([frame], sensors=SENSORS))


def test_an_exact_name_wins_over_patterns_and_the_first_pattern_over_later_ones() -> None:
    sensors = {"roll_*": {"max": 10}, "roll_force": {"max": 1000}, "roll_f*": {"max": 1}}
    frame = long([("roll_force", 500.0), ("roll_fx", 5.0), ("roll_1", 20.0), (None, 1e9)])
    assert rules(check([frame], sensors=sensors)) == ["value 20.0 above max 10 for sensor roll_1"]


def test_nullable_quality_and_quality_without_the_column() -> None:
    frame = long([("a", 1.0, None), ("a", 1.0, "good")], "sensor value quality")
    nullable = {"quality": {"dtype": "str", "nullable": True}}
    assert not rules(check([frame], columns=nullable, quality=["good"]))
    assert not rules(check([frame[["sensor", "value"]]], quality=["good"]))


def test_coerce_casts_text_and_off_refuses_what_is_not_of_the_type() -> None:
    frame = long([("a", "3.2"), ("a", 4), ("a", 5.5)])
    coerced = check([frame], columns={"value": "float"})
    assert coerced.frame("ok")["value"].tolist() == [3.2, 4.0, 5.5]
    strict = check([frame], columns={"value": "float"}, coerce=False)
    assert rules(strict) == ["value '3.2' in column value is not float"]
    assert strict.frame("ok")["value"].tolist() == [4, 5.5]


@pytest.mark.parametrize(
    ("dtype", "values", "bad", "cast"),
    [
        ("int", [1, 2.0, "3", 2.5, "x", 1e300], [2.5, "x", 1e300], [1, 2, 3]),
        ("bool", [True, "yes", "0", 1, 2, "maybe"], [2, "maybe"], [True, True, False, True]),
        ("str", ["a", 1, 2.5, True, {"k": 1}], [{"k": 1}], ["a", "1", "2.5", "True"]),
        (
            "datetime",
            ["2026-01-01T00:00:00Z", pd.Timestamp("2026-01-02", tz="UTC"), "soon", 1767225600],
            ["soon", 1767225600],
            [pd.Timestamp("2026-01-01", tz="UTC"), pd.Timestamp("2026-01-02", tz="UTC")],
        ),
    ],
)
def test_types(dtype: str, values: list[Any], bad: list[Any], cast: list[Any]) -> None:
    result = check([pd.DataFrame({"x": pd.Series(values, dtype=object)})], columns={"x": dtype})
    assert result.frame("bad")["x"].tolist() == bad
    assert all(r.endswith(f"in column x is not {dtype}") for r in rules(result))
    assert result.frame("ok")["x"].tolist() == cast


def test_int_keeps_64_bit_integers_exact() -> None:
    """modbus_in keeps a uint64 counter past 2**53 exact in an object column; casting it
    through float64 would send 2**60 for a read of 2**60 + 1."""
    values = [2**60 + 1, -(2**62) - 3, np.int64(2**53 + 1), np.uint64(2**62 + 5), 1234.5, "7"]
    frame = pd.DataFrame({"sensor": list("abcdef"), "value": pd.Series(values, dtype=object)})
    result = check([frame], columns={"value": "int"})
    ok = result.frame("ok")
    assert ok["value"].tolist() == [2**60 + 1, -(2**62) - 3, 2**53 + 1, 2**62 + 5, 7]
    assert rules(result) == ["value 1234.5 in column value is not int"]


def test_columns_of_the_right_type_pass_untouched() -> None:
    frame = pd.DataFrame(
        {
            "t": pd.to_datetime(["2026-01-01"], utc=True),
            "n": [3],
            "f": [1.5],
            "b": [True],
            "s": ["x"],
        }
    )
    spec = {"t": "datetime", "n": "int", "f": "float", "b": "bool", "s": "str"}
    result = check([frame], columns=spec, coerce=False)
    assert not rules(result)
    pd.testing.assert_frame_equal(result.frame("ok"), frame)


# ---- config -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"sensors": {"furnace_temp": {"min": 1500, "max": 100}}},
            "field 'sensors.furnace_temp': min 1500 > max 100",
        ),
        ({"columns": {"value": {"dtype": "double"}}}, "field 'columns.value.dtype': Input should"),
        ({"columns": {"value": "double"}}, "field 'columns.value.dtype': Input should"),
        ({"columns": {"value": {"dtyp": "float"}}}, "unknown field 'columns.value.dtyp'"),
        ({"strict": True}, "'strict' allows only the columns in 'columns'"),
        ({"quality": []}, "field 'quality': List should have at least 1 item"),
        ({"sensors": {"a": {"max": math.nan}}}, "field 'sensors.a.max': Input should be a finite"),
    ],
)
def test_config_errors_name_the_field(config: dict[str, Any], message: str) -> None:
    checked = check_text({"s": {"type": "schema", **config}})
    assert not checked.ok
    texts = [p.message for p in checked.problems]
    assert any(message in t for t in texts), texts


# ---- 100k rows --------------------------------------------------------------------------------

POOL: list[Any] = [*(float(v) / 10 for v in range(-500, 400_000, 997)), None, "3.2", "abc"]
POOL += [True, math.inf, math.nan, "1e3"]


def reference(sensor: Any, value: Any, quality: Any, unit: Any) -> str | None:
    """The rules, one row at a time in plain Python (what the node must do in columns)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null in column value"
    if isinstance(value, bool) or (isinstance(value, str) and value == "abc"):
        return f"value {value!r} in column value is not float"
    number = float(value)
    if math.isinf(number):
        return f"value {value} in column value is not finite"
    if quality not in ("good", "uncertain"):
        return f"quality {quality!r} not allowed"
    low, high, want = {"furnace_temp": (0, 1500, "degC")}.get(sensor, (None, None, None))
    if sensor is not None and sensor.startswith("roll_"):
        low, high, want = 0, 30000, "kN"
    if want is not None and unit is not None and unit != want:
        return f"unit {unit} is not {want} for sensor {sensor}"
    if low is not None and number < low:
        return f"value {number} below min {low} for sensor {sensor}"
    if high is not None and number > high:
        return f"value {number} above max {high} for sensor {sensor}"
    return None


def test_100k_rows_match_a_row_by_row_reference() -> None:
    rng = np.random.default_rng(7)
    n = 100_000
    rows = list(
        zip(
            rng.choice(np.array(["furnace_temp", "roll_1", "roll_22", "other", None]), n).tolist(),
            [POOL[i] for i in rng.integers(0, len(POOL), n)],
            rng.choice(np.array(["good", "good", "uncertain", "bad"]), n).tolist(),
            rng.choice(np.array(["degC", "kN", "N", None]), n).tolist(),
            strict=True,
        )
    )
    frame = pd.DataFrame(rows, columns=["sensor", "value", "quality", "unit"])
    frame.index = np.repeat(np.arange(n // 2), 2)  # repeated labels, as concatenated batches
    config = {
        "columns": {"sensor": {"dtype": "str", "nullable": True}, "value": "float"},
        "quality": ["good", "uncertain"],
        "sensors": SENSORS,
    }
    expected = [reference(*row) for row in rows]
    result = check([frame], **config)
    wanted = [r for r in expected if r is not None]
    assert rules(result) == wanted
    assert len(result.frame("ok")) == expected.count(None)
    assert counters(result)["schema_violations"] == len(wanted)
    assert 0.2 * n < len(wanted) < 0.9 * n  # every rule is exercised, not just one

    driven = Driven("schema", config)  # the node alone, for the figure in the report

    async def timed() -> float:
        await driven.node.start()
        start = time.perf_counter()
        driven.node.process(Batch(frame))
        return time.perf_counter() - start

    print(f"schema: 100k rows in {asyncio.run(timed()) * 1000:.0f} ms")
