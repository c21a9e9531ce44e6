"""Compiled expressions give what `DataFrame.eval` gives: same values, dtype and errors.

The property test draws frames (every dtype a flow carries, with NaN, None, NaT, zeros and
extremes) and expressions from pandas' grammar, and compares the compiled result with pandas'
on each; the cases after it pin the semantics the brief names and the fallbacks.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from flowengine import exprs
from flowengine.columns import Columns
from flowengine.exprcompile import compile_expression

# ---- frames ---------------------------------------------------------------------------------
FLOATS = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.5, 2.5, math.nan, math.inf, -math.inf, 1e300]),
    st.floats(-1e6, 1e6, allow_nan=False),
)
WORDS = st.sampled_from(["a", "b", "good", "", "a b"])
STAMPS = st.sampled_from(["2026-01-01", "2026-01-01T12:00", "2025-06-30", None])


def columns(n: int) -> dict[str, st.SearchStrategy[Any]]:
    """One strategy per column kind, each a column of ``n`` values."""

    def of(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
        return st.lists(values, min_size=n, max_size=n)

    return {
        "f": of(FLOATS).map(lambda v: np.array(v, dtype="float64")),
        "g": of(FLOATS).map(lambda v: np.array(v, dtype="float64")),
        "h": of(FLOATS).map(lambda v: np.array(v, dtype="float32")),
        "i": of(st.integers(-5, 5) | st.sampled_from([2**40, -(2**53) - 1])).map(
            lambda v: np.array(v, dtype="int64")
        ),
        "n": of(st.integers(-128, 127)).map(lambda v: np.array(v, dtype="int8")),
        "u": of(st.integers(0, 255)).map(lambda v: np.array(v, dtype="uint8")),
        "b": of(st.booleans()).map(lambda v: np.array(v, dtype=bool)),
        "o": of(WORDS | st.sampled_from([None, math.nan])).map(lambda v: np.array(v, dtype=object)),
        "m": of(WORDS | st.integers(0, 2)).map(lambda v: np.array(v, dtype=object)),
        "s": of(WORDS | st.none()).map(lambda v: pd.array(v, dtype="str")),
        "t": of(STAMPS).map(lambda v: pd.to_datetime(v, utc=True, format="ISO8601")),
        "odd name": of(st.integers(-3, 3)).map(lambda v: np.array(v, dtype="int64")),
    }


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(0, 4))
    data = {name: draw(strategy) for name, strategy in columns(n).items()}
    index = draw(st.sampled_from([pd.RangeIndex(n), pd.RangeIndex(5, 5 + n), None]))
    frame = pd.DataFrame(data, index=index if index is not None else [f"r{i}" for i in range(n)])
    return frame.astype({"o": object, "m": object})


# ---- expressions ----------------------------------------------------------------------------
NAMES = ["f", "g", "h", "i", "n", "u", "b", "o", "m", "s", "t", "`odd name`"]
CONSTANTS = [
    "0", "1", "2", "-3", "2.5", "0.0", "1e300", "True", "False", "'a'", "'good'", "''",
    "inf", "'2026-01-01'", "2026", "9007199254740993",
]  # fmt: skip
FUNCTIONS = ["sin", "abs", "sqrt", "log", "floor", "ceil", "exp", "arctan2"]


def leaves() -> st.SearchStrategy[str]:
    return st.sampled_from(NAMES) | st.sampled_from(CONSTANTS)


def compound(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """One operator over smaller expressions, parenthesized or not (pandas' precedence)."""
    arith = st.sampled_from(["+", "-", "*", "/", "**", "//", "%"])
    compare = st.sampled_from(["<", ">", "<=", ">=", "==", "!="])
    logic = st.sampled_from(["and", "or", "&", "|"])
    lists = st.lists(st.sampled_from(CONSTANTS), max_size=3).map(lambda v: f"[{', '.join(v)}]")

    def paren(text: str) -> st.SearchStrategy[str]:
        return st.sampled_from([text, f"({text})"])

    return st.one_of(
        st.tuples(inner, arith, inner).flatmap(lambda t: paren(" ".join(t))),
        st.tuples(inner, compare, inner).flatmap(lambda t: paren(" ".join(t))),
        st.tuples(inner, compare, inner, compare, inner).map(" ".join),
        st.tuples(inner, logic, inner).flatmap(lambda t: paren(" ".join(t))),
        st.tuples(st.sampled_from(["-", "+", "~", "not "]), inner).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(NAMES), st.sampled_from(["in", "not in", "==", "!="]), lists).map(
            " ".join
        ),
        st.tuples(st.sampled_from(NAMES), st.sampled_from(["==", "!="]), WORDS).map(
            lambda t: f"{t[0]} {t[1]} '{t[2]}'"
        ),
        st.tuples(st.sampled_from(FUNCTIONS), inner, inner).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})" if t[0] == "arctan2" else f"{t[0]}({t[1]})"
        ),
    )


