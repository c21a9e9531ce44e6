"""A batch's rows as plain Python lists per column, for small batches that need no DataFrame.

A source that decodes messages one by one (MQTT JSON) holds each field as a Python list
anyway. Building a DataFrame of them costs ~0.2 ms whatever the batch size (string columns
become Arrow arrays, an index and a block manager are made), and a sink that writes rows back
out as JSON (``mqtt_out``) turns the frame into lists again. At 2,000 messages a second in
batches of one or two that fixed cost is most of the CPU. A :class:`Lists` keeps the lists; a
node that reads lists (``mqtt_out``'s encoder, a ``python`` node's ``process_row``) uses them
directly, and any other node asks ``batch.frame``, which is built from them once: the frame the
source would have sent.

Lists are shared by every recipient of a fan-out: no node may change them (make new lists).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from flowengine.columns import LABEL_DTYPE, Columns

#: Value types a column keeps as they are when all its values have one of them.
PLAIN = frozenset((str, int, float, bool))


def plain_kind(values: list[Any]) -> type | None:
    """The one plain type of all ``values`` (see ``PLAIN``), or None: several types, or
    another (pandas would read such a column its own way)."""
    kinds = set(map(type, values))
    if len(kinds) != 1:
        return None
    kind = kinds.pop()
    return kind if kind in PLAIN else None


def utc_times(nanoseconds: list[int]) -> pd.DatetimeIndex:
    """Nanoseconds since the epoch as a ``datetime64[ns, UTC]`` index."""
    array = np.array(nanoseconds, dtype=np.int64).view("M8[ns]")
    return pd.DatetimeIndex(array).tz_localize("UTC")


#: pandas' UTC (what ``Timestamp(..., tz="UTC").tz`` is).
UTC = pd.Timestamp(0, tz="UTC").tz


def _plain_utc_time(ns: int) -> pd.Timestamp:
    return pd.Timestamp(ns, tz=UTC)


def _made_utc_time() -> Any:
    """A maker of one UTC ``Timestamp`` from nanoseconds: pandas' own constructor for a value
    and resolution (half the cost of ``pd.Timestamp(ns, tz=...)``'s argument handling) when it
    gives the same timestamps here, else that constructor."""
    make = getattr(pd.Timestamp, "_from_value_and_reso", None)
    if make is None:  # pragma: no cover - another pandas
        return _plain_utc_time
    try:
        fast = partial(make, reso=10, tz=UTC)  # 10: numpy's code for nanoseconds
        probes = (0, 1, -1, 1_733_400_000_123_456_789, -(10**18) - 7, 2**62)
        same = all(
            (a := fast(ns)) == (b := _plain_utc_time(ns)) and a.tz == b.tz and a.unit == b.unit
            for ns in probes
        )
    except Exception:  # pragma: no cover - another pandas
        same = False
    return fast if same else _plain_utc_time


#: ``pd.Timestamp(ns, tz="UTC")``, faster (a ``process_row`` row's timestamps).
utc_time = _made_utc_time()


class Lists:
    """Column name -> list of values (all of ``length``), in column order. The columns named in
    ``times`` hold nanoseconds since the epoch and are ``datetime64[ns, UTC]`` in the frame;
    the others become what pandas infers from the values (``pd.DataFrame(data)``)."""

    __slots__ = ("data", "length", "times")

    def __init__(
        self, data: Mapping[str, list[Any]], length: int, times: frozenset[str] = frozenset()
    ) -> None:
        self.data = data
        self.length = length
        self.times = times

    def __len__(self) -> int:
        return self.length

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame (a RangeIndex from 0)."""
        times = self.times
        data = {
            name: (utc_times(values) if name in times else values)
            for name, values in self.data.items()
        }
        return pd.DataFrame(data, copy=False)

    def columns(self) -> Columns | None:
        """The rows as :class:`~flowengine.columns.Columns` holding the arrays :meth:`frame`
        would (for the built-in transforms, which work on columns), or None when a column is
        not one plain type throughout (what pandas makes of it is left to it)."""
        if not self.length:
            return None
        arrays: list[Any] = []
        for name, values in self.data.items():
            if type(name) is not str:
                return None
            if name in self.times:
                arrays.append(utc_times(values).array)
                continue
            kind = plain_kind(values)
            if kind is None:
                return None
            if kind is float or kind is bool:
                arrays.append(np.array(values, dtype=kind))
            elif kind is int:
                try:
                    arrays.append(np.array(values, dtype=np.int64))
                except OverflowError:
                    return None
            else:
                arrays.append(pd.array(values, dtype=LABEL_DTYPE))  # type: ignore[arg-type]
        return Columns(tuple(self.data), tuple(arrays), self.length, 0)
