"""Delay: hold each batch for a while, or limit the rate of batches or rows."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import model_validator

from flowengine.node import NodeConfig, Transform, option
from flowengine.types import Batch, Result


class DelayConfig(NodeConfig):
    mode: Literal["delay", "rate_limit"] = option("delay", description="What the node does.")
    delay: float = option(1.0, ge=0, description="`delay`: seconds each batch is held.")
    rate: float | None = option(
        None, gt=0, description="`rate_limit`: batches (or rows) per second.", examples=[10]
    )
    per: Literal["batches", "rows"] = option("batches", description="What `rate` counts.")
    drop: bool = option(
        False, description="`rate_limit`: drop (and count) excess batches instead of waiting."
    )

    @model_validator(mode="after")
    def _rate(self) -> DelayConfig:
        if self.mode == "rate_limit" and self.rate is None:
            raise ValueError("mode 'rate_limit' needs 'rate'")
        return self


class Delay(Transform[DelayConfig]):
    """Pace the flow. Waiting here is backpressure: the input queue fills and upstream slows.

    `delay` holds a batch until `delay` seconds after it was created, so batches already
    late are not delayed again. `rate_limit` spaces batches 1/rate seconds apart (a batch of
    n rows costs n/rate when counting rows); with `drop` the excess is dropped and counted.
    A batch is held only inside ``process``, so a checkpoint (taken between batches) finds
    none; it keeps the rate limit's debt, so a quick restart does not let a burst through.
    """

    icon = "hourglass_empty"

    async def start(self) -> None:
        self._next = 0.0

    def snapshot(self) -> dict[str, float]:
        """Seconds until the rate limit lets the next batch through (0 when it would now)."""
        return {"ahead": max(self._next - self.ctx.clock.monotonic(), 0.0)}

    def restore(self, state: Any) -> None:
        self._next = self.ctx.clock.monotonic() + float(state["ahead"])

    async def process(self, batch: Batch) -> Result:
        cfg, clock = self.config, self.ctx.clock
        if cfg.mode == "delay":
            # at most `delay`: a batch stamped by another clock is not held for ages
            await clock.sleep(min(max(batch.created + cfg.delay - clock.time(), 0.0), cfg.delay))
            return batch.frame
        now = clock.monotonic()
        cost = (len(batch.frame) if cfg.per == "rows" else 1) / (cfg.rate or 1.0)
        if now < self._next:
            if cfg.drop:
                self.ctx.count("dropped")
                return None
            self.ctx.count("delayed")
            await clock.sleep(self._next - now)
        self._next = max(self._next, now) + cost
        return batch.frame
