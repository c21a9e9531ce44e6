"""The editor's pages: login when needed, the folder's flows (``flowengine edit DIR``) and
the editor of one flow file. A tab's page is bound to the file in its URL (``/edit/{name}``):
every action it takes goes to that file's model, whatever other tabs open meanwhile."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nicegui import ui

from flowengine.problems import FlowError
from flowengine.ui.auth import logged_in, login_page, logout_button
from flowengine.ui.editor import Editor
from flowengine.ui.editor_view import EditorView


def root(editor: Editor) -> Callable[[], None]:
    """The NiceGUI root page of ``editor``: login when needed, then the editor pages."""

    def page() -> None:
        ui.page_title("flowengine editor")
        if not logged_in(editor.guard):
            login_page(editor.guard)
            return
        ui.query(".nicegui-content").classes("p-0 gap-0")
        folder = editor.folder
        routes: dict[str, Callable[..., Any]]
        if folder is None:
            routes = {"/": lambda: editor_page(editor, editor.config.target)}
        else:
            routes = {
                "/": lambda: folder_page(editor),
                "/edit/{name}": lambda name: editor_page(editor, folder / name),
            }
        ui.sub_pages(routes).classes("w-full")

    return page


def folder_page(editor: Editor) -> None:
    """``flowengine edit DIR``: the flows in the folder, and a new one."""
    assert editor.folder is not None
    with ui.card().classes("mx-auto mt-8 w-96"):
        with ui.row().classes("w-full items-center no-wrap"):
            ui.label(f"Flows in {editor.folder}").classes("text-h6 grow")
            logout_button(editor.guard, color="grey-8")
        files = editor.flows()
        if not files:
            ui.label("No flows yet.").classes("text-grey-7")
        for path in files:
            entry = editor.open_flows.get(path.resolve())
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                ui.link(path.name, f"/edit/{path.name}").mark(f"flow-{path.name}")
                if entry is not None:  # open in the workspace: its run state
                    ui.label(entry.state()).classes("text-caption text-grey-7")
        ui.separator()

        async def create() -> None:
            name = (new.value or "").strip()
            if not name:
                return
            try:
                path = await editor.create(name)
            except (OSError, ValueError, FlowError) as exc:  # exists, bad name, does not open
                ui.notify(str(exc), type="negative", multi_line=True)
                return
            ui.navigate.to(f"/edit/{path.name}")

        with ui.row().classes("w-full items-center no-wrap"):
            new = ui.input("New flow", placeholder="name").props("dense").classes("grow")
            new.mark("new-flow")
            ui.button("Create", on_click=create).mark("create-flow")


async def editor_page(editor: Editor, path: Path) -> None:
    """The editor of one flow file (in folder mode, only a flow listed in the folder)."""
    if not path.is_file() or (editor.folder and path not in editor.flows()):
        ui.label(f"No flow {path.name}").classes("text-negative")
        return
    try:
        model = await editor.open(path)
    except FlowError as exc:
        ui.label(f"{path.name} cannot be opened:").classes("text-negative")
        for problem in exc.problems:
            ui.label(str(problem)).classes("font-mono text-sm")
        return
    EditorView(editor, model)
