"""The steel line's settings and data shapes: sensors, defect episodes, phases, readings.

Shared by the schedule (:mod:`.steelschedule`) and the sensor model (:mod:`.steelsim`), which
together make the simulated plant.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

DEFECT_KINDS = ("gauge_excursion", "cold_spot", "cooling_fault")
QUALITIES = ("good", "uncertain", "bad")
#: Precursor weight of each effect per defect kind: temperature sag, force rise, force
#: oscillation, cooling flow drop, gauge noise. Every kind shows all of them, in its own mix.
KIND_WEIGHTS = np.array(
    [
        [0.4, 1.0, 1.0, 0.3, 1.0],  # gauge_excursion
        [1.0, 0.7, 0.7, 0.3, 0.7],  # cold_spot
        [0.3, 0.5, 0.7, 1.0, 0.7],  # cooling_fault
    ]
)
COIL_SECONDS = 90.0  # mean time between coil changes
GRADES_MM = np.array([2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0])
EPISODE_GAP = 15.0  # seconds kept free at both ends of each episode slot
RECOVERY = 20.0  # seconds after a defect while its effects fade (within the next gap)
_FAMILIES = ("force", "motor_current", "vibration", "roll_temp")


class Phase(IntEnum):
    """What the line is doing at a tick."""

    NORMAL = 0
    PRECURSOR = 1
    DEFECT = 2


@dataclass(frozen=True, slots=True)
class Sensor:
    """One measured channel: a stable OPC UA style id, its unit and a plausible range."""

    name: str
    node_id: str
    unit: str
    low: float
    high: float
    noise: float  # standard deviation of the white measurement noise


@dataclass(frozen=True, slots=True)
class Episode:
    """One scripted defect: the precursor runs from ``precursor_start`` to ``defect_start``."""

    kind: str
    precursor_start: float
    defect_start: float
    defect_end: float


@dataclass(frozen=True, slots=True)
class LineConfig:
    """The settings of one simulated line; defaults are a typical hot-strip mill."""

    seed: int = 0
    rate: float = 10.0
    sensors: int = 6
    defect_interval: float = 300.0
    precursor_duration: tuple[float, float] = (20.0, 60.0)
    defect_duration: tuple[float, float] = (5.0, 20.0)
    noise: float = 1.0
    drift: float = 1.0
    bad_quality: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.rate <= 100_000:
            raise ValueError("rate must be in (0, 100000] Hz")
        if self.sensors < 1:
            raise ValueError("sensors must be at least 1")
        for name in ("precursor_duration", "defect_duration"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be (min, max) with 0 < min <= max")
        need = self.precursor_duration[1] + self.defect_duration[1] + 2 * EPISODE_GAP
        if self.defect_interval < need:
            raise ValueError(f"defect_interval must be at least {need:g} s for these durations")
        if self.noise < 0 or self.drift < 0 or not 0 <= self.bad_quality <= 1:
            raise ValueError("noise and drift must be >= 0 and bad_quality in [0, 1]")


@dataclass(frozen=True, slots=True)
class Readings:
    """``n`` consecutive ticks of the line, wide: one column per sensor."""

    tick0: int
    t: np.ndarray  # (n,) seconds since tick 0
    values: np.ndarray  # (n, sensors) float64, a transposed view (rows are ticks)
    phase: np.ndarray  # (n,) int8, a Phase
    kind: np.ndarray  # (n,) int8 index into DEFECT_KINDS, -1 outside precursor and defect
    quality: np.ndarray | None  # (n, sensors) int8 index into QUALITIES; None when all good

    @property
    def defect(self) -> np.ndarray:
        """The ground-truth label: 1 while a defect is occurring."""
        return (self.phase == Phase.DEFECT).astype(np.int8)


CORE = (
    Sensor("furnace_temp", "ns=2;i=1001", "degC", 1100.0, 1300.0, 1.5),
    Sensor("roll_force", "ns=2;i=1002", "MN", 10.0, 35.0, 0.12),
    Sensor("cooling_water_flow", "ns=2;i=1003", "m3/h", 500.0, 1700.0, 6.0),
    Sensor("strip_speed", "ns=2;i=1004", "m/s", 2.0, 18.0, 0.03),
    Sensor("cooling_water_temp", "ns=2;i=1005", "degC", 10.0, 60.0, 0.12),
    Sensor("strip_thickness", "ns=2;i=1006", "mm", 1.5, 6.5, 0.006),
)
_EXTRA = {  # family: unit, low, high, noise
    "force": ("MN", 5.0, 45.0, 0.1),
    "motor_current": ("kA", 1.0, 20.0, 0.04),
    "vibration": ("mm/s", 0.0, 30.0, 0.08),
    "roll_temp": ("degC", 20.0, 120.0, 0.3),
}


def sensor_specs(n: int) -> tuple[Sensor, ...]:
    """The first ``n`` sensors: the six core ones, then per-stand channels of stands 1 to 7."""
    specs = list(CORE[:n])
    for e in range(max(0, n - len(CORE))):
        family, stand, copy = _FAMILIES[e % 4], e // 4 % 7 + 1, e // 28
        unit, low, high, noise = _EXTRA[family]
        name = f"stand{stand}_{family}" + (f"_{copy + 1}" if copy else "")
        specs.append(Sensor(name, f"ns=2;i={1007 + e}", unit, low, high, noise))
    return tuple(specs)
