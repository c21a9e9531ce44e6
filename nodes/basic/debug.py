"""Debug: print the head of each batch, and keep the latest batches for the editor."""

from __future__ import annotations

import logging
from collections import deque
from typing import Literal

import pandas as pd

from flowengine.context import Context
from flowengine.node import NodeConfig, Sink, option
from flowengine.types import Batch


class DebugConfig(NodeConfig):
    rows: int = option(
        5, ge=0, description="Rows of each batch to print (0 prints a summary only)."
    )
    columns: list[str] | None = option(None, description="Columns to print (default all).")
    level: Literal["debug", "info", "warning"] = option(
        "info", description="Log level of the output."
    )
    keep: int = option(
        20, ge=0, advanced=True, description="Latest batches kept for the live view."
    )


class Debug(Sink[DebugConfig]):
    """Log the head of each batch (like Node-RED's debug node)."""

    icon = "bug_report"
    category = "output"

    def __init__(self, config: DebugConfig, ctx: Context) -> None:
        super().__init__(config, ctx)
        self.recent: deque[Batch] = deque(maxlen=self.config.keep or None)
        #: False mutes the node (no log, nothing kept): the editor's toggle, ``Runtime.set_debug``.
        self.active = True

    def write(self, batch: Batch) -> None:
        if not self.active:
            return
        cfg = self.config
        if cfg.keep:
            self.recent.append(batch)
        frame = batch.frame
        if cfg.columns:
            frame = frame[[c for c in cfg.columns if c in frame.columns]]
        where = f" topic={batch.topic}" if batch.topic else ""
        head = f"{len(frame)} rows from '{batch.origin}'{where}"
        if batch.error:
            head += f" error={batch.error}"
        text = head
        if cfg.rows:
            with pd.option_context("display.width", 160, "display.max_columns", 20):
                text += "\n" + frame.head(cfg.rows).to_string(index=False)
        self.ctx.log.log(logging.getLevelName(cfg.level.upper()), "%s", text)
