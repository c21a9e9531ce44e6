"""The canvas's arrangement intents (cut, duplicate, splice, disable, groups) as model edits.

Kept out of the editor view so that it only merges :func:`canvas_ops` into its table of canvas
intents; each handler edits the model, redraws and selects what the user will act on next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from nicegui import ui

from flowengine.ui.arrange import GROUP_COLORS
from flowengine.ui.canvas import FlowCanvas
from flowengine.ui.model import EditorModel

Handler = Callable[[dict[str, Any]], None]


class View(Protocol):
    """What the handlers need of the editor view."""

    model: EditorModel
    canvas: FlowCanvas

    def refresh(self) -> None: ...


def _ids(args: dict[str, Any]) -> list[str]:
    return [str(i) for i in args.get("nodes", [])]


def canvas_ops(view: View) -> dict[str, Handler]:
    """Handlers by canvas ``op`` for the intents added with the context menu and shortcuts."""

    def current() -> EditorModel:
        return view.model  # read each time: a tab may switch the model it shows

    def redraw(selected: list[str] | None = None) -> None:
        view.refresh()
        if selected is not None:
            view.canvas.set_selection(selected, [])

    def cut(args: dict[str, Any]) -> None:
        count = current().cut(_ids(args))
        if count:
            ui.notify(f"Cut {count} node{'s' if count != 1 else ''}")
            redraw([])

    def duplicate(args: dict[str, Any]) -> None:
        ids = current().duplicate(_ids(args))
        if ids:
            redraw(ids)

    def splice(args: dict[str, Any]) -> None:
        if current().splice(str(args.get("node")), str(args.get("wire"))):
            redraw()

    def disable(args: dict[str, Any]) -> None:
        if current().set_disabled(_ids(args), bool(args.get("disabled", True))):
            redraw()

    def group(args: dict[str, Any]) -> None:
        if current().group(_ids(args)):
            redraw()

    def ungroup(args: dict[str, Any]) -> None:
        if current().ungroup(str(args.get("group"))):
            redraw()

    def group_edit(args: dict[str, Any]) -> None:
        gid = str(args.get("group"))
        entry = next((g for g in current().group_views() if g["id"] == gid), None)
        if entry is not None:
            group_dialog(entry["name"], entry["color"], lambda n, c: _set(gid, n, c))

    def _set(gid: str, name: str, color: str) -> None:
        if current().set_group(gid, name, color):
            redraw()

    def make_subflow(args: dict[str, Any]) -> None:
        ui.notify("Make subflow is not available yet")  # the subflow editor overrides this op

    return {
        "make_subflow": make_subflow,
        "cut": cut,
        "duplicate": duplicate,
        "splice": splice,
        "disable": disable,
        "group": group,
        "ungroup": ungroup,
        "group_edit": group_edit,
    }


def group_dialog(name: str, color: str, on_save: Callable[[str, str], None]) -> None:
    """Rename and recolour a group."""
    with ui.dialog() as dialog, ui.card().classes("w-80"):
        ui.label("Group").classes("text-h6")
        name_in = ui.input("Name", value=name).classes("w-full").mark("group-name")
        options = list(dict.fromkeys([color, *GROUP_COLORS]))
        pick = ui.select({c: c for c in options}, value=color, label="Colour").classes("w-full")
        pick.mark("group-color")

        def save() -> None:
            on_save(str(name_in.value or name), str(pick.value or color))
            dialog.close()

        name_in.on("keydown.enter", save)
        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=dialog.close).props("flat")
            ui.button("Save", on_click=save).mark("group-save")
    dialog.open()
