"""The vectorised checks behind `schema`: declared types per column and the first failing rule
per row, kept apart from the node so that the type rules read (and test) on their own.

Every check works on whole columns (numpy masks, pandas casts); only object columns, which hold
Python objects anyway, are looked at element by element, and then only through ``map(type)``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Literal, TypeAlias

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

Dtype: TypeAlias = Literal["float", "int", "str", "bool", "datetime"]

#: Rule names, in the order a row is checked: a violating row reports the first that fails.
RULES = ("null", "dtype", "not_finite", "quality", "unit", "not_number", "below_min", "above_max")
#: Rules about the whole batch (a column missing or not allowed): every row goes to `error`.
BATCH_RULES = ("missing_column", "unexpected_column")

_NUMBER_TYPES: list[type] = [int, float, *(np.dtype(c).type for c in "bBhHiIlLqQefdg")]
_INT_TYPES: list[type] = [int, *(np.dtype(c).type for c in "bBhHiIlLqQ")]
_BOOL_TYPES: list[type] = [bool, np.bool_]
_STR_TYPES: list[type] = [str, np.str_]
_TIME_TYPES: list[type] = [pd.Timestamp, dt.datetime, np.datetime64]
_BOOL_WORDS = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False}
_BOOL_WORDS |= {"1": True, "0": False}
#: Floats beyond this do not fit an int64.
_INT_LIMIT = 2.0**63


class Verdicts:
    """The first failing rule of each row: a rule code (0: none yet) and its message."""

    def __init__(self, rows: int) -> None:
        self.code = np.zeros(rows, dtype=np.int8)
        self.text = np.full(rows, None, dtype=object)

    def add(self, rule: str, mask: np.ndarray, message: np.ndarray | str) -> None:
        """Rows in ``mask`` fail ``rule`` unless an earlier rule failed them; ``message`` has
        one text per row of ``mask`` (or one for all)."""
        hit = mask & (self.code == 0)
        if not hit.any():
            return
        self.code[hit] = RULES.index(rule) + 1
        if isinstance(message, str):
            self.text[hit] = message
        else:
            self.text[hit] = np.asarray(message, dtype=object)[hit[mask]]

    @property
    def ok(self) -> np.ndarray:
        return self.code == 0

    def counts(self) -> dict[str, int]:
        """Violating rows per rule name (rules without any left out)."""
        tally = np.bincount(self.code, minlength=len(RULES) + 1)
        return {rule: int(n) for rule, n in zip(RULES, tally[1:], strict=True) if n}


def text(values: pd.Series, quote: bool = True) -> np.ndarray:
    """Values as they read in a message (text quoted: ``'abc'``), as an object array, so that
    messages are built with ``+`` on arrays, never aligned on a (maybe repeated) index.

    Each distinct value is formatted once (sensor names, qualities, units repeat a lot).
    """

    def show(v: object) -> str:
        return repr(str(v)) if quote and isinstance(v, str) else str(v)

    try:
        codes, uniques = pd.factorize(values)
    except TypeError:  # unhashable values (lists, dicts): one by one
        return values.map(show).to_numpy(dtype=object)
    shown = np.array([show(v) for v in uniques] + ["None"], dtype=object)
    return shown[codes]  # a null (code -1) reads as the last: None


def number(x: float) -> str:
    """A configured limit without a spurious ``.0`` (1500, 0.5, 1e+300)."""
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


def _kinds(col: pd.Series, names: Sequence[type]) -> np.ndarray:
    """Which elements of an object column are exactly one of the types ``names``."""
    return np.asarray(col.map(type).isin(names), dtype=bool)


def _numeric(col: pd.Series, coerce: bool) -> tuple[np.ndarray, pd.Series]:
    """Bad elements (not null, not a number) of a non-numeric column and its values as floats;
    with ``coerce`` numeric text ("3.2") counts as a number."""
    notnull = col.notna().to_numpy()
    if col.dtype == object:
        numbers = _kinds(col, _NUMBER_TYPES)
        candidates = numbers | _kinds(col, _STR_TYPES) if coerce else numbers
    else:
        candidates = np.full(len(col), coerce and ptypes.is_string_dtype(col.dtype))
    values = pd.to_numeric(col.where(candidates), errors="coerce").astype("float64")
    return notnull & np.isnan(values.to_numpy()), values


def check_type(col: pd.Series, dtype: Dtype, coerce: bool) -> tuple[np.ndarray, pd.Series | None]:
    """Rows whose non-null value is not of ``dtype`` (nor castable, with ``coerce``), and the
    column cast to ``dtype`` when ``coerce`` changes it (None: leave it as it is)."""
    if dtype in ("float", "int"):
        return _check_number(col, dtype, coerce)
    if dtype == "str":
        return _check_str(col, coerce)
    if dtype == "bool":
        return _check_bool(col, coerce)
    return _check_datetime(col, coerce)


def _check_number(
    col: pd.Series, dtype: Dtype, coerce: bool
) -> tuple[np.ndarray, pd.Series | None]:
    notnull = col.notna().to_numpy()
    if ptypes.is_bool_dtype(col.dtype):
        return notnull, None  # True is no measurement
    if ptypes.is_integer_dtype(col.dtype):
        if dtype == "float" and coerce:
            return np.zeros(len(col), dtype=bool), col.astype("float64")
        return np.zeros(len(col), dtype=bool), None
    if ptypes.is_float_dtype(col.dtype):
        bad, values = np.zeros(len(col), dtype=bool), col.astype("float64")
        changed = col.dtype != np.float64
    else:
        (bad, values), changed = _numeric(col, coerce), True
    if dtype == "float":
        return bad, values if coerce and changed else None
    raw = values.to_numpy()
    with np.errstate(invalid="ignore"):
        fraction = np.isfinite(raw) & ((raw % 1 != 0) | (np.abs(raw) >= _INT_LIMIT))
    bad = bad | fraction | (notnull & np.isinf(raw))
    if not coerce:
        return bad, None
    cast = values.where(~bad).astype("Int64")
    ints = _kinds(col, _INT_TYPES) & ~bad if col.dtype == object else None
    if ints is not None and ints.any():  # integers (64-bit counters) stay exact, not via float
        cast = cast.astype(object)
        cast[ints] = col[ints]
        cast = cast.astype("Int64")
    return bad, cast


def _check_str(col: pd.Series, coerce: bool) -> tuple[np.ndarray, pd.Series | None]:
    notnull = col.notna().to_numpy()
    if ptypes.is_string_dtype(col.dtype) and col.dtype != object:
        return np.zeros(len(col), dtype=bool), None
    if col.dtype == object:
        fine = _kinds(col, _STR_TYPES)
        if coerce:
            fine = fine | _kinds(col, [*_NUMBER_TYPES, *_BOOL_TYPES])
    else:
        fine = np.full(len(col), coerce)  # numbers, booleans, times: text if coerced
    bad = notnull & ~fine
    return bad, col.where(~bad).astype("str") if coerce else None


def _check_bool(col: pd.Series, coerce: bool) -> tuple[np.ndarray, pd.Series | None]:
    notnull = col.notna().to_numpy()
    if ptypes.is_bool_dtype(col.dtype):
        return np.zeros(len(col), dtype=bool), None
    if not coerce:
        bools = _kinds(col, _BOOL_TYPES) if col.dtype == object else np.zeros(len(col), bool)
        return notnull & ~bools, None
    words = col.astype(object).where(lambda c: c.map(type).isin(_STR_TYPES))
    parsed = words.str.strip().str.lower().map(_BOOL_WORDS)
    numbers = pd.to_numeric(col.astype(object).where(lambda c: c.map(type).isin(_NUMBER_TYPES)))
    parsed = parsed.fillna(numbers.map({1: True, 0: False}))
    if col.dtype == object:
        bools = _kinds(col, _BOOL_TYPES)
        parsed = parsed.where(~bools, col)
    bad = notnull & parsed.isna().to_numpy()
    return bad, parsed.where(~bad).astype("boolean")


def _check_datetime(col: pd.Series, coerce: bool) -> tuple[np.ndarray, pd.Series | None]:
    notnull = col.notna().to_numpy()
    if ptypes.is_datetime64_any_dtype(col.dtype):
        return np.zeros(len(col), dtype=bool), None
    stamps = _kinds(col, _TIME_TYPES) if col.dtype == object else np.zeros(len(col), bool)
    if not coerce:
        return notnull & ~stamps, None
    if col.dtype == object:
        texts = _kinds(col, _STR_TYPES)
    else:  # numbers are no times: seconds or nanoseconds since when?
        texts = np.full(len(col), ptypes.is_string_dtype(col.dtype))
    parsed = pd.to_datetime(col.where(stamps | texts), utc=True, errors="coerce", format="ISO8601")
    bad = notnull & parsed.isna().to_numpy()
    return bad, parsed
