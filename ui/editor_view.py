"""One tab's editor: palette left, canvas centre, properties / debug / chart / problems / tests
right, wired to the shared model and the running flow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui

from flowengine.problems import Problem
from flowengine.ui.canvas import FlowCanvas, GroupView
from flowengine.ui.canvasops import canvas_ops
from flowengine.ui.debugview import shown_of
from flowengine.ui.deploying import DeployBanner
from flowengine.ui.editor import Editor
from flowengine.ui.flowtests import TestsPanel
from flowengine.ui.infotab import InfoTab
from flowengine.ui.live import ChartPanel, DebugPanel, LiveShare, share_of
from flowengine.ui.model import EditorModel
from flowengine.ui.palette import Palette
from flowengine.ui.properties import PropertyPanel
from flowengine.ui.savedialog import SaveTestDialog
from flowengine.ui.savetest import SaveError, capture
from flowengine.ui.subflows import subflow_dialog
from flowengine.ui.toolbar import Toolbar
from flowengine.ui.transfer import export_download, import_dialog
from flowengine.ui.views import NodeView, WireView

LIVE_PERIOD = 1.0
DISK_PERIOD = 2.0
#: the browser says when its tab goes to the background and back (no live data meanwhile)
VISIBILITY_JS = """<script>document.addEventListener("visibilitychange",
  () => emitEvent("fe_visibility", {state: document.visibilityState}));</script>"""


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
        self.share: LiveShare | None = None  # the flow's live view, shared with other tabs
        self.live_version = 0  # the share's reading this tab's canvas shows (0: none)
        self.canvas_version = -1  # the canvas layout that reading was sent to
        self.taken = 0  # the number of the last debug batch this tab took from the share
        self.in_front = True  # the browser tab is not in the background
        ui.add_body_html(VISIBILITY_JS)
        ui.on("fe_visibility", self._visibility)
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
                    self.palette = Palette(editor.registry, self.add_from_palette)
                with ui.element("div").classes("grow h-full relative overflow-hidden"):
                    self.canvas = FlowCanvas(on_change=self.on_canvas).classes("w-full h-full")
                    self.canvas.mark("canvas")
                with ui.column().classes("w-96 h-full border-l gap-0 no-wrap shrink-0"):
                    self._side()
        self._palette_help()
        self.refresh()
        self.canvas.fit()
        ui.timer(LIVE_PERIOD, self.tick)
        ui.timer(DISK_PERIOD, self.disk.check)

    def _side(self) -> None:
        # five tabs fit the side column (and their counts) with Quasar's padding halved
        ui.add_css(".fe-side-tabs .q-tab { padding: 0 6px; min-width: 0; }")
        with (
            ui.tabs(on_change=self._side_changed)
            .classes("w-full fe-side-tabs")
            .props("dense no-caps") as tabs
        ):
            self.props_tab = ui.tab("Properties")
            debug_tab = ui.tab("Debug")
            chart_tab = ui.tab("Chart")
            self.problems_tab = ui.tab("Problems")
            self.tests_tab = ui.tab("Tests")
            self.info_tab = ui.tab("Info", label="", icon="info_outline").mark("info-tab")
            self.info_tab.tooltip("Info: the selected node type's documentation")
        self.tabs = tabs
        with ui.tab_panels(tabs, value=self.props_tab).classes("w-full grow overflow-auto"):
            with ui.tab_panel(self.props_tab).classes("p-2"):
                self.panel = PropertyPanel(self.model, self.edited)
            with ui.tab_panel(debug_tab).classes("p-2"):
                self.debug = DebugPanel(
                    on_save_test=self.save_test,
                    on_pick=self.pick,
                    shown=lambda node: shown_of(self.model.flow().nodes, node),
                    nodes=self.debug_nodes,
                    selection=lambda: self.selected,
                    visible=lambda: self.side() == "Debug",
                )
            with ui.tab_panel(chart_tab).classes("p-2"):
                self.chart = ChartPanel(self.debug_nodes, shown=lambda: self.side() == "Chart")
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
            with ui.tab_panel(self.info_tab).classes("p-2"):
                self.info = InfoTab(
                    self.editor.registry, lambda node: self.model.flow().nodes.get(node)
                )

    def side(self) -> str:
        """The name of the side tab shown."""
        value = self.tabs.value
        return str(value.props["name"] if isinstance(value, ui.tab) else value)

    def _visibility(self, e: Any) -> None:
        """A tab in the background gets no live data; back in front, what changed meanwhile
        (the canvas's status, the debug batches the flow's share still holds) comes at once."""
        self.in_front = (e.args or {}).get("state") != "hidden"
        if self.in_front:
            self.tick()

    def _side_changed(self) -> None:
        if self.side() == "Chart":  # drawn while hidden only as data: drawn now
            self.chart.show()
        if self.side() == "Debug":  # batches kept while hidden are drawn now
            self.debug.show()

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

    def views(self) -> tuple[list[NodeView], list[WireView], list[GroupView]]:
        """The canvas's views: the model's, with nodes of failing tests marked (a problem's
        mark wins: it says why the node cannot run)."""
        nodes, wires = self.model.to_view()
        for node in nodes:
            why = self.test_marks.get(node["id"])
            if why and not node.get("error"):
                node["error"] = why
        return nodes, wires, self.model.group_views()

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
        self.info.show(self.panel.node_id)  # a new name or description

    def select(self, node_id: str | None) -> None:
        self.selected = [node_id] if node_id else []
        self.canvas.set_selection(self.selected, [])
        self.panel.show(node_id)
        self.info.show(node_id)
        if node_id:
            self.tabs.set_value(self.props_tab)

    def pick(self, node_id: str) -> None:
        """A debug message's node: selected on the canvas, the sidebar stays where it is."""
        self.selected = [node_id]
        self.canvas.set_selection(self.selected, [])
        self.panel.show(node_id)
        self.info.show(node_id)

    def _show_problems(self) -> None:
        self.tabs.set_value(self.problems_tab)

    def _reloaded(self) -> None:
        self.refresh()
        self.panel.show(None)

    # ---- canvas and palette events -----------------------------------------------------
    def on_canvas(self, args: dict[str, Any]) -> Any:
        """What the user did on the canvas (``op``); unknown ops are ignored. An async op's
        coroutine is returned (the canvas runs it)."""
        ops: dict[str, Callable[[dict[str, Any]], Any]] = {
            **canvas_ops(self),  # cut, duplicate, splice, disable, groups, make_subflow
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
            "fire": self._fire,
            "debug_toggle": self._debug_toggle,
            "help": self._help,
            "make_subflow": self._make_subflow,  # overrides canvas_ops' placeholder
        }
        handler = ops.get(str(args.get("op")))
        return handler(args) if handler is not None else None

    def _make_subflow(self, args: dict[str, Any]) -> None:
        """Context menu "Make subflow": ask for its file, then one instance replaces the nodes."""
        nodes = [str(n) for n in args.get("nodes") or self.canvas.selection[0] or self.selected]
        subflow_dialog(self.model, nodes, lambda inst: (self.refresh(), self.select(inst)))

    def _running_host(self, method: str, what: str) -> Callable[..., Any] | None:
        """The running host's ``method``; None (the user told why) when it cannot be called."""
        host = self.editor.host_of(self.model)  # this tab's flow (the workspace has several)
        call = getattr(host, method, None)
        if host is None or not host.running:
            ui.notify(f"The flow is not running: cannot {what}", type="warning")
            return None
        if call is None:
            ui.notify(f"This editor's flow host cannot {what}", type="warning")
        return call

    async def _fire(self, args: dict[str, Any]) -> None:
        """An inject/simulate node's button: fire it once."""
        node = str(args.get("node") or args.get("id") or "")
        fire = self._running_host("fire", f"fire {node}")
        if fire is None:
            return
        try:
            await fire(node)
        except Exception as exc:  # shown to the user; the editor stays up
            ui.notify(f"{node} did not fire: {exc}", type="negative")

    async def _debug_toggle(self, args: dict[str, Any]) -> None:
        """A debug node's on/off switch."""
        node, on = str(args.get("id") or args.get("node") or ""), bool(args.get("on"))
        set_debug = self._running_host("set_debug", f"switch {node} {'on' if on else 'off'}")
        if set_debug is None:
            return
        try:
            await set_debug(node, on)
        except Exception as exc:
            ui.notify(f"{node} was not switched {'on' if on else 'off'}: {exc}", type="negative")

    def _help(self, args: dict[str, Any]) -> None:
        """The canvas's "help" on a node type: the Info tab on that type."""
        self.info.show_type(str(args.get("type") or ""))
        self.tabs.set_value(self.info_tab)

    def _palette_help(self) -> None:
        """A palette entry under the pointer shows its type in the Info tab."""
        for name, item in self.palette.items.items():
            item.on("mouseenter", lambda n=name: self.info.show_type(n))
            item.on("mouseleave", lambda: self.info.back())

    def _moved(self, args: dict[str, Any]) -> None:
        if self.model.move(args.get("positions", {})):
            self.shown_revision = self.model.revision  # the canvas already shows it
            self.indicators()

    def _selected(self, args: dict[str, Any]) -> None:
        nodes = list(args.get("nodes", []))
        self.selected = nodes
        if len(nodes) == 1:
            self.panel.show(nodes[0])
        self.info.show(nodes[0] if len(nodes) == 1 else None)

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
        if args.get("wire"):  # dropped onto a wire: spliced in when its ports fit
            self.model.splice(node_id, str(args["wire"]))
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

    def flush(self) -> bool:
        """Commit the field being typed in before an action reads the model (issue 11)."""
        if self.panel.flush():
            return True
        ui.notify("A field's value is invalid: see the Properties tab", type="negative")
        self.tabs.set_value(self.props_tab)
        return False

    async def deploy(self) -> None:
        if self.flush():
            await self.disk.deploy()

    def export(self, scope: str = "flow", fmt: str = "yaml") -> None:
        if not self.flush():
            return
        selected = self.canvas.selection[0]
        export_download(self.model, self.editor.registry, selected, scope, fmt)

    def import_dialog(self) -> None:
        import_dialog(self.model, self._show_new, self.mark_tests)

    # ---- tests --------------------------------------------------------------------------
    def save_test(self) -> None:
        """Debug tab's "Save as test": a case from what entered and left the selection."""
        host = self.editor.host_of(self.model)
        if host is None:
            ui.notify("The flow is not running: nothing was captured", type="warning")
            return
        if not self.flush():
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
        if self.shown_revision != self.model.revision:  # changed in another tab
            self.panel.flush()  # what this tab is typing goes in, not lost with the old form
            self.refresh()
            self.panel.show(self.panel.node_id)
        self.toolbar.indicators_light()
        self.toolbar.show_run()  # this tab's flow: every open flow runs on its own
        host = self.editor.host_of(self.model)
        if host is None or not self.in_front:
            return
        share = share_of(host)  # read once a tick for every tab on this flow
        share.read(host, self.debug_nodes())
        if share is not self.share:  # the first tick on this host: all it holds
            self.share, self.taken, self.live_version = share, 0, 0
        if self.canvas.version != self.canvas_version:  # a new layout: every status again
            self.canvas_version, self.live_version = self.canvas.version, 0
        self.canvas.set_status(share.status_since(self.live_version))  # only what changed
        self.canvas.set_fill(share.fill_since(self.live_version))
        self.live_version = share.version
        seen = share.feed.since(self.taken)
        self.taken = share.feed.last
        if seen:
            self.debug.add(seen)
            self.chart.add(seen)
