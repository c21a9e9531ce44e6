"""The editor's top bar: the flow's name, unsaved and run state, undo/redo, fit, import,
export and Deploy."""

from __future__ import annotations

from typing import Any, Protocol

from nicegui import ui

from flowengine.ui.auth import logout_button
from flowengine.ui.editor import Editor
from flowengine.ui.model import EditorModel

#: What the export menu offers: (scope, its label) by format.
EXPORTS = (("flow", "Flow"), ("selection", "Selection"))
EXPORT_FORMATS = ("yaml", "json")
_FLAT = "flat dense color=white"


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
        self.model = model
        with ui.row().classes("w-full items-center px-3 py-1 gap-2 bg-blue-grey-9 text-white"):
            ui.label("flowengine").classes("text-weight-bold")
            if editor.folder is not None:  # `flowengine edit DIR`: back to its flows
                ui.link("Flows", "/").classes("text-white").mark("folder").tooltip(
                    f"The flows in {editor.folder}"
                )
            name = model.flow().name or model.path.name
            ui.label(f"{name} ({model.path.name})").classes("text-grey-4")
            self.dirty_label = (
                ui.label("unsaved changes").classes("text-amber-5 text-caption").mark("dirty")
            )
            ui.space()
            self.run_label = ui.label("").classes("text-caption text-grey-4").mark("run-state")
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
