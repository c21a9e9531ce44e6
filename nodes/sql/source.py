"""SQL source: poll a query with bound parameters and a persisted incremental watermark."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from flowengine.logs import RateLimiter
from flowengine.node import NodeConfig, Source, option
from flowengine.nodes.sql.client import SqlClient, beside_flow
from flowengine.nodes.sql.config import SqlUrl, connection_field
from flowengine.nodes.sql.readings import readings
from flowengine.types import Batch, NonFinite


class SqlInConfig(NodeConfig):
    connection_string: SqlUrl = connection_field("reader")
    query: str = option(
        description="SELECT with :name parameters; with a watermark use :last_<column>.",
        examples=["SELECT * FROM readings WHERE timestamp > :last_timestamp ORDER BY timestamp"],
        widget="code",
    )
    params: dict[str, Any] = option({}, description="Bound parameters (never formatted into SQL).")
    poll_interval: float = option(30.0, ge=0, description="Seconds between polls.")
    watermark_column: str | None = option(
        None, description="Column whose largest value read is bound as :last_<column> next time."
    )
    initial: Any = option(
        None, description="Watermark before the first row (ISO time, number or text)."
    )
    polls: int | None = option(None, ge=1, description="Polls before the source ends.")
    non_finite: NonFinite = option(
        "bad",
        description="For a result in the long format (timestamp, sensor, value): a NaN, "
        "+/-Infinity or NULL value: `bad` keeps the row with quality `bad`, `error` sends it "
        "to the error port, `keep` marks it `good`. A NULL timestamp is the poll time with "
        "quality `bad`; a value or timestamp that cannot be read sends the row to the error port.",
    )


def _dump(value: Any) -> dict[str, Any]:
    if isinstance(value, datetime):
        return {"type": "datetime", "value": pd.Timestamp(value).isoformat()}
    return {"type": "plain", "value": value.item() if hasattr(value, "item") else value}


def _plain(value: Any) -> Any:
    """A Python value drivers can bind (numpy scalars and pandas timestamps are not all)."""
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value.item() if hasattr(value, "item") else value


def _load(state: dict[str, Any]) -> Any:
    value = state["value"]
    return pd.Timestamp(value).to_pydatetime() if state["type"] == "datetime" else value


def _mark(value: Any) -> Any:
    """A watermark as written (``initial``, a test's ``given.watermark``): ISO text is a time,
    anything else stays as it is."""
    if isinstance(value, str):
        try:
            return pd.Timestamp(value).to_pydatetime()
        except ValueError:
            return value
    return _plain(value)


class SqlIn(Source[SqlInConfig]):
    """Poll a query; with `watermark_column`, each row is read once across restarts.

    The watermark is the node's state: a checkpoint keeps it with the batches it covers, and
    a test seeds it (`given.watermark`). It is also kept in a file beside the flow, so a flow
    without checkpoints goes on where it was too.

    A result in the long format (timestamp, sensor, value) is read as readings: float values,
    a `quality` column, rows that are no reading to the error port (see `non_finite`).
    """

    icon = "storage"
    io = True  # replaced by a feeder/capture in `flowengine test`
    requires = (("sqlalchemy", "sql"),)
    state_attrs = ("watermark",)
    client: SqlClient | None = None
    state_path: Path
    watermark: Any = None
    #: True once the watermark is known (read at the first start, restored, or seeded): a
    #: reconnect goes on from it.
    _has_mark: bool = False
    #: Polls made so far; kept across restarts so `polls` counts them all.
    _done: int = 0
    limiter: RateLimiter

    async def start(self) -> None:
        self.limiter = RateLimiter(5.0)
        self.client = SqlClient(beside_flow(self.config.connection_string, self.ctx.flow_dir))
        await self.client.ping()
        self.state_path = self.ctx.flow_dir / ".flowengine-state" / f"{self.ctx.node_id}.json"
        if not self._has_mark:
            self.watermark, self._has_mark = self._initial(), True

    def restore(self, state: Any) -> None:
        """Take the watermark of a checkpoint or a test (ISO text is a time, as `initial`)."""
        if not isinstance(state, dict) or set(state) != {"watermark"}:
            raise ValueError("sql_in's state is {watermark: VALUE}")
        self.watermark, self._has_mark = _mark(state["watermark"]), True

    def _initial(self) -> Any:
        """The watermark in the file of the last run, else `initial`."""
        if self.state_path.exists():
            return _load(json.loads(self.state_path.read_text()))
        return _mark(self.config.initial)

    def _persist(self) -> None:
        """Write the watermark atomically (temp file + rename): never half a state file."""
        path: Path = self.state_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"column": self.config.watermark_column, **_dump(self.watermark)})
        )
        os.replace(tmp, path)

    async def run(self) -> None:
        cfg = self.config
        column = cfg.watermark_column
        assert self.client is not None  # the runtime calls start first
        while cfg.polls is None or self._done < cfg.polls:
            if self._done:
                await self.ctx.clock.sleep(cfg.poll_interval)
            params = dict(cfg.params)
            if column:
                params[f"last_{column}"] = self.watermark
            frame = await self.client.query(cfg.query, params)
            self._done += 1
            if frame.empty:
                continue
            if not column:
                await self._send(frame)
                continue
            if column not in frame:
                raise ValueError(f"query result has no watermark column '{column}'")
            # moved before the send, so that a checkpoint of this batch holds its watermark;
            # taken back if the send fails, so the rows are read again
            before, self.watermark = self.watermark, _plain(frame[column].max())
            try:
                await self._send(frame)
            except BaseException:
                self.watermark = before
                raise
            await asyncio.to_thread(self._persist)

    async def _send(self, frame: pd.DataFrame) -> None:
        """Rows to ``out``; rows that are no reading to ``error``, each counted as an error of
        this node and in the ``bad_rows`` counter, logged rate-limited."""
        rows, errors = readings(frame, self.config.non_finite, self.ctx.clock.now())
        if errors is None:
            await self.ctx.send(rows)
            return
        reason = str(errors["error"].iloc[-1])
        self.ctx.error(f"RowError: {reason}", len(errors))
        self.ctx.count("bad_rows", len(errors))
        self.limiter.log(
            self.ctx.log, logging.WARNING, lambda: f"{len(errors)} bad row(s): {reason}"
        )
        result: dict[str, pd.DataFrame | Batch] = {
            "error": Batch(errors, origin=self.ctx.node_id, error="row is no reading")
        }
        if not rows.empty:
            result["out"] = rows
        await self.ctx.send(result)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
