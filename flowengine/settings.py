"""The runtime settings a flow file sets: flow-wide ``settings:``, and per node ``retry`` and
``buffer``. Pydantic models, so validation and the docs come from one place."""

from __future__ import annotations

import random
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["BufferPolicy", "FlowSettings", "RetryPolicy", "parse_bytes", "parse_seconds"]


class RetryPolicy(BaseModel):
    """Exponential backoff with jitter for reconnecting sources and sinks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial: float = Field(default=1.0, gt=0, description="First delay in seconds.")
    max: float = Field(default=30.0, gt=0, description="Longest delay in seconds.")
    factor: float = Field(default=2.0, ge=1, description="Growth of the delay per failed attempt.")
    jitter: float = Field(default=0.2, ge=0, le=1, description="Random +/- share of each delay.")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
        try:
            base = min(self.max, self.initial * self.factor ** min(attempt, 1000))
        except OverflowError:  # hours into an outage: the cap has long been reached
            base = self.max
        spread = base * self.jitter
        return max(0.0, base + (rng or random).uniform(-spread, spread))


class BufferPolicy(BaseModel):
    """A sink's store-and-forward buffer (the node key ``buffer``): batches wait on local disk
    while the sink cannot take them, and go on in order when it can."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_bytes: int = Field(
        default=1 << 30, gt=0, description="Disk the buffer may use (`10GB`, `500MB` or bytes)."
    )
    when_full: Literal["block", "drop_oldest"] = Field(
        default="block",
        description="`block`: hold the flow back (nothing lost); `drop_oldest`: make room by "
        "dropping the oldest batches (counted and logged).",
    )
    sync: Literal["full", "normal"] = Field(
        default="full", description="Like `settings.journal_sync`, for this buffer."
    )

    @field_validator("max_bytes", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return parse_bytes(value) if isinstance(value, str) else value


_SIZES = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}  # fmt: skip


def parse_bytes(text: str) -> int:
    """``"10GB"``, ``"512MiB"``, ``"1000"`` as a number of bytes."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZES:
        raise ValueError(f"{text!r} is not a size like 10GB, 500MB or 1000000")
    return int(float(match.group(1)) * _SIZES[unit])


class FlowSettings(BaseModel):
    """Flow-wide runtime settings (the ``settings:`` section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue_size: int = Field(default=8, ge=1, description="Batches each input wire buffers.")
    drain_timeout: float = Field(default=15.0, gt=0, description="Seconds shutdown may take.")
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    allow_code: bool = Field(
        default=False, description="Let nodes that run Python from this file (`python`) load."
    )
    checkpoint: float | None = Field(
        default=None,
        description=(
            "Take a consistent checkpoint this often (`1s`, `500ms`, or seconds); sources "
            "journal what they read to disk first. Off when unset; see docs/delivery.md."
        ),
    )
    state_dir: str | None = Field(
        default=None,
        description="Folder for checkpoints and journals (default `.flowengine/<flow>` beside "
        "the flow file; relative paths are beside the flow file).",
    )
    journal_sync: Literal["full", "normal"] = Field(
        default="full",
        description="`full`: every journal commit survives power loss; `normal`: survives a "
        "crash of the process, may lose the last commits on power loss, several times faster.",
    )

    @field_validator("checkpoint", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> float | None:
        return None if value in (None, 0, "0", "off", False) else parse_seconds(value)


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_seconds(value: Any) -> float:
    """``1.5``, ``"500ms"``, ``"2s"``, ``"1m"`` as seconds (> 0); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("a duration: seconds or a string like 500ms, 1s, 2m")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        number = text.rstrip("mhs")
        unit = text[len(number) :] or "s"
        if unit not in _UNITS:
            raise ValueError(f"unknown unit in {value!r}: use ms, s, m or h")
        try:
            seconds = float(number) * _UNITS[unit]
        except ValueError:
            raise ValueError(f"{value!r} is not a duration like 500ms, 1s, 2m") from None
    if not (seconds > 0 and seconds < float("inf")):
        raise ValueError(f"{value!r}: a duration must be positive and finite")
    return seconds
