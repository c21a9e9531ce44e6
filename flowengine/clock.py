"""Time as nodes see it: the system clock in production, a fake one that tests move by hand.

Every node reads time and sleeps through ``self.ctx.clock``, never ``time`` or
``asyncio.sleep`` directly, so a test (``flowengine test``, :class:`flowengine.harness.FlowHarness`)
can put a flow at any instant and move it forward without waiting: a cooldown of an hour takes
no wall time, and the same test gives the same result on a loaded CI machine.

A :class:`FakeClock` keeps time in integer nanoseconds, so timestamps at fake times are exact
(``2026-01-01T00:05:00Z``, not ``...04:59.999999``). Time moves only in :meth:`FakeClock.advance`:
sleepers wake one at a time in deadline order, and the caller's ``settle`` runs after each, so
the effects of one timer land before the next one fires, as they would in real time.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time as _time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count
from typing import Protocol, TypeAlias

import pandas as pd

__all__ = ["SYSTEM_CLOCK", "Clock", "FakeClock", "Instant", "SystemClock"]

#: A point in time as a caller may give it: epoch seconds, ISO 8601 text or a timestamp.
Instant: TypeAlias = float | int | str | datetime | pd.Timestamp
#: What :meth:`FakeClock.advance` awaits after each timer: the runtime's ``settled``.
Settle: TypeAlias = Callable[[], Awaitable[None]]

_NS = 1_000_000_000
#: The fake monotonic clock's reading at the start (any value: only differences count; not
#: zero, so code that tests a time for truth is not fooled).
MONOTONIC_START = 1000.0


class Clock(Protocol):
    """Wall time, interval time and sleeping, as one object a node reads through its context."""

    def time(self) -> float:
        """Wall clock, seconds since the epoch (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds for measuring intervals; never goes back."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (zero or less: just let other tasks run)."""
        ...

    def now(self) -> pd.Timestamp:
        """:meth:`time` as a tz-aware UTC timestamp."""
        ...


class SystemClock:
    """The real clock: ``time.time``, ``time.monotonic`` and ``asyncio.sleep``."""

    def time(self) -> float:
        return _time.time()

    def monotonic(self) -> float:
        return _time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    def now(self) -> pd.Timestamp:
        return pd.Timestamp.now(tz="UTC")

    def __repr__(self) -> str:
        return "SYSTEM_CLOCK"


SYSTEM_CLOCK: Clock = SystemClock()


def instant_ns(when: Instant) -> int:
    """``when`` as integer nanoseconds since the epoch; text and naive times are UTC."""
    if isinstance(when, bool):
        raise TypeError("a time must be epoch seconds, ISO 8601 text or a timestamp")
    if isinstance(when, int | float):
        if not math.isfinite(when):
            raise ValueError(f"not a time: {when}")
        return round(when * _NS)
    stamp = pd.Timestamp(when)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value)


@dataclass(order=True, slots=True)
class _Sleeper:
    """One pending :meth:`FakeClock.sleep`, ordered by deadline, then by arrival."""

    deadline: int
    seq: int
    future: asyncio.Future[None] = field(compare=False)
    task: asyncio.Task[object] | None = field(compare=False)


class FakeClock:
    """A clock that stands still until :meth:`advance` moves it (a :class:`Clock`).

    ``start`` is the wall time it shows first (epoch seconds, ISO text or a timestamp; text
    without a zone is UTC). :meth:`monotonic` starts at :data:`MONOTONIC_START` and moves with it.
    """

    def __init__(self, start: Instant = "2026-01-01T00:00:00Z") -> None:
        self._epoch = instant_ns(start)
        self._elapsed = 0  # nanoseconds since the start
        self._sleepers: list[_Sleeper] = []
        self._seq = count()

    def __repr__(self) -> str:
        return f"FakeClock({self.now().isoformat()})"

    # ---- reading --------------------------------------------------------------------------
    def time(self) -> float:
        return (self._epoch + self._elapsed) / _NS

    def monotonic(self) -> float:
        return MONOTONIC_START + self._elapsed / _NS

    def now(self) -> pd.Timestamp:
        return pd.Timestamp(self._epoch + self._elapsed, tz="UTC")

    @property
    def elapsed(self) -> float:
        """Seconds moved since the start."""
        return self._elapsed / _NS

    # ---- sleeping -------------------------------------------------------------------------
    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has moved ``seconds`` on (at least a nanosecond, so a loop
        that sleeps until a deadline always gets past it); zero or less only yields."""
        if not seconds > 0:  # also NaN
            await asyncio.sleep(0)
            return
        step = max(1, math.ceil(seconds * _NS)) if math.isfinite(seconds) else None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if step is None:  # forever: nothing will ever wake it but a cancel
            await future
            return
        sleeper = _Sleeper(self._elapsed + step, next(self._seq), future, asyncio.current_task())
        heapq.heappush(self._sleepers, sleeper)
        try:
            await future
        finally:
            if not future.done():
                future.cancel()  # cancelled: forgotten when it comes up (see _pending)

    def _pending(self) -> _Sleeper | None:
        """The earliest sleeper still waiting (cancelled ones are dropped on the way)."""
        sleepers = self._sleepers
        while sleepers and sleepers[0].future.done():
            heapq.heappop(sleepers)
        return sleepers[0] if sleepers else None

    def next_deadline(self) -> float | None:
        """When the earliest pending sleeper wakes, on the :meth:`monotonic` scale (None: none)."""
        sleeper = self._pending()
        return None if sleeper is None else MONOTONIC_START + sleeper.deadline / _NS

    def holds(self, task: asyncio.Task[object] | None) -> bool:
        """True when ``task`` is sleeping on this clock (waiting for time, not for work)."""
        return task is not None and any(
            s.task is task and not s.future.done() for s in self._sleepers
        )

    @property
    def sleepers(self) -> int:
        """How many sleeps are pending."""
        return sum(not s.future.done() for s in self._sleepers)

    # ---- moving ---------------------------------------------------------------------------
    async def advance(self, seconds: float, settle: Settle | None = None) -> None:
        """Move time forward by ``seconds``, waking sleepers in deadline order (equal deadlines
        in the order they slept); after each wake await ``settle()`` (the runtime's
        ``settled``) so that what one timer caused lands before the next fires. Without
        ``settle`` each woken task only gets one turn of the loop."""
        if not seconds >= 0 or not math.isfinite(seconds):
            raise ValueError(f"time moves forward only: cannot advance by {seconds}")
        await self._move_to(self._elapsed + round(seconds * _NS), settle)

    async def advance_to(self, when: Instant, settle: Settle | None = None) -> None:
        """Move time forward to the wall time ``when`` (as :meth:`advance` does)."""
        target = instant_ns(when) - self._epoch
        if target < self._elapsed:
            raise ValueError(f"time moves forward only: {when} is before {self.now().isoformat()}")
        await self._move_to(target, settle)

    async def _move_to(self, target: int, settle: Settle | None) -> None:
        while (sleeper := self._pending()) is not None and sleeper.deadline <= target:
            heapq.heappop(self._sleepers)
            self._elapsed = max(self._elapsed, sleeper.deadline)
            sleeper.future.set_result(None)
            await (settle() if settle is not None else asyncio.sleep(0))
        self._elapsed = target
        await (settle() if settle is not None else asyncio.sleep(0))
