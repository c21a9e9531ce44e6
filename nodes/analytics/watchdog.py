"""Watchdog: raise an alert when a sensor, or the whole input, has sent nothing for a while.

Silence is not in the data, so this node keeps a timer of its own: the runtime has no tick hook
for transforms, and, like `batch`, the node runs a task from ``start`` that sends through
``ctx.send`` when the earliest key falls due (every batch also checks). Timeouts run on the
context's monotonic clock (``clock``), the alert records carry its wall-clock times (``wall``):
a test runs the node on a fake clock, or replaces both methods to move time by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Hashable
from typing import Any, Literal

import pandas as pd
from pydantic import field_validator, model_validator

from flowengine.node import NodeConfig, Transform, option
from flowengine.settings import parse_seconds
from flowengine.types import Batch, Result

#: The one key of `scope: source`.
WHOLE = "*"


def _span(seconds: float) -> str:
    """A silence as people say it: 0.25s, 45s, 12.5min, 2.1h."""
    if seconds < 120:
        return f"{seconds:.3g}s"
    return f"{seconds / 60:.3g}min" if seconds < 7200 else f"{seconds / 3600:.3g}h"


class WatchdogConfig(NodeConfig):
    timeout: float = option(
        description="Silence after which a key raises: seconds, or '30s', '5m', '500ms'.",
        examples=["30s"],
    )
    scope: Literal["sensor", "source"] = option(
        "sensor",
        description="`sensor`: one alert per value of `key`; `source`: one for the whole input.",
    )
    key: str = option(
        "sensor",
        description="Column whose values are watched one by one (scope `sensor`); `source` "
        "watches each source of a long-format input.",
    )
    expected: list[str] = option(
        [],
        description="Sensors that must report: one that never does raises `timeout` after "
        "the start. Others are watched from their first row on.",
        examples=[["furnace_temp", "roll_force"]],
    )
    severity: str = option("warning", description="Severity of the alert records.")
    label: str | None = option(
        None,
        description="Name of the input in messages and the `source` column (scope `source`); "
        "default the node that sends to this one.",
    )

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_seconds(value)

    @model_validator(mode="after")
    def _scope(self) -> WatchdogConfig:
        if self.scope == "source" and self.expected:
            raise ValueError("'expected' lists sensors: it needs scope 'sensor'")
        return self


class Watchdog(Transform[WatchdogConfig]):
    """Emit an alert record on `out` when a key falls silent for `timeout` (`event: raise`)
    and when its data returns (`event: clear`); only the records leave, as with `alert`.

    The records have the shape of `alert`'s: `timestamp, event, line, <key> (or source),
    severity, silent_for (seconds), since, last_seen, top_features (empty), message`.
    A checkpoint keeps, per key, how long ago it last sent (an age: a monotonic time means
    nothing after a restart), when it was last seen and its active alert, so a restart neither
    raises an alert again nor forgets one; the time the flow was down does not count as silence.
    """

    icon = "timer"
    state_attrs = ("_seen", "_last", "_active")
    _timer: asyncio.Task[None] | None = None

    def clock(self) -> float:
        """Seconds for timeouts (monotonic): the context clock's."""
        return self.ctx.clock.monotonic()

    def wall(self) -> pd.Timestamp:
        """The alert records' times: the context clock's."""
        return self.ctx.clock.now()

    async def start(self) -> None:
        now = self.clock()
        cfg = self.config
        watched = [WHOLE] if cfg.scope == "source" else cfg.expected
        #: Per key: the clock when it last sent (or when watching began, for a key never seen).
        self._seen: dict[Hashable, float] = dict.fromkeys(watched, now)
        #: Per key: the wall time of its last row and the `line` of that row.
        self._last: dict[Hashable, tuple[pd.Timestamp, Any]] = {}
        #: Per key with an active alert: when it was raised and its severity.
        self._active: dict[Hashable, tuple[pd.Timestamp, str]] = {}
        self._next_due = now + cfg.timeout if watched else math.inf
        self._origin: str | None = None
        self._arm()

    def snapshot(self) -> dict[str, Any]:
        state = super().snapshot()
        now = self.clock()
        seen = getattr(self, "_seen", {})  # not started (yet): nothing seen
        state["_seen"] = {key: now - at for key, at in seen.items()}  # ages
        return state

    def restore(self, state: Any) -> None:
        now = self.clock()
        ages = state.get("_seen", {})
        super().restore({**state, "_seen": {key: now - age for key, age in ages.items()}})
        self._next_due = now
        self._arm()  # the restored deadlines may come sooner than the one it sleeps towards

    def _arm(self) -> None:
        """(Re)start the timer task, which then sleeps towards the earliest deadline."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.create_task(self._watch(), name=f"watchdog:{self.ctx.node_id}")

    async def _watch(self) -> None:
        """Check when the earliest deadline passes, so a silent input raises without a batch."""
        timeout = self.config.timeout
        while True:
            await self.ctx.clock.sleep(min(max(self._next_due - self.clock(), 0.0), timeout))
            try:
                alerts = self.check()
                if alerts is not None:
                    await self.ctx.send(alerts)
            except Exception as exc:  # a timer task has nobody to raise to
                message = f"watchdog timer: {type(exc).__name__}: {exc}"
                self.ctx.error(message)
                self.ctx.log.error("%s", message)
                await self.ctx.clock.sleep(timeout)  # not in a tight loop if it keeps failing

    def check(self) -> pd.DataFrame | None:
        """The raise records of keys silent for `timeout` by now (None: no new alert)."""
        records = self._due(self.clock())
        return pd.DataFrame(records) if records else None

    def process(self, batch: Batch) -> Result:
        now = self.clock()
        records = self._arrived(batch, now) if not batch.frame.empty else []
        records += self._due(now)
        return pd.DataFrame(records) if records else None

    def _arrived(self, batch: Batch, now: float) -> list[dict[str, Any]]:
        """Mark the keys of ``batch`` as seen now; clear records for those that were silent."""
        cfg, frame = self.config, batch.frame
        if cfg.scope == "source":
            self._origin = batch.origin
            lines: dict[Hashable, Any] = {WHOLE: frame["line"].iloc[-1]} if "line" in frame else {}
            keys: list[Hashable] = [WHOLE]
        else:
            if cfg.key not in frame:
                raise ValueError(
                    f"no column '{cfg.key}' to tell which sensor sent a row "
                    f"(columns: {', '.join(map(str, frame.columns))})"
                )
            named = frame[frame[cfg.key].notna()]
            latest = named.drop_duplicates(cfg.key, keep="last")
            keys = latest[cfg.key].tolist()
            lines = dict(zip(keys, latest["line"].tolist(), strict=True)) if "line" in frame else {}
        stamp, records = self.wall(), []
        for key in keys:
            if key in self._active:
                since, severity = self._active.pop(key)
                gap = now - self._seen.get(key, now)
                records.append(self._record("clear", key, stamp, since, gap, severity))
                self.ctx.count("cleared")
            self._seen[key] = now
            self._last[key] = (stamp, lines.get(key))
        if records:
            self._show()
        self._next_due = min(self._next_due, now + cfg.timeout)
        return records

    def _due(self, now: float) -> list[dict[str, Any]]:
        """Raise the keys whose deadline has passed; remember the next deadline."""
        if now < self._next_due:
            return []
        timeout, severity = self.config.timeout, self.config.severity
        records, next_due, stamp = [], math.inf, None
        for key, seen in self._seen.items():
            if key in self._active:
                continue
            if now - seen >= timeout:
                if stamp is None:
                    stamp = self.wall()
                self._active[key] = (stamp, severity)
                records.append(self._record("raise", key, stamp, stamp, now - seen, severity))
                self.ctx.count("raised")
            else:
                next_due = min(next_due, seen + timeout)
        self._next_due = next_due
        if records:
            self._show()
        return records

    def _show(self) -> None:
        silent = len(self._active)
        self.ctx.status(f"{silent} silent" if silent else "all reporting")

    def _who(self, key: Hashable) -> str:
        if self.config.scope == "source":
            return self.config.label or self._origin or self.ctx.node_id
        return str(key)

    def _record(
        self,
        event: str,
        key: Hashable,
        stamp: pd.Timestamp,
        since: pd.Timestamp,
        silent: float,
        severity: str,
    ) -> dict[str, Any]:
        """One alert record, in the columns and words of `alert`'s."""
        last, line = self._last.get(key, (None, None))
        who = self._who(key)
        if event == "clear":
            text = f"{who}: data again after {_span(silent)} silence"
            text += f" (cleared, {severity} since {since:%H:%M:%S})"
        elif last is None:
            text = f"{who}: no data since the start, {_span(silent)} ago ({severity})"
        else:
            text = f"{who}: no data for {_span(silent)} ({severity}); last seen {last:%H:%M:%S}"
        name = "source" if self.config.scope == "source" else self.config.key
        return {
            "timestamp": stamp,
            "event": event,
            "line": line,
            name: who if self.config.scope == "source" else key,
            "severity": severity,
            "silent_for": round(silent, 3),
            "since": since,
            "last_seen": last,
            "top_features": "",
            "message": text,
        }

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
