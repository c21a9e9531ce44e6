"""A batch's rows as plain column arrays, so a chain of built-in nodes skips pandas' fixed cost.

At batch size 1 every pandas operation costs 20-300 us whatever the data (``iloc``, ``assign``,
``rename``, ``frame[cols]`` rebuild indexes and block managers); the numpy work of a filter or a
computed column is ~1 us. A :class:`Columns` holds the arrays pandas would hold (an ndarray or
an extension array per column: the same dtypes), the column names and the row index, and edits
them as a dict would; :meth:`Columns.frame` builds the DataFrame the pandas path would have made
(values, dtypes, column order and index dtype, row index) when a node asks for one.

Only what is certain to come out the same is held this way: unique ``str`` labels in a column
index of pandas' default string dtype, no ``attrs``, default flags. Anything else stays a frame.
A Columns never shares memory with a frame handed to a node: :meth:`Columns.frame` copies.
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from flowengine.frames import column_at

#: The dtype pandas gives an index of str labels (``str``, Arrow-backed when pyarrow is there).
LABEL_DTYPE = pd.Index(["a"]).dtype
_LABELS: dict[tuple[str, ...], pd.Index] = {}
_LABELS_MAX = 4096
#: The frames :meth:`Columns.rows_of` slices (by id: the frame, its column index when read,
#: its columns), a few at a time (one per source that slices a frame).
_SLICED: dict[int, tuple[weakref.ref[pd.DataFrame], pd.Index, Columns | None]] = {}
_SLICED_MAX = 64
#: Whether pandas' ndarray-backed arrays slice through ``_from_backing_data`` (checked below).
_BACKED = True
_build: Callable[[list[Any], pd.Index, pd.Index], pd.DataFrame] | None = None


def labels(names: tuple[str, ...]) -> pd.Index:
    """The column index of ``names`` (one object per tuple of names, as the frames of one stream
    share theirs: :class:`flowengine.frames.Edits` then derives its edits once)."""
    found = _LABELS.get(names)
    if found is None:
        if len(_LABELS) >= _LABELS_MAX:
            _LABELS.clear()
        found = _LABELS[names] = pd.Index(list(names), dtype=LABEL_DTYPE)
    return found


def _public(arrays: list[Any], columns: pd.Index, index: pd.Index) -> pd.DataFrame:
    """The frame through pandas' public constructor (a copy of every column, no inference)."""
    data = {
        name: pd.Series(a, index=index, dtype=a.dtype, copy=True)
        for name, a in zip(columns, arrays, strict=True)
    }
    frame = pd.DataFrame(data, index=index, columns=columns, copy=False)
    return frame


def _internal(arrays: list[Any], columns: pd.Index, index: pd.Index) -> pd.DataFrame:
    """The frame from its arrays in one step (``_from_arrays``): numpy columns are stacked into
    new blocks; extension arrays are copied first, so the frame owns all its memory."""
    owned = [a if type(a) is np.ndarray else a.copy() for a in arrays]
    frame: pd.DataFrame = pd.DataFrame._from_arrays(  # type: ignore[attr-defined]
        owned, columns=columns, index=index, verify_integrity=False
    )
    return frame


def _builder() -> Callable[[list[Any], pd.Index, pd.Index], pd.DataFrame]:
    """:func:`_internal` when it gives the public constructor's frame here (checked once, on
    every kind of column, including that the frame owns its memory), else :func:`_public`."""
    global _build, _BACKED
    if _build is None:
        _build = _internal  # provisionally: the check runs it
        if not _self_check():  # pragma: no cover - another pandas
            _build, _BACKED = _public, False
    return _build


def _sliced(values: Any, start: int, stop: int) -> Any:
    """``values[start:stop]``; for an array backed by an ndarray (datetimes, categoricals) the
    way its ``__getitem__`` makes a slice, without its checks (~4 us at a time)."""
    if type(values) is np.ndarray:
        return values[start:stop]
    backing = getattr(values, "_ndarray", None)
    if type(backing) is np.ndarray and backing.ndim == 1 and _BACKED:
        return values._from_backing_data(backing[start:stop])
    return values[start:stop]


