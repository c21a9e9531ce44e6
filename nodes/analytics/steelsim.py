"""A deterministic model of a steel hot-strip rolling line, in plain numpy (no I/O, no asyncio).

One model serves the ``simulate`` node, a plant server and defect-model training, so that all
three see the same plant. The line rolls coils one after another (each coil has its own target
gauge, slab temperature and a threading dip in speed), sensors carry white noise, coloured noise
and slow drift (random smooth processes, roll wear, a daily water temperature cycle), and
scripted defect episodes are each preceded by a precursor that a windowed model can learn:
furnace temperature sags, roll force rises and starts to oscillate, cooling flow drops and the
gauge gets noisier, weighted differently per defect kind so that no single threshold suffices.

Everything is a function of the tick index: smooth processes, coils and episodes come from a
counter-based hash of (seed, stream, index), white noise from one generator per fixed chunk of
ticks. So any range can be generated on its own and the values never depend on how a caller
splits the stream into batches, and the first N sensors are the same whatever the sensor count.
Times are seconds since the start of the simulation (tick 0); the episode schedule is in seconds
too, so it does not change with the rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from fractions import Fraction

import numpy as np
import pandas as pd

#: Ticks per white-noise chunk: the unit that makes values independent of batch sizes.
CHUNK = 1024
DEFECT_KINDS = ("gauge_excursion", "cold_spot", "cooling_fault")
QUALITIES = ("good", "uncertain", "bad")
_QUALITIES = np.array(QUALITIES, dtype=object)
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
GRID = 0.5  # seconds between the points where the slow plant state is evaluated
WEAR_SECONDS = 4 * 3600.0  # work-roll campaign: force creeps up, then the rolls are changed
_GOLDEN = 0x9E3779B97F4A7C15
_STAND_SHARE = np.array([1.2, 1.12, 1.05, 1.0, 0.93, 0.85, 0.78])
_STAND_CHATTER = np.array([0.3, 0.5, 0.9, 1.0, 0.9, 0.6, 0.4])
_FAMILIES = ("force", "motor_current", "vibration", "roll_temp")
_EPOCH = pd.Timestamp(0, tz="UTC")


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


_CORE = (
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
    specs = list(_CORE[:n])
    for e in range(max(0, n - len(_CORE))):
        family, stand, copy = _FAMILIES[e % 4], e // 4 % 7 + 1, e // 28
        unit, low, high, noise = _EXTRA[family]
        name = f"stand{stand}_{family}" + (f"_{copy + 1}" if copy else "")
        specs.append(Sensor(name, f"ns=2;i={1007 + e}", unit, low, high, noise))
    return tuple(specs)


def _mix(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: a cheap, well-spread bijection of uint64 (wrapping on purpose)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


class SteelLine:
    """The plant model: ``generate`` any tick range; ``episodes``/``phase`` give the schedule."""

    def __init__(self, config: LineConfig | None = None) -> None:
        self.config = config or LineConfig()
        self.sensors = sensor_specs(self.config.sensors)
        rate = Fraction(self.config.rate).limit_denominator(1000)
        self._num, self._den = rate.numerator, rate.denominator
        self._sigma = np.array([s.noise for s in self.sensors]) * self.config.noise
        extra = np.arange(max(0, len(self.sensors) - len(_CORE)))
        self._family, self._stand = extra % 4, extra // 4 % 7
        offset = self._normal(90, extra) if extra.size else extra.astype(float)
        self._calibration = offset  # each extra sensor's own small static bias
        self._cached: tuple[int, np.ndarray] | None = None
        self._names = np.array(self.names, dtype=object)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sensors]

    # ---- randomness keyed by (seed, stream, index) -----------------------------------------
    def _uniform(self, stream: int | np.ndarray, index: np.ndarray) -> np.ndarray:
        """Uniform (0, 1) numbers that depend only on (seed, stream, index): no state."""
        seed = np.uint64((self.config.seed * _GOLDEN) & 0xFFFFFFFFFFFFFFFF)
        with np.errstate(over="ignore"):
            key = _mix(_mix(np.asarray(stream, dtype=np.uint64) + seed))
            x = _mix(np.asarray(index).astype(np.uint64) * np.uint64(_GOLDEN) + key)
        return ((x >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53

    def _normal(self, stream: int | np.ndarray, index: np.ndarray) -> np.ndarray:
        index = np.asarray(index).astype(np.int64)
        u1, u2 = self._uniform(stream, 2 * index), self._uniform(stream, 2 * index + 1)
        return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)

    def _smooth(self, stream: int, t: np.ndarray, period: float, width: int = 0) -> np.ndarray:
        """A smooth random signal of time (about unit scale), knots every ``period`` seconds.

        One signal (n,) by default, or ``width`` independent ones (n, width) from stream on.
        """
        x = t / period
        k = np.floor(x)
        k0 = int(k[0])
        streams = stream + np.arange(max(width, 1))
        knots = self._normal(streams, np.arange(k0, int(k[-1]) + 2)[:, None])
        i = (k - k0).astype(np.intp)
        w = _smoothstep(x - k)[:, None]
        out = knots[i] + (knots[i + 1] - knots[i]) * w
        return out if width else out[:, 0]

    def _white(self, tick0: int, n: int) -> np.ndarray:
        """Standard normal noise (sensors, n), drawn per fixed chunk of ticks, sensor-major (so
        the first N sensors get the same noise whatever the sensor count)."""
        k = len(self.sensors)
        first, last = tick0 // CHUNK, (tick0 + n - 1) // CHUNK
        buf = np.empty((k, (last - first + 1) * CHUNK))
        for chunk in range(first, last + 1):
            buf[:, (chunk - first) * CHUNK : (chunk - first + 1) * CHUNK] = self._chunk(chunk)
        skip = tick0 - first * CHUNK
        return buf[:, skip : skip + n]

    def _chunk(self, chunk: int) -> np.ndarray:
        """The noise of one chunk; the last one is kept, as small reads often share it."""
        cached = self._cached
        if cached is not None and cached[0] == chunk:
            return cached[1]
        seq = np.random.SeedSequence(self.config.seed & (2**63 - 1), spawn_key=(chunk,))
        noise = np.random.Generator(np.random.PCG64(seq)).standard_normal(
            (self.config.sensors, CHUNK)
        )
        self._cached = (chunk, noise)
        return noise

    # ---- time ------------------------------------------------------------------------------
    def seconds(self, tick0: int, n: int) -> np.ndarray:
        """Simulated seconds since tick 0 of ticks ``tick0 .. tick0+n-1``."""
        return (tick0 + np.arange(n, dtype=np.int64)) * (self._den / self._num)

    def offsets_us(self, tick0: int, n: int) -> np.ndarray:
        """Exact integer microseconds since tick 0 (no float drift over long runs)."""
        ticks = tick0 + np.arange(n, dtype=np.int64)
        per = 10**6 * self._den  # microseconds per `num` ticks
        return (ticks // self._num) * per + (ticks % self._num) * per // self._num

    def ticks_for(self, seconds: float) -> int:
        """How many ticks cover ``seconds`` of simulated time."""
        return int(np.ceil(seconds * self._num / self._den - 1e-9))

    # ---- the schedule ----------------------------------------------------------------------
    def _slots(self, first: int, last: int) -> dict[str, np.ndarray]:
        """Episode parameters of slots ``first..last``: one episode per ``defect_interval``."""
        cfg = self.config
        j = np.arange(max(first, 0), max(last, 0) + 1)
        (p0, p1), (d0, d1) = cfg.precursor_duration, cfg.defect_duration
        pre = p0 + (p1 - p0) * self._uniform(10, j)
        dur = d0 + (d1 - d0) * self._uniform(11, j)
        room = cfg.defect_interval - 2 * EPISODE_GAP - pre - dur
        onset = j * cfg.defect_interval + EPISODE_GAP + pre + room * self._uniform(12, j)
        return {
            "start": onset - pre,
            "onset": onset,
            "end": onset + dur,
            "kind": (self._uniform(13, j) * len(DEFECT_KINDS)).astype(np.int8),
            "freq": 1.1 + 0.9 * self._uniform(14, j),  # chatter frequency, Hz
            "phi": 2 * np.pi * self._uniform(15, j),
            "amp": 0.75 + 0.5 * self._uniform(16, j),
            "sign": np.where(self._uniform(17, j) < 0.7, 1.0, -1.0),
        }

    def _slots_around(self, t: np.ndarray) -> list[dict[str, float]]:
        """Episodes that may touch times ``t`` (sorted), their recovery included."""
        size = self.config.defect_interval
        s = self._slots(int((t[0] - RECOVERY) // size), int(t[-1] // size))
        return [dict(zip(s, row, strict=True)) for row in zip(*s.values(), strict=True)]

    def episodes(self, t0: float, t1: float) -> list[Episode]:
        """Episodes whose precursor or defect overlaps ``[t0, t1)`` seconds, in order."""
        size = self.config.defect_interval
        s = self._slots(int(t0 // size), int(t1 // size))
        return [
            Episode(DEFECT_KINDS[k], float(a), float(b), float(c))
            for a, b, c, k in zip(s["start"], s["onset"], s["end"], s["kind"], strict=True)
            if c > t0 and a < t1
        ]

    def _labels(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact phase and kind per tick, and the chatter waveform (0 away from episodes)."""
        phase = np.zeros(t.size, dtype=np.int8)
        kind = np.full(t.size, -1, dtype=np.int8)
        chatter = np.zeros(t.size)
        for e in self._slots_around(t):
            a, b, c, d = np.searchsorted(t, [e["start"], e["onset"], e["end"], e["end"] + RECOVERY])
            phase[a:b], phase[b:c], kind[a:c] = Phase.PRECURSOR, Phase.DEFECT, e["kind"]
            chatter[a:d] = np.sin(2 * np.pi * e["freq"] * (t[a:d] - e["start"]) + e["phi"])
        return phase, kind, chatter

    def _envelopes(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Precursor effect weights (m, 5), defect intensity per kind (m, 3), signed gauge shift."""
        w, bad, shift = np.zeros((g.size, 5)), np.zeros((g.size, 3)), np.zeros(g.size)
        for e in self._slots_around(g):
            a, d = np.searchsorted(g, [e["start"], e["end"] + RECOVERY])
            tt = g[a:d]
            progress = np.clip((tt - e["start"]) / (e["onset"] - e["start"]), 0.0, 1.0)
            fade = np.exp(-np.maximum(tt - e["end"], 0.0) / 3.0)
            ramp = np.where(tt < e["end"], progress**0.8, fade) * e["amp"]
            w[a:d] = ramp[:, None] * KIND_WEIGHTS[int(e["kind"])]
            rise = np.minimum(1.0, np.maximum(tt - e["onset"], 0.0))
            bad[a:d, int(e["kind"])] = np.where(tt < e["end"], rise, fade)
            if e["kind"] == 0:
                shift[a:d] = e["sign"] * bad[a:d, 0]
        return w, bad, shift

    def phase(self, tick0: int, n: int) -> np.ndarray:
        """Phase per tick (int8 :class:`Phase`) without generating sensor values."""
        return self._labels(self.seconds(tick0, n))[0]

    def seconds_to_defect(self, tick0: int, n: int) -> np.ndarray:
        """Seconds until the next defect starts (0 during one): for "defect within H" labels."""
        t = self.seconds(tick0, n)
        slot = (t // self.config.defect_interval).astype(np.int64)
        s = self._slots(int(slot[0]), int(slot[-1]) + 1)
        i = slot - slot[0]
        onset = np.where(t < s["end"][i], s["onset"][i], s["onset"][i + 1])
        return np.maximum(onset - t, 0.0)

    def _coils(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Target gauge, slab temperature offset and threading dip (0..1) at times ``g``."""
        slot = np.floor(g / COIL_SECONDS).astype(np.int64)
        j = np.arange(int(slot[0]) - 2, int(slot[-1]) + 1)
        bounds = j * COIL_SECONDS + 20.0 * (self._uniform(20, j) - 0.5)
        gauge = GRADES_MM[(self._uniform(21, j) * len(GRADES_MM)).astype(np.intp)]
        slab = 5.0 * self._normal(22, j)
        i = slot - j[0]
        i = np.where(g >= bounds[i], i, i - 1)  # the coil being rolled
        since = g - bounds[i]
        blend = _smoothstep((since - 2.0) / 6.0)
        h = gauge[i - 1] + (gauge[i] - gauge[i - 1]) * blend
        temp = slab[i - 1] + (slab[i] - slab[i - 1]) * blend
        dip = np.where(since < 8.0, np.sin(np.pi * since / 8.0) ** 2, 0.0)
        return h, temp, dip

    # ---- the plant -------------------------------------------------------------------------
    def _slow(self, g: np.ndarray) -> list[np.ndarray]:
        """The noise-free plant at times ``g``: the six core channels (roll force and gauge
        without chatter), then chatter amplitude, gauge noise factor and threading dip."""
        dr = self.config.drift
        w, bad, shift = self._envelopes(g)
        gauge_bad, cold, cooling_bad = bad.T
        h, slab, dip = self._coils(g)
        wear = (g % WEAR_SECONDS) / WEAR_SECONDS
        sm = self._smooth

        temp = 1200.0 + slab + dr * (6.0 * sm(1, g, 600.0) + 2.5 * sm(2, g, 45.0))
        temp = temp + 1.2 * sm(30, g, 2.0) - 22.0 * w[:, 0] - 45.0 * cold
        force = 22.0 * (3.0 / h) ** 0.3 * (1.0 - 0.12 * dip) - 0.04 * (temp - 1200.0)
        force = force + 0.8 * wear + dr * 0.35 * sm(3, g, 900.0) + 1.4 * w[:, 1]
        speed = 30.0 / h * (1.0 - 0.35 * dip) * (1.0 + dr * 0.01 * sm(4, g, 300.0))
        flow = 1200.0 * (0.85 + 0.015 * speed) * (1.0 + dr * 0.025 * sm(5, g, 400.0))
        flow = flow * (1.0 - 0.10 * w[:, 3]) * (1.0 - 0.4 * cooling_bad) + 4.0 * sm(31, g, 3.0)
        day = 2 * np.pi * g / 86400.0 + 6.0 * float(self._uniform(6, np.zeros(1))[0])
        water = 26.0 + 3.0 * np.sin(day) + dr * 0.8 * sm(7, g, 1800.0)
        water = water + 8.0 * (1200.0 / flow) * (temp / 1200.0) * (speed / 10.0) ** 0.3
        gauge = h * (1.0 + dr * 0.002 * sm(8, g, 1200.0)) + 0.0015 * (1200.0 - temp)
        gauge = gauge + 0.01 * wear + 0.08 * h * shift
        chatter = 0.45 * w[:, 2] * (1.0 + gauge_bad)
        return [temp, force, flow, speed, water, gauge, chatter, 1.0 + 3.0 * w[:, 4], dip]

    def generate(self, tick0: int, n: int) -> Readings:
        """Sensor values, phase and defect kind of ticks ``tick0 .. tick0+n-1``.

        The slow plant state is evaluated every ``GRID`` seconds of absolute time and
        interpolated to the ticks (several times cheaper at 10 Hz and above); chatter, noise
        and labels are computed per tick.
        """
        if tick0 < 0 or n < 1:
            raise ValueError("need tick0 >= 0 and n >= 1")
        cfg, k = self.config, len(self.sensors)
        t = self.seconds(tick0, n)
        if cfg.rate * GRID > 2:
            g = np.arange(int(t[0] // GRID), int(t[-1] // GRID) + 2) * GRID
            slow = [np.interp(t, g, v) for v in self._slow(g)]
        else:
            slow = self._slow(t)
        phase, kind, wave = self._labels(t)
        osc = slow[6] * wave
        core = [*slow[:6]]
        core[1] = core[1] + osc
        core[5] = core[5] + 0.03 * osc  # chatter shows in the gauge
        values = np.empty((k, n))  # sensor-major while building: whole rows are contiguous
        values[: len(_CORE)] = core[:k]
        if k > len(_CORE):
            temp, force, flow, speed, *_ = slow
            values[len(_CORE) :] = self._extras(t, force, osc, speed, temp, flow, slow[8]).T

        noise = self._white(tick0, n) * self._sigma[:, None]
        if k > 5:  # the gauge gets noisier as the precursor builds
            noise[5] *= slow[7]
        values += noise
        quality = None
        if cfg.bad_quality > 0:
            u = self._uniform((1 << 40) + np.arange(k), (tick0 + np.arange(n))[:, None])
            quality = np.where(u < cfg.bad_quality, np.where(u < cfg.bad_quality / 2, 2, 1), 0)
            quality = quality.astype(np.int8)
        return Readings(tick0, t, values.T, phase, kind, quality)

    def _extras(
        self,
        t: np.ndarray,
        force: np.ndarray,
        osc: np.ndarray,
        speed: np.ndarray,
        temp: np.ndarray,
        flow: np.ndarray,
        dip: np.ndarray,
    ) -> np.ndarray:
        """Per-stand channels (force, motor current, vibration, roll temperature) of stands 1-7."""
        fam, stand, cal = self._family, self._stand, self._calibration
        share, chatter = _STAND_SHARE[stand], _STAND_CHATTER[stand]
        out = np.empty((t.size, fam.size))
        for f, cols in enumerate(np.flatnonzero(fam == i) for i in range(4)):
            if not cols.size:
                continue
            if f < 2:
                stand_force = force[:, None] * (share[cols] * (1.0 + 0.01 * cal[cols]))
                stand_force += osc[:, None] * chatter[cols]
                out[:, cols] = stand_force if f == 0 else 1.5 + 0.028 * stand_force * speed[:, None]
            elif f == 2:
                drift = self._smooth((1 << 32) + cols[0], t, 120.0, cols.size)
                level = 1.2 + 0.15 * self.config.drift * drift + 0.3 * dip[:, None]
                out[:, cols] = level + 4.0 * np.abs(osc)[:, None] * chatter[cols]
            else:
                heat = 0.03 * (temp - 1200.0) + 10.0 * (1200.0 / flow - 1.0) + 0.3 * speed
                out[:, cols] = 58.0 + cal[cols] + heat[:, None]
        return out

    # ---- frames ----------------------------------------------------------------------------
    def wide_frame(self, tick0: int, n: int, start: pd.Timestamp) -> pd.DataFrame:
        """One row per tick (for training): a column per sensor plus phase, kind and defect."""
        r = self.generate(tick0, n)
        index = pd.DatetimeIndex(self._stamps(tick0, n, start), name="timestamp")
        frame = pd.DataFrame(r.values, index=index, columns=self.names)
        return frame.assign(phase=r.phase, kind=r.kind, defect=r.defect)

    def long_frame(
        self, tick0: int, n: int, start: pd.Timestamp, source: str = "simulate", line: str = "line3"
    ) -> pd.DataFrame:
        """The long format, tick-major: timestamp, sensor, value, quality, source, line, defect.

        The four string columns are plain ``object`` columns of str built as one 2-D block: a
        row slice then costs about half of what categoricals or the ``str`` dtype cost, and
        comparisons with str work as usual. The timestamp is ``datetime64[us, UTC]``.
        """
        r = self.generate(tick0, n)
        k = len(self.sensors)
        strings = np.empty((4, n * k), dtype=object)  # one object block, filled row by row
        strings[0].reshape(n, k)[:] = self._names
        strings[1] = "good" if r.quality is None else _QUALITIES[r.quality.ravel()]
        strings[2] = source
        strings[3] = line
        columns = ["sensor", "quality", "source", "line"]
        frame = pd.DataFrame(strings.T, columns=columns, dtype=object, copy=False)
        frame.insert(0, "timestamp", np.repeat(self._stamps(tick0, n, start), k))
        frame.insert(2, "value", r.values.ravel())
        frame["defect"] = np.repeat(r.defect, k)
        return frame

    def _stamps(self, tick0: int, n: int, start: pd.Timestamp) -> pd.DatetimeIndex:
        base = pd.Timestamp(start)
        base = base.tz_localize("UTC") if base.tzinfo is None else base.tz_convert("UTC")
        us = (base - _EPOCH) // pd.Timedelta(1, "us") + self.offsets_us(tick0, n)
        return pd.DatetimeIndex(us.view("M8[us]")).tz_localize("UTC")
