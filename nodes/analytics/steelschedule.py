"""The steel line's schedule: coils, defect episodes and slow random processes over time.

Everything is a function of the tick index or the time: smooth processes, coils and episodes
come from a counter-based hash of (seed, stream, index), so any range can be computed on its
own and never depends on how a caller splits the stream into batches. The sensor model
(:class:`flowengine.nodes.analytics.steelsim.SteelLine`) builds on this.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from flowengine.nodes.analytics.steelspec import (
    COIL_SECONDS,
    DEFECT_KINDS,
    EPISODE_GAP,
    GRADES_MM,
    KIND_WEIGHTS,
    RECOVERY,
    Episode,
    LineConfig,
    Phase,
)

_GOLDEN = 0x9E3779B97F4A7C15


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


class LineSchedule:
    """Time, episodes and coils of one line: what happens when, without sensor values."""

    def __init__(self, config: LineConfig | None = None) -> None:
        self.config = config or LineConfig()
        rate = Fraction(self.config.rate).limit_denominator(1000)
        self._num, self._den = rate.numerator, rate.denominator

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
        """Target gauge, slab temperature offset and threading dip (0..1) at times ``g``.

        Coil ``j`` starts within 10 s of ``j * COIL_SECONDS``, so the coil being rolled at a
        time of slot ``s`` is ``s - 1``, ``s`` or ``s + 1`` (a coil that starts before its
        slot): every change, early or late, then blends from the previous coil with its
        threading dip, and no value jumps at a slot boundary.
        """
        slot = np.floor(g / COIL_SECONDS).astype(np.int64)
        j = np.arange(int(slot[0]) - 2, int(slot[-1]) + 2)
        bounds = j * COIL_SECONDS + 20.0 * (self._uniform(20, j) - 0.5)
        gauge = GRADES_MM[(self._uniform(21, j) * len(GRADES_MM)).astype(np.intp)]
        slab = 5.0 * self._normal(22, j)
        i = slot - j[0]
        i = i + (g >= bounds[i + 1])  # the next coil started early, before its slot
        i = np.where(g >= bounds[i], i, i - 1)  # the coil being rolled
        since = g - bounds[i]
        blend = _smoothstep((since - 2.0) / 6.0)
        h = gauge[i - 1] + (gauge[i] - gauge[i - 1]) * blend
        temp = slab[i - 1] + (slab[i] - slab[i - 1]) * blend
        dip = np.where(since < 8.0, np.sin(np.pi * since / 8.0) ** 2, 0.0)
        return h, temp, dip
