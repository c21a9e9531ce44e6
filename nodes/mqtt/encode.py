"""``mqtt_out``'s payloads from a frame, column by column: no ``to_dict`` per row.

Each column becomes a plain list once (timestamps as ISO 8601 text for the whole column at
a time), and each row's JSON is made from those lists (orjson when installed). The result is
what the per-row encoding gave before (``plain`` and ``json.dumps``): timestamps as
``Timestamp.isoformat()``, NaN/NaT/None as null, numpy scalars as numbers, anything else JSON
has no type for as its ``str``. Frames holding +/-infinity keep the old per-row path, which
writes ``Infinity`` (orjson cannot).
"""

from __future__ import annotations

import json
import math
import string
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from flowengine.lists import PLAIN, Lists, plain_kind
from flowengine.nodes.mqtt import fastjson

Texts = list[tuple[str, bytes]]
#: Values JSON takes as they are.
_SIMPLE = {str, int, float, bool, type(None)}
#: Up to this many timestamps are written one by one (numpy's vectorised way costs ~7 us a call).
FEW = 16
_EPOCH = datetime(1970, 1, 1)
_DUMPS = fastjson.dumper(True)
_STR = frozenset((str,))
#: What missing values of extension columns become (null).
_NULL: Any = None


def plain(value: Any) -> Any:
    """JSON-ready scalars: timestamps as ISO 8601, missing values as null."""
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    missing = value is None or value is pd.NaT or value is pd.NA
    if missing or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


@lru_cache(maxsize=256)
def roots(template: str) -> tuple[str, ...]:
    """The column names a topic template uses (``{a.b}`` and ``{a[0]}`` use ``a``)."""
    names = [f for _, f, _, _ in string.Formatter().parse(template) if f]
    return tuple(dict.fromkeys(n.split(".")[0].split("[")[0] for n in names))


def iso(series: pd.Series) -> list[Any]:
    """A datetime column as ``Timestamp.isoformat()`` text (NaT as None), vectorised for
    UTC and naive columns: the fraction has 0, 6 or 9 digits as the value needs."""
    tz = getattr(series.dtype, "tz", None)
    if tz is not None and str(tz) != "UTC":
        return [plain(v) for v in series]
    ns = series.to_numpy(dtype="datetime64[ns]").view("int64")
    out = iso_ns(ns, "+00:00" if tz is not None else "")
    missing = series.isna().to_numpy()
    if missing.any():
        for i in np.flatnonzero(missing).tolist():
            out[i] = None
    return out


def iso_ns(ns: np.ndarray[Any, Any] | list[int], suffix: str) -> list[Any]:
    """Nanoseconds since the epoch as ISO 8601 text with ``suffix`` (as ``isoformat``); a few
    one by one (a list of them is not made an array)."""
    if len(ns) <= FEW:
        try:
            return [_iso_one(n, suffix) for n in (ns if isinstance(ns, list) else ns.tolist())]
        except OverflowError:  # beyond datetime's years: numpy's way
            pass
    ns = np.asarray(ns, dtype=np.int64)
    text = np.datetime_as_string(ns.view("datetime64[ns]"), unit="ns")
    whole = ns % 1_000_000_000 == 0
    micro = ns % 1000 == 0
    short = np.where(whole, text.astype("U19"), np.where(micro, text.astype("U26"), text))
    return [s + suffix for s in short.tolist()]


#: The last whole second written and its text: messages within the same second share it.
_last_second: tuple[int, str] = (0, _EPOCH.isoformat())


def _iso_one(ns: int, suffix: str) -> str:
    """One timestamp as :func:`iso_ns` writes it, without numpy's cost per call."""
    global _last_second
    seconds, fraction = divmod(ns, 1_000_000_000)
    last, text = _last_second
    if seconds != last:
        text = (_EPOCH + timedelta(seconds=seconds)).isoformat()
        _last_second = (seconds, text)
    if fraction:
        micro, nano = divmod(fraction, 1000)
        text += f".{micro:06d}" if not nano else f".{fraction:09d}"
    return text + suffix


class Infinite(ValueError):
    """A float column holds +/-infinity (which orjson cannot write as the old path did)."""


def values(series: pd.Series) -> list[Any]:
    """One column as JSON-ready Python values (see the module docstring); ``Infinite`` for a
    float column holding an infinity."""
    dtype = series.dtype
    kind = dtype.kind
    if kind == "M":
        return iso(series)
    if not isinstance(dtype, np.dtype):  # str, nullable ints, categories, ...
        listed = series.to_numpy(dtype=object, na_value=_NULL).tolist()
        if isinstance(dtype, pd.StringDtype):
            return listed
        return [v if type(v) in _SIMPLE else plain(v) for v in listed]
    if kind in "iub":
        return series.tolist()
    if kind == "f":
        array = series.to_numpy()
        if np.isinf(array).any():
            raise Infinite
        listed = array.tolist()
        if fastjson.HAVE_ORJSON:  # writes NaN as null itself
            return listed
        return [None if v != v else v for v in listed]
    return [v if type(v) is str else plain(v) for v in series.tolist()]


