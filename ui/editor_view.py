"""One tab's editor: palette left, canvas centre, properties / debug / chart / problems / tests
right, wired to the shared model and the running flow."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from nicegui import ui

from flowengine.problems import Problem
from flowengine.ui.canvas import FlowCanvas
from flowengine.ui.deploying import DeployBanner
from flowengine.ui.editor import Editor
from flowengine.ui.flowtests import TestsPanel
from flowengine.ui.live import BatchFeed, ChartPanel, DebugPanel, fill_views, status_views
from flowengine.ui.model import EditorModel
from flowengine.ui.palette import Palette
from flowengine.ui.properties import PropertyPanel
from flowengine.ui.savedialog import SaveTestDialog
from flowengine.ui.savetest import SaveError, capture
from flowengine.ui.toolbar import Toolbar
from flowengine.ui.transfer import export_download, import_dialog
from flowengine.ui.views import NodeView, WireView

LIVE_PERIOD = 1.0
DISK_PERIOD = 2.0


def problem_rows(problems: list[Problem], on_node: Callable[[str], None]) -> None:
    """The Problems tab's rows; a click on a node's problem selects the node."""
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
            row.on("click", lambda node=p.node: on_node(node))


class EditorView:
    """One tab's editor: builds the layout and wires the panels to the model and the host."""

    def __init__(self, editor: Editor, model: EditorModel) -> None:
        self.editor = editor
        self.model = model
        self.shown_revision = -1
        self.selected: list[str] = []
        self.feed = BatchFeed()
        self.test_marks: dict[str, str] = {}  # node -> why a test of it failed
        ui.query("body").style("overflow: hidden")
        with ui.column().classes("w-full h-screen gap-0 no-wrap"):
            self.toolbar = Toolbar(editor, model, self)
            self.disk = DeployBanner(
                editor,
                model,
                on_reloaded=self._reloaded,
                on_invalid=self._show_problems,
                on_deployed=self.indicators,
            )
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
        ui.timer(DISK_PERIOD, self.disk.check)

    def _side(self) -> None:
        # five tabs fit the side column (and their counts) with Quasar's padding halved
        ui.add_css(".fe-side-tabs .q-tab { padding: 0 8px; }")
        with ui.tabs().classes("w-full fe-side-tabs").props("dense no-caps") as tabs:
            self.props_tab = ui.tab("Properties")
            debug_tab = ui.tab("Debug")
            chart_tab = ui.tab("Chart")
            self.problems_tab = ui.tab("Problems")
            self.tests_tab = ui.tab("Tests")
        self.tabs = tabs
        with ui.tab_panels(tabs, value=self.props_tab).classes("w-full grow overflow-auto"):
            with ui.tab_panel(self.props_tab).classes("p-2"):
                self.panel = PropertyPanel(self.model, self.edited)
            with ui.tab_panel(debug_tab).classes("p-2"):
                self.debug = DebugPanel(on_save_test=self.save_test)
            with ui.tab_panel(chart_tab).classes("p-2"):
                self.chart = ChartPanel(self.debug_nodes)
            with ui.tab_panel(self.problems_tab).classes("p-2"):
                self.problem_list = ui.column().classes("w-full gap-1").mark("problems")
            with ui.tab_panel(self.tests_tab).classes("p-2"):
                self.tests = TestsPanel(
                    lambda: self.model.path,
                    lambda: self.model.nodes,
                    self.mark_tests,
                    dirty=lambda: self.model.dirty,
                    allow_code=self.editor.config.allow_code,
                )
                self.tests.tab = self.tests_tab

    # ---- model -> views ----------------------------------------------------------------
    def debug_nodes(self) -> list[str]:
        return [n.id for n in self.model.flow().nodes.values() if n.type == "debug"]

    def refresh(self) -> None:
        """Redraw the canvas and every indicator from the model."""
        self.shown_revision = self.model.revision
        self.canvas.set_flow(*self.views())
        self.indicators()
        self.panel.refresh_errors()
        self.chart.refresh_nodes()

    def views(self) -> tuple[list[NodeView], list[WireView]]:
        """The canvas's views: the model's, with nodes of failing tests marked (a problem's
        mark wins: it says why the node cannot run)."""
        nodes, wires = self.model.to_view()
        for node in nodes:
            why = self.test_marks.get(node["id"])
            if why and not node.get("error"):
                node["error"] = why
        return nodes, wires

    def mark_tests(self, marks: dict[str, str]) -> None:
        """After a test run: outline the nodes of failing cases."""
        self.test_marks = marks
        self.canvas.set_flow(*self.views())

    def indicators(self) -> None:
        """The toolbar's marks and the Problems tab (its label counts the errors)."""
        self.toolbar.indicators()
        problems = self.model.problems()
        errors = [p for p in problems if p.is_error]
        self.problem_list.clear()
        with self.problem_list:
            problem_rows(problems, self.select)
        self.problems_tab.props(
            f'label="Problems ({len(errors)})"' if errors else 'label="Problems"'
        )

    def edited(self) -> None:
        """After the property panel changed the model."""
        self.shown_revision = self.model.revision
        self.canvas.set_flow(*self.views())
        self.indicators()

    def select(self, node_id: str | None) -> None:
        self.selected = [node_id] if node_id else []
        self.canvas.set_selection(self.selected, [])
        self.panel.show(node_id)
        if node_id:
            self.tabs.set_value(self.props_tab)

    def _show_problems(self) -> None:
        self.tabs.set_value(self.problems_tab)

    def _reloaded(self) -> None:
        self.refresh()
        self.panel.show(None)

    # ---- canvas and palette events -----------------------------------------------------
    def on_canvas(self, args: dict[str, Any]) -> None:
        """What the user did on the canvas (``op``); unknown ops are ignored."""
        ops: dict[str, Callable[[dict[str, Any]], None]] = {
            "move": self._moved,
            "select": self._selected,
            "open": lambda a: self.select(a["node"]),
            "copy": self._copied,
            "wire": self._wired,
            "delete": self._deleted,
            "drop": self._dropped,
            "paste": self._pasted,
            "undo": lambda a: self.undo(),
            "redo": lambda a: self.redo(),
        }
        handler = ops.get(str(args.get("op")))
        if handler is not None:
            handler(args)

    def _moved(self, args: dict[str, Any]) -> None:
        if self.model.move(args.get("positions", {})):
            self.shown_revision = self.model.revision  # the canvas already shows it
            self.indicators()

    def _selected(self, args: dict[str, Any]) -> None:
        nodes = list(args.get("nodes", []))
        self.selected = nodes
        if len(nodes) == 1:
            self.panel.show(nodes[0])

    def _copied(self, args: dict[str, Any]) -> None:
        count = self.model.copy(list(args.get("nodes", [])))
        if count:
            ui.notify(f"Copied {count} node{'s' if count != 1 else ''}")

    def _wired(self, args: dict[str, Any]) -> None:
        target_port = args.get("target_port", "in")
        self.model.wire(args["source"], args["port"], args["target"], target_port)
        self.refresh()

    def _deleted(self, args: dict[str, Any]) -> None:
        self.model.delete(list(args.get("nodes", [])), list(args.get("wires", [])))
        if self.panel.node_id not in self.model.nodes:
            self.panel.show(None)
        self.refresh()

    def _dropped(self, args: dict[str, Any]) -> None:
        try:
            node_id = self.model.add_node(str(args["type"]), float(args["x"]), float(args["y"]))
        except KeyError as exc:
            ui.notify(str(exc), type="negative")
            return
        self.refresh()
        self.select(node_id)

    def _pasted(self, args: dict[str, Any]) -> None:
        ids = self.model.paste(float(args.get("x", 100)), float(args.get("y", 100)))
        self._show_new(ids)

    def _show_new(self, ids: list[str]) -> None:
        """Redraw with nodes just added (pasted or imported) selected."""
        self.refresh()
        self.canvas.set_selection(ids, [])

    def add_from_palette(self, type_name: str) -> None:
        """A click on a palette entry: the node goes below the lowest one."""
        nodes, _ = self.model.to_view()
        y = max((n["y"] for n in nodes), default=0.0) + 80.0
        self.on_canvas({"op": "drop", "type": type_name, "x": 80.0, "y": y})

    # ---- toolbar -----------------------------------------------------------------------
    def undo(self) -> None:
        if self.model.undo():
            self.refresh()
            self.panel.show(self.panel.node_id)

    def redo(self) -> None:
        if self.model.redo():
            self.refresh()
            self.panel.show(self.panel.node_id)

    def fit(self) -> None:
        self.canvas.fit()

    async def deploy(self) -> None:
        await self.disk.deploy()

    def export(self, scope: str = "flow", fmt: str = "yaml") -> None:
        selected = self.canvas.selection[0]
        export_download(self.model, self.editor.registry, selected, scope, fmt)

    def import_dialog(self) -> None:
        import_dialog(self.model, self._show_new)

    # ---- tests --------------------------------------------------------------------------
    def save_test(self) -> None:
        """Debug tab's "Save as test": a case from what entered and left the selection."""
        host = self.editor.host
        if host is None:
            ui.notify("The flow is not running: nothing was captured", type="warning")
            return
        if self.model.dirty:
            ui.notify("Deploy first: the test is of the flow as saved", type="warning")
            return
        selection = self.canvas.selection[0] or self.selected
        try:
            taken = capture(host.taps, self.model.checked(), selection)
        except SaveError as exc:
            ui.notify(str(exc), type="warning", multi_line=True)
            return
        SaveTestDialog(
            taken,
            self.model.path,
            self.editor.registry,
            allow_code=self.editor.config.allow_code,
            on_saved=lambda _path: self.tests.refresh(),
            on_run=self.run_tests,
        )

    async def run_tests(self) -> None:
        self.tabs.set_value(self.tests_tab)
        await self.tests.run()

    # ---- live --------------------------------------------------------------------------
    def tick(self) -> None:
        """Once a second: other tabs' edits, the run state, node status, wire fill, batches."""
        run_label = self.toolbar.run_label
        if self.model is not self.editor.model:  # another tab opened another flow
            run_label.text = "another flow was opened in this editor"
            return
        if self.shown_revision != self.model.revision:  # changed in another tab
            self.refresh()
            self.panel.show(self.panel.node_id)
        self.toolbar.indicators_light()
        host = self.editor.host
        if host is None:
            run_label.text = self.editor.host_error or "not running"
            return
        run_label.text = "running" if host.running else "stopped"
        with contextlib.suppress(Exception):  # a host mid-deploy may not answer this tick
            self.canvas.set_status(status_views(host.snapshot()))
            self.canvas.set_fill(fill_views(host.wire_fill()))
        seen = self.feed.poll(host, self.debug_nodes())
        if seen:
            self.debug.add(seen)
            self.chart.add(seen)
