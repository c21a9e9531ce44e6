"""The Info tab: a node type's reference, the same text as docs/nodes.md (generated from its
spec and docstring by :func:`flowengine.nodedocs.type_section`), under the selected node's own
name and description. A palette entry under the pointer, or the canvas's "help", shows a type
without a node."""

from __future__ import annotations

from collections.abc import Callable

from nicegui import ui

from flowengine.model import NodeDef
from flowengine.nodedocs import type_section
from flowengine.registry import Registry

CSS = """
.fe-info-docs table { table-layout: fixed; width: 100%; border-collapse: collapse; font-size: 11px; }
.fe-info-docs th, .fe-info-docs td { border-bottom: 1px solid #e0e0e0; padding: 1px 3px;
  text-align: left; vertical-align: top; overflow-wrap: anywhere; }
.fe-info-docs th:nth-child(1) { width: 24%; }
.fe-info-docs th:nth-child(2) { width: 17%; }
.fe-info-docs th:nth-child(3) { width: 15%; }
.fe-info-docs h2 { font-size: 1.1rem; line-height: 1.6rem; margin: 0 0 4px; }
"""
HINT = "Select a node (or point at a palette entry) to see what its type does and its settings."


class InfoTab:
    """Shows one node's (``show``) or one type's (``show_type``) documentation.
    ``node(id)`` reads a node of the open flow (None when there is none by that id)."""

    def __init__(self, registry: Registry, node: Callable[[str], NodeDef | None]) -> None:
        self.registry = registry
        self.node = node
        self.node_id: str | None = None
        self.type_name: str | None = None
        self._docs: dict[str, str] = {}
        self._key: tuple[object, ...] | None = None
        ui.add_css(CSS)
        self.container = ui.column().classes("w-full gap-1").mark("info")
        self.show(None)

    def docs(self, type_name: str) -> str | None:
        """The type's section of docs/nodes.md (None for a type not installed)."""
        if type_name not in self._docs:
            if type_name not in self.registry.names():
                return None
            self._docs[type_name] = type_section(self.registry, type_name)
        return self._docs[type_name]

    def show(self, node_id: str | None) -> None:
        """The selected node's name, description and type docs (a hint when none)."""
        node = self.node(node_id) if node_id else None
        self.node_id = node.id if node is not None else None
        if node is None:
            self._draw(None, None, ("hint",))
        else:
            self._draw(node.type, node, (node.id, node.type, node.name, node.description))

    def show_type(self, type_name: str) -> None:
        """One type's docs, without a node (a palette entry, the canvas's "help")."""
        self._draw(type_name, None, ("type", type_name))

    def back(self) -> None:
        """After a palette entry was shown: the selected node again."""
        self.show(self.node_id)

    def _draw(self, type_name: str | None, node: NodeDef | None, key: tuple[object, ...]) -> None:
        if key == self._key:
            return  # shown already (the pointer went over the same entry again)
        self._key, self.type_name = key, type_name
        self.container.clear()
        with self.container:
            if type_name is None:
                ui.label(HINT).classes("text-grey-7")
                return
            if node is not None:
                ui.label(node.label).classes("text-subtitle1 text-weight-medium")
                if node.name:
                    ui.label(f"id: {node.id}").classes("text-caption text-grey-7")
                if node.description:
                    ui.label(node.description.strip()).classes(
                        "text-body2 whitespace-pre-line"
                    ).mark("info-description")
                ui.separator()
            text = self.docs(type_name)
            if text is None:
                ui.label(f"Unknown node type '{type_name}': it is not installed.").classes(
                    "text-negative"
                )
                return
            ui.markdown(text).classes("w-full fe-info-docs").mark("info-docs")
