"""Shared types: the batch that travels along wires and the shapes a node may return."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias

import pandas as pd

from flowengine.columns import Columns
from flowengine.lists import Lists

#: A batch made of lists whose columns pandas would read differently: it has no columns.
_UNFIT: Any = object()

#: The long format every connector speaks (from the seed document); extra columns are allowed.
LONG_COLUMNS = ("timestamp", "sensor", "value", "quality", "source")

NodeKind: TypeAlias = Literal["source", "transform", "sink"]
NodeState: TypeAlias = Literal["starting", "ok", "retrying", "error", "stopped"]

#: What a source does with NaN, +/-Infinity and numbers beyond a float: keep the reading with
#: ``quality: bad`` (default), send it to the error port, or keep it as good (the old way).
NonFinite: TypeAlias = Literal["bad", "error", "keep"]

#: The port every node has; a node that raises sends the failing batch here when it is wired.
ERROR_PORT = "error"


class Batch:
    """A DataFrame plus the metadata that travels with it.

    The frame is shared between recipients without copying data: nodes must treat it as
    read-only (pandas copy-on-write makes a modified copy cheap; use ``frame.assign(...)``).

    A batch may carry its rows as :class:`~flowengine.columns.Columns` instead (``columns=``):
    ``frame`` is then built from them once, when first asked for, and is the frame the pandas
    path would have made. Nodes that work on columns read ``batch.columns`` when it is set and
    hand on columns, so a chain of them builds no DataFrame at all.

    Or as :class:`~flowengine.lists.Lists` (``lists=``): plain Python lists per column, as a
    source decoded them; nodes that read lists (``batch.lists``) skip the frame too.

    A new batch sent on a port with one wire is handed over as it is (``for_only_wire``): as
    with a Node-RED ``msg``, a node does not change a batch after sending it (sent again, it
    goes as a copy of what it is then).
    """

    __slots__ = (
        "_columns",
        "_frame",
        "_sent",
        "created",
        "error",
        "lists",
        "origin",
        "port",
        "topic",
    )

    def __init__(
        self,
        frame: pd.DataFrame | None = None,
        topic: str | None = None,
        origin: str | None = None,
        created: float | None = None,
        port: str = "in",
        error: str | None = None,
        *,
        columns: Columns | None = None,
        lists: Lists | None = None,
    ) -> None:
        if frame is None and columns is None and lists is None:
            raise TypeError("Batch needs a frame, columns or lists")
        self._frame = frame
        self._columns: Any = columns
        #: The rows as plain lists, when the batch was made from them (read-only, shared).
        self.lists = lists
        self.topic = topic
        self.origin = origin
        self.created = time.time() if created is None else created
        self.port = port
        self.error = error
        #: Handed to a recipient (or made for one): a later send of it sends a copy.
        self._sent = False

    @property
    def columns(self) -> Columns | None:
        """The rows as columns, when the batch was made from them (then ``frame`` is built on
        demand) or from lists that make the same frame (converted when first asked for);
        None for a batch made from a frame."""
        columns = self._columns
        if columns is None and self.lists is not None and self._frame is None:
            columns = self._columns = self.lists.columns() or _UNFIT
        return None if columns is _UNFIT else columns

    @property
    def frame(self) -> pd.DataFrame:
        frame = self._frame
        if frame is None:
            columns = self._columns
            if columns is not None and columns is not _UNFIT:
                frame = self._frame = columns.frame()
            else:
                assert self.lists is not None
                frame = self._frame = self.lists.frame()
        return frame

    @frame.setter
    def frame(self, frame: pd.DataFrame) -> None:
        self._frame, self._columns, self.lists = frame, None, None

    def derive(self, frame: pd.DataFrame, origin: str | None = None) -> Batch:
        """A batch carrying ``frame`` with this batch's topic and creation time."""
        return Batch(frame, self.topic, origin or self.origin, self.created)

    def derive_columns(self, columns: Columns, origin: str | None = None) -> Batch:
        """A batch carrying ``columns`` with this batch's topic and creation time."""
        return Batch(None, self.topic, origin or self.origin, self.created, columns=columns)

    def derive_lists(self, lists: Lists, origin: str | None = None) -> Batch:
        """A batch carrying ``lists`` with this batch's topic and creation time."""
        return Batch(None, self.topic, origin or self.origin, self.created, lists=lists)

    @classmethod
    def rows_of(
        cls,
        frame: pd.DataFrame,
        start: int,
        stop: int,
        topic: str | None = None,
        origin: str | None = None,
        created: float | None = None,
    ) -> Batch:
        """The rows ``start:stop`` of ``frame`` (which its caller keeps unchanged) as a batch:
        as columns where they give the same frame, else ``frame.iloc[start:stop]``."""
        columns = Columns.rows_of(frame, start, stop)
        if columns is None:
            return cls(frame.iloc[start:stop], topic, origin, created)
        return cls(None, topic, origin, created, columns=columns)

    def for_wire(self, origin: str | None, port: str, first: bool) -> Batch:
        """This batch as one recipient of a fan-out gets it: the first its frame itself, the
        others a shallow copy-on-write copy; a batch of columns stays one (no recipient can
        change columns, and each builds its own frame); lists likewise."""
        columns, frame, lists = self._columns, self._frame, self.lists
        if lists is not None:
            if not first:
                frame = None
            copy = Batch(frame, self.topic, origin, self.created, port, self.error, lists=lists)
            copy._columns = columns  # shared, like the lists (or None: not converted yet)
        else:
            if columns is None or (first and frame is not None):
                assert frame is not None
                frame = frame if first else frame.copy(deep=False)
            elif frame is not None:
                frame = None  # columns, and a frame only for the one who built it
            copy = Batch(frame, self.topic, origin, self.created, port, self.error, columns=columns)
        copy._sent = True
        return copy

    def shared(self) -> None:
        """Mark this batch as one that every recipient gets a copy of (see ``for_only_wire``)."""
        self._sent = True

    def for_only_wire(self, origin: str | None, port: str) -> Batch:
        """This batch as the only recipient of a send gets it: the batch itself (its origin and
        port set) the first time it is sent, which is most of the time (a node's new batch);
        else as ``for_wire`` gives it to the first."""
        if self._sent:
            return self.for_wire(origin, port, True)
        self._sent = True
        self.origin, self.port = origin, port
        return self

    def __len__(self) -> int:
        lists = self.lists
        if lists is not None:
            return lists.length
        columns = self._columns
        if columns is not None:
            return columns.length  # type: ignore[no-any-return]
        return len(self._frame.index)  # type: ignore[union-attr]

    def __repr__(self) -> str:
        shape = " as lists" if self.lists is not None else " as columns"
        rows = f"{len(self)} rows" + (shape if self._frame is None else "")
        return (
            f"Batch({rows}, topic={self.topic!r}, origin={self.origin!r}, "
            f"created={self.created!r}, port={self.port!r}, error={self.error!r})"
        )


Emittable: TypeAlias = pd.DataFrame | Batch
#: What a transform returns (and a source's ``read``): nothing drops the batch, a frame or batch
#: goes to the ``out`` port, a mapping sends per port (a list sends several in order).
Result: TypeAlias = Emittable | Mapping[str, Emittable | Sequence[Emittable] | None] | None


def long_frame(
    timestamp: object,
    sensor: object,
    value: object,
    quality: object = "good",
    source: object = "",
    **extra: object,
) -> pd.DataFrame:
    """Build a frame in the long format with a tz-aware UTC ``timestamp`` column."""
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(timestamp, utc=True),  # type: ignore[call-overload]  # stubs lack object
            "sensor": sensor,
            "value": value,
            "quality": quality,
            "source": source,
            **extra,
        }
    )
    return frame
