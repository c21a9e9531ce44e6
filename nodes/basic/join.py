"""Join: as-of join of the `right` input onto the `left` one, within a time tolerance."""

from __future__ import annotations

import pandas as pd

from flowengine.node import NodeConfig, Transform, option
from flowengine.types import Batch, Result


class JoinConfig(NodeConfig):
    tolerance: float = option(
        gt=0, description="Seconds a right row may be older than the left row it joins."
    )
    by: str | None = option(
        None, description="Join only rows with equal values in this column.", examples=["line"]
    )
    suffix: str = option("_right", description="Added to right column names that clash.")


class Join(Transform[JoinConfig]):
    """Enrich each left row with the latest right row at or before its time.

    Right batches only update the state (the last `tolerance` seconds of right rows, by right
    time); left batches are joined against it and sent, in their own row order. A left row
    whose right partner has not arrived yet gets empty right columns: the join never waits.
    The right rows kept are the checkpointed state.
    """

    icon = "merge_type"
    state_attrs = ("_right",)

    inputs = ("left", "right")

    async def start(self) -> None:
        self._right = pd.DataFrame()

    def process(self, batch: Batch) -> Result:
        frame = batch.frame
        tolerance = pd.Timedelta(seconds=self.config.tolerance)
        if batch.port == "right":
            right = pd.concat([self._right, frame]) if len(self._right) else frame
            right = right[right["timestamp"] >= right["timestamp"].max() - tolerance]
            self._right = right.sort_values("timestamp", kind="stable").reset_index(drop=True)
            return None
        if self._right.empty:
            return frame
        left = frame.reset_index(drop=True).rename_axis("_row").reset_index()
        left = left.sort_values("timestamp", kind="stable")
        joined = pd.merge_asof(
            left,
            self._right,
            on="timestamp",
            by=self.config.by,
            tolerance=tolerance,
            direction="backward",
            suffixes=("", self.config.suffix),
        )
        return joined.sort_values("_row").drop(columns="_row").reset_index(drop=True)
