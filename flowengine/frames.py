"""Frame edits for the built-in nodes at pandas' results without pandas' fixed cost per call.

On a 1-row frame ``frame[cols]`` costs ~300 us, ``rename`` ~200 us and ``assign`` ~70 us,
almost all of it rebuilding the same column index (string indexes are Arrow-backed in pandas 3)
and checking what cannot change. The frames of one stream share their column index (a source
slices them from one block; these edits hand on the index they made), so :class:`Edits`
derives each new column index once per input index and rebuilds only the block manager,
with pandas' own manager methods (shallow block copies keep copy-on-write references).

The results equal pandas' (values, dtypes, index, column index and its dtype, attrs); the
module checks that on first use against the public methods and uses those if anything
differs (another pandas), as it does for subclasses and MultiIndex columns.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

_Internals = dict[str, Any]
_INTERNALS: _Internals | None = None
_CHECKED: bool | None = None


def _column_at(frame: pd.DataFrame, i: int) -> Any:
    return frame.iloc[:, i]._values


#: The i-th column's values as a Series of it holds them (ndarray or extension array; a view).
column_at: Callable[[pd.DataFrame, int], Any] = getattr(
    pd.DataFrame, "_get_column_array", _column_at
)


def column(frame: pd.DataFrame, label: Hashable) -> Any:
    """The values of the column ``label`` (read-only), or None if it is missing or repeated."""
    try:
        loc = frame.columns.get_loc(label)
    except (KeyError, TypeError):
        return None
    return column_at(frame, loc) if type(loc) is int else None


def same_labels(a: pd.Index, b: pd.Index) -> bool:
    """True when ``b`` holds ``a``'s labels: the same index, or a view of the same labels (each
    row slice of a frame gets its own view of the column index)."""
    return a is b or (
        getattr(a, "_data", a) is getattr(b, "_data", b) and a.name == b.name and type(a) is type(b)
    )


def take_rows(frame: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame | None:
    """``frame[mask]`` for a boolean array; None when no row is kept (an empty frame is dropped
    by the runtime anyway), ``frame`` itself when every row is (frames are read-only)."""
    if mask.all():
        return frame
    if not mask.any():
        return None
    return frame.take(np.flatnonzero(mask))


def _load() -> _Internals | None:
    try:
        blocks = importlib.import_module("pandas.core.internals.blocks")
        managers = importlib.import_module("pandas.core.internals.managers")
        placement = importlib.import_module("pandas._libs.internals").BlockPlacement
    except (ImportError, AttributeError):  # pragma: no cover - another pandas layout
        return None
    return {
        "new_block": blocks.new_block_2d,
        "manager": managers.BlockManager,
        "placement": placement,
    }


def _fast(frame: pd.DataFrame) -> bool:
    """Whether the manager-level edits apply to ``frame`` (checked once per process)."""
    global _CHECKED, _INTERNALS
    if _CHECKED is None:
        _INTERNALS = _load()
        _CHECKED = _INTERNALS is not None  # provisionally: the check runs the edits
        _CHECKED = _CHECKED and _self_check()
    return _CHECKED and type(frame) is pd.DataFrame and not isinstance(frame.columns, pd.MultiIndex)


def _from_mgr(mgr: Any, like: pd.DataFrame) -> pd.DataFrame:
    """A frame of ``mgr`` with ``like``'s attrs and flags, as pandas' methods carry them."""
    frame: pd.DataFrame = pd.DataFrame._from_mgr(mgr, axes=mgr.axes)  # type: ignore[attr-defined]
    if like.attrs or not like.flags.allows_duplicate_labels:
        carried: pd.DataFrame = frame.__finalize__(like)  # type: ignore[operator]
        return carried
    return frame


def _shallow(mgr: Any, items: pd.Index, extra: tuple[Any, ...] = ()) -> Any:
    """A manager sharing ``mgr``'s blocks (copy-on-write references), labelled ``items``."""
    assert _INTERNALS is not None
    blocks = (*(blk.copy(deep=False) for blk in mgr.blocks), *extra)
    return _INTERNALS["manager"](blocks, [items, mgr.axes[1]], verify_integrity=False)


