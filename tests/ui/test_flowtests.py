"""Flow tests in the editor (issue 14): "Save as test" from the live batches entering and
leaving the selected nodes, and the Tests tab that runs a flow's cases and marks failing nodes.
Driven through NiceGUI's simulated User; the saved files are checked by `flowengine test`."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from nicegui import ui
from nicegui.testing import User

from flowengine import logs
from flowengine.inbox import Wire
from flowengine.logs import MASK
from flowengine.testing import check_text
from flowengine.types import Batch
from flowengine.ui.app import Editor, EditorConfig
from flowengine.ui.canvas import FlowCanvas
from flowengine.ui.savetest import Capture, Part, SaveError, capture
from flowengine.ui.taps import Gap, Tap, Taps
from flowengine.ui.testfile import SaveOptions, mask_secrets, save_case
from tests.helpers.cli import flowengine
from tests.helpers.uiuser import editing, run, storage_in_tmp  # noqa: F401  (autouse fixture)

#: A line that doubles a reading and keeps the high ones; its rows carry a database URL with a
#: password, which must never reach a saved test file.
LINE = """\
version: 1
nodes:
  src:
    type: inject
    interval: 0.05
    rows:
      - {sensor: a, value: 1.5, db: "postgresql://u:Pw0rd-x1@db/p"}
      - {sensor: b, value: 2.5, db: "postgresql://u:Pw0rd-x1@db/p"}
    wires: [calc]
  calc:
    type: compute
    columns: {doubled: value * 2}
    wires: [hot]
  hot:
    type: filter
    query: "doubled > 4"
    wires: [show]
  show:
    type: debug
    rows: 0
layout:
  src: {x: 80, y: 80}
  calc: {x: 300, y: 80}
  hot: {x: 520, y: 80}
  show: {x: 740, y: 80}
"""

#: Hand-written cases of LINE: one passes, one expects the wrong number from calc.
CASES = """\
cases:
  - name: high readings pass
    target: hot
    input:
      - feed: hot
        rows: [{sensor: a, doubled: 3.0}, {sensor: b, doubled: 5.0}]
    expect:
      hot: {rows: [{sensor: b, doubled: 5.0}]}
  - name: calc doubles wrongly
    target: calc
    input:
      - feed: calc
        rows: [{sensor: a, value: 1.5}]
    expect:
      calc: {rows: [{sensor: a, value: 1.5, doubled: 4.0}]}
"""


async def eventually(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> None:
    """Wait on the test's own loop (where the editor's timers run) until ``condition``."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


def canvas_op(user: User, **args: Any) -> None:
    user.find(FlowCanvas).trigger("change", args)


def flowengine_test(path: Path) -> Any:
    return flowengine("test", str(path), env=dict(os.environ), cwd=path.parent, timeout=120)


def outs(taps: Taps, node: str) -> int:
    return sum(1 for e in taps.events(node) if isinstance(e, Tap) and e.way == "out")


# ---- the taps: bounded, rate-limited, whole stretches ------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def batch(rows: int) -> Batch:
    return Batch(pd.DataFrame({"value": range(rows)}))


def test_taps_keep_whole_stretches_within_their_limits() -> None:
    clock = Clock()
    taps = Taps(keep=6, max_rows=10, max_held=40, rate=2.0, burst=4.0, clock=clock)
    taps.sent("a", "out", batch(3), ())
    taps.sent("a", "out", batch(11), ())  # over max_rows: not kept, a gap
    taps.sent("a", "out", batch(3), ())
    assert [type(e) for e in taps.events("a")] == [Tap, Gap, Tap]
    assert [len(s) for s in taps.stretches(["a"])] == [1, 1]
    for _ in range(4):  # the budget (burst 4, two spent) runs out: recording stops ...
        taps.sent("a", "out", batch(1), ())
    assert isinstance(taps.events("a")[-1], Gap) and taps.skipped == 3
    clock.now += 1.0  # ... and stays off until the budget is full again, not at every token
    taps.sent("a", "out", batch(1), ())
    assert isinstance(taps.events("a")[-1], Gap)
    clock.now += 2.0
    taps.sent("a", "out", batch(1), ())
    assert isinstance(taps.events("a")[-1], Tap)
    assert len(taps.events("a")) == 6  # keep: older events dropped
    assert taps.held == sum(len(e.frame) for e in taps.events("a") if isinstance(e, Tap))
    # a stretch starts after what a full log dropped and ends at every gap
    assert all(len(s) >= 1 for s in taps.stretches(["a"]))
    taps.forget([])
    assert taps.events("a") == [] and taps.held == 0


