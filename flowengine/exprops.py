"""What each operator of a compiled expression does: pandas' result, by the cheapest way.

pandas' python engine applies Python's operators to Series: a Series holds a numpy array (or an
extension array) and, for numbers, runs the very numpy operation on it that is done here
directly. Anything else is handed to the Series operator itself (:func:`series_op`), so the
result is pandas' by construction; arithmetic on anything but numbers raises :class:`Fallback`
(pandas checks types there before it computes).
"""

from __future__ import annotations

import ast
import importlib
import operator
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd


def _load_internals() -> dict[str, Any] | None:
    """The pandas internals the compiler follows; None (always ``DataFrame.eval``) without."""
    try:
        expr = importlib.import_module("pandas.core.computation.expr")
        parsing = importlib.import_module("pandas.core.computation.parsing")
        preparse = expr._compose(
            expr._replace_locals, expr._replace_booleans, parsing.clean_backtick_quoted_toks
        )
        return {
            "preparse": lambda text: expr._preparse(text, f=preparse),
            "clean": parsing.clean_column_name,
            "mathops": frozenset(importlib.import_module("pandas.core.computation.ops").MATHOPS),
            "fill_zeros": importlib.import_module("pandas.core.ops.missing").dispatch_fill_zeros,
            "is_string_array": importlib.import_module("pandas._libs.lib").is_string_array,
            "pprint": importlib.import_module("pandas.io.formats.printing").pprint_thing,
            "rop": importlib.import_module("pandas.core.roperator"),
        }
    except (ImportError, AttributeError):  # pragma: no cover - another pandas layout
        return None


PANDAS = _load_internals()
#: Evaluates to a column array (ndarray or ExtensionArray) or a scalar, given the arrays of the
#: expression's columns and the frame's index (for the operations that run on Series; None: a
#: default index, as for arrays that are not a frame's).
Run = Callable[[list[Any], pd.Index | None], Any]


def _quiet_state() -> tuple[Any, Any] | None:
    """numpy's error state with every warning off and the context variable that holds it (numpy
    2): setting it is what ``np.errstate`` does, without its ~1.5 us of Python per call."""
    try:
        var = importlib.import_module("numpy._core._ufunc_config")._extobj_contextvar
        with np.errstate(all="ignore"):
            return var, var.get()
    except (ImportError, AttributeError):  # pragma: no cover - another numpy
        return None


_QUIET = _quiet_state()


def quietly(run: Run, columns: list[Any], index: pd.Index | None) -> Any:
    """``run(columns, index)`` with numpy's warnings off, as pandas computes arithmetic."""
    if _QUIET is None:  # pragma: no cover - another numpy
        with np.errstate(all="ignore"):
            return run(columns, index)
    var, state = _QUIET
    token = var.set(state)
    try:
        return run(columns, index)
    finally:
        var.reset(token)


class Fallback(Exception):
    """This frame needs something the compiled form does not do: pandas evaluates this call."""


def wrap(x: Any, index: pd.Index | None) -> Any:
    """``x`` as pandas holds it mid-expression: arrays as Series on the frame's index."""
    if isinstance(x, np.ndarray | pd.api.extensions.ExtensionArray):
        return pd.Series(x, index=index, dtype=x.dtype, copy=False)
    return x


def unwrap(x: Any) -> Any:
    return x._values if isinstance(x, pd.Series) else x


def series_op(op: Callable[..., Any], *args: Any, index: pd.Index | None) -> Any:
    """``op`` exactly as pandas' python engine applies it: on Series and scalars."""
    return unwrap(op(*(wrap(a, index) for a in args)))


def is_array(x: Any, kinds: str) -> bool:
    return type(x) is np.ndarray and x.dtype.kind in kinds


def is_number(x: Any) -> bool:
    return type(x) is int or type(x) is float


# ---- operators ------------------------------------------------------------------------------
def arith(op: Callable[[Any, Any], Any], rop: Callable[[Any, Any], Any], fill: bool) -> Any:
    """``+ - * / ** // %``: numpy on numbers (pandas runs the same numpy operation), pandas'
    zero-division fill for ``//`` and ``%``; other numbers through Series; the rest: Fallback."""
    assert PANDAS is not None
    fill_zeros = PANDAS["fill_zeros"]

    def apply(left: Any, right: Any, index: pd.Index | None) -> Any:
        if is_array(left, "iuf") and (is_number(right) or is_array(right, "iuf")):
            result = op(left, right)
            return fill_zeros(op, left, right, result) if fill else result
        if is_array(right, "iuf") and is_number(left):
            result = op(left, right)
            return fill_zeros(rop, right, left, result) if fill else result
        for side in (left, right):
            if not (is_array(side, "iufb") or isinstance(side, int | float | np.number)):
                raise Fallback("arithmetic on something other than numbers")
        return series_op(op, left, right, index=index)

    return apply


def compare(op: Callable[[Any, Any], Any]) -> Any:
    """Comparisons: numpy on numbers and bools, else the Series comparison."""

    def apply(left: Any, right: Any, index: pd.Index | None) -> Any:
        if is_array(left, "iufb") and (
            is_array(right, "iufb") or is_number(right) or type(right) is bool
        ):
            return op(left, right)
        if is_array(right, "iufb") and (is_number(left) or type(left) is bool):
            return op(left, right)
        return series_op(op, left, right, index=index)

    return apply


