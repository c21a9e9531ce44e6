"""The flow canvas: nodes, wires, pan and zoom, and the editing gestures (canvas.js).

Python owns the flow. The canvas shows what `set_flow` gives it and reports gestures as
`change` intents (move, wire, delete, select, open, drop, copy, cut, duplicate, paste, undo,
redo, splice, disable, group, ungroup, group_edit); the app changes its model and answers with
`set_flow`. Status and queue fill are patches sent apart from the layout, so a running flow's
numbers never re-send 500 nodes.

Some intents are not edits of the flow but actions on the running flow or other panels
(`ACTIONS`: fire, debug_toggle, make_subflow, help): a handler registered with `on_action`
gets them instead of `on_change`.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from nicegui import background_tasks, ui
from nicegui.client import Client
from nicegui.events import GenericEventArguments

from flowengine.ui.arrange import GroupView
from flowengine.ui.views import NodeView, StatusView, WireView, parse_wire_key, wire_key

__all__ = [
    "ACTIONS",
    "FlowCanvas",
    "GroupView",
    "NodeView",
    "StatusView",
    "WireView",
    "parse_wire_key",
    "wire_key",
]

CSS = Path(__file__).with_name("canvas.css")
#: Intents for `on_action` handlers, with their arguments: fire {id} (an inject/simulate's
#: button), debug_toggle {id, on} (a debug node's toggle), make_subflow {nodes}, help {type}.
ACTIONS = ("fire", "debug_toggle", "make_subflow", "help")


class FlowCanvas(ui.element, component="canvas.js"):
    """The editor's canvas; see the module docstring and docs of `change` ops in canvas.js."""

    _styled: weakref.WeakSet[Client] = weakref.WeakSet()

    def __init__(
        self,
        *,
        grid: int = 20,
        on_change: Callable[[dict], Any] | None = None,
        fire_types: Iterable[str] = ("inject", "simulate"),
        toggle_types: Iterable[str] = ("debug",),
    ) -> None:
        super().__init__()
        if self.client not in FlowCanvas._styled:  # once per page, however many canvases
            FlowCanvas._styled.add(self.client)
            ui.add_css(CSS)
        self._on_change = on_change
        self._actions: dict[str, Callable[[dict], Any]] = {}
        self._version = 0
        self._index: dict[str, int] = {}
        self._props["grid"] = grid
        self._props["flow"] = {"version": 0, "nodes": [], "wires": [], "groups": []}
        self._props["fireTypes"] = list(fire_types)
        self._props["toggleTypes"] = list(toggle_types)
        self._props["status"] = {}
        self._props["fill"] = {}
        self._props["selection"] = {"nodes": [], "wires": []}
        self.on("change", self._changed)

    @property
    def selection(self) -> tuple[list[str], list[str]]:
        """The selected node ids and wire keys, as the browser last reported or was told."""
        sel = self._props["selection"]
        return list(sel["nodes"]), list(sel["wires"])

    @property
    def version(self) -> int:
        """Counts `set_flow` calls: a new layout needs every node's status again."""
        return self._version

    def on_action(self, name: str, handler: Callable[[dict], Any]) -> None:
        """Call ``handler(args)`` for an action intent (see `ACTIONS`) instead of `on_change`."""
        if name not in ACTIONS:
            raise ValueError(f"unknown canvas action {name!r}: one of {', '.join(ACTIONS)}")
        self._actions[name] = handler

    def set_flow(
        self,
        nodes: Iterable[NodeView],
        wires: Iterable[WireView],
        groups: Iterable[GroupView] = (),
    ) -> None:
        """Replace what the canvas shows (the browser keeps the DOM of unchanged nodes)."""
        nodes, wires = [dict(n) for n in nodes], [dict(w) for w in wires]
        group_list = [dict(g) for g in groups]
        self._version += 1
        self._index = {n["id"]: i for i, n in enumerate(nodes)}
        keys = {w["key"] for w in wires}
        sel, status, fill = self._props["selection"], self._props["status"], self._props["fill"]
        with self._props.suspend_updates():
            self._props["flow"] = {
                "version": self._version,
                "nodes": nodes,
                "wires": wires,
                "groups": group_list,
            }
            self._props["selection"] = {
                "nodes": [n for n in sel["nodes"] if n in self._index],
                "wires": [w for w in sel["wires"] if w in keys],
            }
            self._props["status"] = {k: v for k, v in status.items() if k in self._index}
            self._props["fill"] = {k: v for k, v in fill.items() if k in keys}
        self.update()

    def set_status(self, status: dict[str, StatusView]) -> None:
        """Patch the status of some nodes (id -> status); only what changed is sent."""
        self._patch("status", "setStatus", status)

    def set_fill(self, fill: dict[str, float]) -> None:
        """Patch the queue fill (0..1) shown on some wires (wire key -> fill); only what
        changed is sent."""
        self._patch("fill", "setFill", fill)

    def _patch(self, prop: str, method: str, values: dict[str, Any]) -> None:
        known = self._props[prop]
        changed = {k: v for k, v in values.items() if known.get(k) != v}
        if not changed:
            return
        with self._props.suspend_updates():
            known.update(changed)
        self.run_method(method, changed)

    def set_selection(self, nodes: list[str], wires: list[str]) -> None:
        """Select these nodes and wires (no `select` event comes back)."""
        with self._props.suspend_updates():
            self._props["selection"] = {"nodes": list(nodes), "wires": list(wires)}
        self.run_method("setSelection", list(nodes), list(wires))

    def set_toggles(self, states: dict[str, bool]) -> None:
        """Show these debug nodes' toggles on (True) or off (no event comes back)."""
        self.run_method("setToggles", states)

    def fit(self) -> None:
        """Pan and zoom (never above 100 %) so that the whole flow is in view."""
        self.run_method("fit")

    def _changed(self, e: GenericEventArguments) -> None:
        args: dict = e.args
        op = args.get("op")
        with self._props.suspend_updates():  # so that a re-render shows what the browser shows
            if op == "move":
                nodes = self._props["flow"]["nodes"]
                for node_id, pos in args.get("positions", {}).items():
                    if (i := self._index.get(node_id)) is not None:
                        nodes[i]["x"], nodes[i]["y"] = pos["x"], pos["y"]
            elif op == "select":
                self._props["selection"] = {"nodes": args["nodes"], "wires": args["wires"]}
        handler = self._actions.get(str(op), self._on_change)
        if handler is not None:
            result = handler(args)
            if inspect.isawaitable(result):
                background_tasks.create(result, name="flow canvas change")