def texts(frame: pd.DataFrame, template: str, mode: str) -> Texts:
    """``(topic, JSON)`` per row (``rows``) or per topic (``batch``)."""
    if frame.empty:
        return []
    keys = list(frame.columns)
    try:
        columns = [values(series) for _, series in frame.items()]
    except Infinite:
        return _texts_per_row(frame, template, mode)
    return _assemble(keys, columns, template, mode, len(frame))


def texts_of_lists(lists: Lists, template: str, mode: str) -> Texts | None:
    """:func:`texts` of the frame ``lists`` makes, from the lists themselves; ``None`` when a
    column is not one plain type throughout (what pandas would make of it is left to it)."""
    n = lists.length
    if not n:
        return []
    if n == 1:  # most batches at low rates: the row itself, no column lists
        return _one_row(lists, template, mode)
    times, columns = lists.times, []
    for name, listed in lists.data.items():
        if name in times:
            columns.append(iso_ns(listed, "+00:00"))
            continue
        kind = plain_kind(listed)
        if kind is None:
            return None
        if kind is float:
            if any(map(math.isinf, listed)):
                return None  # infinities: the frame path writes them
            if not fastjson.HAVE_ORJSON:
                listed = [None if v != v else v for v in listed]
        columns.append(listed)
    return _assemble(list(lists.data), columns, template, mode, n)


def _one_row(lists: Lists, template: str, mode: str) -> Texts | None:
    """:func:`texts_of_lists` of a single row."""
    times, row = lists.times, {}
    for name, (value,) in lists.data.items():
        kind = type(value)
        if name in times:
            value = iso_ns([value], "+00:00")[0]
        elif kind not in PLAIN or (kind is float and math.isinf(value)):
            return None
        elif kind is float and value != value and not fastjson.HAVE_ORJSON:
            value = None
        row[name] = value
    topic = template
    if roots(template):
        topic = _topics(template, {k: [v] for k, v in row.items()}, 1)[0]
    dumps = _DUMPS if _STR.issuperset(map(type, row)) else fastjson.dumper(False)
    return [(topic, dumps(row if mode == "rows" else [row]))]


def _assemble(keys: list[Any], columns: list[list[Any]], template: str, mode: str, n: int) -> Texts:
    """``(topic, JSON)`` per row or per topic from JSON-ready columns."""
    topics = _topics(template, dict(zip(keys, columns, strict=True)), n)
    dumps = _DUMPS if _STR.issuperset(map(type, keys)) else fastjson.dumper(False)
    rows = zip(*columns, strict=True)
    if mode == "rows":  # each row's dict lives only while it is written
        payloads = [dumps(dict(zip(keys, row, strict=True))) for row in rows]
        return list(zip(topics, payloads, strict=True))
    grouped: dict[str, list[dict[Any, Any]]] = {}
    for topic, row in zip(topics, rows, strict=True):
        grouped.setdefault(topic, []).append(dict(zip(keys, row, strict=True)))
    return [(t, dumps(rs)) for t, rs in grouped.items()]


def _topics(template: str, by_name: dict[Any, list[Any]], n: int) -> list[str]:
    """The topic of each row: the template filled from its columns (as ``plain`` has them)."""
    names = roots(template)
    if not names:
        return [template] * n
    missing = [name for name in names if name not in by_name]
    if missing:
        raise KeyError(f"topic template column {missing[0]!r} is not in the batch")
    cols = [[None if type(v) is float and v != v else v for v in by_name[k]] for k in names]
    return [
        template.format_map(dict(zip(names, row, strict=True))) for row in zip(*cols, strict=True)
    ]


def _texts_per_row(frame: pd.DataFrame, template: str, mode: str) -> Texts:
    """The encoding before it was vectorised: one ``plain`` record per row."""
    records = [{k: plain(v) for k, v in row.items()} for row in frame.to_dict("records")]
    try:
        topics = [template.format_map(r) for r in records]
    except KeyError as exc:
        raise KeyError(f"topic template column {exc} is not in the batch") from None

    def dump(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), default=str).encode()

    if mode == "rows":
        return [(t, dump(r)) for t, r in zip(topics, records, strict=True)]
    grouped: dict[str, list[dict[Any, Any]]] = {}
    for topic, record in zip(topics, records, strict=True):
        grouped.setdefault(topic, []).append(record)
    return [(t, dump(rs)) for t, rs in grouped.items()]
