"""Alert: raise, escalate and clear alerts per key from a condition or a threshold with hysteresis.

The rules live in :mod:`flowengine.nodes.analytics.alerts`; this node only turns frames into rows and events
into alert records, so that only events leave it (no event, no output).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

import pandas as pd
from pydantic import field_validator, model_validator

from flowengine.exprs import check_expression, evaluate
from flowengine.node import NodeConfig, Transform, option
from flowengine.nodes.analytics import alerts
from flowengine.types import Batch, Result


class AlertConfig(NodeConfig):
    condition: str | None = option(
        None,
        description="A pandas expression that raises while true and clears when false.",
        examples=["defect_probability > 0.8"],
    )
    column: str | None = option(
        None, description="Threshold mode: the column compared.", examples=["defect_probability"]
    )
    raise_at: float | None = option(None, description="Raise at this value (or the lowest level).")
    clear_at: float | None = option(None, description="Clear at this value (default raise_at).")
    direction: Literal["above", "below"] = option("above", description="Which side is bad.")
    levels: dict[str, float] = option(
        {},
        description="Severity -> threshold; the highest reached wins; a higher one escalates.",
        examples=[{"warning": 0.6, "critical": 0.8}],
    )
    severity: str = option("warning", description="Severity when no levels are given.")
    hold: float = option(
        0.0,
        alias="for",
        description="Seconds (or '5s') the condition must "
        "hold, by the rows' timestamps, before raising.",
        examples=["5s"],
    )
    cooldown: float = option(
        0.0,
        description="After a clear, no raise for this long (seconds or '30s').",
        examples=["30s"],
    )
    key: list[str] = option(
        [], description="Columns whose values get one alert each.", examples=[["line", "sensor"]]
    )
    value: str | None = option(
        None, description="Column reported (default: column, else defect_probability when present)."
    )
    features: list[str] = option(
        [],
        description="Columns scored for `top_features` by z-score "
        "when the input has no `top_features` column.",
    )
    top: int = option(3, ge=1, description="How many features `top_features` names.")
    label: str | None = option(None, description="Name in the message (default from value).")

    @field_validator("hold", "cooldown", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return alerts.to_seconds(value)

    @field_validator("condition")
    @classmethod
    def _safe(cls, condition: str | None) -> str | None:
        return None if condition is None else check_expression(condition, "condition")

    @model_validator(mode="after")
    def _mode(self) -> AlertConfig:
        if (self.condition is None) == (self.column is None):
            raise ValueError("set either 'condition' or 'column'")
        if self.column is not None and self.raise_at is None and not self.levels:
            raise ValueError("threshold mode needs 'raise_at' or 'levels'")
        return self


class Alert(Transform[AlertConfig]):
    """Emit an alert record (`event` raise/escalate/clear) per state change, per key.

    A checkpoint keeps each key's alert state (active, pending `for`, cooldown, last row
    time) and its feature statistics. The `for` and `cooldown` times are row timestamps, not
    timers, so there is nothing to re-arm: a restored alert goes on as if never stopped.
    """

    icon = "notifications"

    async def start(self) -> None:
        cfg = self.config
        self._threshold = alerts.Threshold.build(
            cfg.raise_at, cfg.clear_at, cfg.direction, cfg.levels
        )
        ranking = [name for name, _ in self._threshold.levels] or [cfg.severity]
        second = timedelta(seconds=1)
        self._machine = alerts.AlertMachine(
            alerts.Rules(cfg.hold * second, cfg.cooldown * second, ranking)
        )
        self._stats: dict[tuple[object, ...], alerts.Deviations] = {}

    def snapshot(self) -> dict[str, Any]:
        """Per key: the machine's state and the deviations (the rules follow from the config)."""
        return {"keys": self._machine.states, "stats": self._stats}

    def restore(self, state: Any) -> None:
        self._machine.states = dict(state["keys"])
        self._stats = dict(state["stats"])

    def process(self, batch: Batch) -> Result:
        cfg = self.config
        frame = batch.frame.sort_values("timestamp", kind="stable")
        value_col = cfg.value or cfg.column
        if value_col is None and "defect_probability" in frame:
            value_col = "defect_probability"
        values = (
            frame[value_col].astype(float) if value_col else pd.Series(float("nan"), frame.index)
        )
        if cfg.condition is not None:
            hot = evaluate(frame, cfg.condition).astype(bool)
            cool = ~hot
        else:
            hot, cool = values.map(self._threshold.hot), values.map(self._threshold.cool)
        label = cfg.label or (value_col or "condition").replace("_", " ")
        out_name = "probability" if value_col == "defect_probability" else (value_col or "value")
        records: list[dict[str, Any]] = []
        # column lists, not iterrows: the hysteresis steps row by row, the rest need not
        n = len(frame)
        keys = list(zip(*(frame[c].tolist() for c in cfg.key), strict=True)) or [()] * n
        stamps = frame["timestamp"].tolist()
        features = {f: frame[f].astype(float).tolist() for f in cfg.features if f in frame}
        tops = frame["top_features"].tolist() if "top_features" in frame else None
        lines = frame["line"].tolist() if "line" in frame else None
        vals, hots, cools = values.tolist(), hot.tolist(), cool.tolist()
        for i in range(n):
            key = keys[i]
            ts = pd.Timestamp(stamps[i])
            if self._machine.is_late(key, ts):
                self.ctx.count("late")  # out of order across batches: skipped, not guessed
                continue
            scores = self._stats.setdefault(key, alerts.Deviations()).update(
                {f: column[i] for f, column in features.items()}
            )
            value = float(vals[i])
            severity = self._threshold.severity(value)
            event = self._machine.step(key, ts, bool(hots[i]), bool(cools[i]), severity)
            if event is None:
                continue
            top = tops[i] if tops is not None else alerts.top_features(scores, cfg.top)
            line = lines[i] if lines is not None else None
            who = f"Line {line}" if line is not None else " / ".join(map(str, key)) or "Alert"
            records.append(
                {
                    "timestamp": event.timestamp,
                    "event": event.kind,
                    "line": line,
                    **dict(zip(cfg.key, key, strict=True)),
                    "severity": event.severity,
                    out_name: value,
                    "since": event.since,
                    "top_features": top,
                    "message": alerts.message(event, who, label, value, str(top)),
                }
            )
        return pd.DataFrame(records) if records else None
