"""The Tests tab: the open flow's test cases (``NAME.test.yaml`` beside it, ``tests:`` inside
it), a Run button, pass/fail with each failure's diff, and failing nodes marked on the canvas.

A run is ``flowengine test FILES --junit OUT`` in a child process, so a slow case never holds
the editor's event loop (nor the running flow in it); the JUnit file says how each case went.
A failure's nodes are those its failed expectations name (``calc: rows differ``), else the
case's target.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from nicegui import ui

from flowengine.flowtest.load import discover, read_suite
from flowengine.flowtest.spec import Range

#: A run that takes longer is stopped (its child process killed).
RUN_TIMEOUT = 600.0
#: What the child process printed, kept for a run that wrote no JUnit file.
MAX_OUTPUT = 20_000
_ICONS = {
    "passed": ("check_circle", "positive"),
    "failed": ("cancel", "negative"),
    "error": ("error", "negative"),
    "skipped": ("remove_circle_outline", "grey"),
    "": ("radio_button_unchecked", "grey"),
}
#: A failed expectation's title: ``node: ...`` or ``node.port: ...`` at the start of a line.
_TITLE = re.compile(r"^(?P<node>[^\s.:]+)(?:\.[^\s:]+)?: ", re.MULTILINE)


@dataclass(slots=True)
class Listed:
    """One case as the tab lists it, with its last result."""

    file: Path
    name: str
    targets: list[str] = field(default_factory=list)
    outcome: str = ""  # passed, failed, error, skipped; "" before a run
    message: str = ""
    text: str = ""


@dataclass(slots=True)
class Outcome:
    """One ``testcase`` of a JUnit file."""

    file: str
    name: str
    outcome: str
    message: str = ""
    text: str = ""


def parse_junit(path: Path) -> list[Outcome]:
    """Every testcase of the JUnit file ``flowengine test --junit`` wrote."""
    out = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message, text = "passed", "", ""
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                outcome = "failed" if tag == "failure" else tag
                message, text = found.get("message", ""), found.text or ""
                break
        out.append(Outcome(case.get("file", ""), case.get("name", ""), outcome, message, text))
    return out


def failing_nodes(item: Listed, nodes: Collection[str]) -> list[str]:
    """The nodes a failed case points at: those its failures name, else its target."""
    named = [m["node"] for m in _TITLE.finditer(item.text) if m["node"] in nodes]
    found = list(dict.fromkeys(named)) or [t for t in item.targets if t in nodes]
    return found


def list_cases(flow: Path) -> tuple[list[Listed], list[str]]:
    """The flow's cases, and the problems of test files that cannot be read."""
    files, _ = discover([flow])
    cases: list[Listed] = []
    problems: list[str] = []
    for path in files:
        raw = read_suite(path)
        problems += [str(p) for p in raw.problems if p.is_error]
        for spec in raw.spec.cases if raw.spec else []:
            target = spec.target
            if isinstance(target, Range):
                targets = [t for t in (target.from_, target.to) if t]
            else:
                targets = [target] if target else []
            cases.append(Listed(path.resolve(), spec.name, targets))
    return cases, problems


async def run_tests(
    files: list[Path], cwd: Path, *, allow_code: bool = False, timeout: float = RUN_TIMEOUT
) -> tuple[list[Outcome], str]:
    """Run ``flowengine test`` on ``files`` in a child process: the outcomes, and what it
    printed (for a run that wrote no JUnit file)."""
    with tempfile.TemporaryDirectory(prefix="flowengine-tests-") as tmp:
        junit = Path(tmp) / "junit.xml"
        args = ["-m", "flowengine.cli", "test", *map(str, files), "--junit", str(junit)]
        if allow_code:
            args.append("--allow-code")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            printed, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except (TimeoutError, asyncio.CancelledError):
            proc.kill()  # our own child, by its handle
            await proc.wait()
            raise
        output = printed.decode("utf-8", "replace")[-MAX_OUTPUT:]
        if not junit.is_file():
            return [], output
        return parse_junit(junit), output


