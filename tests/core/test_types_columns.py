"""Batches of columns: the frame they build is the frame the pandas path makes, and the built-in
nodes give the same result on columns as on frames (values, dtypes, column order and index,
row index, ports, errors); Batch's API is as it was for frames."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from flowengine.columns import Columns
from flowengine.context import Context
from flowengine.metrics import NodeStats
from flowengine.nodes.basic.change import Change, ChangeConfig
from flowengine.nodes.basic.compute import Compute, ComputeConfig
from flowengine.nodes.basic.filter import Filter, FilterConfig
from flowengine.nodes.basic.rename import Rename, RenameConfig
from flowengine.nodes.basic.select import Select, SelectConfig
from flowengine.nodes.basic.switch import Switch, SwitchConfig
from flowengine.types import Batch

KINDS = {
    "timestamp": lambda n: pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC"),
    "sensor": lambda n: np.array(
        [["furnace", "ladle", None][i % 3] for i in range(n)], dtype=object
    ),
    "value": lambda n: np.linspace(1190.0, 1210.0, n),
    "quality": lambda n: np.array(["good", "bad"] * n, dtype=object)[:n],
    "count": lambda n: np.arange(n, dtype="int8"),
    "name": lambda n: pd.array([["a", None][i % 2] for i in range(n)], dtype="str"),
    "flag": lambda n: np.arange(n) % 2 == 0,
    "kind": lambda n: pd.Categorical([["x", "y"][i % 2] for i in range(n)]),
    "odd name": lambda n: np.arange(n, dtype="uint16"),
}


@st.composite
def frames(draw: st.DrawFn) -> tuple[pd.DataFrame, int, int]:
    """A frame of some of the kinds, in any order, and a row range of it (how a source slices
    its batches); its index a RangeIndex from anywhere, or labels."""
    names = draw(st.lists(st.sampled_from(list(KINDS)), min_size=3, max_size=9, unique=True))
    n = draw(st.integers(0, 7))
    index = draw(
        st.sampled_from([None, pd.RangeIndex(4, 4 + n), pd.Index([f"r{i}" for i in range(n)])])
    )
    frame = pd.DataFrame({name: KINDS[name](n) for name in names}, index=index)
    start = draw(st.integers(-2, n + 1))
    stop = draw(st.integers(-2, n + 1))
    return frame, start, stop


def assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, expected, check_exact=True, check_index_type=True)
    assert got.columns.dtype == expected.columns.dtype
    assert type(got.index) is type(expected.index)
    assert got.attrs == expected.attrs


@settings(max_examples=300, deadline=None, database=None)
@given(case=frames())
def test_columns_build_the_frame_iloc_makes(case: tuple[pd.DataFrame, int, int]) -> None:
    frame, start, stop = case
    before = frame.copy(deep=True)
    expected = frame.iloc[start:stop]
    columns = Columns.rows_of(frame, start, stop)
    assert columns is not None
    assert len(columns) == len(expected.index)
    built = columns.frame()
    assert_same(built, expected)
    if len(built.index) > 1:  # the built frame owns its memory: writing to it changes no source
        for j in range(len(built.columns)):
            built.iat[0, j] = built.iat[len(built.index) - 1, j]
    assert_same(frame, before)
    assert_same(columns.frame(), expected)


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({1: [1.0], "a": [2.0]}),  # a label that is not a str
        pd.DataFrame([[1.0, 2.0]], columns=pd.Index(["a", "b"], dtype=object)),
        pd.DataFrame([[1.0, 2.0]], columns=["a", "a"]),
        pd.DataFrame({"a": [1.0]}).set_flags(allows_duplicate_labels=False),
        pd.DataFrame({"a": [1.0]}, index=pd.RangeIndex(1, name="row")),
    ],
)
def test_frames_that_would_not_come_back_the_same_stay_frames(frame: pd.DataFrame) -> None:
    batch = Batch.rows_of(frame, 0, 1, "t", "src", 5.0)
    if frame.index.name == "row":  # a named RangeIndex: kept as the index object itself
        assert batch.columns is not None
    else:
        assert batch.columns is None
    assert_same(batch.frame, frame.iloc[0:1])
    attrs = pd.DataFrame({"a": [1.0]})
    attrs.attrs["unit"] = "C"
    assert Batch.rows_of(attrs, 0, 1).columns is None


def test_batch_api_is_that_of_a_frame_batch() -> None:
    frame = pd.DataFrame({"sensor": ["a", "b"], "value": [1.0, 2.0]})
    old = Batch(frame, "t", "src", 5.0)
    assert (old.frame is frame, old.topic, old.origin, old.created, old.port, old.error) == (
        True, "t", "src", 5.0, "in", None,
    )  # fmt: skip
    assert len(old) == 2 and old.columns is None
    assert Batch(frame, created=None).created > 0  # now, as the dataclass default was
    derived = old.derive(frame.iloc[:1], "n")
    assert (len(derived), derived.topic, derived.origin, derived.created) == (1, "t", "n", 5.0)

    columns = Columns.of_frame(frame.copy())
    assert columns is not None
    new = Batch(None, "t", "src", 5.0, columns=columns)
    assert len(new) == 2 and "as columns" in repr(new)
    built = new.frame
    assert built is new.frame  # built once
    assert_same(built, frame)
    new.frame = frame.iloc[:1]  # setting a frame replaces the columns
    assert new.columns is None and len(new) == 1
    with pytest.raises(TypeError):
        Batch()
    back = pickle.loads(pickle.dumps(Batch(None, "t", columns=columns)))
    assert_same(back.frame, frame)
    assert back.topic == "t"


def test_a_fan_out_hands_each_recipient_its_own_frame() -> None:
    frame = pd.DataFrame({"value": [1.0, 2.0]})
    columns = Columns.of_frame(frame.copy())
    assert columns is not None
    batch = Batch(None, "t", "src", 5.0, columns=columns)
    first, second = batch.for_wire("n", "in", True), batch.for_wire("n", "right", False)
    assert (first.origin, first.port, second.port, first.created) == ("n", "in", "right", 5.0)
    first.frame.iloc[0, 0] = 99.0
    assert second.frame["value"].tolist() == [1.0, 2.0]
    plain = Batch(frame, "t", "src", 5.0)
    copied = plain.for_wire("n", "in", False)
    assert plain.for_wire("n", "in", True).frame is frame and copied.frame is not frame
    copied.frame.iloc[0, 0] = 7.0
    assert frame["value"].tolist() == [1.0, 2.0]


# ---- the built-in nodes: columns in, the frame path's result out ------------------------------
QUERIES = [
    "quality == 'good'",
    "value > 1200",
    "value > 1200 and sensor == 'furnace'",
    "sensor in ['ladle', 'furnace']",
    "name == 'a'",
    "kind == 'x'",  # a categorical: pandas' isin
    "flag",
    "count",  # not bool: pandas decides what it means
    "timestamp > '2026-01-01T00:00:02Z'",
    "`odd name` % 2 == 0",
    "missing > 0",  # an error, pandas' own
    "value + 'a'",
]
EXPRESSIONS = [
    "value * 9 / 5 + 32",
    "value - 1200.0",
    "count // 0",
    "count * 100",
    "sensor == 'furnace'",
    "value",  # a bare column: a copy
    "timestamp",
    "name",
    "1.5",  # a constant, broadcast
    "kind == 'x'",
    "sqrt(value)",
    "missing * 2",
    "quality + 1",
]
NAMES = [*KINDS, "new", "value_f"]


def context(wired: tuple[str, ...] = ()) -> Context:
    return Context(
        "node",
        stats=NodeStats("node", "t", "transform"),
        outputs={port: [object()] for port in wired},
        sender=None,  # type: ignore[arg-type]
        log=logging.LoggerAdapter(logging.getLogger("test")),
        flow_dir=Path(),
    )


@st.composite
def nodes(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["filter", "compute", "select", "rename", "switch", "change"]))
    if kind == "filter":
        wired = draw(st.sampled_from([(), ("rejected",)]))
        return Filter(FilterConfig(query=draw(st.sampled_from(QUERIES))), context(wired))
    if kind == "compute":
        names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
        columns = {n: draw(st.sampled_from(EXPRESSIONS)) for n in names}
        return Compute(ComputeConfig(columns=columns), context())
    if kind == "select":
        chosen = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4))
        config = SelectConfig(
            columns=chosen, drop=draw(st.booleans()), missing_ok=draw(st.booleans())
        )
        return Select(config, context())
    if kind == "rename":
        old = draw(st.lists(st.sampled_from(NAMES), max_size=3, unique=True))
        columns = {o: draw(st.sampled_from(NAMES)) for o in old}
        sensors = draw(st.sampled_from([{}, {"furnace": "F"}, {"ladle": "L", "furnace": "ladle"}]))
        return Rename(RenameConfig(columns=columns, sensors=sensors), context())
    if kind == "switch":
        rules = draw(st.lists(st.sampled_from(QUERIES), min_size=1, max_size=3, unique=True))
        mode = draw(st.sampled_from(["first", "all"]))
        config = SwitchConfig(rules={f"r{i}": q for i, q in enumerate(rules)}, mode=mode)
        return Switch(config, context())
    operations = draw(
        st.lists(
            st.sampled_from(
                [
                    {"op": "set", "column": "new", "expr": "value * 2"},
                    {"op": "set", "column": "unit", "value": "C"},
                    {"op": "delete", "columns": ["quality", "missing"]},
                    {"op": "move", "column": "value", "to": "v"},
                    {"op": "scale", "unit": "degC->degF"},
                    {"op": "set", "column": "quality", "value": True},
                    {"op": "set", "column": "n", "value": 3},
                    {"op": "set", "column": "v", "value": [1.0]},
                    {"op": "set", "column": "new", "expr": "missing + 1"},
                    {"op": "move", "column": "missing", "to": "v"},
                    {"op": "move", "column": "sensor", "to": "sensor"},
                    {"op": "move", "column": "sensor", "to": "name"},
                    {"op": "scale", "column": "count", "factor": 2.0, "offset": 1.0},
                    {"op": "scale", "column": "flag", "factor": 2.0},
                    {"op": "scale", "column": "name", "factor": 2.0},
                    {"op": "convert", "column": "count", "dtype": "float"},
                    {"op": "convert", "column": "timestamp", "dtype": "str"},
                    {"op": "convert", "column": "quality", "dtype": "number"},
                    {"op": "convert", "column": "flag", "dtype": "int"},
                    {"op": "convert", "column": "value", "dtype": "datetime"},
                ]
            ),
            min_size=1,
            max_size=3,
        )
    )
    return Change(ChangeConfig(operations=operations), context())


def outcome(node: Any, batch: Batch) -> Any:
    try:
        return node.process(batch)
    except Exception as exc:
        return exc


def shape(result: Any) -> str:
    """How a node answered: columns, a frame, per port, nothing, or an error."""
    if isinstance(result, dict):
        return "ports of " + ",".join(sorted({shape(v) for v in result.values()}))
    if isinstance(result, Batch):
        return "columns" if result._frame is None else "batch of a frame"
    return "error" if isinstance(result, Exception) else type(result).__name__


def frames_of(result: Any) -> Any:
    """A result with every batch as the frame it stands for (ports kept)."""
    if isinstance(result, dict):
        return {port: frames_of(value) for port, value in result.items()}
    if isinstance(result, Batch):
        return result.frame
    return result


def assert_same_result(got: Any, expected: Any) -> None:
    if isinstance(expected, Exception):
        assert type(got) is type(expected) and str(got) == str(expected), (got, expected)
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and list(got) == list(expected)
        for port in expected:
            assert_same_result(got[port], expected[port])
    elif expected is None:
        assert got is None
    else:
        assert_same(got, expected)


@settings(
    max_examples=600, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(case=frames(), chain=st.lists(nodes(), min_size=1, max_size=4))
def test_built_in_nodes_on_columns_give_the_frame_paths_result(
    case: tuple[pd.DataFrame, int, int], chain: list[Any]
) -> None:
    frame, start, stop = case
    frame = frame.iloc[start:stop]
    columns = Columns.of_frame(frame)
    assert columns is not None
    on_frames, on_columns = (
        Batch(frame, "t", "src", 5.0),
        Batch(None, "t", "src", 5.0, columns=columns),
    )
    for node in chain:
        expected = outcome(node, on_frames)
        got = outcome(node, on_columns)
        event(f"{type(node).__name__}: {shape(got)}")
        assert_same_result(frames_of(got), frames_of(expected))
        if isinstance(got, Batch):
            assert (got.topic, got.origin, got.created) == ("t", "node", 5.0)
        if not isinstance(expected, pd.DataFrame) or not isinstance(got, Batch | pd.DataFrame):
            return  # a mapping, nothing or an error: this chain ends here
        on_frames = on_frames.derive(expected, "node")
        on_columns = got if isinstance(got, Batch) else on_columns.derive(got, "node")
