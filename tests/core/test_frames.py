"""Frame edits give pandas' frames (values, dtypes, index, column index, attrs) and keep
copy-on-write: writing to a result never changes the frame it came from, nor the reverse."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowengine import frames
from flowengine.frames import Edits, take_rows

KINDS = {
    "timestamp": lambda n: pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC"),
    "sensor": lambda n: np.array([f"s{i % 3}" for i in range(n)], dtype=object),
    "value": lambda n: np.linspace(0.0, 1.0, n),
    "quality": lambda n: np.array(["good", None] * n, dtype=object)[:n],
    "count": lambda n: np.arange(n, dtype="int8"),
    "name": lambda n: pd.array([f"n{i}" for i in range(n)], dtype="str"),
    "flag": lambda n: np.arange(n) % 2 == 0,
    "odd name": lambda n: np.arange(n, dtype="uint16"),
}


@st.composite
def frames_(draw: st.DrawFn) -> pd.DataFrame:
    """A frame of some of the kinds, in any order, maybe a row slice of a bigger one (the way a
    source hands on batches), maybe with attrs."""
    names = draw(st.lists(st.sampled_from(list(KINDS)), min_size=1, max_size=8, unique=True))
    n = draw(st.integers(0, 6))
    start = draw(st.integers(0, 3))
    whole = pd.DataFrame({name: KINDS[name](n + start) for name in names})
    frame = whole.iloc[start:] if draw(st.booleans()) else whole.iloc[start:].copy()
    if draw(st.booleans()):
        frame.attrs["unit"] = "degC"
    return frame


def assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert got.columns.dtype == expected.columns.dtype
    assert got.attrs == expected.attrs


def assert_independent(result: pd.DataFrame, source: pd.DataFrame) -> None:
    """Writing into either frame leaves the other as it was (copy-on-write)."""
    before = source.copy(deep=True)
    if len(result.index) > 1:
        for j in range(len(result.columns)):
            result.iat[0, j] = result.iat[-1, j]
    assert_same(source, before)


@settings(max_examples=300, deadline=None, database=None)
@given(frame=frames_(), data=st.data())
def test_edits_equal_pandas_and_keep_copy_on_write(
    frame: pd.DataFrame, data: st.DataObject
) -> None:
    edits = Edits()
    labels = list(frame.columns)
    picked = data.draw(st.lists(st.sampled_from(labels), max_size=len(labels), unique=True))
    mapping = {label: data.draw(st.sampled_from(["x", "value", "y y"])) for label in picked[:2]}
    values = np.arange(len(frame.index), dtype="float64") * 1.5
    target = data.draw(st.sampled_from([*labels, "new"]))
    cases = [
        (lambda: edits.select(frame, picked), lambda: frame[picked]),
        (lambda: edits.drop(frame, picked), lambda: frame.drop(columns=picked)),
        (lambda: edits.rename(frame, mapping), lambda: frame.rename(columns=mapping)),
        (
            lambda: edits.assign(frame, target, values),
            lambda: frame.assign(**{target: pd.Series(values, index=frame.index)}),
        ),
    ]
    for fast, public in cases:
        for _ in range(2):  # the second time from the cached column index
            got = fast()
            assert_same(got, public())
        assert_independent(got, frame)
        assert_independent(frame.copy(deep=False), got)


@settings(max_examples=150, deadline=None, database=None)
@given(frame=frames_(), data=st.data())
def test_take_rows_is_a_boolean_mask(frame: pd.DataFrame, data: st.DataObject) -> None:
    n = len(frame.index)
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    got = take_rows(frame, mask)
    if not mask.any() and n:
        assert got is None  # nothing kept: nothing sent
    else:
        assert_same(got, frame[mask])


def test_a_bare_column_assigned_elsewhere_is_copied() -> None:
    frame = pd.DataFrame({"value": [1.0, 2.0]})
    out = Edits().assign(frame, "copy", frames.column(frame, "value"))
    out.loc[0, "copy"] = -1.0
    assert frame["value"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame([[1, 2]], columns=["a", "a"]),  # duplicated labels
        pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "x"), ("b", "y")])),
    ],
)
def test_unusual_columns_take_the_public_methods(frame: pd.DataFrame) -> None:
    edits = Edits()
    assert_same(edits.rename(frame, {"a": "z"}), frame.rename(columns={"a": "z"}))
    assert_same(edits.assign(frame, "b", np.array([5])), frame.assign(b=5))


def test_the_fast_path_is_on_for_this_pandas() -> None:
    assert frames._fast(pd.DataFrame({"a": [1]})), "the self-check failed: edits are slow"