class TestsPanel:
    """The Tests tab's contents. ``on_marks`` gets ``{node: why}`` for the canvas after a run."""

    def __init__(
        self,
        flow: Callable[[], Path],
        nodes: Callable[[], Collection[str]],
        on_marks: Callable[[dict[str, str]], None],
        *,
        dirty: Callable[[], bool] = lambda: False,
        allow_code: bool = False,
    ) -> None:
        self.flow = flow
        self.nodes = nodes
        self.on_marks = on_marks
        self.dirty = dirty
        self.allow_code = allow_code
        self.cases: list[Listed] = []
        self.problems: list[str] = []
        self.running = False
        self.tab: ui.tab | None = None
        with ui.row().classes("w-full items-center gap-2"):
            self.run_btn = (
                ui.button("Run", icon="play_arrow", on_click=self.run)
                .props("dense unelevated")
                .mark("tests-run")
            )
            ui.button(icon="refresh", on_click=self.refresh).props("flat dense").mark(
                "tests-refresh"
            ).tooltip("Read the test files again")
            self.status = ui.label("").classes("text-caption text-grey-7").mark("tests-status")
        self.box = ui.column().classes("w-full gap-1").mark("tests-list")
        self.refresh()

    def refresh(self) -> None:
        """Read the test files again (results of cases that are still there are kept)."""
        before = {(c.file, c.name): c for c in self.cases}
        cases, self.problems = list_cases(self.flow())
        for case in cases:
            old = before.get((case.file, case.name))
            if old is not None:
                case.outcome, case.message, case.text = old.outcome, old.message, old.text
        self.cases = cases
        if not self.running:
            self.status.text = f"{len(cases)} case(s)" if cases else ""
        self.render()

    async def run(self) -> None:
        """Run every case of the flow; show how each went and mark the failing nodes."""
        if self.running:
            return
        self.refresh()
        files = list(dict.fromkeys(c.file for c in self.cases))
        if not files:
            self.status.text = "No tests to run"
            return
        self.running, self.run_btn.enabled = True, False
        note = " (the flow as saved: deploy to include your edits)" if self.dirty() else ""
        self.status.text = f"Running {len(self.cases)} case(s)...{note}"
        try:
            outcomes, output = await run_tests(
                files, self.flow().parent, allow_code=self.allow_code
            )
        except TimeoutError:
            outcomes, output = [], f"stopped after {RUN_TIMEOUT:g}s"
        finally:
            self.running, self.run_btn.enabled = False, True
        self._results(outcomes, output, note)

    def _results(self, outcomes: list[Outcome], output: str, note: str) -> None:
        here = self.flow().parent  # the run's folder: the file names are relative to it
        by_case = {(str((here / o.file).resolve()), o.name): o for o in outcomes}
        self.problems += [
            f"{o.file}: {o.text or o.message}" for o in outcomes if o.name == "(collect)"
        ]
        for case in self.cases:
            got = by_case.get((str(case.file), case.name))
            case.outcome = got.outcome if got else ("error" if not outcomes else "")
            case.message = got.message if got else ""
            case.text = got.text if got else ("" if outcomes else output)
        bad = [c for c in self.cases if c.outcome in ("failed", "error")]
        passed = sum(1 for c in self.cases if c.outcome == "passed")
        self.status.text = f"{len(bad)} failed, {passed} passed{note}"
        if self.tab is not None:
            label = f"Tests ({len(bad)} failed)" if bad else "Tests"
            self.tab.props(f'label="{label}"')
        self.render()
        self.on_marks(self.marks())

    def marks(self) -> dict[str, str]:
        """``{node: why}`` for every node a failing case points at."""
        nodes = set(self.nodes())
        out: dict[str, str] = {}
        for case in self.cases:
            if case.outcome not in ("failed", "error"):
                continue
            for node in failing_nodes(case, nodes):
                why = f"test '{case.name}' {case.outcome}: {case.message}".rstrip(": ")
                out[node] = out[node] + "\n" + why if node in out else why
        return out

    def render(self) -> None:
        self.box.clear()
        with self.box:
            for problem in self.problems:
                with ui.row().classes("w-full no-wrap items-start gap-2"):
                    ui.icon("error", color="negative")
                    ui.label(problem).classes("text-body2").mark("tests-problem")
            if not self.cases and not self.problems:
                ui.label(
                    f"No tests: write {self.flow().stem}.test.yaml beside the flow, or save "
                    "one from the Debug tab (Save as test)."
                ).classes("text-grey-7")
            for case in self.cases:
                self._case_row(case)

    @staticmethod
    def _case_row(case: Listed) -> None:
        icon, color = _ICONS.get(case.outcome, _ICONS[""])
        with ui.column().classes("w-full gap-0").mark(f"test-{case.outcome or 'not-run'}"):
            with ui.row().classes("w-full no-wrap items-center gap-2"):
                ui.icon(icon, color=color)
                ui.label(case.name).classes("text-body2").tooltip(case.file.name)
            if case.outcome in ("failed", "error") and (case.text or case.message):
                ui.label(case.text or case.message).classes(
                    "w-full font-mono text-xs whitespace-pre overflow-auto bg-grey-2 p-1"
                ).mark("test-diff")
