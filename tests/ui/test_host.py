"""FlowHost: what the editor drives: start, deploy, stop, and the live view of a running flow."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from flowengine.testing import check_text
from flowengine.ui.host import FlowHost
from flowengine.validate import CheckedFlow


def line(value: float, *, interval: float | None = 0.01, keep: int = 5) -> CheckedFlow:
    tick: dict[str, Any] = {"type": "inject", "rows": [{"sensor": "x", "value": value}]}
    if interval is not None:
        tick["interval"] = interval
    checked = check_text(
        {
            "tick": {**tick, "wires": ["hot"]},
            "hot": {"type": "filter", "query": "value > 0", "wires": ["show"]},
            "show": {"type": "debug", "keep": keep, "rows": 0, "level": "debug"},
        }
    )
    assert checked.ok, checked.errors
    return checked


async def eventually(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> None:
    """Wait for ``condition`` to hold; fail after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


def values(host: FlowHost) -> list[float]:
    return [v for b in host.debug_batches("show") for v in b.frame["value"]]


def test_deploy_starts_then_applies_and_the_live_view_follows():
    async def main() -> None:
        host = FlowHost()
        assert not host.running
        assert host.snapshot() == [] and host.wire_fill() == {} and values(host) == []
        report = await host.deploy(line(1.0))
        assert sorted(report.added) == ["hot", "show", "tick"] and host.running
        await eventually(lambda: len(host.debug_batches("show")) == 5, "5 kept batches")
        state = {s["id"]: s for s in host.snapshot()}
        assert state["show"]["state"] == "ok" and state["tick"]["rows_per_s"] > 0
        assert set(host.wire_fill()) == {("tick", "out", "hot", "in"), ("hot", "out", "show", "in")}
        assert all(0.0 <= f <= 1.0 for f in host.wire_fill().values())
        assert host.debug_batches("hot") == [] and host.debug_batches("nope") == []
        show = host.runtime.node("show")  # type: ignore[union-attr]

        report = await host.deploy(line(2.0))
        assert report.restarted == ["tick"] and sorted(report.kept) == ["hot", "show"]
        assert host.runtime.node("show") is show  # type: ignore[union-attr]
        await eventually(lambda: values(host)[-1] == 2.0, "the new rows")
        assert 1.0 in values(host)  # the kept debug node kept its history

        ended = await host.stop()
        assert ended is not None and ended.drained and not host.running
        assert {s["state"] for s in host.snapshot()} == {"stopped"}
        assert values(host)  # still readable after the stop

        report = await host.deploy(line(3.0))
        assert sorted(report.added) == ["hot", "show", "tick"] and host.running
        await eventually(lambda: values(host) and values(host)[-1] == 3.0, "a fresh run")
        await host.stop()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_flow_that_ended_by_itself_is_started_again_by_deploy():
    async def main() -> None:
        host = FlowHost()
        await host.start(line(1.0))
        with pytest.raises(RuntimeError, match="already running"):
            await host.start(line(1.0))
        await host.stop()
        await host.start(line(1.0, interval=None))  # one batch, then every node finishes
        await eventually(lambda: not host.running, "the flow ending")
        report = await host.deploy(line(2.0))
        assert sorted(report.added) == ["hot", "show", "tick"] and host.running
        await eventually(lambda: values(host) == [2.0], "the new run's batch")
        await host.stop()
        assert await FlowHost().stop() is None

    asyncio.run(asyncio.wait_for(main(), 60))