class Columns:
    """The columns of a batch: names, arrays of equal length, and the row index."""

    __slots__ = ("_index", "arrays", "length", "names")

    def __init__(
        self,
        names: tuple[str, ...],
        arrays: tuple[Any, ...],
        length: int,
        index: pd.Index | int = 0,
    ) -> None:
        self.names = names
        self.arrays = arrays
        self.length = length
        #: The row index, or where its RangeIndex starts (built only when asked for).
        self._index = index

    # ---- making ---------------------------------------------------------------------------
    @staticmethod
    def usable(frame: pd.DataFrame) -> bool:
        """Whether ``frame`` comes back the same from its columns."""
        columns = frame.columns
        return (
            type(frame) is pd.DataFrame
            and columns.dtype == LABEL_DTYPE
            and not frame.attrs
            and frame.flags.allows_duplicate_labels
            and columns.is_unique
            and type(columns) is pd.Index
        )

    @classmethod
    def of_frame(cls, frame: pd.DataFrame) -> Columns | None:
        """``frame``'s columns (views of its data: for a frame nobody else holds), or None when
        it must stay a frame."""
        if not cls.usable(frame):
            return None
        _builder()  # checks, once, that columns come back as the frames they were
        index = frame.index
        rows: pd.Index | int = index
        if type(index) is pd.RangeIndex and index.step == 1 and index.name is None:
            rows = index.start
        arrays = tuple(column_at(frame, i) for i in range(len(frame.columns)))
        return cls(tuple(frame.columns), arrays, len(index), rows)

    @classmethod
    def rows_of(cls, frame: pd.DataFrame, start: int, stop: int) -> Columns | None:
        """``frame.iloc[start:stop]`` as columns (views), or None when it must stay a frame.
        A source slicing one frame it keeps unchanged pays for reading its columns once."""
        cached = _SLICED.get(id(frame))
        if cached is None or cached[0]() is not frame or cached[1] is not frame.columns:
            if len(_SLICED) >= _SLICED_MAX:
                _SLICED.clear()
            whole = cls.of_frame(frame)
            key = id(frame)  # forgotten with the frame: its columns hold its memory
            ref = weakref.ref(frame, lambda _: _SLICED.pop(key, None))
            cached = _SLICED[key] = (ref, frame.columns, whole)
        whole = cached[2]
        return None if whole is None else whole.rows(start, stop)

    def rows(self, start: int, stop: int) -> Columns:
        """The rows ``start:stop`` (as ``iloc`` takes them): views of these arrays."""
        n = self.length
        start, stop, _ = slice(start, stop).indices(n)
        stop = max(start, stop)
        if start == 0 and stop == n:
            return self
        index = self._index
        rows = index + start if isinstance(index, int) else index[start:stop]
        return Columns(
            self.names, tuple(_sliced(a, start, stop) for a in self.arrays), stop - start, rows
        )

    # ---- reading --------------------------------------------------------------------------
    @property
    def index(self) -> pd.Index:
        """The row index (a RangeIndex unless rows were taken)."""
        index = self._index
        if type(index) is int:
            index = self._index = pd.RangeIndex(index, index + self.length)
        assert isinstance(index, pd.Index)
        return index

    def get(self, name: str) -> Any:
        """The array of column ``name`` (read-only), or None."""
        try:
            return self.arrays[self.names.index(name)]
        except ValueError:
            return None

    def frame(self) -> pd.DataFrame:
        """The DataFrame the pandas path makes of these rows: a new one, owning its memory."""
        return _builder()(list(self.arrays), labels(self.names), self.index)

    def __len__(self) -> int:
        return self.length

    # ---- editing (each returns new Columns; arrays are shared, never written) --------------
    @staticmethod
    def picker(names: tuple[str, ...], wanted: Sequence[str]) -> Callable[[Columns], Columns]:
        """A function giving the columns ``wanted`` (unique, of ``names``), in that order, of
        Columns named ``names``: ``select`` with its lookups made once."""
        out = tuple(wanted)
        positions = [names.index(n) for n in out]
        take = operator.itemgetter(*positions) if len(positions) > 1 else None

        def pick(cols: Columns) -> Columns:
            arrays = (
                take(cols.arrays) if take is not None else tuple(cols.arrays[i] for i in positions)
            )
            return Columns(out, arrays, cols.length, cols._index)

        return pick

    def drop(self, names: Iterable[str]) -> Columns:
        """Without ``names`` (columns of these)."""
        gone = set(names)
        kept = [i for i, n in enumerate(self.names) if n not in gone]
        return Columns(
            tuple(self.names[i] for i in kept),
            tuple(self.arrays[i] for i in kept),
            self.length,
            self._index,
        )

    def rename(self, mapping: Mapping[str, str]) -> Columns | None:
        """Renamed as ``rename(columns=mapping)`` does; None when that makes equal labels."""
        names = self.renamed(self.names, mapping)
        return None if names is None else self.named(names)

    @staticmethod
    def renamed(names: tuple[str, ...], mapping: Mapping[str, str]) -> tuple[str, ...] | None:
        """``names`` renamed as ``rename(columns=mapping)`` does; None when that makes equal
        labels."""
        new = tuple(mapping.get(n, n) for n in names)
        return None if len(set(new)) < len(new) else new

    def named(self, names: tuple[str, ...]) -> Columns:
        """These columns under ``names`` (as many, unique)."""
        return Columns(names, self.arrays, self.length, self._index)

    def assign(self, name: str, values: Any) -> Columns:
        """With column ``name`` set to ``values`` (``len(self)`` of them): replaced in place,
        or added last."""
        names, arrays = self.names, self.arrays
        if name in names:
            i = names.index(name)
            return Columns(names, (*arrays[:i], values, *arrays[i + 1 :]), self.length, self._index)
        return Columns(_added(names, name), (*arrays, values), self.length, self._index)

    def take(self, mask: np.ndarray) -> Columns | None:
        """The rows where ``mask`` (bool, one per row) is true: ``self`` when all are, None when
        none is (as :func:`flowengine.frames.take_rows`)."""
        kept = np.count_nonzero(mask)  # one pass (all() and any() cost ~2 us each on 1 row)
        if kept == self.length:
            return self
        if not kept:
            return None
        positions = np.flatnonzero(mask)
        arrays = tuple(a.take(positions) for a in self.arrays)
        return Columns(self.names, arrays, len(positions), self.index.take(positions))


