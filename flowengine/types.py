"""Shared types: the batch that travels along wires and the shapes a node may return."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import pandas as pd

#: The long format every connector speaks (from the seed document); extra columns are allowed.
LONG_COLUMNS = ("timestamp", "sensor", "value", "quality", "source")

NodeKind: TypeAlias = Literal["source", "transform", "sink"]
NodeState: TypeAlias = Literal["starting", "ok", "retrying", "error", "stopped"]

#: What a source does with NaN, +/-Infinity and numbers beyond a float: keep the reading with
#: ``quality: bad`` (default), send it to the error port, or keep it as good (the old way).
NonFinite: TypeAlias = Literal["bad", "error", "keep"]

#: The port every node has; a node that raises sends the failing batch here when it is wired.
ERROR_PORT = "error"


@dataclass(slots=True)
class Batch:
    """A DataFrame plus the metadata that travels with it.

    The frame is shared between recipients without copying data: nodes must treat it as
    read-only (pandas copy-on-write makes a modified copy cheap; use ``frame.assign(...)``).
    """

    frame: pd.DataFrame
    topic: str | None = None
    origin: str | None = None
    created: float = field(default_factory=time.time)
    port: str = "in"
    error: str | None = None

    def derive(self, frame: pd.DataFrame, origin: str | None = None) -> Batch:
        """A batch carrying ``frame`` with this batch's topic and creation time."""
        return Batch(frame, self.topic, origin or self.origin, self.created)

    def __len__(self) -> int:
        return len(self.frame)


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
