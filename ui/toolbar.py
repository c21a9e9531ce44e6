"""The editor's top bar: the open flows as tabs (folder mode), the flow's name, unsaved and run
state, Start/Stop/Restart, undo/redo, fit, import, export and Deploy."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from nicegui import ui

from flowengine.ui.auth import logout_button
from flowengine.ui.editor import Editor
from flowengine.ui.model import EditorModel

#: What the export menu offers: (scope, its label) by format.
EXPORTS = (("flow", "Flow"), ("selection", "Selection"))
EXPORT_FORMATS = ("yaml", "json")
_FLAT = "flat dense color=white"

log = logging.getLogger("flowengine.editor")


class ToolbarActions(Protocol):
    """What the toolbar's buttons do (the tab's editor view)."""

    def undo(self) -> None: ...
    def redo(self) -> None: ...
    def fit(self) -> None: ...
    def import_dialog(self) -> None: ...
    def export(self, scope: str = "flow", fmt: str = "yaml") -> None: ...
    async def deploy(self) -> None: ...


class Toolbar:
    """The bar, and the marks on it that follow the model (``indicators``)."""

    def __init__(self, editor: Editor, model: EditorModel, actions: ToolbarActions) -> None:
        self.editor = editor
        self.model = model
        self.shown_tabs: list[tuple[str, str]] = []
        with ui.row().classes("w-full items-center px-3 py-1 gap-2 bg-blue-grey-9 text-white"):
            ui.label("flowengine").classes("text-weight-bold")
            if editor.folder is not None:  # `flowengine edit DIR`: back to its flows
                ui.link("Flows", "/").classes("text-white").mark("folder").tooltip(
                    f"The flows in {editor.folder}"
                )
                self.tabs = ui.row().classes("items-center gap-0 no-wrap").mark("flow-tabs")
                self.flow_tabs()
            name = model.flow().name or model.path.name
            ui.label(f"{name} ({model.path.name})").classes("text-grey-4")
            self.dirty_label = (
                ui.label("unsaved changes").classes("text-amber-5 text-caption").mark("dirty")
            )
            ui.space()
            self.run_label = ui.label("").classes("text-caption text-grey-4").mark("run-state")
            if editor.config.run:
                self.start_btn = self._button(
                    "play_arrow", self.start, "Start the flow", mark="flow-start"
                )
                self.stop_btn = self._button(
                    "stop", self.stop, "Stop the flow (it drains)", mark="flow-stop"
                )
                self._button("restart_alt", self.restart, "Restart the flow", mark="flow-restart")
            self.undo_btn = self._button("undo", actions.undo, "Undo (Ctrl+Z)")
            self.redo_btn = self._button("redo", actions.redo, "Redo (Ctrl+Shift+Z)")
            self._button("fit_screen", actions.fit, "Fit to screen", mark="fit")
            self._button("file_upload", actions.import_dialog, "Import nodes", mark="import")
            self._export_menu(actions)
            self.deploy_btn = (
                ui.button("Deploy", icon="rocket_launch", on_click=actions.deploy)
                .props("color=blue-grey-6 unelevated")
                .mark("deploy")
            )
            logout_button(editor.guard)
        self.show_run()

    @staticmethod
    def _button(icon: str, on_click: Any, tip: str, *, mark: str | None = None) -> ui.button:
        button = ui.button(icon=icon, on_click=on_click).props(_FLAT).mark(mark or icon)
        button.tooltip(tip)
        return button

    @staticmethod
    def _export_menu(actions: ToolbarActions) -> None:
        with ui.button(icon="file_download").props(_FLAT).mark("export"):
            ui.tooltip("Export (secrets masked, ${VAR} kept)")
            with ui.menu():
                for scope, what in EXPORTS:
                    for fmt in EXPORT_FORMATS:
                        ui.menu_item(
                            f"{what} as {fmt.upper()}",
                            on_click=lambda s=scope, f=fmt: actions.export(s, f),
                        ).mark(f"export-{scope}-{fmt}")

    # ---- the open flows as tabs ---------------------------------------------------------
    def flow_tabs(self) -> None:
        """One tab per open flow of the folder (this one highlighted, a dot when it runs); a
        click goes to that flow's page. Redrawn only when what it shows changed."""
        shown = [
            (path.name, "running" if entry.running else "")
            for path, entry in self.editor.open_flows.items()
            if self.editor.folder is not None and path.parent == self.editor.folder.resolve()
        ]
        if shown == self.shown_tabs:
            return
        self.shown_tabs = shown
        self.tabs.clear()
        here = self.model.path.name
        with self.tabs:
            for name, state in shown:
                tab = ui.button(on_click=lambda n=name: ui.navigate.to(f"/edit/{n}"))
                tab.props("flat dense no-caps color=white").mark(f"flow-tab-{name}")
                tab.classes("px-2 " + ("bg-blue-grey-7" if name == here else "opacity-80"))
                with tab:
                    dot = "green-5" if state else "grey-6"
                    ui.icon("circle", size="8px", color=dot).classes("mr-1")
                    ui.label(name).classes("text-caption")
                    ui.tooltip(f"{name}: {state or 'not running'}")

    # ---- run state and Start / Stop / Restart ------------------------------------------
    def show_run(self) -> None:
        """The run label and which of Start/Stop can be pressed (each tick)."""
        entry = self.editor.entry(self.model)
        self.run_label.text = entry.state()
        if self.editor.config.run:
            self.start_btn.enabled = not entry.running
            self.stop_btn.enabled = entry.running
        if self.editor.folder is not None:
            self.flow_tabs()

    async def _run(self, action: Callable[[EditorModel], Awaitable[str]]) -> None:
        try:
            message = await action(self.model)
        except ValueError as exc:  # nothing runnable yet (unsaved changes)
            ui.notify(f"Not started: {exc}", type="warning")
            return
        except Exception as exc:
            log.exception("start/stop failed")
            ui.notify(f"Failed: {exc}", type="negative")
            return
        ui.notify(message)
        self.show_run()

    async def start(self) -> None:
        await self._run(self.editor.start)

    async def stop(self) -> None:
        await self._run(self.editor.stop)

    async def restart(self) -> None:
        await self._run(self.editor.restart)

    def indicators(self) -> None:
        """Undo and redo enabled as the history allows, and the unsaved-changes marks."""
        self.indicators_light()
        self.undo_btn.enabled = self.model.can_undo
        self.redo_btn.enabled = self.model.can_redo

    def indicators_light(self) -> None:
        """The unsaved-changes marks: a label, and Deploy in red only when there is something."""
        dirty = self.model.dirty
        if dirty != self.dirty_label.visible:
            self.dirty_label.visible = dirty
            self.deploy_btn.props(f"color={'red-7' if dirty else 'blue-grey-6'}")
