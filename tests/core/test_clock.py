"""The fake clock: it stands still until moved, wakes sleepers in deadline order, settles
between them, never goes back; the system clock is the real one."""

from __future__ import annotations

import asyncio
import time

import pandas as pd
import pytest

from flowengine.clock import MONOTONIC_START, SYSTEM_CLOCK, Clock, FakeClock


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


# ---- hostile cases first --------------------------------------------------------------------
@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf")])
def test_time_never_goes_back_nor_jumps_to_infinity(seconds: float) -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="forward only"):
        run(clock.advance(seconds))
    assert clock.elapsed == 0


def test_advance_to_a_time_before_now_is_refused() -> None:
    clock = FakeClock("2026-01-01T00:10:00Z")
    with pytest.raises(ValueError, match="forward only"):
        run(clock.advance_to("2026-01-01T00:05:00Z"))


@pytest.mark.parametrize("start", [True, "not a time", float("nan")])
def test_a_bad_start_is_refused(start: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        FakeClock(start)  # type: ignore[arg-type]


def test_a_cancelled_sleeper_is_forgotten_and_does_not_block_the_next() -> None:
    async def scenario() -> list[str]:
        clock, woke = FakeClock(), []

        async def sleeper(name: str, seconds: float) -> None:
            await clock.sleep(seconds)
            woke.append(name)

        doomed = asyncio.create_task(sleeper("doomed", 1))
        kept = asyncio.create_task(sleeper("kept", 2))
        await asyncio.sleep(0)
        doomed.cancel()
        await asyncio.sleep(0)
        assert clock.next_deadline() == MONOTONIC_START + 2
        await clock.advance(5)
        await kept
        return woke

    assert run(scenario()) == ["kept"]


def test_zero_and_negative_sleeps_only_yield() -> None:
    async def scenario() -> float:
        clock = FakeClock()
        await clock.sleep(0)
        await clock.sleep(-3)
        await clock.sleep(float("nan"))
        assert clock.next_deadline() is None
        return clock.elapsed

    assert run(scenario()) == 0


# ---- reading ----------------------------------------------------------------------------------
def test_the_start_is_exact_in_every_spelling() -> None:
    stamp = pd.Timestamp("2026-03-01T06:00:00Z")
    for start in ("2026-03-01T06:00:00Z", "2026-03-01T06:00:00", stamp, stamp.timestamp()):
        clock = FakeClock(start)
        assert clock.now() == stamp
        assert clock.now().tz is not None
        assert clock.time() == stamp.timestamp()
        assert clock.monotonic() == MONOTONIC_START


def test_a_zoned_start_is_converted_to_utc() -> None:
    assert FakeClock("2026-03-01T07:00:00+01:00").now() == pd.Timestamp("2026-03-01T06:00Z")


def test_time_stands_still_until_advanced_and_timestamps_stay_exact() -> None:
    async def scenario() -> FakeClock:
        clock = FakeClock("2026-01-01T00:00:00Z")
        before = clock.now()
        await asyncio.sleep(0)
        assert clock.now() == before
        for _ in range(10):
            await clock.advance(0.1)  # ten float steps land exactly on one second
        return clock

    clock = run(scenario())
    assert clock.now() == pd.Timestamp("2026-01-01T00:00:01Z")
    assert clock.monotonic() == pytest.approx(MONOTONIC_START + 1.0, abs=1e-9)


def test_both_clocks_are_clocks() -> None:
    clocks: list[Clock] = [SYSTEM_CLOCK, FakeClock()]
    assert all(callable(c.sleep) for c in clocks)


def test_the_system_clock_is_the_real_one() -> None:
    before = time.time()
    assert before <= SYSTEM_CLOCK.time() <= time.time()
    assert SYSTEM_CLOCK.now().tz is not None
    assert abs(SYSTEM_CLOCK.monotonic() - time.monotonic()) < 60
    run(SYSTEM_CLOCK.sleep(0))


# ---- advancing --------------------------------------------------------------------------------
def test_sleepers_wake_in_deadline_order_at_their_own_time() -> None:
    async def scenario() -> list[tuple[str, pd.Timestamp]]:
        clock, woke = FakeClock("2026-01-01T00:00:00Z"), []

        async def sleeper(name: str, seconds: float) -> None:
            await clock.sleep(seconds)
            woke.append((name, clock.now()))

        tasks = [
            asyncio.create_task(sleeper(n, s)) for n, s in [("c", 3), ("a", 1), ("b", 2), ("a2", 1)]
        ]
        await asyncio.sleep(0)
        await clock.advance(2.5)
        assert clock.now() == pd.Timestamp("2026-01-01T00:00:02.5Z")
        assert clock.next_deadline() == MONOTONIC_START + 3
        await clock.advance(10)
        await asyncio.gather(*tasks)
        return woke

    t = pd.Timestamp("2026-01-01T00:00:00Z")
    second = pd.Timedelta(seconds=1)
    assert run(scenario()) == [
        ("a", t + second),
        ("a2", t + second),
        ("b", t + 2 * second),
        ("c", t + 3 * second),
    ]


def test_settle_runs_after_each_wake_so_one_timer_lands_before_the_next() -> None:
    async def scenario() -> list[str]:
        clock, log = FakeClock(), []

        async def ticker() -> None:  # re-arms itself: every tick must be seen on its own
            while True:
                await clock.sleep(1)
                log.append(f"tick {clock.elapsed:g}")

        async def settle() -> None:
            await asyncio.sleep(0)
            log.append(f"settle {clock.elapsed:g}")

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        await clock.advance(3, settle)
        task.cancel()
        return log

    assert run(scenario()) == [
        "tick 1",
        "settle 1",
        "tick 2",
        "settle 2",
        "tick 3",
        "settle 3",
        "settle 3",
    ]


def test_a_sleeper_that_arms_a_shorter_one_is_woken_in_order() -> None:
    async def scenario() -> list[str]:
        clock, woke = FakeClock(), []

        async def chain() -> None:
            await clock.sleep(1)
            woke.append("first")
            await clock.sleep(0.5)  # due at 1.5: before `late`, though armed after it
            woke.append("second")

        async def late() -> None:
            await clock.sleep(2)
            woke.append("late")

        tasks = [asyncio.create_task(chain()), asyncio.create_task(late())]
        await asyncio.sleep(0)
        await clock.advance(5)
        await asyncio.gather(*tasks)
        return woke

    assert run(scenario()) == ["first", "second", "late"]


def test_advance_to_moves_to_the_instant_and_wakes_what_is_due() -> None:
    async def scenario() -> tuple[bool, pd.Timestamp]:
        clock = FakeClock("2026-01-01T00:00:00Z")
        sleeper = asyncio.create_task(clock.sleep(60))
        await asyncio.sleep(0)
        await clock.advance_to("2026-01-01T00:01:00Z")
        await asyncio.sleep(0)
        return sleeper.done(), clock.now()

    done, now = run(scenario())
    assert done and now == pd.Timestamp("2026-01-01T00:01:00Z")


def test_a_sleep_shorter_than_a_nanosecond_still_waits_for_time() -> None:
    async def scenario() -> bool:
        clock = FakeClock()
        sleeper = asyncio.create_task(clock.sleep(1e-12))
        for _ in range(5):
            await asyncio.sleep(0)
        waiting = not sleeper.done()
        await clock.advance(1e-9)
        await sleeper
        return waiting

    assert run(scenario())


def test_holds_tells_which_task_sleeps_on_the_clock() -> None:
    async def scenario() -> tuple[bool, bool, int]:
        clock = FakeClock()
        sleeper = asyncio.create_task(clock.sleep(1))
        other = asyncio.create_task(asyncio.sleep(0.001))
        await asyncio.sleep(0)
        held = clock.holds(sleeper), clock.holds(other), clock.sleepers  # type: ignore[arg-type]
        await clock.advance(1)
        await asyncio.gather(sleeper, other)
        return held

    assert run(scenario()) == (True, False, 1)
