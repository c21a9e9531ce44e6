"""Hostile payloads: deep nesting, invalid UTF-8, huge and non-finite numbers, oversized blobs.

Each bad payload goes to the error port with a reason, or (non-finite values) becomes a reading
of quality ``bad``; the source never restarts, so nothing it has buffered is lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowengine.logs import RateLimiter
from flowengine.nodes.mqtt.config import MqttParsing
from flowengine.nodes.mqtt.parse import Parser, log_bad
from flowengine.runtime import Runtime
from tests.helpers.mqtt import Broker, publish, rows, run_with, source
from tests.helpers.peers import until

RECEIVED = 1_800_000_000 * 10**9
DEEP = b"[" * 2000 + b"]" * 2000


def _parser(**cfg: Any) -> Parser:
    return Parser(MqttParsing(**cfg), "src")


def test_a_burst_with_hostile_payloads_loses_nothing(broker: Broker, prefix: str) -> None:
    """2,000 good messages with five hostile ones among them: every good one arrives exactly
    once, the three unparseable ones reach the error port with a reason and count as errors,
    the two non-finite ones are readings of quality bad, and the source never restarts."""
    nodes = source(broker.port, f"{prefix}/+", max_payload_bytes=100_000, batch_size=500)
    hostile: dict[int, bytes] = {
        300: DEEP,
        700: b'{"value": "\xff\xfe"}',
        900: b'{"value": 1e400}',
        1200: b'{"value": NaN}',
        1500: b'{"value": 1, "blob": "' + b"x" * 200_000 + b'"}',
    }
    msgs: list[tuple[str, Any]] = []
    for i in range(2000):
        if i in hostile:
            msgs.append((f"{prefix}/bad", hostile[i]))
        msgs.append((f"{prefix}/ok", {"value": i}))

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        # in rounds of 500: the shared Mosquitto queues at most 1,000 messages per subscriber
        # (max_queued_messages) and drops the rest when a loaded machine makes it fall behind
        for start in range(0, len(msgs), 500):
            await asyncio.to_thread(publish, broker.port, msgs[start : start + 500])
            good = sum(1 for topic, _ in msgs[: start + 500] if topic.endswith("/ok"))
            await until(lambda n=good: len(rows(runtime)) >= n, task, 30)
        await until(
            lambda: len(rows(runtime)) >= 2002 and len(rows(runtime, "errors")) >= 3, task, 30
        )

    runtime = run_with(nodes, body)
    out = rows(runtime)
    good = out[out["topic"] == f"{prefix}/ok"]
    assert sorted(good["value"]) == list(range(2000))  # each exactly once
    assert set(good["quality"]) == {"good"}
    flagged = out[out["topic"] == f"{prefix}/bad"]
    assert set(flagged["quality"]) == {"bad"} and len(flagged) == 2
    assert math.isinf(flagged["value"].iloc[0]) and math.isnan(flagged["value"].iloc[1])
    errors = rows(runtime, "errors")
    reasons = errors["error"].tolist()
    assert len(reasons) == 3
    assert "nested too deeply" in reasons[0]
    assert "not a number" in reasons[1] or "utf" in reasons[1].lower()
    assert "max_payload_bytes" in reasons[2]
    assert all(len(p) <= 1003 for p in errors["payload"])  # a preview, not the blob
    stats = runtime.stats["src"]
    assert stats.retries == 0 and stats.state == "stopped"
    assert stats.errors == 3 and stats.counters["parse_errors"] == 3


@pytest.mark.parametrize(
    ("policy", "readings", "bad"),
    [("bad", ["bad"] * 4, 0), ("error", [], 4), ("keep", ["good"] * 4, 0)],
)
def test_non_finite_policy(policy: str, readings: list[str], bad: int) -> None:
    parser = _parser(non_finite=policy)
    payloads = [b'{"value": NaN}', b'{"value": -Infinity}', b'{"value": 1e400}', b"1" + b"0" * 400]
    for payload in payloads:
        parser.add("t", payload, RECEIVED)
    frame, errors = parser.take_rows(), parser.take_bad()
    assert (frame["quality"].tolist() if frame is not None else []) == readings
    assert (0 if errors is None else len(errors)) == bad
    if errors is not None:
        assert all("not finite" in e for e in errors["error"])


def test_null_timestamp_is_receive_time_with_quality_bad() -> None:
    parser = _parser()
    parser.add("t", b'{"value": 1, "timestamp": null}', RECEIVED)
    parser.add("t", b'{"value": 2, "timestamp": 1700000000}', RECEIVED)
    frame = parser.take_rows()
    assert frame is not None
    assert frame["quality"].tolist() == ["bad", "good"]
    assert frame["timestamp"].iloc[0].value == RECEIVED


def test_log_lines_count_the_messages_held_back(caplog: pytest.LogCaptureFixture) -> None:
    parser = _parser()
    for payload in (b"{", b"[", b"x"):
        parser.add("plant/a", payload, RECEIVED)
    bad = parser.take_bad()
    assert bad is not None
    limiter, log = RateLimiter(3600), logging.getLogger("test.mqtt.hostile")
    with caplog.at_level(logging.WARNING, "test.mqtt.hostile"):
        log_bad(limiter, log, bad)
        limiter.last = -math.inf  # the period is over
        parser.add("plant/a", b"{", RECEIVED)
        log_bad(limiter, log, parser.take_bad())  # type: ignore[arg-type]
    assert len(caplog.records) == 2
    assert "(+2 more since last report)" in caplog.records[1].getMessage()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)
payloads = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(["value", "timestamp", "sensor", "x"]), json_values).map(
        lambda v: json.dumps(v).encode()
    ),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 3000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
)


@settings(
    max_examples=300,
    deadline=2000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(payloads, min_size=1, max_size=5), st.sampled_from(["bad", "error", "keep"]))
def test_fuzz_the_parser_never_raises_and_accounts_for_every_payload(
    messages: list[bytes], policy: str
) -> None:
    parser = _parser(non_finite=policy, max_payload_bytes=2000)
    accepted = 0
    for payload in messages:
        before = len(parser.rows)
        ok = parser.add("plant/x", payload, RECEIVED)
        assert ok == (len(parser.rows) > before)  # an accepted payload is at least one row
        accepted += ok
    bad = parser.take_bad()
    assert accepted + (0 if bad is None else len(bad)) == len(messages)
    frame = parser.take_rows()  # building the frame never raises either
    if frame is not None:
        assert set(frame["quality"]) <= {"good", "bad"}