#: ``names`` with a name added, by (id of ``names``, name): the same tuple for the same names,
#: so that a node after a ``compute`` sees the columns it saw last time (``is``) and reuses
#: what it worked out for them. Each entry holds its ``names``, so the id is not reused.
_ADDED: dict[tuple[int, str], tuple[tuple[str, ...], tuple[str, ...]]] = {}
_ADDED_MAX = 1024


def _added(names: tuple[str, ...], name: str) -> tuple[str, ...]:
    """``(*names, name)``, the same tuple each time for the same ``names`` tuple."""
    key = (id(names), name)
    known = _ADDED.get(key)
    if known is not None and known[0] is names:
        return known[1]
    if len(_ADDED) >= _ADDED_MAX:
        _ADDED.clear()
    new = (*names, name)
    _ADDED[key] = (names, new)
    return new


def _self_check() -> bool:
    """:func:`_internal` gives the public constructor's frame, and one that owns its memory."""
    base = pd.DataFrame(
        {
            "t": pd.to_datetime(["2026-01-01", None, "2026-01-02"], utc=True),  # type: ignore[arg-type]
            "s": np.array(["a", None, "c"], dtype=object),
            "v": [1.5, np.nan, 2.0],
            "n": np.array([1, 2, 3], dtype="int8"),
            "w": pd.array(["x", None, "z"], dtype="str"),
            "b": [True, False, True],
            "c": pd.Categorical(["p", "q", "p"]),
            "v2": [2.0, 3.0, 4.0],
        },
        index=pd.RangeIndex(3, 6),
    )
    before = base.copy(deep=True)
    try:
        for start, stop in ((0, 3), (1, 2)):
            cols = Columns.rows_of(base, start, stop)
            assert cols is not None
            arrays, names, index = list(cols.arrays), labels(cols.names), cols.index
            got, expected = _internal(arrays, names, index), base.iloc[start:stop]
            pd.testing.assert_frame_equal(got, expected, check_exact=True)
            pd.testing.assert_frame_equal(_public(arrays, names, index), expected, check_exact=True)
            assert got.columns.dtype == expected.columns.dtype
            for j in range(len(got.columns)):  # writing into the frame leaves the columns be
                last: Any = got.iat[len(got.index) - 1, j] if j != 6 else "q"
                got.iat[0, j] = last
                if j not in (3, 5, 6):
                    got.iat[0, j] = None
        pd.testing.assert_frame_equal(base, before, check_exact=True)
    except Exception:  # pragma: no cover - another pandas: its public constructor
        return False
    return True
