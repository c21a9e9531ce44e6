"""Fake time is honoured by every time-based node of this family: inject (interval, cron, row
timestamps), delay (delay and rate limit), batch (interval flush), email (rate limit).

Each test runs the node in a FlowHarness on a FakeClock and asserts what came out at which
fake time; nothing sleeps and nothing is timed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import pandas as pd
import pytest
from aiosmtpd.controller import Controller

from flowengine.testing import FakeClock, FlowHarness, check_text
from tests.helpers.peers import free_port

T0 = pd.Timestamp("2026-01-01T00:00:00Z")


def at(seconds: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(seconds=seconds)


def rows(*values: float) -> pd.DataFrame:
    return pd.DataFrame({"sensor": "t", "value": list(values)})


def run(
    flow: dict[str, Any],
    body: Callable[[FlowHarness], Awaitable[None]],
    start: pd.Timestamp = T0,
    **options: Any,
) -> FlowHarness:
    async def main() -> FlowHarness:
        harness = FlowHarness(check_text(flow), clock=FakeClock(start), **options)
        async with harness as h:
            await body(h)
        return harness

    return asyncio.run(asyncio.wait_for(main(), 60))


def stamps(frames: list[pd.DataFrame]) -> list[pd.Timestamp]:
    return [t for f in frames for t in f["timestamp"]]


def values(frames: list[pd.DataFrame]) -> list[float]:
    return [v for f in frames for v in f["value"]]


SINK = {"out": {"type": "debug", "rows": 0, "level": "debug"}}


# ---- inject -----------------------------------------------------------------------------------
def test_inject_interval_fires_at_each_fake_interval_with_that_timestamp() -> None:
    flow = {"tick": {"type": "inject", "interval": 2.5, "wires": ["out"]}, **SINK}

    async def body(h: FlowHarness) -> None:
        assert stamps(h.outputs("tick")) == [T0]  # `once`: at the start
        await h.advance(2.4)
        assert len(h.outputs("tick")) == 1
        await h.advance(0.1)
        assert stamps(h.outputs("tick")) == [T0, at(2.5)]
        await h.advance(10)
        assert stamps(h.outputs("tick")) == [at(2.5 * i) for i in range(6)]

    run(flow, body)


def test_inject_count_stops_after_that_many_firings() -> None:
    flow = {"tick": {"type": "inject", "interval": 60, "count": 3, "once": False, "wires": ["out"]}}

    async def body(h: FlowHarness) -> None:
        assert h.outputs("tick") == []
        await h.advance(3600)
        assert stamps(h.outputs("tick")) == [at(60), at(120), at(180)]

    run({**flow, **SINK}, body)


def test_inject_cron_fires_on_the_schedule_from_a_fake_start() -> None:
    flow = {"tick": {"type": "inject", "cron": "*/5 * * * *", "once": False, "wires": ["out"]}}
    start = pd.Timestamp("2026-01-01T06:02:30Z")

    async def body(h: FlowHarness) -> None:
        await h.advance(150)  # 06:05:00
        assert stamps(h.outputs("tick")) == [pd.Timestamp("2026-01-01T06:05:00Z")]
        await h.advance_to("2026-01-01T06:20:00Z")
        assert stamps(h.outputs("tick")) == [
            pd.Timestamp(f"2026-01-01T06:{m:02d}:00Z") for m in (5, 10, 15, 20)
        ]

    run({**flow, **SINK}, body, start=start)


def test_inject_keeps_given_row_timestamps_and_stamps_the_others_with_fake_now() -> None:
    given = "2025-06-01T12:00:00Z"
    flow = {
        "tick": {
            "type": "inject",
            "interval": 10,
            "rows": [{"sensor": "a", "timestamp": given}, {"sensor": "b"}],
            "wires": ["out"],
        },
        **SINK,
    }

    async def body(h: FlowHarness) -> None:
        await h.advance(10)

    h = run(flow, body)
    assert stamps(h.outputs("tick")) == [pd.Timestamp(given), T0, pd.Timestamp(given), at(10)]


# ---- delay ------------------------------------------------------------------------------------
def test_delay_holds_each_batch_for_its_delay_in_fake_time() -> None:
    flow = {"d": {"type": "delay", "delay": 30, "wires": ["out"]}, **SINK}

    async def body(h: FlowHarness) -> None:
        await h.feed("d", rows(1.0))
        await h.advance(10)
        await h.feed("d", rows(2.0))  # created at +10: out at +40
        await h.advance(19.999)
        assert h.outputs("d") == []
        await h.advance(0.001)
        assert values(h.outputs("d")) == [1.0]
        await h.advance(9.999)
        assert values(h.outputs("d")) == [1.0]
        await h.advance(0.001)
        assert values(h.outputs("d")) == [1.0, 2.0]

    run(flow, body)


def test_delay_rate_limit_spaces_batches_in_fake_time() -> None:
    flow = {"d": {"type": "delay", "mode": "rate_limit", "rate": 0.5, "wires": ["out"]}, **SINK}

    async def body(h: FlowHarness) -> None:
        for v in (1.0, 2.0, 3.0):
            await h.feed("d", rows(v))
        assert values(h.outputs("d")) == [1.0]
        await h.advance(2)
        assert values(h.outputs("d")) == [1.0, 2.0]
        await h.advance(2)
        assert values(h.outputs("d")) == [1.0, 2.0, 3.0]

    h = run(flow, body)
    assert h.counters("d") == {"delayed": 2, "errors": 0}


def test_delay_rate_limit_drops_the_excess_until_fake_time_allows_more() -> None:
    flow = {
        "d": {"type": "delay", "mode": "rate_limit", "rate": 1, "drop": True, "wires": ["out"]},
        **SINK,
    }

    async def body(h: FlowHarness) -> None:
        for v in (1.0, 2.0, 3.0):
            await h.feed("d", rows(v))
        await h.advance(1)
        await h.feed("d", rows(4.0))

    h = run(flow, body)
    assert values(h.outputs("d")) == [1.0, 4.0]
    assert h.counters("d") == {"dropped": 2, "errors": 0}


# ---- batch ------------------------------------------------------------------------------------
def test_batch_interval_flushes_a_quiet_input_at_the_fake_interval() -> None:
    flow = {"b": {"type": "batch", "interval": 5, "wires": ["out"]}, **SINK}

    async def body(h: FlowHarness) -> None:
        await h.feed("b", rows(1.0))
        await h.advance(3)
        await h.feed("b", rows(2.0))
        await h.advance(1.999)
        assert h.outputs("b") == []
        await h.advance(0.001)  # five seconds after the first row: both go
        assert [values([f]) for f in h.outputs("b")] == [[1.0, 2.0]]
        await h.feed("b", rows(3.0))  # a new first row: its own five seconds
        await h.advance(4.9)
        assert len(h.outputs("b")) == 1
        await h.advance(0.1)
        assert [values([f]) for f in h.outputs("b")] == [[1.0, 2.0], [3.0]]

    run(flow, body)


# ---- email ------------------------------------------------------------------------------------
@dataclass
class Mailbox:
    received: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def test_email_rate_limit_counts_its_minute_in_fake_time(smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    flow = {
        "mail": {
            "type": "email",
            "host": "127.0.0.1",
            "port": port,
            "from": "flow@plant.local",
            "to": ["lead@plant.local"],
            "max_per_minute": 1,
        }
    }
    alert = pd.DataFrame({"event": ["raise"], "line": [3], "severity": ["critical"]})

    async def body(h: FlowHarness) -> None:
        for _ in range(3):
            await h.feed("mail", alert)
        assert len(box.received) == 1  # the send ran in a thread: settling waited for it
        await h.advance(59.9)
        await h.feed("mail", alert)
        assert len(box.received) == 1
        await h.advance(0.1)  # a minute after the first email
        await h.feed("mail", alert)
        assert len(box.received) == 2

    h = run(flow, body, replace_io=False)
    assert h.counters("mail") == {"combined": 3, "emails": 2, "errors": 0}
    assert "4 alert record(s)" in str(box.received[1].get_payload())