EXPRESSIONS = st.recursive(leaves(), compound, max_leaves=6)


def outcome(compute: Any) -> Any:
    """What ``compute()`` returns, or the exception it raises; numpy's warnings off."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return compute()
    except Exception as exc:
        return exc


def assert_same(got: Any, expected: Any) -> None:
    """Equal values and dtype, NaN equal to NaN, on any array pandas returns."""
    assert got.dtype == expected.dtype, (got, expected)
    left = pd.Series(got, dtype=got.dtype, copy=False)
    right = pd.Series(expected, dtype=expected.dtype, copy=False)
    pd.testing.assert_series_equal(left, right, check_exact=True)


@settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
@given(frame=frames(), expr=EXPRESSIONS)
def test_compiled_expressions_equal_pandas_eval(frame: pd.DataFrame, expr: str) -> None:
    # pandas computes `3 ** 9007199254740993` as a Python int: a number too large to finish
    assume(not ("**" in expr and "9007199254740993" in expr))
    expected = outcome(lambda: exprs.pandas_values(frame, expr))
    whole = outcome(lambda: exprs.values(frame, expr))  # compiled, or pandas as a fallback
    if isinstance(expected, Exception):
        assert type(whole) is type(expected), f"{expr!r}: {whole!r} instead of {expected!r}"
    else:
        assert_same(whole, expected)
    program = compile_expression(expr)
    if program is None:
        event("not compiled")
        return
    columns = Columns.of_frame(frame)
    assert columns is not None
    on_columns = outcome(lambda: program.column_values(columns))
    assert not isinstance(on_columns, Exception), on_columns  # None where pandas must do it
    if on_columns is not None:
        assert not isinstance(expected, Exception), f"{expr!r}: pandas raises {expected!r}"
        assert_same(on_columns, expected)
    got = outcome(lambda: program.values(frame))
    assert (on_columns is None) == isinstance(got, Exception), (expr, got, on_columns)
    if isinstance(got, Exception):
        pandas = "pandas raises too" if isinstance(expected, Exception) else "pandas computes"
        event(f"compiled, falls back ({pandas})")
        return
    event("compiled")
    assert not isinstance(expected, Exception), f"{expr!r}: pandas raises {expected!r}"
    assert_same(got, expected)


# ---- the semantics named in the brief, pinned ----------------------------------------------
FRAME = pd.DataFrame(
    {
        "value": [1200.0, math.nan, -3.0, 0.0],
        "count": np.array([7, 0, -7, 2], dtype="int64"),
        "small": np.array([1, 2, 3, 4], dtype="int8"),
        "flag": [True, False, True, False],
        "sensor": np.array(["furnace", None, "ladle", math.nan], dtype=object),
        "name": pd.array(["a", "b", None, "a"], dtype="str"),
        "timestamp": pd.to_datetime(
            ["2026-01-01", "2026-01-02T06:00", None, "2025-12-31"], utc=True, format="ISO8601"
        ),
        "tag name": [1, 2, 3, 4],
    }
)


@pytest.mark.parametrize(
    "expr",
    [
        "value > 1000",  # NaN compares False
        "value != value",  # ... and unequal to itself
        "value * 9 / 5 + 32",
        "count / 0",  # inf, -inf and nan, as floats
        "count // 0",  # pandas fills integer division by zero with inf/nan (numpy gives 0)
        "count % 0",
        "count // 3",
        "-count % 3",
        "small * 100",  # int8 stays int8 (overflow wraps, as in pandas)
        "small + 1.5",
        "count ** 2",
        "-flag",  # pandas: the inverse of a bool column
        "flag + flag",
        "not flag and value > 0",
        "flag | (count > 0) & ~flag",  # & and | with the precedence of and/or
        "sensor == 'furnace'",  # isin: None and NaN never match
        "sensor != 'furnace'",
        "sensor in ['furnace', 'ladle']",
        "'ladle' == sensor",
        "sensor > 'g'",  # pandas compares object columns with missing values as False
        "name == 'a'",
        "name not in ['b']",
        "name >= 'b'",
        "timestamp > '2026-01-01T12:00Z'",  # a string compared with datetimes is a Timestamp
        "timestamp <= '2026-01-01T00:00+01:00'",  # converted to UTC, as pandas does
        "timestamp == '2026-01-01'",
        "1 < count <= 7",
        "abs(value - 1200) < 25",
        "sqrt(count)",
        "arctan2(value, 1)",
        "floor(value / 7)",
        "`tag name` * 2 + count",
        "value > -inf",
        "count in [0, 2]",
        "value in [0, -3.0]",
    ],
)
def test_compiled_semantics_match_pandas(expr: str) -> None:
    program = compile_expression(expr)
    assert program is not None, f"{expr!r} should compile"
    expected = outcome(lambda: exprs.pandas_values(FRAME, expr))
    assert not isinstance(expected, Exception), expected
    assert_same(outcome(lambda: program.values(FRAME)), expected)


def test_compiled_path_runs_without_dataframe_eval(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("DataFrame.eval was called")

    expected = exprs.values(FRAME, "value * 2 > count and sensor == 'furnace'")
    monkeypatch.setattr(pd.DataFrame, "eval", refuse)
    got = exprs.values(FRAME, "value * 2 > count and sensor == 'furnace'")
    assert got.tolist() == expected.tolist() == [True, False, False, False]


@pytest.mark.parametrize(
    ("expr", "frame"),
    [
        ("index > 0", FRAME),  # an index name: pandas resolves it
        ("count + 1\n", FRAME),  # compiles (one non-empty line)
        ("sensor + '_x'", FRAME),  # arithmetic on strings: pandas decides
        ("count + sensor", FRAME),  # pandas refuses object arithmetic: its error is the one
        ("value", FRAME.rename(columns={"count": "value"})),  # a duplicated label
        ("abs(value)", FRAME.assign(abs=1)),  # a column named like the function
        ("missing > 1", FRAME),  # no such column: pandas' UndefinedVariableError
        ("flag and True", FRAME),  # pandas refuses bool ops with a constant
        ("count in [inf]", FRAME),  # pandas unrolls names in lists
        ("timestamp < '2026-01-01'", FRAME),  # naive against UTC: pandas' own TypeError
    ],
)
def test_what_the_compiler_does_not_do_goes_to_pandas(
    expr: str, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = exprs.pandas_values

    def spy(frame: pd.DataFrame, expr: str) -> Any:
        calls.append(expr)
        return original(frame, expr)

    expected = outcome(lambda: original(frame, expr))
    monkeypatch.setattr(exprs, "pandas_values", spy)
    got = outcome(lambda: exprs.values(frame, expr))
    if expr == "count + 1\n":
        assert calls == [] and compile_expression(expr) is not None
    else:
        assert calls == [expr], "pandas must evaluate it"
    if isinstance(expected, Exception):
        assert type(got) is type(expected) and str(got) == str(expected)
    else:
        assert_same(got, expected)


def test_a_constant_expression_is_broadcast_like_pandas() -> None:
    assert_same(exprs.values(FRAME, "2 * 3"), pd.Series(6, index=FRAME.index)._values)
    assert exprs.evaluate(FRAME, "'x'").tolist() == ["x"] * len(FRAME)


def test_evaluate_of_a_bare_column_does_not_share_the_frame_memory() -> None:
    frame = FRAME.copy()
    series = exprs.evaluate(frame, "value")
    series.iloc[0] = -1.0
    assert frame["value"].iloc[0] == 1200.0