def logical(op: Callable[[Any, Any], Any]) -> Any:
    """``and``/``&``, ``or``/``|``: numpy on bools, else pandas' logical operator."""

    def apply(left: Any, right: Any, index: pd.Index | None) -> Any:
        if is_array(left, "b") and (is_array(right, "b") or type(right) is bool):
            return op(left, right)
        if is_array(right, "b") and type(left) is bool:
            return op(left, right)
        return series_op(op, left, right, index=index)

    return apply


def negate(x: Any, index: pd.Index | None) -> Any:
    if is_array(x, "iuf"):
        return -x
    if is_array(x, "b"):
        return ~x  # pandas negates a bool Series by inverting it
    return series_op(operator.neg, x, index=index)


def plus(x: Any, index: pd.Index | None) -> Any:
    if is_array(x, "iuf"):
        return +x
    if is_array(x, "b"):
        return x.copy()
    return series_op(operator.pos, x, index=index)


def invert(x: Any, index: pd.Index | None) -> Any:
    if is_array(x, "iub"):
        return ~x
    return series_op(operator.invert, x, index=index)


UNARY: dict[
    type[ast.unaryop], tuple[Callable[[Any], Any], Callable[[Any, pd.Index | None], Any]]
] = {
    ast.USub: (operator.neg, negate),
    ast.UAdd: (operator.pos, plus),
    ast.Invert: (operator.invert, invert),
    ast.Not: (operator.invert, invert),  # pandas: `not` is `~`
}


def any_equal(x: np.ndarray, values: Sequence[Any]) -> np.ndarray:
    if len(values) == 1:
        result: np.ndarray = x == values[0]
        return result
    result = np.zeros(len(x), dtype=bool)
    for value in values:
        result |= x == value
    return result


def isin(values: list[Any], negate: bool) -> Callable[[Any, pd.Index | None], Any]:
    """``isin``, as pandas rewrites ``==``/``in`` with a string or list: numpy ``==`` where it
    agrees with pandas' hash lookup (strings in an object column of strings and missing values;
    ints in an integer column; plain numbers in a float64 column), else ``Series.isin``."""
    assert PANDAS is not None
    is_string_array = PANDAS["is_string_array"]
    strings = all(type(v) is str for v in values)
    ints = all(type(v) is int for v in values)
    exact = all(
        (type(v) is float and v == v) or (type(v) is int and abs(v) < 2**53) for v in values
    )

    def apply(x: Any, index: pd.Index | None) -> Any:
        if type(x) is np.ndarray and (
            (ints and x.dtype.kind in "iu")
            or (exact and x.dtype == np.float64)
            or (strings and x.dtype == object and is_string_array(x, skipna=True))
        ):
            result = any_equal(x, values)
        else:
            result = unwrap(wrap(x, index).isin(values))
        return ~result if negate else result

    return apply


def call(fn: Callable[..., Any]) -> Callable[..., Any]:
    """pandas' math functions are numpy's ufuncs: on numbers directly, else on Series."""

    def apply(args: list[Any], index: pd.Index | None) -> Any:
        if all(is_array(a, "iufb") or isinstance(a, int | float | np.number) for a in args):
            return fn(*args)
        return series_op(fn, *args, index=index)

    return apply


@lru_cache(maxsize=256, typed=True)
def datetime_literal(value: Any) -> Any:
    """A constant compared with a datetime column, converted as pandas converts it."""
    assert PANDAS is not None
    if isinstance(value, int | float):
        value = PANDAS["pprint"](value)
    stamp = pd.Timestamp(value)
    return stamp.tz_convert("UTC") if stamp.tz is not None else stamp


def is_datetime(x: Any) -> bool:
    dtype = getattr(x, "dtype", None)
    kind = getattr(dtype, "type", None)
    return isinstance(kind, type) and issubclass(kind, datetime | np.datetime64)


ARITH: dict[type[ast.operator], tuple[Callable[[Any, Any], Any], str, bool]] = {
    ast.Add: (operator.add, "radd", False),
    ast.Sub: (operator.sub, "rsub", False),
    ast.Mult: (operator.mul, "rmul", False),
    ast.Div: (operator.truediv, "rtruediv", False),
    ast.Pow: (operator.pow, "rpow", False),
    ast.FloorDiv: (operator.floordiv, "rfloordiv", True),
    ast.Mod: (operator.mod, "rmod", True),
}
COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Gt: operator.gt,
    ast.Lt: operator.lt,
    ast.GtE: operator.ge,
    ast.LtE: operator.le,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_MEMBERSHIP = (ast.In, ast.NotIn, ast.Eq, ast.NotEq)


def converting(apply: Any, literal_left: bool, literal: Any) -> Any:
    """A comparison of a column with a constant: pandas turns the constant into a Timestamp
    when the column holds datetimes."""

    def run(left: Any, right: Any, index: pd.Index | None) -> Any:
        column = right if literal_left else left
        if is_datetime(column):
            stamp = datetime_literal(literal)
            return apply(stamp, right, index) if literal_left else apply(left, stamp, index)
        return apply(left, right, index)

    return run
