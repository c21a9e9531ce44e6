"""FlowHost: what the editor drives: start, deploy, stop, and the live view of a running flow."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowengine.runtime import NotRunning
from flowengine.testing import check_text
from flowengine.ui.app import Editor, EditorConfig
from flowengine.ui.host import FlowHost
from flowengine.validate import CheckedFlow
from tests.helpers.peers import free_port, wait_until
from tests.helpers.uiuser import editing, run, storage_in_tmp  # noqa: F401  (autouse fixture)


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
        pid = host.pid

        report = await host.deploy(line(2.0, interval=0.5))  # slower: history stays in view
        assert report.restarted == ["tick"] and sorted(report.kept) == ["hot", "show"]
        assert host.pid == pid  # deployed into the running process, not a new one
        kept = host.debug_batches("show")
        await eventually(lambda: values(host)[-1] == 2.0, "the new rows")
        first = host.debug_batches("show")[0]
        assert any(b is first for b in kept)  # the same node: its history goes on
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
        await eventually(lambda: values(host) and set(values(host)) == {2.0}, "the new run's")
        await host.stop()
        assert await FlowHost().stop() is None

    asyncio.run(asyncio.wait_for(main(), 60))


def gone(pid: int) -> bool:
    """True when no process ``pid`` runs (none, or a zombie nobody reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def test_fire_sends_exactly_one_more_batch():
    async def main() -> None:
        host = FlowHost()
        await host.start(line(1.0, interval=3600))  # one batch now, the next in an hour
        await eventually(lambda: len(host.debug_batches("show")) == 1, "the first batch")
        await host.fire("tick")
        tick = {s["id"]: s for s in host.snapshot()}["tick"]
        assert tick["rows_out"] == 2  # the state pushed with the answer: sent already
        with pytest.raises(TypeError, match="cannot be fired"):
            await host.fire("show")
        with pytest.raises(KeyError):
            await host.fire("nope")
        await host.stop()  # drains: what was fired has reached the debug node
        assert values(host) == [1.0, 1.0]
        with pytest.raises(NotRunning):
            await host.fire("tick")

    asyncio.run(asyncio.wait_for(main(), 60))


def two_debug_nodes() -> CheckedFlow:
    checked = check_text(
        {
            "tick": {
                "type": "inject",
                "interval": 0.01,
                "rows": [{"value": 1.0}],
                "wires": ["hot"],
            },
            "hot": {"type": "filter", "query": "value > 0", "wires": ["show", "other"]},
            "show": {"type": "debug", "keep": 50, "rows": 0, "level": "debug"},
            "other": {"type": "debug", "keep": 50, "rows": 0, "level": "debug"},
        }
    )
    assert checked.ok, checked.errors
    return checked


def test_set_debug_off_stops_a_debug_nodes_batches_and_on_brings_them_back():
    async def main() -> None:
        host = FlowHost()
        await host.start(two_debug_nodes())
        await eventually(lambda: host.debug_batches("show"), "show's batches")
        await host.set_debug("show", False)
        assert not host.debug_on("show") and host.debug_on("other")
        muted = host.debug_batches("show")
        seen = {id(b) for b in host.debug_batches("other")}
        await eventually(
            lambda: len({id(b) for b in host.debug_batches("other")} - seen) >= 5,
            "5 more batches at the other debug node",
        )
        assert host.debug_batches("show") == muted  # the same objects, none added
        with pytest.raises(TypeError):
            await host.set_debug("hot", False)
        await host.set_debug("show", True)
        await eventually(lambda: len(host.debug_batches("show")) > len(muted), "show again")
        await host.set_debug("show", False)  # muted stays muted over a restart
        await host.restart()
        await eventually(lambda: len(host.debug_batches("other")) >= 3, "other after restart")
        await host.stop()
        assert host.debug_batches("show") == [] and not host.debug_on("show")

    asyncio.run(asyncio.wait_for(main(), 90))


def test_a_killed_flow_process_shows_why_and_restart_brings_it_back():
    async def main() -> None:
        host = FlowHost()
        await host.start(line(1.0))
        pid = host.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await eventually(lambda: not host.running, "the host noticing")
        # why comes once the process is reaped, just after it is seen gone
        await eventually(lambda: host.error is not None, "the reason")
        assert host.error is not None and "SIGKILL" in host.error
        states = {s["id"]: s for s in host.snapshot()}
        assert {s["state"] for s in states.values()} == {"error"}
        assert "SIGKILL" in str(states["tick"]["text"])
        with pytest.raises(NotRunning):
            await host.fire("tick")
        report = await host.stop()
        assert report is not None and not report.drained
        await host.restart()
        assert host.running and host.pid != pid and host.error is None
        await eventually(lambda: values(host), "batches of the new process")
        os.kill(host.pid, signal.SIGKILL)  # type: ignore[arg-type]
        await eventually(lambda: not host.running, "the second kill")
        report2 = await host.deploy(line(2.0))  # a deploy starts it again too
        assert sorted(report2.added) == ["hot", "show", "tick"] and host.running
        await host.stop()

    asyncio.run(asyncio.wait_for(main(), 90))


SPIN = """\
version: 1
settings: {{allow_code: true}}
nodes:
  tick:
    type: inject
    rows: [{{value: 1.0}}]
    wires: [spin]
  spin:
    type: python
    code: |
      def process(df):
          import pathlib, time
          folder = pathlib.Path({folder!r})
          (folder / "spinning").touch()
          end = time.monotonic() + 30
          while not (folder / "release").exists() and time.monotonic() < end:
              pass
          (folder / "spun").touch()
          return df
    wires: [show]
  show:
    type: debug
"""


def test_a_flow_that_keeps_its_core_busy_does_not_hold_up_the_editor(tmp_path: Path) -> None:
    flow = tmp_path / "spin.yaml"
    flow.write_text(SPIN.format(folder=str(tmp_path)))
    editor = Editor(EditorConfig(flow, allow_code=True))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            await eventually(lambda: (tmp_path / "spinning").exists(), "the flow spinning")
            host = editor.host
            assert host is not None and host.running
            pid = host.pid
            await user.open("/")  # a second page, served while the flow's loop spins
            await user.should_see("spin.yaml")
            assert {s["id"] for s in host.snapshot()} == {"tick", "spin", "show"}
            assert not (tmp_path / "spun").exists()  # the page came first
            (tmp_path / "release").touch()
            await eventually(lambda: host.debug_batches("show"), "the batch after the spin")
        assert pid is not None and gone(pid)  # the editor's shutdown ended its process

    run(scenario)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "children") as f:
            found += [int(p) for p in f.read().split()]
    return found


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_the_flow_process_ends_with_the_editor(tmp_path: Path, how: signal.Signals) -> None:
    """SIGTERM: the editor drains its flow (its log says so); SIGKILL: the flow's process sees
    the editor gone and ends by itself. Either way no process is left behind."""
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        textwrap.dedent(
            """\
            version: 1
            nodes:
              tick: {type: inject, interval: 0.2, rows: [{value: 1.0}], wires: [show]}
              show: {type: debug, rows: 0}
            """
        )
    )
    port = free_port()
    editor = subprocess.Popen(
        [sys.executable, "-m", "flowengine.cli", "edit", str(flow), "--port", str(port)],
        cwd=tmp_path,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
            "NICEGUI_STORAGE_PATH": str(tmp_path / ".nicegui"),
        },
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "editor.log").open("wb"),
    )
    try:

        def page() -> bool:  # the first page opens the flow, which starts it
            try:
                return httpx.get(f"http://127.0.0.1:{port}/", timeout=30).status_code == 200
            except httpx.HTTPError:
                return editor.poll() is not None

        wait_until(page, 60, "the editor's page")
        log = tmp_path / "editor.log"
        # the flow's own log lines, in the editor's: it runs
        wait_until(lambda: "1 rows from 'tick'" in log.read_text(), 30, "the flow's log")
        children = _children(editor.pid)  # the flow's, and one started ahead for the next
        editor.send_signal(how)
        editor.wait(30)
        wait_until(lambda: all(gone(c) for c in children), 30, "the flow's process to end")
        if how == signal.SIGTERM:
            assert "stopping: draining queues" in log.read_text()
    finally:
        if editor.poll() is None:
            editor.kill()
            editor.wait()