def test_taps_hold_no_more_rows_than_allowed() -> None:
    taps = Taps(keep=100, max_rows=100, max_held=25, rate=1e6, burst=1e6)
    for _ in range(10):
        taps.sent("a", "out", batch(10), ())
    assert taps.held <= 25 and taps.skipped == 8


def test_outputs_pair_with_their_inputs_by_creation_time() -> None:
    """An output of an input from before the stretch is not expected, and an input still on
    its way when saved (newer than the last output) is not fed."""
    checked = check_text(LINE)
    taps = Taps()
    into_calc = [_wire("src", "out", "calc", "in")]
    into_hot = [_wire("calc", "out", "hot", "in")]

    def frame(value: float) -> pd.DataFrame:
        return pd.DataFrame({"sensor": ["a"], "value": [value]})

    taps.sent("src", "out", Batch(frame(2.0), created=2.0), into_calc)
    taps.sent("calc", "out", Batch(frame(1.0), created=1.0), into_hot)  # input 1 came before
    taps.sent("calc", "out", Batch(frame(2.0), created=2.0), into_hot)
    taps.sent("src", "out", Batch(frame(3.0), created=3.0), into_calc)  # on its way
    taken = capture(taps, checked, ["calc"])
    assert [p.frame["value"].tolist() for p in taken.feeds] == [[2.0]]
    assert [p.frame["value"].tolist() for p in taken.expects] == [[2.0]]
    assert taken.start == pd.Timestamp(taps.events("calc")[0].at, unit="s", tz="UTC").floor("ms")


def test_a_lone_source_or_sink_or_nothing_captured_is_refused_with_a_reason() -> None:
    checked = check_text(
        {
            "src": {"type": "inject", "rows": [{"value": 1}], "wires": ["calc"]},
            "calc": {"type": "compute", "columns": {"y": "value * 2"}, "wires": ["show"]},
            "show": {"type": "debug"},
        }
    )
    taps = Taps()
    for selection, why in (
        ([], "Select a node"),
        (["src"], "a source has nothing entering it"),
        (["show"], "a sink sends nothing"),
        (["calc"], "Nothing captured entering calc yet"),
    ):
        with pytest.raises(SaveError, match=why):
            capture(taps, checked, selection)


def test_secrets_in_rows_are_masked_and_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(logs, "_secrets", {})
    logs.add_secrets(["tok-9f2Kx81"])  # what resolving ${secret:API_TOKEN} registers
    frame = pd.DataFrame(
        {
            "header": ["Bearer tok-9f2Kx81", "none"],
            "token": ["plain-value", None],
            "meta": [{"password": "hunter22"}, {"note": "ok"}],
            "value": [1.5, 2.5],
        }
    )
    masked, hits = mask_secrets(frame)
    assert masked["header"].tolist() == [f"Bearer {MASK}", "none"]
    assert masked["token"][0] == MASK and pd.isna(masked["token"][1])  # a credential column
    assert masked["meta"].tolist() == [{"password": MASK}, {"note": "ok"}]
    assert hits == {"header": 1, "token": 1, "meta": 1}
    assert frame["header"][0] == "Bearer tok-9f2Kx81"  # the flow's own frame is untouched

    flow = tmp_path / "line.yaml"
    flow.write_text(LINE)
    part = Part("calc", "in", frame, 1)
    start = pd.Timestamp("2026-01-01T06:00:00Z")
    taken = Capture(["calc"], "calc", [part], [Part("calc", "out", frame, 1)], start)
    saved = save_case(taken, flow, SaveOptions("secret rows", fmt="parquet"))
    assert len(saved.notes) == 6  # three columns, in the input and the expected output
    assert saved.notes[0].startswith("input calc: 1 value(s) in column 'header' held a secret")
    for path in [saved.path, *saved.files]:
        raw = path.read_bytes()
        assert b"tok-9f2Kx81" not in raw and b"hunter22" not in raw and b"plain-value" not in raw


