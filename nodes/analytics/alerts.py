"""The alert state machine, kept free of pandas and the node SDK so its rules test in isolation.

One :class:`KeyState` per key (line, sensor, ...) gives deduplication: a key has at most one
active alert. A row says whether the raise condition holds (``hot``), whether the clear
condition holds (``cool``; with hysteresis the two thresholds differ, so a value between them
changes nothing) and which severity it reaches. Time comes from the rows' timestamps, never
from the wall clock, so replaying history gives the same events as running live.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import pandas as pd

EventKind = Literal["raise", "clear", "escalate"]


def to_seconds(value: object) -> float:
    """Seconds from a number or a duration text such as ``5s``, ``1min``, ``500ms``.

    Durations in flow files are written the way people say them; numbers mean seconds.
    """
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a text such as '5s'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = pd.Timedelta(value).total_seconds()
        except ValueError:
            raise ValueError(f"'{value}' is not a duration (examples: 5s, 1min, 500ms)") from None
    else:
        raise ValueError("a duration must be a number of seconds or a text such as '5s'")
    if seconds < 0 or math.isnan(seconds):
        raise ValueError("a duration must not be negative")
    return seconds


@dataclass(frozen=True, slots=True)
class Rules:
    """Timing and severity ranking shared by every key."""

    hold: timedelta = timedelta(0)
    cooldown: timedelta = timedelta(0)
    #: Severities from lowest to highest, to tell an escalation from a lower reading.
    ranking: Sequence[str] = ("warning",)

    def rank(self, severity: str) -> int:
        return list(self.ranking).index(severity)


@dataclass(frozen=True, slots=True)
class Threshold:
    """Raise and clear levels on one column; ``below`` flips the comparisons (low is bad).

    A separate ``clear_at`` gives hysteresis, so a value hovering at the threshold does not
    raise and clear on every row.
    """

    raise_at: float
    clear_at: float
    below: bool = False
    #: (severity, threshold) from the least to the most severe.
    levels: tuple[tuple[str, float], ...] = ()

    @classmethod
    def build(
        cls,
        raise_at: float | None,
        clear_at: float | None,
        direction: str,
        levels: Mapping[str, float],
    ) -> Threshold:
        """Fill the defaults: raise at the lowest level, clear where it raises."""
        below = direction == "below"
        ordered = tuple(sorted(levels.items(), key=lambda kv: kv[1], reverse=below))
        start = raise_at if raise_at is not None else (ordered[0][1] if ordered else math.nan)
        return cls(start, clear_at if clear_at is not None else start, below, ordered)

    def beyond(self, value: float, threshold: float) -> bool:
        return value <= threshold if self.below else value >= threshold

    def hot(self, value: float) -> bool:
        return self.beyond(value, self.raise_at)

    def cool(self, value: float) -> bool:
        return not math.isnan(value) and not self.beyond(value, self.clear_at)

    def severity(self, value: float) -> str | None:
        """The most severe level ``value`` reaches, or ``None``."""
        return next((n for n, t in reversed(self.levels) if self.beyond(value, t)), None)


@dataclass(frozen=True, slots=True)
class Event:
    """A raise, clear or escalation of one key's alert."""

    kind: EventKind
    timestamp: datetime
    severity: str
    since: datetime


@dataclass(slots=True)
class KeyState:
    """What the machine remembers of one key between rows and batches."""

    active: bool = False
    severity: str = ""
    since: datetime | None = None
    pending_since: datetime | None = None
    cleared_at: datetime | None = None
    last_seen: datetime | None = None


class AlertMachine:
    """Turns per-row condition flags into raise / clear / escalate events, per key."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.states: dict[tuple[object, ...], KeyState] = {}

    def step(
        self,
        key: tuple[object, ...],
        timestamp: datetime,
        hot: bool,
        cool: bool,
        severity: str | None,
    ) -> Event | None:
        """Feed one row (in timestamp order per key); return the event it causes, if any.

        ``severity`` is the level the row reaches (``None`` below every level); a raise uses it
        or, when the row only just holds, the lowest level.
        """
        state = self.states.setdefault(key, KeyState())
        state.last_seen = timestamp
        rules = self.rules
        if state.active:
            since = state.since or timestamp
            if cool:
                state.active, state.cleared_at, state.pending_since = False, timestamp, None
                return Event("clear", timestamp, state.severity, since)
            if severity is not None and rules.rank(severity) > rules.rank(state.severity):
                state.severity = severity
                return Event("escalate", timestamp, severity, since)
            return None
        if not hot:
            state.pending_since = None
            return None
        if state.pending_since is None:
            state.pending_since = timestamp
        if timestamp - state.pending_since < rules.hold:
            return None
        if state.cleared_at is not None and timestamp - state.cleared_at < rules.cooldown:
            return None
        state.active, state.since = True, timestamp
        state.severity = severity or rules.ranking[0]
        return Event("raise", timestamp, state.severity, timestamp)

    def is_late(self, key: tuple[object, ...], timestamp: datetime) -> bool:
        """True when ``timestamp`` is older than the last row seen for ``key`` (out of order)."""
        state = self.states.get(key)
        return state is not None and state.last_seen is not None and timestamp < state.last_seen


@dataclass(slots=True)
class Deviations:
    """Running mean and variance per feature (Welford), to name the most unusual features.

    Used when the model gives no explanation: a feature far from its own history is the best
    cheap guess at what drives an alert.
    """

    n: dict[str, int] = field(default_factory=dict)
    mean: dict[str, float] = field(default_factory=dict)
    m2: dict[str, float] = field(default_factory=dict)

    def update(self, values: Mapping[str, float]) -> dict[str, float]:
        """Return each feature's z-score against the history so far, then add the values."""
        scores: dict[str, float] = {}
        for name, value in values.items():
            if value is None or math.isnan(value):
                continue
            n, mean, m2 = self.n.get(name, 0), self.mean.get(name, 0.0), self.m2.get(name, 0.0)
            std = math.sqrt(m2 / (n - 1)) if n > 1 else 0.0
            scores[name] = (value - mean) / std if std > 0 else 0.0
            n += 1
            delta = value - mean
            mean += delta / n
            self.n[name], self.mean[name], self.m2[name] = n, mean, m2 + delta * (value - mean)
        return scores


def top_features(scores: Mapping[str, float], count: int) -> str:
    """The ``count`` features with the largest absolute z-score, as ``"a, b, c"``."""
    ranked = sorted(scores.items(), key=lambda item: -abs(item[1]))
    return ", ".join(name for name, score in ranked[:count] if score != 0.0)


def message(
    event: Event, who: str, label: str, value: float | None, top: str, clock: str = "%H:%M:%S"
) -> str:
    """The human line, e.g. ``Line 3: defect probability 0.86 (critical) since 10:42:03; top: a``."""
    shown = "" if value is None or math.isnan(value) else f" {value:.2f}"
    since = event.since.strftime(clock)
    if event.kind == "clear":
        text = f"{who}: {label}{shown} cleared ({event.severity} since {since})"
    else:
        how = f"{event.severity}, escalated" if event.kind == "escalate" else event.severity
        text = f"{who}: {label}{shown} ({how}) since {since}"
    return f"{text}; top: {top}" if top and event.kind != "clear" else text
