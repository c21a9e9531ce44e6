"""Checkpoints of the basic types: restored after any batch, a node emits what an
uninterrupted one does, and every type's snapshot survives pickle."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flowengine.nodes.basic.email import EmailSink
from flowengine.registry import default_registry
from flowengine.types import Batch, long_frame
from tests.helpers.state import Driven, assert_resumes, pickled
from tests.helpers.timed import T0


def frame(rows: list[tuple[float, str, float]]) -> pd.DataFrame:
    """Long rows from (seconds after T0, sensor, value)."""
    return long_frame(
        [T0 + pd.Timedelta(seconds=s) for s, _, _ in rows],
        [k for _, k, _ in rows],
        [v for _, _, v in rows],
    )


# mostly within a 0.5 band, so a node that forgot its last values would pass the first row
# after every cut; b is re-reported after 20 s of silence, a (last reported at 3 s) not yet
DEADBAND = [
    frame([(0, "a", 1.0), (0, "b", 5.0), (1, "a", 1.2)]),
    frame([(2, "a", 1.3), (2, "b", 5.1), (3, "a", 1.9)]),
    frame([(4, "b", 5.2), (5, "a", 1.8)]),
    frame([(15, "a", 1.9), (25, "b", 5.3)]),
]


@pytest.mark.parametrize("cut", range(len(DEADBAND) + 1))
def test_deadband_resumes(cut: int) -> None:
    out = assert_resumes("deadband", {"band": 0.5, "max_silence": 20}, DEADBAND, cut)
    assert pd.concat([f for _, f in out])["value"].tolist() == [1.0, 5.0, 1.9, 5.3]


# buckets of 1 s; a late row (0.5 after bucket 1 was sent) is dropped in both runs
RESAMPLE = [
    frame([(0.1, "a", 1.0), (0.6, "a", 3.0), (0.2, "b", 10.0)]),
    frame([(1.1, "a", 5.0), (1.5, "b", 20.0), (1.7, "b", 30.0)]),
    frame([(2.2, "a", 7.0), (0.5, "a", 99.0), (2.3, "b", 40.0)]),
    frame([(2.9, "a", 9.0), (4.0, "b", 50.0)]),
]


@pytest.mark.parametrize("cut", range(len(RESAMPLE) + 1))
def test_resample_resumes(cut: int) -> None:
    out = assert_resumes("resample", {"freq": "1s"}, RESAMPLE, cut)
    assert pd.concat([f for _, f in out])["value"].tolist() == [
        2.0,
        10.0,
        5.0,
        25.0,
        40.0,
        8.0,
        50.0,
    ]


def _port(batch: pd.DataFrame, port: str) -> Batch:
    return Batch(batch, port=port)


JOIN = [
    _port(frame([(0, "speed", 1.0), (3, "speed", 2.0)]), "right"),
    _port(frame([(3.5, "temp", 100.0), (1, "temp", 101.0)]), "left"),
    _port(frame([(10, "speed", 3.0)]), "right"),
    _port(frame([(11, "temp", 102.0), (20, "temp", 103.0)]), "left"),
]


@pytest.mark.parametrize("cut", range(len(JOIN) + 1))
def test_join_resumes(cut: int) -> None:
    out = assert_resumes("join", {"tolerance": 2}, JOIN, cut)
    joined = pd.concat([f for _, f in out])["value_right"].tolist()
    # right keeps 2 s before its newest row: the row at 0 is gone when the left row at 1 comes
    assert joined[0] == 2.0 and pd.isna(joined[1]) and joined[2] == 3.0 and pd.isna(joined[3])


BATCHES = [frame([(i + j / 10, "a", float(i * 3 + j)) for j in range(3)]) for i in range(5)]


@pytest.mark.parametrize("cut", range(len(BATCHES) + 1))
def test_batch_by_count_resumes(cut: int) -> None:
    out = assert_resumes("batch", {"count": 4, "interval": 3600}, BATCHES, cut)
    assert [len(f) for _, f in out] == [4, 4, 4, 3]


def test_batch_timer_is_rearmed_for_rows_held_at_the_checkpoint() -> None:
    async def scenario() -> list[int]:
        first = Driven("batch", {"interval": 0.3})
        await first.node.start()
        await first.feed([Batch(BATCHES[0])])
        await asyncio.sleep(0.1)  # a third of the interval has passed at the checkpoint
        state = pickled(first.node)
        await first.node.close()
        second = Driven("batch", {"interval": 0.3})
        await second.node.start()
        began = time.monotonic()
        second.node.restore(state)
        while not second.sent and time.monotonic() - began < 2:
            await asyncio.sleep(0.01)
        waited = time.monotonic() - began
        await second.node.close()
        assert first.sent == [] and 0.1 <= waited <= 0.6, waited
        return [len(f) for _, f in second.sent]

    assert asyncio.run(scenario()) == [3]  # sent by the timer, with no flush


def test_delay_resumes_and_keeps_the_rate_limit_debt() -> None:
    assert_resumes("delay", {"delay": 0.0}, BATCHES[:2], 1)
    config = {"mode": "rate_limit", "rate": 0.5, "drop": True}

    async def scenario() -> tuple[int, int]:
        first = Driven("delay", config)
        await first.node.start()
        await first.feed([Batch(BATCHES[0])])
        state = pickled(first.node)
        second = Driven("delay", config)
        await second.node.start()
        second.node.restore(state)
        await second.feed([Batch(BATCHES[1])])  # within 2 s of the first: over the rate
        return len(first.sent), len(second.sent)

    assert asyncio.run(scenario()) == (1, 0)


def test_email_keeps_records_held_by_the_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    mails: list[list[float]] = []
    monkeypatch.setattr(EmailSink, "_send", lambda self, f: mails.append(f["value"].tolist()))
    config = {"from": "flow@plant.local", "to": ["lead@plant.local"], "max_per_minute": 1}
    assert_resumes("email", config, BATCHES[:3], 2)
    # uninterrupted: the first batch, then the other two combined at the end; resumed: the
    # same, the second batch coming back from the checkpoint
    assert mails[:2] == mails[2:] == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0, 6.0, 7.0, 8.0]]


def test_inject_goes_on_counting_after_a_restore() -> None:
    config = {"count": 3, "interval": 0.01}

    async def scenario() -> tuple[int, int]:
        first = Driven("inject", config)
        await first.node.start()
        await first.read(1)
        second = Driven("inject", config)
        state = pickled(first.node)
        await second.node.start()
        second.node.restore(state)
        await second.drain()
        return len(first.sent), len(second.sent)

    assert asyncio.run(scenario()) == (1, 2)


#: A valid config of each basic type with required settings (others use their defaults).
CONFIGS: dict[str, dict[str, Any]] = {
    "batch": {"count": 2},
    "change": {"operations": [{"op": "delete", "columns": ["x"]}]},
    "compute": {"columns": {"y": "value * 2"}},
    "deadband": {"band": 1.0},
    "email": {"from": "a@b.c", "to": ["d@e.f"]},
    "file": {"path": "out.csv"},
    "filter": {"query": "value > 0"},
    "join": {"tolerance": 1},
    "python": {"code": "def process(df):\n    return df\n"},
    "rename": {"columns": {"value": "v"}},
    "resample": {"freq": "1s"},
    "schema": {"columns": {"value": {"dtype": "float"}}},
    "select": {"columns": ["value"]},
    "switch": {"rules": {"hot": "value > 1"}},
}
#: Types that keep nothing between batches (python's own globals are the code's business).
STATELESS = {
    "change", "compute", "debug", "file", "filter", "python", "rename", "schema", "select", "switch",
}  # fmt: skip
BASIC = sorted(
    name
    for name in default_registry().names()
    if default_registry().get(name).__module__.startswith("flowengine.nodes.basic.")
)


@pytest.mark.parametrize("type_name", BASIC)
def test_snapshot_pickles_after_a_batch(
    type_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(EmailSink, "_send", lambda self, frame: None)  # no SMTP server here

    async def scenario() -> Any:
        driven = Driven(type_name, CONFIGS.get(type_name, {}), tmp_path)
        await driven.node.start()
        if driven.node.kind != "source":
            await driven.feed([Batch(BATCHES[0])])
        state = pickled(driven.node)
        fresh = Driven(type_name, CONFIGS.get(type_name, {}), tmp_path)
        await fresh.node.start()
        fresh.node.restore(state)
        await driven.node.close()
        await fresh.node.close()
        return state

    state = asyncio.run(scenario())
    assert (state is None) == (type_name in STATELESS)
