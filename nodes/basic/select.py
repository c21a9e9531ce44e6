"""Select: keep (or drop) named columns."""

from __future__ import annotations

from collections.abc import Callable, Collection

from flowengine.columns import Columns
from flowengine.context import Context
from flowengine.frames import Edits
from flowengine.node import NodeConfig, Transform, option
from flowengine.types import Batch, Result


class SelectConfig(NodeConfig):
    columns: list[str] = option(
        description="Columns to keep, in this order.",
        min_length=1,
        examples=[["timestamp", "sensor", "value"]],
    )
    drop: bool = option(False, description="Drop the listed columns instead of keeping them.")
    missing_ok: bool = option(False, description="Ignore listed columns a batch does not have.")


class Select(Transform[SelectConfig]):
    """Keep the listed columns (or drop them); a missing column is an error naming it."""

    icon = "view_column"

    def __init__(self, config: SelectConfig, ctx: Context) -> None:
        super().__init__(config, ctx)
        self._edits = Edits()
        #: The column names of the last batch of columns, and what to do with such a batch
        #: (a source sends the same names each time: the plan is made once).
        self._names: tuple[str, ...] | None = None
        self._pick: Callable[[Columns], Columns] | None = None

    def process(self, batch: Batch) -> Result:
        cols, cfg = batch.columns, self.config
        if cols is not None:  # the same checks and result, without a DataFrame
            if cols.names is not self._names:
                self._pick = self._plan(cols.names)
                self._names = cols.names
            if self._pick is not None:
                return batch.derive_columns(self._pick(cols), self.ctx.node_id)
        frame = batch.frame
        present = self._present(frame.columns)
        if cfg.drop:
            return self._edits.drop(frame, present)
        return self._edits.select(frame, present)

    def _plan(self, names: tuple[str, ...]) -> Callable[[Columns], Columns] | None:
        """How a batch with columns ``names`` is selected from; None: as a frame (a name
        listed twice). A missing column raises, naming it."""
        present = self._present(names)
        if self.config.drop:
            gone = set(present)
            present = [n for n in names if n not in gone]
        elif len(set(present)) < len(present):
            return None
        return Columns.picker(names, present)

    def _present(self, names: Collection[str]) -> list[str]:
        """The listed columns that ``names`` has; a missing one raises, naming it (unless
        ``missing_ok``)."""
        cfg = self.config
        present = [c for c in cfg.columns if c in names]
        if len(present) < len(cfg.columns) and not cfg.missing_ok:
            missing = [c for c in cfg.columns if c not in names]
            raise KeyError(f"missing columns {missing}; the batch has {list(names)}")
        return present
