"""Export and import in the editor: download the flow or the selection (secrets masked,
``${VAR}`` kept), and a dialog that imports pasted or uploaded flows or Node-RED exports."""

from __future__ import annotations

from collections.abc import Callable

from nicegui import events, ui

from flowengine.export import export as export_text
from flowengine.problems import FlowError
from flowengine.registry import Registry
from flowengine.ui.model import EditorModel
from flowengine.ui.selection import selection_text

IMPORT_MAX_BYTES = 5_000_000  # a flow file, or a Node-RED export of a whole instance


def export_download(
    model: EditorModel, registry: Registry, selected: list[str], scope: str, fmt: str
) -> None:
    """Download the flow, or the ``selected`` nodes with the wires among them, as YAML or
    JSON: literal secrets masked, ``${VAR}`` references kept."""
    if scope == "selection":
        ids = [i for i in selected if i in model.nodes]
        if not ids:
            ui.notify("Nothing selected: select nodes on the canvas first", type="warning")
            return
        text = selection_text(model.doc, ids, fmt, registry)
        name = f"{model.path.stem}-selection.{fmt}"
    else:
        text = export_text(model.flow(), registry, fmt)
        name = f"{model.path.stem}.{fmt}"
    media = "application/json" if fmt == "json" else "application/yaml"
    ui.download.content(text.encode(), name, media_type=media)


def import_text(model: EditorModel, source: str, on_imported: Callable[[list[str]], None]) -> bool:
    """Import ``source`` into the model, telling what happened; True when it was imported."""
    try:
        ids, notes = model.import_any(source, 100.0, 100.0)
    except FlowError as exc:
        ui.notify(str(exc), type="negative", multi_line=True)
        return False
    on_imported(ids)
    ui.notify(f"Imported {len(ids)} node(s)")
    for note in notes:
        ui.notify(note, type="warning", multi_line=True, timeout=0, close_button=True)
    return True


def import_dialog(model: EditorModel, on_imported: Callable[[list[str]], None]) -> None:
    """Open a dialog for a text or a file to import; ``on_imported(ids)`` after an import."""
    with ui.dialog() as dialog, ui.card().classes("w-[36rem]"):
        ui.label("Import nodes (a flow in YAML or JSON, or Node-RED's flows.json)").classes(
            "text-h6"
        )
        text = (
            ui.textarea(placeholder="nodes:\n  ...")
            .props("autogrow input-class=font-mono")
            .classes("w-full")
            .mark("import-text")
        )

        def do_import(source: str) -> None:
            if import_text(model, source, on_imported):
                dialog.close()

        async def from_file(e: events.UploadEventArguments) -> None:
            try:
                source = await e.file.text()
            except UnicodeDecodeError:
                ui.notify(f"{e.file.name} is not a text file", type="negative")
                return
            do_import(source)

        ui.upload(
            label="or a file (.yaml, .yml, .json)",
            auto_upload=True,
            max_file_size=IMPORT_MAX_BYTES,
            on_upload=from_file,
            on_rejected=lambda: ui.notify(
                "Not imported: a .yaml, .yml or .json file up to 5 MB", type="negative"
            ),
        ).props("accept=.yaml,.yml,.json flat bordered").classes("w-full").mark("import-file")
        with ui.row():
            ui.button("Import", on_click=lambda: do_import(text.value or "")).mark("import-ok")
            ui.button("Cancel", on_click=dialog.close).props("flat")

    def closed(e: events.ValueChangeEventArguments) -> None:
        if not e.value:  # a new dialog each time: drop this one (and its upload route)
            dialog.delete()

    dialog.on_value_change(closed)
    dialog.open()
