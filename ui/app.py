"""The browser editor: palette left, canvas centre, properties / debug / chart / problems right.

One :class:`Editor` per process holds the open flow (an :class:`EditorModel`) and the flow
running inside it (a ``FlowHost``); every browser tab shows the same flow. ``root(editor)`` is
the NiceGUI root page (``ui.run(root)``, and ``user_simulation(root=...)`` in tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowengine.ui.auth import Guard, logged_in, login_page, logout_button
from flowengine.ui.canvas import FlowCanvas
from flowengine.ui.host import FlowHost
from flowengine.ui.live import (
    BatchFeed,
    ChartPanel,
    DebugPanel,
    fill_views,
    status_views,
)
from flowengine.ui.model import FLOW_SUFFIXES, DiskChanged, EditorModel, flow_files
from flowengine.ui.palette import Palette
from flowengine.ui.properties import PropertyPanel
from flowengine.ui.selection import selection_text
from nicegui import app, events, ui

from flowengine.export import export as export_text
from flowengine.problems import FlowError
from flowengine.registry import Registry, default_registry

log = logging.getLogger("flowengine.editor")
LIVE_PERIOD = 1.0
DISK_PERIOD = 2.0
IMPORT_MAX_BYTES = 5_000_000  # a flow file, or a Node-RED export of a whole instance


@dataclass(slots=True)
class EditorConfig:
    """What ``flowengine edit`` was asked for."""

    target: Path  # a flow file, or a folder of flows
    password: str | None = None
    run: bool = True  # run the open flow inside the editor
    allow_code: bool = False


class Editor:
    """The open flow and the flow running in this process (shared by every tab)."""

    def __init__(self, config: EditorConfig, registry: Registry | None = None) -> None:
        self.config = config
        self.registry = registry or default_registry()
        self.guard = Guard(config.password)
        self.model: EditorModel | None = None
        self.host: FlowHost | None = None
        self.host_error: str | None = None
        self._lock = asyncio.Lock()

    @property
    def folder(self) -> Path | None:
        return self.config.target if self.config.target.is_dir() else None

    def flows(self) -> list[Path]:
        return flow_files(self.folder) if self.folder else [self.config.target]

    async def open(self, path: Path) -> EditorModel:
        """Open ``path`` (closing the previous flow and its run) and start running it."""
        async with self._lock:
            if self.model is not None and self.model.path.resolve() == path.resolve():
                return self.model
            await self._stop()
            self.model = EditorModel.open(path, self.registry, allow_code=self.config.allow_code)
            if self.config.run:
                await self._start()
            return self.model

    async def create(self, name: str) -> Path:
        """A new empty flow in the folder (``.yaml`` added unless the name ends in a flow
        suffix; ``.json`` gives a JSON file); :class:`ValueError` for a name like ``.yaml``."""
        assert self.folder is not None
        name = Path(name).name
        if not name.lower().endswith(FLOW_SUFFIXES):
            name += ".yaml"
        EditorModel.create(self.folder / name, self.registry)
        return self.folder / name

    async def _start(self) -> None:
        assert self.model is not None
        checked = self.model.checked()
        if not checked.ok:
            self.host_error = "not running: the flow has errors (fix them and deploy)"
            return
        host = FlowHost()
        try:
            await host.start(checked)
        except Exception as exc:  # shown in the editor; the editor itself stays up
            log.exception("starting the flow failed")
            self.host_error = f"not running: {exc}"
            return
        self.host, self.host_error = host, None

    async def _stop(self) -> None:
        if self.host is not None:
            host, self.host = self.host, None
            await host.stop()

    async def deploy(self, *, force: bool = False) -> str:
        """Validate, save and apply to the running flow; returns what happened (for a toast).

        Raises :class:`FlowError` for an invalid flow and :class:`DiskChanged` when the file
        changed on disk since it was opened (unless ``force``).
        """
        async with self._lock:
            assert self.model is not None
            checked = self.model.checked()
            if not checked.ok:
                raise FlowError(checked.problems)
            self.model.save(force=force)
            if not self.config.run:
                return "Saved"
            if self.host is None:
                await self._start()
                return "Saved and started" if self.host else f"Saved ({self.host_error})"
            report = await self.host.deploy(checked)  # starts it again if it had ended
            counts = (
                f"{len(report.added)} added, {len(report.removed)} removed, "
                f"{len(report.restarted)} restarted"
            )
            tail = "".join(f"; {node} failed: {why}" for node, why in report.failed.items())
            return f"Deployed: {counts}{tail}"

    async def shutdown(self) -> None:
        await self._stop()


def root(editor: Editor) -> Callable[[], None]:
    """The NiceGUI root page of ``editor``: login when needed, then the editor pages."""

    def page() -> None:
        ui.page_title("flowengine editor")
        if not logged_in(editor.guard):
            login_page(editor.guard)
            return
        ui.query(".nicegui-content").classes("p-0 gap-0")
        if editor.folder is None:
            routes = {"/": lambda: editor_page(editor, editor.config.target)}
        else:
            routes = {
                "/": lambda: folder_page(editor),
                "/edit/{name}": lambda name: editor_page(editor, editor.folder / name),
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
            ui.link(path.name, f"/edit/{path.name}").mark(f"flow-{path.name}")
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


class EditorView:
    """One tab's editor: builds the layout and wires the panels to the model and the host."""

    def __init__(self, editor: Editor, model: EditorModel) -> None:
        self.editor = editor
        self.model = model
        self.shown_revision = -1
        self.selected: list[str] = []
        self.feed = BatchFeed()
        self.keep_mine = False
        ui.query("body").style("overflow: hidden")
        with ui.column().classes("w-full h-screen gap-0 no-wrap"):
            self._toolbar()
            self.disk_banner = ui.row().classes(
                "w-full items-center bg-amber-2 px-4 py-1 text-body2"
            )
            with self.disk_banner:
                ui.icon("warning", color="orange")
                ui.label(
                    "The file changed on disk since it was opened: deploying would overwrite it."
                ).mark("disk-warning")
                ui.button("Reload from disk", on_click=self.reload).props("flat dense").mark(
                    "disk-reload"
                )
                ui.button("Keep my version", on_click=self.keep).props("flat dense").mark(
                    "disk-keep"
                )
            self.disk_banner.visible = False
            with ui.row().classes("w-full grow no-wrap gap-0 overflow-hidden"):
                with ui.column().classes(
                    "w-56 h-full overflow-auto p-2 gap-1 border-r bg-grey-1 shrink-0"
                ):
                    Palette(editor.registry, self.add_from_palette)
                with ui.element("div").classes("grow h-full relative overflow-hidden"):
                    self.canvas = FlowCanvas(on_change=self.on_canvas).classes("w-full h-full")
                    self.canvas.mark("canvas")
                with ui.column().classes("w-96 h-full border-l gap-0 no-wrap shrink-0"):
                    self._side()
        self.refresh()
        self.canvas.fit()
        ui.timer(LIVE_PERIOD, self.tick)
        ui.timer(DISK_PERIOD, self.check_disk)

    # ---- layout ------------------------------------------------------------------------
    def _toolbar(self) -> None:
        with ui.row().classes("w-full items-center px-3 py-1 gap-2 bg-blue-grey-9 text-white"):
            ui.label("flowengine").classes("text-weight-bold")
            if self.editor.folder is not None:  # `flowengine edit DIR`: back to its flows
                ui.link("Flows", "/").classes("text-white").mark("folder").tooltip(
                    f"The flows in {self.editor.folder}"
                )
            name = self.model.flow().name or self.model.path.name
            ui.label(f"{name} ({self.model.path.name})").classes("text-grey-4")
            self.dirty_label = (
                ui.label("unsaved changes").classes("text-amber-5 text-caption").mark("dirty")
            )
            ui.space()
            self.run_label = ui.label("").classes("text-caption text-grey-4").mark("run-state")
            self.undo_btn = (
                ui.button(icon="undo", on_click=self.undo).props("flat dense color=white")
            ).mark("undo")
            self.undo_btn.tooltip("Undo (Ctrl+Z)")
            self.redo_btn = (
                ui.button(icon="redo", on_click=self.redo).props("flat dense color=white")
            ).mark("redo")
            self.redo_btn.tooltip("Redo (Ctrl+Shift+Z)")
            ui.button(icon="fit_screen", on_click=lambda: self.canvas.fit()).props(
                "flat dense color=white"
            ).tooltip("Fit to screen").mark("fit")
            ui.button(icon="file_upload", on_click=self.import_dialog).props(
                "flat dense color=white"
            ).tooltip("Import nodes").mark("import")
            with ui.button(icon="file_download").props("flat dense color=white").mark("export"):
                ui.tooltip("Export (secrets masked, ${VAR} kept)")
                with ui.menu():
                    for scope, what in (("flow", "Flow"), ("selection", "Selection")):
                        for fmt in ("yaml", "json"):
                            ui.menu_item(
                                f"{what} as {fmt.upper()}",
                                on_click=lambda s=scope, f=fmt: self.export(s, f),
                            ).mark(f"export-{scope}-{fmt}")
            self.deploy_btn = (
                ui.button("Deploy", icon="rocket_launch", on_click=self.deploy)
                .props("color=blue-grey-6 unelevated")
                .mark("deploy")
            )
            logout_button(self.editor.guard)

    def _side(self) -> None:
        with ui.tabs().classes("w-full").props("dense no-caps") as tabs:
            self.props_tab = ui.tab("Properties")
            debug_tab = ui.tab("Debug")
            chart_tab = ui.tab("Chart")
            self.problems_tab = ui.tab("Problems")
        self.tabs = tabs
        with ui.tab_panels(tabs, value=self.props_tab).classes("w-full grow overflow-auto"):
            with ui.tab_panel(self.props_tab).classes("p-2"):
                self.panel = PropertyPanel(self.model, self.edited)
            with ui.tab_panel(debug_tab).classes("p-2"):
                self.debug = DebugPanel()
            with ui.tab_panel(chart_tab).classes("p-2"):
                self.chart = ChartPanel(self.debug_nodes)
            with ui.tab_panel(self.problems_tab).classes("p-2"):
                self.problem_list = ui.column().classes("w-full gap-1").mark("problems")

    # ---- model -> views ----------------------------------------------------------------
    def debug_nodes(self) -> list[str]:
        return [n.id for n in self.model.flow().nodes.values() if n.type == "debug"]

    def refresh(self) -> None:
        """Redraw the canvas and every indicator from the model."""
        self.shown_revision = self.model.revision
        self.canvas.set_flow(*self.model.to_view())
        self.indicators()
        self.panel.refresh_errors()
        self.chart.refresh_nodes()

    def indicators(self) -> None:
        self.indicators_light()
        self.undo_btn.enabled = self.model.can_undo
        self.redo_btn.enabled = self.model.can_redo
        problems = self.model.problems()
        errors = [p for p in problems if p.is_error]
        self.problem_list.clear()
        with self.problem_list:
            if not problems:
                ui.label("No problems.").classes("text-grey-7")
            for p in problems:
                where = f"line {p.pos.line}" + (f" · {p.node}" if p.node else "")
                row = ui.row().classes("w-full no-wrap items-start gap-2 cursor-pointer")
                with row:
                    ui.icon(
                        "error" if p.is_error else "warning",
                        color="negative" if p.is_error else "warning",
                    )
                    ui.label(f"{where}: {p.message}").classes("text-body2")
                if p.node:
                    row.on("click", lambda node=p.node: self.select(node))
        self.problems_tab.props(
            f'label="Problems ({len(errors)})"' if errors else 'label="Problems"'
        )

    def edited(self) -> None:
        """After the property panel changed the model."""
        self.shown_revision = self.model.revision
        self.canvas.set_flow(*self.model.to_view())
        self.indicators()

    def select(self, node_id: str | None) -> None:
        self.selected = [node_id] if node_id else []
        self.canvas.set_selection(self.selected, [])
        self.panel.show(node_id)
        if node_id:
            self.tabs.set_value(self.props_tab)

    # ---- canvas and palette events -----------------------------------------------------
    def on_canvas(self, args: dict[str, Any]) -> None:
        op = args.get("op")
        model = self.model
        if op == "move":
            if model.move(args.get("positions", {})):
                self.shown_revision = model.revision  # the canvas already shows it
                self.indicators()
            return
        if op == "select":
            nodes = list(args.get("nodes", []))
            self.selected = nodes
            if len(nodes) == 1:
                self.panel.show(nodes[0])
            return
        if op == "open":
            self.select(args["node"])
            return
        if op == "copy":
            count = model.copy(list(args.get("nodes", [])))
            if count:
                ui.notify(f"Copied {count} node{'s' if count != 1 else ''}")
            return
        if op == "wire":
            model.wire(args["source"], args["port"], args["target"], args.get("target_port", "in"))
        elif op == "delete":
            model.delete(list(args.get("nodes", [])), list(args.get("wires", [])))
            if self.panel.node_id not in model.nodes:
                self.panel.show(None)
        elif op == "drop":
            try:
                node_id = model.add_node(str(args["type"]), float(args["x"]), float(args["y"]))
            except KeyError as exc:
                ui.notify(str(exc), type="negative")
                return
            self.refresh()
            self.select(node_id)
            return
        elif op == "paste":
            ids = model.paste(float(args.get("x", 100)), float(args.get("y", 100)))
            self.refresh()
            self.canvas.set_selection(ids, [])
            return
        elif op == "undo":
            self.undo()
            return
        elif op == "redo":
            self.redo()
            return
        else:
            return
        self.refresh()

    def add_from_palette(self, type_name: str) -> None:
        """A click on a palette entry: the node goes below the lowest one."""
        nodes, _ = self.model.to_view()
        y = max((n["y"] for n in nodes), default=0.0) + 80.0
        self.on_canvas({"op": "drop", "type": type_name, "x": 80.0, "y": y})

    def undo(self) -> None:
        if self.model.undo():
            self.refresh()
            self.panel.show(self.panel.node_id)

    def redo(self) -> None:
        if self.model.redo():
            self.refresh()
            self.panel.show(self.panel.node_id)

    # ---- deploy, disk, import/export ---------------------------------------------------
    async def deploy(self) -> None:
        try:
            message = await self.editor.deploy(force=self.keep_mine)
        except FlowError as exc:
            errors = [p for p in exc.problems if p.is_error]
            ui.notify(f"Not deployed: {len(errors)} error(s), see Problems", type="negative")
            self.tabs.set_value(self.problems_tab)
            return
        except DiskChanged:
            self.disk_banner.visible = True
            ui.notify("Not deployed: the file changed on disk", type="warning")
            return
        except Exception as exc:
            log.exception("deploy failed")
            ui.notify(f"Deploy failed: {exc}", type="negative")
            return
        self.keep_mine = False
        self.disk_banner.visible = False
        ui.notify(message, type="warning" if "failed:" in message else "positive")
        self.indicators()

    def check_disk(self) -> None:
        if not self.keep_mine:
            self.disk_banner.visible = self.model.changed_on_disk()

    def reload(self) -> None:
        try:
            self.model.reload()
        except FlowError as exc:  # the file on disk is broken now: keep what is shown
            ui.notify(f"Not reloaded: {exc}", type="negative", multi_line=True)
            return
        self.keep_mine = False
        self.disk_banner.visible = False
        self.refresh()
        self.panel.show(None)

    def keep(self) -> None:
        self.keep_mine = True
        self.disk_banner.visible = False

    def export(self, scope: str = "flow", fmt: str = "yaml") -> None:
        """Download the flow, or the nodes selected on the canvas with the wires among them,
        as YAML or JSON: literal secrets masked, ``${VAR}`` references kept."""
        registry = self.editor.registry
        if scope == "selection":
            ids = [i for i in self.canvas.selection[0] if i in self.model.nodes]
            if not ids:
                ui.notify("Nothing selected: select nodes on the canvas first", type="warning")
                return
            text = selection_text(self.model.doc, ids, fmt, registry)
            name = f"{self.model.path.stem}-selection.{fmt}"
        else:
            text = export_text(self.model.flow(), registry, fmt)
            name = f"{self.model.path.stem}.{fmt}"
        media = "application/json" if fmt == "json" else "application/yaml"
        ui.download.content(text.encode(), name, media_type=media)

    def import_dialog(self) -> None:
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
                try:
                    ids, notes = self.model.import_any(source, 100.0, 100.0)
                except FlowError as exc:
                    ui.notify(str(exc), type="negative", multi_line=True)
                    return
                self.refresh()
                self.canvas.set_selection(ids, [])
                ui.notify(f"Imported {len(ids)} node(s)")
                for note in notes:
                    ui.notify(note, type="warning", multi_line=True, timeout=0, close_button=True)
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

    # ---- live --------------------------------------------------------------------------
    def tick(self) -> None:
        """Once a second: other tabs' edits, the run state, node status, wire fill, batches."""
        if self.model is not self.editor.model:  # another tab opened another flow
            self.run_label.text = "another flow was opened in this editor"
            return
        if self.shown_revision != self.model.revision:  # changed in another tab
            self.refresh()
            self.panel.show(self.panel.node_id)
        self.indicators_light()
        host = self.editor.host
        if host is None:
            self.run_label.text = self.editor.host_error or "not running"
            return
        self.run_label.text = "running" if host.running else "stopped"
        with contextlib.suppress(Exception):  # a host mid-deploy may not answer this tick
            self.canvas.set_status(status_views(host.snapshot()))
            self.canvas.set_fill(fill_views(host.wire_fill()))
        seen = self.feed.poll(host, self.debug_nodes())
        if seen:
            self.debug.add(seen)
            self.chart.add(seen)

    def indicators_light(self) -> None:
        """The unsaved-changes marks: a label, and Deploy in red only when there is something."""
        dirty = self.model.dirty
        if dirty != self.dirty_label.visible:
            self.dirty_label.visible = dirty
            self.deploy_btn.props(f"color={'red-7' if dirty else 'blue-grey-6'}")


def serve(editor: Editor, *, host: str, port: int, secret: str) -> None:
    """Run the editor's web server until Ctrl-C (blocks)."""
    app.on_shutdown(editor.shutdown)
    ui.run(
        root(editor),
        host=host,
        port=port,
        title="flowengine editor",
        storage_secret=secret,
        reload=False,
        show=False,
        show_welcome_message=False,
        favicon="🔀",
    )
