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

import numpy as np
import pandas as pd

from flowengine.nodes.analytics.steelschedule import LineSchedule
from flowengine.nodes.analytics.steelspec import (
    CORE,
    DEFECT_KINDS,
    QUALITIES,
    Episode,
    LineConfig,
    Phase,
    Readings,
    Sensor,
    sensor_specs,
)

__all__ = [
    "CHUNK",
    "DEFECT_KINDS",
    "QUALITIES",
    "Episode",
    "LineConfig",
    "Phase",
    "Readings",
    "Sensor",
    "SteelLine",
    "sensor_specs",
]

#: Ticks per white-noise chunk: the unit that makes values independent of batch sizes.
CHUNK = 1024
_QUALITIES = np.array(QUALITIES, dtype=object)
GRID = 0.5  # seconds between the points where the slow plant state is evaluated
WEAR_SECONDS = 4 * 3600.0  # work-roll campaign: force creeps up, then the rolls are changed
_STAND_SHARE = np.array([1.2, 1.12, 1.05, 1.0, 0.93, 0.85, 0.78])
_STAND_CHATTER = np.array([0.3, 0.5, 0.9, 1.0, 0.9, 0.6, 0.4])
_EPOCH = pd.Timestamp(0, tz="UTC")


class SteelLine(LineSchedule):
    """The plant model: ``generate`` any tick range; ``episodes``/``phase`` give the schedule."""

    def __init__(self, config: LineConfig | None = None) -> None:
        super().__init__(config)
        self.sensors = sensor_specs(self.config.sensors)
        self._sigma = np.array([s.noise for s in self.sensors]) * self.config.noise
        extra = np.arange(max(0, len(self.sensors) - len(CORE)))
        self._family, self._stand = extra % 4, extra // 4 % 7
        offset = self._normal(90, extra) if extra.size else extra.astype(float)
        self._calibration = offset  # each extra sensor's own small static bias
        self._cached: tuple[int, np.ndarray] | None = None
        self._names = np.array(self.names, dtype=object)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sensors]

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
        values[: len(CORE)] = core[:k]
        if k > len(CORE):
            temp, force, flow, speed, *_ = slow
            values[len(CORE) :] = self._extras(t, force, osc, speed, temp, flow, slow[8]).T

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