# ---- Save as test, in the editor ---------------------------------------------------------
def test_save_as_test_writes_cases_that_flowengine_test_passes(tmp_path: Path) -> None:
    flow = tmp_path / "line.yaml"
    flow.write_text(LINE)
    editor = Editor(EditorConfig(flow))
    test_file = tmp_path / "line.test.yaml"

    async def save(user: User, nodes: list[str], name: str, **choices: str) -> None:
        canvas_op(user, op="select", nodes=nodes, wires=[])
        user.find(marker="save-test").click()
        await user.should_see(marker="savetest-summary")
        user.find(marker="savetest-name").clear().type(name)
        for mark, value in choices.items():
            user.find(marker=f"savetest-{mark}").elements.pop().value = value
        user.find(marker="savetest-save").click()
        await user.should_see(f"Saved case '{name}' to line.test.yaml", retries=100)

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            await eventually(lambda: editor.host is not None, "the flow running in the editor")
            taps = editor.host.taps
            await eventually(lambda: outs(taps, "hot") >= 3, "batches through calc and hot")

            await save(user, ["calc"], "calc doubles")
            await user.should_see(marker="savetest-note")  # the URL password: said, masked
            # the file's text, to edit in place: a key that does not exist is pointed at
            yaml = user.find(marker="savetest-yaml").elements.pop()
            yaml.value = yaml.value.replace("tolerance: 1e-06", "tolerence: 1e-06")
            user.find(marker="savetest-write").click()
            await user.should_see("unknown key 'expect.calc.tolerence'", retries=100)
            yaml.value = yaml.value.replace("name: calc doubles", "name: calc doubles (edited)")
            yaml.value = yaml.value.replace("tolerence: 1e-06", "tolerance: 1e-06")
            user.find(marker="savetest-write").click()
            await user.should_see("Saved line.test.yaml: no problems.", retries=100)
            assert "name: calc doubles (edited)" in test_file.read_text()
            user.find("Close").click()
            await save(user, ["calc", "hot"], "calc and hot", expect="snapshot", format="parquet")

            text = test_file.read_text()
            assert "target: calc\n" in text and "target: {from: calc, to: hot}" in text
            assert "tolerance: 1e-06" in text
            inputs = tmp_path / "line.tests" / "calc-doubles-calc.jsonl"
            rows = [json.loads(line) for line in inputs.read_text().splitlines()]
            assert rows and all(r["timestamp"].endswith("Z") for r in rows)  # UTC
            assert {r["db"] for r in rows} == {f"postgresql://u:{MASK}@db/p"}
            assert (tmp_path / "line.tests" / "calc-and-hot-calc.parquet").is_file()
            golden = (
                tmp_path / "__snapshots__" / "line.test.yaml" / "calc-and-hot" / "hot.out.jsonl"
            )
            assert golden.is_file()
            saved = [p for p in tmp_path.rglob("*") if p.is_file() and p != flow]
            assert not any("Pw0rd-x1" in p.read_bytes().decode("latin-1") for p in saved)

            # the Tests tab runs both (from the dialog's button)
            user.find(marker="savetest-run").click()
            await user.should_see("0 failed, 2 passed", retries=600)
            assert not editor_marks(user)

    run(scenario)
    result = flowengine_test(test_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_save_as_test_appends_to_an_existing_file_and_keeps_its_comments(tmp_path: Path) -> None:
    flow = tmp_path / "line.yaml"
    flow.write_text(LINE)
    test_file = tmp_path / "line.test.yaml"
    test_file.write_text("# hand-written first\n" + CASES)
    checked = check_text(LINE)
    taps = Taps()
    sent = Batch(pd.DataFrame({"sensor": ["a"], "value": [1.5]}))
    taps.sent("src", "out", sent, [_wire("src", "out", "calc", "in")])
    doubled = Batch(sent.frame.assign(doubled=3.0))
    taps.sent("calc", "out", doubled, [_wire("calc", "out", "hot", "in")])
    taken = capture(taps, checked, ["calc"])
    assert taken.summary() == "1 batch(es) in (calc.in: 1 rows); 1 batch(es) out (calc.out: 1 rows)"
    with pytest.raises(SaveError, match="already has a case named 'calc doubles wrongly'"):
        save_case(taken, flow, SaveOptions("calc doubles wrongly"))
    saved = save_case(taken, flow, SaveOptions("from the line"))
    text = test_file.read_text()
    assert text.startswith("# hand-written first\ncases:\n  - name: high readings pass\n")
    assert "  - name: from the line\n" in text
    assert "      calc:\n        rows:\n          - {sensor: a, value: 1.5, doubled: 3.0}" in text
    assert saved.files == [tmp_path / "line.tests" / "from-the-line-calc.jsonl"]
    result = flowengine_test(test_file)
    assert result.returncode == 1  # the hand-written failing case still fails; ours passes
    assert "1 failed, 2 passed" in result.stdout


DIAMOND = """\
version: 1
nodes:
  src: {type: inject, interval: 1, rows: [{value: 1.5}], wires: [a, b]}
  a: {type: compute, columns: {x: value * 2}, wires: [c]}
  b: {type: compute, columns: {x: value * 3}, wires: [c]}
  c: {type: compute, columns: {y: x + 1}}
"""


def test_a_selection_with_a_gap_mocks_what_lies_between(tmp_path: Path) -> None:
    """src and c selected, a and b not: src is fed (a feeder), c is fed what a and b sent,
    and a and b, which the case would run, are mocked to send nothing."""
    flow = tmp_path / "diamond.yaml"
    flow.write_text(DIAMOND)
    taps = Taps()
    reading = Batch(pd.DataFrame({"value": [1.5]}))
    taps.sent(
        "src", "out", reading, [_wire("src", "out", "a", "in"), _wire("src", "out", "b", "in")]
    )
    taps.sent("a", "out", Batch(reading.frame.assign(x=3.0)), [_wire("a", "out", "c", "in")])
    taps.sent("b", "out", Batch(reading.frame.assign(x=4.5)), [_wire("b", "out", "c", "in")])
    for x in (3.0, 4.5):
        taps.sent("c", "out", Batch(reading.frame.assign(x=x, y=x + 1)), ())
    taken = capture(taps, check_text(DIAMOND), ["src", "c"])
    assert (taken.target, taken.mocks) == (None, ["a", "b"])
    assert [(p.node, p.port, p.rows) for p in taken.feeds] == [("src", "out", 1), ("c", "in", 2)]
    save_case(taken, flow, SaveOptions("src and c"))
    text = (tmp_path / "diamond.test.yaml").read_text()
    assert "    mocks:  # run but send nothing (outside the selection)\n      a: {}\n" in text
    result = flowengine_test(tmp_path / "diamond.test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def _wire(source: str, port: str, dest: str, dest_port: str) -> Wire:
    return Wire(source, port, dest, dest_port, 10)


# ---- the Tests tab -----------------------------------------------------------------------
def editor_marks(user: User) -> dict[str, str]:
    """The nodes the canvas outlines, with why (a problem or a failing test)."""
    canvas = user.find(FlowCanvas).elements.pop()
    return {n["id"]: n["error"] for n in canvas.props["flow"]["nodes"] if n.get("error")}


def test_the_tests_tab_runs_the_cases_and_marks_the_failing_node(tmp_path: Path) -> None:
    flow = tmp_path / "line.yaml"
    flow.write_text(LINE)
    (tmp_path / "line.test.yaml").write_text(CASES)
    editor = Editor(EditorConfig(flow, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            await user.should_see("high readings pass")
            await user.should_see("calc doubles wrongly")
            await user.should_see("2 case(s)")
            user.find(marker="tests-run").click()
            await user.should_see("1 failed, 1 passed", retries=600)
            await user.should_see(marker="test-passed")
            await user.should_see(marker="test-failed")
            diff = user.find(marker="test-diff").elements.pop()
            assert "calc: rows differ" in diff.text and "doubled" in diff.text
            marks = editor_marks(user)
            assert list(marks) == ["calc"]  # hot's case passed: not marked
            assert marks["calc"].startswith("test 'calc doubles wrongly' failed: calc: rows")
            assert tab_of_tests(user)["label"] == "Tests (1 failed)"

            # fixed by hand: the next run clears the mark
            fixed = CASES.replace("doubled: 4.0", "doubled: 3.0")
            (tmp_path / "line.test.yaml").write_text(fixed)
            user.find(marker="tests-run").click()
            await user.should_see("0 failed, 2 passed", retries=600)
            assert editor_marks(user) == {}
            assert tab_of_tests(user)["label"] == "Tests"

    run(scenario)


def tab_of_tests(user: User) -> dict[str, Any]:
    """The Tests tab's props (its label counts failing cases)."""
    tabs = [t for t in user.find(kind=ui.tab).elements if t.props.get("name") == "Tests"]
    return tabs[0].props if tabs else {}


def test_a_test_file_with_problems_is_listed_with_them(tmp_path: Path) -> None:
    flow = tmp_path / "line.yaml"
    flow.write_text(LINE)
    (tmp_path / "line.test.yaml").write_text(
        "cases:\n  - name: typo\n    target: calcc\n    expect:\n      calc: {row_cnt: 1}\n"
    )
    editor = Editor(EditorConfig(flow, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            problem = user.find(marker="tests-problem").elements.pop()
            assert "line.test.yaml:5:" in problem.text and "row_cnt" in problem.text

    run(scenario)
