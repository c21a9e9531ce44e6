"""The "Save as test" dialog: name the case, choose the expectation, save; then the test file's
text to edit in place (saved back and checked), and a button that runs the flow's tests."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from nicegui import ui

from flowengine.flowtest.check import load_suite
from flowengine.registry import Registry
from flowengine.ui.savetest import Capture, SaveError
from flowengine.ui.testfile import (
    Saved,
    SaveOptions,
    existing_names,
    save_case,
    test_file_for,
)

EXPECT_KINDS = {"rows": "rows (with a tolerance)", "snapshot": "snapshot (golden file)"}
FORMATS = {"jsonl": "JSONL", "parquet": "Parquet"}


def default_name(capture: Capture, taken: list[str]) -> str:
    """``calc from live data`` (``... 2`` when taken)."""
    base = f"{'+'.join(capture.selection)} from live data"
    name, n = base, 2
    while name in taken:
        name, n = f"{base} {n}", n + 1
    return name


def check_text(path: Path, registry: Registry, allow_code: bool) -> list[str]:
    """The problems ``flowengine test`` would report for the test file at ``path``."""
    suite = load_suite(path, registry, allow_code=allow_code)
    return [str(p) for p in suite.problems if p.is_error]


class SaveTestDialog:
    """Opened by the Debug tab's "Save as test" with a capture of the selection."""

    def __init__(
        self,
        capture: Capture,
        flow: Path,
        registry: Registry,
        *,
        allow_code: bool = False,
        on_saved: Callable[[Path], Any] = lambda _p: None,
        on_run: Callable[[], Awaitable[None] | None] = lambda: None,
    ) -> None:
        self.capture = capture
        self.flow = flow
        self.path = test_file_for(flow)
        self.registry = registry
        self.allow_code = allow_code
        self.on_saved = on_saved
        self.on_run = on_run
        with ui.dialog() as self.dialog, ui.card().classes("w-[40rem] max-w-full"):
            ui.label("Save as test").classes("text-h6")
            self.body = ui.column().classes("w-full gap-2")
        self._form()
        self.dialog.open()

    def _form(self) -> None:
        with self.body:
            ui.label(f"A case in {self.path.name}: {self.capture.summary()}").classes(
                "text-body2"
            ).mark("savetest-summary")
            self.name = (
                ui.input("Case name", value=default_name(self.capture, existing_names(self.path)))
                .classes("w-full")
                .mark("savetest-name")
            )
            with ui.row().classes("w-full gap-2 no-wrap"):
                self.kind = (
                    ui.select(EXPECT_KINDS, value="rows", label="Expect")
                    .classes("grow")
                    .mark("savetest-expect")
                )
                self.tolerance = ui.number("Tolerance", value=1e-6, min=0, format="%.2g").mark(
                    "savetest-tolerance"
                )
                self.fmt = ui.select(FORMATS, value="jsonl", label="Data files").mark(
                    "savetest-format"
                )
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=self.dialog.close).props("flat")
                ui.button("Save", icon="save", on_click=self.save).mark("savetest-save")

    async def save(self) -> None:
        name = (self.name.value or "").strip()
        if not name:
            ui.notify("Name the case", type="warning")
            return
        options = SaveOptions(
            name, self.kind.value, float(self.tolerance.value or 0.0), self.fmt.value
        )
        try:
            saved = await asyncio.to_thread(save_case, self.capture, self.flow, options)
        except (SaveError, OSError) as exc:
            ui.notify(str(exc), type="negative", multi_line=True)
            return
        except Exception as exc:  # data a file format cannot hold: said, never a traceback
            ui.notify(f"Could not save: {type(exc).__name__}: {exc}", type="negative")
            return
        self.on_saved(saved.path)
        self._written(saved, name)

    def _written(self, saved: Saved, name: str) -> None:
        """After saving: what was written, notes, and the file's text to edit."""
        self.body.clear()
        with self.body:
            files = ", ".join(p.name for p in saved.files) or "no data files"
            ui.label(f"Saved case '{name}' to {saved.path.name} ({files}).").mark("savetest-saved")
            for note in saved.notes:
                with ui.row().classes("w-full no-wrap items-start gap-2"):
                    ui.icon("lock", color="warning")
                    ui.label(note).classes("text-body2").mark("savetest-note")
            self.text = (
                ui.textarea(value=saved.path.read_text(encoding="utf-8"))
                .props("outlined autogrow input-class=font-mono")
                .classes("w-full text-xs")
                .mark("savetest-yaml")
            )
            self.problems = ui.column().classes("w-full gap-1").mark("savetest-problems")
            with ui.row().classes("w-full justify-end"):
                ui.button("Close", on_click=self.dialog.close).props("flat")
                ui.button("Save changes", icon="save", on_click=self.write).props("flat").mark(
                    "savetest-write"
                )
                ui.button("Run tests", icon="play_arrow", on_click=self.run).mark("savetest-run")

    async def write(self) -> None:
        """Save the edited text, then show what ``flowengine test`` would say of it."""
        try:
            self.path.write_text(self.text.value or "", encoding="utf-8")
        except OSError as exc:
            ui.notify(f"Could not save {self.path.name}: {exc}", type="negative")
            return
        found = await asyncio.to_thread(check_text, self.path, self.registry, self.allow_code)
        self.problems.clear()
        with self.problems:
            for problem in found:
                ui.label(problem).classes("text-negative text-body2")
            if not found:
                ui.label(f"Saved {self.path.name}: no problems.").classes("text-positive")
        self.on_saved(self.path)

    async def run(self) -> None:
        self.dialog.close()
        result = self.on_run()
        if inspect.isawaitable(result):
            await result
