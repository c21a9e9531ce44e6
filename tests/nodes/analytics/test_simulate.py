"""The `simulate` source and the steel line model behind it."""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from flowengine.nodes.analytics.simulate import SimulateConfig
from flowengine.nodes.analytics.steelsim import DEFECT_KINDS, LineConfig, Phase, SteelLine
from flowengine.testing import FlowResult, run_flow
from flowengine.types import LONG_COLUMNS

CORE = [
    "furnace_temp",
    "roll_force",
    "cooling_water_flow",
    "strip_speed",
    "cooling_water_temp",
    "strip_thickness",
]
HOUR = 36_000  # ticks at the default 10 Hz


def simulate(**config: Any) -> FlowResult:
    config.setdefault("realtime", False)
    return run_flow(
        {"sim": {"type": "simulate", **config, "wires": ["cap"]}, "cap": {"type": "capture"}}
    )


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC by ranks (Mann-Whitney), ignoring NaN scores."""
    ok = ~np.isnan(score)
    score, positive = score[ok], positive[ok]
    ranks = pd.Series(score).rank().to_numpy()
    n_pos = positive.sum()
    n_neg = positive.size - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@pytest.fixture(scope="module")
def history() -> tuple[SteelLine, pd.DataFrame]:
    """Three hours of the default line, wide, with its labels."""
    model = SteelLine(LineConfig(seed=7))
    r = model.generate(0, 3 * HOUR)
    frame = pd.DataFrame(r.values, columns=model.names).assign(phase=r.phase, t=r.t)
    return model, frame


# ---- the node ------------------------------------------------------------------------------
def test_same_seed_same_frames_whatever_the_batch_size() -> None:
    frames = [simulate(count=300, **size).frame("cap") for size in ({}, {"batch_size": 1},
              {"batch_size": 7}, {"batch_size": 10_000})]  # fmt: skip
    for frame in frames[1:]:
        pd.testing.assert_frame_equal(frame, frames[0])
    other = simulate(count=300, seed=1).frame("cap")
    assert not np.allclose(other["value"], frames[0]["value"])


def test_batches_have_the_configured_size_and_the_run_ends_with_exact_rows() -> None:
    result = simulate(count=101, batch_size=100)
    sizes = [len(b) for b in result.batches("cap")]
    assert sizes == [100] * 6 + [6]
    assert result.report.drained
    assert len(simulate(duration=2.0, rate=5).frame("cap")) == 10 * 6
    default = simulate(count=4).batches("cap")
    assert [len(b) for b in default] == [6] * 4  # one tick per batch


def test_schema_and_dtypes() -> None:
    frame = simulate(count=20, line="line7").frame("cap")
    assert list(frame.columns[: len(LONG_COLUMNS)]) == list(LONG_COLUMNS)
    assert {"line", "defect"} <= set(frame.columns)
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert frame["value"].dtype == np.float64
    assert frame["sensor"].iloc[:6].tolist() == CORE
    assert (frame["sensor"] == "roll_force").sum() == 20
    assert set(frame["quality"]) == {"good"}
    assert set(frame["source"]) == {"sim"}
    assert set(frame["line"]) == {"line7"}
    assert frame["defect"].isin([0, 1]).all()
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2026-01-01T00:00:00Z")


def test_sensor_count_takes_the_first_n_or_adds_plausible_channels() -> None:
    few = simulate(count=2, sensors=3).frame("cap")
    assert few["sensor"].tolist() == CORE[:3] * 2
    many = SteelLine(LineConfig(sensors=40))
    names = many.names
    assert names[:6] == CORE and len(set(names)) == 40
    assert "stand1_force" in names and "stand3_vibration" in names
    assert [s.node_id for s in many.sensors[:3]] == ["ns=2;i=1001", "ns=2;i=1002", "ns=2;i=1003"]
    assert len({s.node_id for s in many.sensors}) == 40
    # the first sensors do not change when more are added
    small = SteelLine(LineConfig(sensors=6)).generate(0, 3000).values
    np.testing.assert_array_equal(many.generate(0, 3000).values[:, :6], small)


def test_rate_and_start_set_the_timestamps() -> None:
    start = "2025-06-01T12:00:00+02:00"
    frame = simulate(rate=4, count=9, start=start).frame("cap")
    stamps = frame.loc[frame["sensor"] == "furnace_temp", "timestamp"]
    assert stamps.iloc[0] == pd.Timestamp("2025-06-01T10:00:00Z")
    assert (stamps.diff().dropna() == pd.Timedelta(milliseconds=250)).all()
    model = SteelLine(LineConfig(rate=3))  # not a whole number of microseconds per tick
    offsets = model.offsets_us(3 * 10**9, 4)
    assert offsets.tolist() == [10**15, 10**15 + 333_333, 10**15 + 666_666, 10**15 + 10**6]


def test_realtime_paces_to_the_wall_clock() -> None:
    began = pd.Timestamp.now(tz="UTC")
    t0 = time.monotonic()
    # several generated blocks (1000 ticks each here) and batches that split ticks
    frame = simulate(realtime=True, rate=5000, count=2500, batch_size=600).frame("cap")
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.45  # the last tick is due 2499 / 5000 s after the first
    assert len(frame) == 2500 * 6
    first, last = frame["timestamp"].iloc[0], frame["timestamp"].iloc[-1]
    assert abs(first - began) < pd.Timedelta(seconds=2)
    assert last - first == pd.Timedelta(microseconds=499_800)
    # a start in the past is caught up at full speed
    t0 = time.monotonic()
    past = (began - pd.Timedelta(hours=1)).isoformat()
    simulate(realtime=True, rate=100, count=500, start=past)
    assert time.monotonic() - t0 < 2.0


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(ValidationError, match="either 'duration' or 'count'"):
        SimulateConfig(count=10, duration=1.0)
    with pytest.raises(ValidationError, match="defect_interval"):
        SimulateConfig(defect_interval=30)
    with pytest.raises(ValidationError):
        SimulateConfig(sensors=0)


def test_bad_quality_flags_some_readings() -> None:
    frame = simulate(count=500, bad_quality=0.1).frame("cap")
    share = frame["quality"].value_counts(normalize=True)
    assert 0.05 < share["uncertain"] + share["bad"] < 0.15
    assert np.isfinite(frame["value"]).all()


# ---- the model -----------------------------------------------------------------------------
def test_any_split_of_the_tick_range_gives_the_same_values() -> None:
    model = SteelLine(LineConfig(sensors=10, rate=7.3, seed=3, bad_quality=0.05))
    whole = model.generate(0, 5000)
    cuts = [0, 1, 2, 1023, 1024, 1025, 3000, 4999, 5000]
    parts = [model.generate(a, b - a) for a, b in itertools.pairwise(cuts)]
    np.testing.assert_array_equal(np.concatenate([p.values for p in parts]), whole.values)
    np.testing.assert_array_equal(np.concatenate([p.phase for p in parts]), whole.phase)
    assert whole.quality is not None
    np.testing.assert_array_equal(np.concatenate([p.quality for p in parts]), whole.quality)


@pytest.mark.parametrize("seed", [7, 163])
def test_coil_changes_blend_and_never_jump(seed: int) -> None:
    """A coil that starts before its 90 s slot blends in like any other (issue 14: it used to
    jump in at the slot boundary, a gauge and temperature step with no threading dip, which a
    defect model takes for a precursor). Noise-free at 2 Hz, a change of the widest grades
    (2 -> 5 mm) moves the gauge at most 3 mm x 1.5/6 s x 0.5 s = 0.375 mm per tick."""
    model = SteelLine(LineConfig(seed=seed, rate=2, noise=0.0, defect_interval=10_000_000))
    r = model.generate(0, 2 * 3600 * 2)  # two hours: about 80 coil changes
    step = dict(zip(model.names, np.abs(np.diff(r.values, axis=0)).max(axis=0), strict=True))
    assert step["strip_thickness"] <= 0.38
    assert step["strip_speed"] <= 2.5  # a jump between grades is 30/2 - 30/5 = 9 m/s
    assert step["furnace_temp"] <= 5.0  # slabs differ by several degrees


def test_values_are_plausible(history: tuple[SteelLine, pd.DataFrame]) -> None:
    model, frame = history
    for sensor in model.sensors:
        values = frame[sensor.name]
        assert values.between(sensor.low, sensor.high).all(), sensor.name
    normal = frame[frame["phase"] == Phase.NORMAL]
    assert 1180 < normal["furnace_temp"].mean() < 1220
    assert 18 < normal["roll_force"].mean() < 25
    assert 2 < normal["strip_thickness"].mean() < 5
    # coupling: a thinner strip runs faster and needs more force
    assert normal["strip_thickness"].corr(normal["strip_speed"]) < -0.8
    assert normal["strip_thickness"].corr(normal["roll_force"]) < -0.5
    # drift: hourly means of the furnace temperature move
    hourly = frame.groupby(frame["t"] // 3600)["furnace_temp"].mean()
    assert hourly.max() - hourly.min() > 0.5


def test_defect_episodes_exist_with_their_label(history: tuple[SteelLine, pd.DataFrame]) -> None:
    model, frame = history
    episodes = model.episodes(0, 3 * 3600)
    assert 33 <= len(episodes) <= 37  # one per 300 s
    assert {e.kind for e in episodes} == set(DEFECT_KINDS)
    t, phase = frame["t"].to_numpy(), frame["phase"].to_numpy()
    for e in episodes:
        assert 20 <= e.defect_start - e.precursor_start <= 60
        assert 5 <= e.defect_end - e.defect_start <= 20
        during = (t >= e.defect_start) & (t < e.defect_end)
        before = (t >= e.precursor_start) & (t < e.defect_start)
        assert (phase[during] == Phase.DEFECT).all() and (phase[before] == Phase.PRECURSOR).all()
    # the node's label is the model's
    result = simulate(count=3000, seed=7).frame("cap")
    per_tick = result["defect"].to_numpy()[::6]
    np.testing.assert_array_equal(per_tick, model.phase(0, 3000) == Phase.DEFECT)
    assert per_tick.any()


def test_seconds_to_defect_matches_the_schedule(history: tuple[SteelLine, pd.DataFrame]) -> None:
    model, frame = history
    left = model.seconds_to_defect(0, len(frame))
    phase = frame["phase"].to_numpy()
    assert (left[phase == Phase.DEFECT] == 0).all()
    assert (left[phase == Phase.PRECURSOR] <= 60).all()
    assert (left[phase == Phase.NORMAL] > 0).all()


def test_precursor_shows_in_windowed_features(history: tuple[SteelLine, pd.DataFrame]) -> None:
    _, frame = history
    window = 100  # 10 s
    features = {
        "gauge_jitter": frame["strip_thickness"].diff().rolling(window).std(),
        "force_jitter": frame["roll_force"].diff().rolling(window).std(),
        "temp_slope": frame["furnace_temp"].diff(window),
        "flow_slope": frame["cooling_water_flow"].diff(window),
    }
    pre = {k: v[frame["phase"] == Phase.PRECURSOR].mean() for k, v in features.items()}
    normal = {k: v[frame["phase"] == Phase.NORMAL].mean() for k, v in features.items()}
    assert pre["gauge_jitter"] > 1.4 * normal["gauge_jitter"]
    assert pre["force_jitter"] > 1.1 * normal["force_jitter"]
    assert pre["temp_slope"] < normal["temp_slope"] - 2.0  # degC per 10 s
    assert pre["flow_slope"] < normal["flow_slope"] - 8.0  # m3/h per 10 s


def test_each_defect_is_preceded_by_its_precursor(history: tuple[SteelLine, pd.DataFrame]) -> None:
    model, frame = history
    t = frame["t"].to_numpy()
    jitter = frame["strip_thickness"].diff().rolling(100).std().to_numpy()
    episodes = model.episodes(70, 3 * 3600)
    louder = [
        jitter[np.searchsorted(t, e.defect_start) - 1]  # the last 10 s of the precursor
        > jitter[np.searchsorted(t, e.precursor_start - 5)]  # 10 s of normal operation
        for e in episodes
    ]
    assert sum(louder) >= 0.8 * len(episodes)


def test_precursor_and_defect_are_separable_but_not_trivially(
    history: tuple[SteelLine, pd.DataFrame],
) -> None:
    _, frame = history
    positive = (frame["phase"] > Phase.NORMAL).to_numpy()
    gauge_jitter = frame["strip_thickness"].diff().rolling(100).std().to_numpy()
    assert auc(gauge_jitter, positive) >= 0.85
    # no plain level threshold on a single sensor does it
    for name in CORE:
        assert abs(auc(frame[name].to_numpy(), positive) - 0.5) < 0.35, name
