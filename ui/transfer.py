"""Export and import in the editor: download the flow or the selection (secrets masked,
``${VAR}`` kept), and a dialog that imports pasted or uploaded flows or Node-RED exports."""

from __future__ import annotations

import json
from collections.abc import Callable

from nicegui import events, ui

from flowengine.export import export as export_text
from flowengine.nodes.nodered.convert import NodeRedError, import_nodered, is_nodered, report
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


Marks = Callable[[dict[str, str]], None]


def report_dialog(text: str) -> None:
    """The Node-RED import report (the text ``flowengine import`` prints) in one dialog (on
    the page itself: the import dialog it comes from is deleted when it closes)."""
    with ui.context.client.layout, ui.dialog() as dialog, ui.card().classes("w-[52rem]"):
        ui.label("Node-RED import report").classes("text-h6")
        with ui.scroll_area().classes("w-full h-[60vh] border rounded"):
            ui.label(text).classes("whitespace-pre-wrap font-mono text-xs").mark("import-report")
        ui.label("Nodes that behave differently are outlined on the canvas.").classes(
            "text-caption text-grey-7"
        )
        ui.button("Close", on_click=dialog.close).mark("import-report-close")
    dialog.on_value_change(lambda e: None if e.value else dialog.delete())
    dialog.open()


def import_nodered_text(
    model: EditorModel,
    source: str,
    on_imported: Callable[[list[str]], None],
    on_marks: Marks | None,
    name: str = "pasted text",
) -> bool:
    """Import a Node-RED export: its nodes go in under new ids, the report opens in one
    dialog and the nodes that behave differently are marked on the canvas."""
    try:
        result = import_nodered(source)
        ids = model.import_nodes(json.dumps(result.flow), 100.0, 100.0)
    except NodeRedError as exc:
        ui.notify(f"Not imported: {exc}", type="negative", multi_line=True)
        return False
    except FlowError as exc:
        ui.notify(str(exc), type="negative", multi_line=True)
        return False
    result = result.renamed(ids)
    if on_marks is not None:
        on_marks(result.marks())
    on_imported(ids)
    report_dialog(report(result, name))
    return True


def import_text(
    model: EditorModel,
    source: str,
    on_imported: Callable[[list[str]], None],
    on_marks: Marks | None = None,
    name: str = "pasted text",
) -> bool:
    """Import ``source`` (a file ``name``) into the model, telling what happened; True when it
    was imported. A Node-RED export's report opens in one dialog and ``on_marks({node: why})``
    outlines the nodes that behave differently."""
    if is_nodered(source):
        return import_nodered_text(model, source, on_imported, on_marks, name)
    try:
        ids = model.import_nodes(source, 100.0, 100.0)
    except FlowError as exc:
        ui.notify(str(exc), type="negative", multi_line=True)
        return False
    on_imported(ids)
    ui.notify(f"Imported {len(ids)} node(s)")
    return True


def import_dialog(
    model: EditorModel, on_imported: Callable[[list[str]], None], on_marks: Marks | None = None
) -> None:
    """Open a dialog for a text or a file to import; ``on_imported(ids)`` after an import,
    ``on_marks`` as in :func:`import_text`."""
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

        def do_import(source: str, name: str = "pasted text") -> None:
            if import_text(model, source, on_imported, on_marks, name):
                dialog.close()

        async def from_file(e: events.UploadEventArguments) -> None:
            try:
                source = await e.file.text()
            except UnicodeDecodeError:
                ui.notify(f"{e.file.name} is not a text file", type="negative")
                return
            do_import(source, e.file.name)

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