class Edits:
    """Column edits of one node, each new column index derived once per input column index."""

    def __init__(self) -> None:
        self._derived: dict[Hashable, tuple[pd.Index, Any]] = {}

    def _derive(self, key: Hashable, columns: pd.Index, make: Callable[[pd.Index], Any]) -> Any:
        cached = self._derived.get(key)
        if cached is None or not same_labels(cached[0], columns):
            cached = self._derived[key] = (columns, make(columns))
        return cached[1]

    def select(self, frame: pd.DataFrame, labels: Sequence[Hashable]) -> pd.DataFrame:
        """``frame[labels]`` for labels that are unique columns of ``frame``."""
        if not _fast(frame) or not frame.columns.is_unique:
            return frame[list(labels)]

        def make(columns: pd.Index) -> tuple[pd.Index, np.ndarray]:
            indexer = columns.get_indexer(list(labels))  # type: ignore[arg-type]
            return columns.take(indexer), indexer

        items, indexer = self._derive(("select", *labels), frame.columns, make)
        return _from_mgr(_pick(frame._mgr, items, indexer), frame)  # type: ignore[attr-defined]

    def drop(self, frame: pd.DataFrame, labels: Sequence[Hashable]) -> pd.DataFrame:
        """``frame.drop(columns=labels)`` for labels that are unique columns of ``frame``."""
        if not _fast(frame) or not frame.columns.is_unique:
            return frame.drop(columns=list(labels))

        def make(columns: pd.Index) -> tuple[pd.Index, np.ndarray]:
            kept = columns.drop(list(labels))
            return kept, columns.get_indexer(kept)

        items, indexer = self._derive(("drop", *labels), frame.columns, make)
        return _from_mgr(_pick(frame._mgr, items, indexer), frame)  # type: ignore[attr-defined]

    def rename(self, frame: pd.DataFrame, mapping: Mapping[Any, Hashable]) -> pd.DataFrame:
        """``frame.rename(columns=mapping)``."""
        if not _fast(frame):
            return frame.rename(columns=dict(mapping))
        key = ("rename", *mapping.items())
        items = self._derive(key, frame.columns, lambda c: _renamed(c, mapping))
        return _from_mgr(_shallow(frame._mgr, items), frame)  # type: ignore[attr-defined]

    def assign(self, frame: pd.DataFrame, name: Hashable, values: Any) -> pd.DataFrame:
        """``frame.assign(name=pd.Series(values, index=frame.index))`` for ``len(frame)``
        values: a new column last, an existing one replaced in place."""
        if not (_fast(frame) and type(values) is np.ndarray and values.ndim == 1):
            return frame.assign(**{str(name): _series(values, frame)})
        if values.base is not None:
            values = values.copy()  # a view (of this frame, maybe): never share it untracked
        columns = frame.columns
        mgr = frame._mgr  # type: ignore[attr-defined]
        loc = columns.get_loc(name) if name in columns else None
        if loc is not None:
            if type(loc) is not int:
                return frame.assign(**{str(name): _series(values, frame)})
            new = mgr.copy(deep=False)
            new.iset(loc, values)
            return _from_mgr(new, frame)
        assert _INTERNALS is not None
        items = self._derive(("assign", name), columns, lambda c: c.insert(len(c), name))
        n = len(columns)
        block = _INTERNALS["new_block"](
            values.reshape(1, -1), placement=_INTERNALS["placement"](slice(n, n + 1))
        )
        return _from_mgr(_shallow(mgr, items, (block,)), frame)


def _pick(mgr: Any, items: pd.Index, indexer: np.ndarray) -> Any:
    """A manager of the columns at ``indexer`` (named ``items``): a view of each, one block
    per column (what ``reindex_indexer(only_slice=True)`` builds, without its generality)."""
    assert _INTERNALS is not None
    placement, blocks = _INTERNALS["placement"], mgr.blocks
    rows = zip(mgr.blknos[indexer].tolist(), mgr.blklocs[indexer].tolist(), strict=True)
    picked = []
    for j, (b, r) in enumerate(rows):
        blk, where = blocks[b], placement(slice(j, j + 1))
        if len(blk.mgr_locs) == 1:  # the whole block: its values, as a shallow copy has them
            picked.append(type(blk)(blk.values, placement=where, ndim=2, refs=blk.refs))
        else:
            picked.append(blk.getitem_block_columns(slice(r, r + 1), where))
    return _INTERNALS["manager"](tuple(picked), [items, mgr.axes[1]], verify_integrity=False)


def _series(values: Any, frame: pd.DataFrame) -> pd.Series:
    """A copy: ``values`` may be another frame's column, untracked by copy-on-write."""
    return pd.Series(values, index=frame.index, dtype=getattr(values, "dtype", None), copy=True)


def _renamed(columns: pd.Index, mapping: Mapping[Any, Hashable]) -> pd.Index:
    """The column index ``rename(columns=mapping)`` makes (pandas infers its dtype anew)."""
    return pd.DataFrame(columns=columns).rename(columns=dict(mapping)).columns


def _self_check() -> bool:
    """The manager-level edits give what the public methods give, on every kind of column."""
    frame = pd.DataFrame(
        {
            "t": pd.to_datetime(["2026-01-01", None], utc=True),  # type: ignore[arg-type]
            "s": np.array(["a", None], dtype=object),
            "v": [1.5, np.nan],
            "n": np.array([1, 2], dtype="int8"),
            "w": pd.array(["x", None], dtype="str"),
            "v2": [2.0, 3.0],
        },
        index=pd.RangeIndex(3, 5),
    ).iloc[:2]
    frame.attrs["unit"] = "C"
    edits = Edits()
    values = np.array([7.0, 8.0])
    pairs = [
        (edits.select(frame, ["v", "t", "w"]), frame[["v", "t", "w"]]),
        (edits.drop(frame, ["s", "v2"]), frame.drop(columns=["s", "v2"])),
        (edits.rename(frame, {"v": "value", "x": "y"}), frame.rename(columns={"v": "value"})),
        (edits.assign(frame, "new", values), frame.assign(new=pd.Series(values, frame.index))),
        (edits.assign(frame, "n", values), frame.assign(n=pd.Series(values, frame.index))),
    ]
    try:
        for got, expected in pairs:
            pd.testing.assert_frame_equal(got, expected, check_exact=True)
            assert got.columns.dtype == expected.columns.dtype and got.attrs == expected.attrs
            got.iloc[0, 0] = None  # copy-on-write: the source frame stays as it was
        assert frame["v"].iloc[0] == 1.5 and frame["t"].notna().iloc[0]
    except Exception:  # pragma: no cover - another pandas: the public methods it is
        return False
    return True
