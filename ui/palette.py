"""The palette: every installed node type, grouped by category, searchable, dragged onto the canvas.

Built from ``Registry.describe`` (the data of ``flowengine nodes --json``). Dragging sets the
type name under ``application/x-flowengine-type``; the canvas turns the drop into an event.
A click adds the type too (keyboard users, and tests without a mouse).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from nicegui import ui

from flowengine.registry import Registry
from flowengine.ui.model import COLORS, DEFAULT_COLOR

DRAG_TYPE = "application/x-flowengine-type"
CATEGORY_ORDER = ("input", "function", "analytics", "output")


def palette_entries(registry: Registry) -> dict[str, list[dict[str, Any]]]:
    """Type descriptions by category, categories in palette order, types by name."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for name in registry.names():
        info = registry.describe(name)
        groups.setdefault(info["category"], []).append(info)
    order = {c: i for i, c in enumerate(CATEGORY_ORDER)}
    return dict(sorted(groups.items(), key=lambda kv: (order.get(kv[0], 99), kv[0])))


def summary(description: str) -> str:
    """A type's description up to its first blank line, on one line."""
    return " ".join((description or "").split("\n\n")[0].split())


def matches(info: dict[str, Any], query: str) -> bool:
    """Search by type name, category or any word of the description."""
    query = query.strip().lower()
    if not query:
        return True
    text = f"{info['type']} {info['category']} {info['description']}".lower()
    return all(word in text for word in query.split())


class Palette:
    """The left column; ``on_pick(type_name)`` is called when an entry is clicked."""

    def __init__(self, registry: Registry, on_pick: Callable[[str], Any]) -> None:
        self.items: dict[str, ui.element] = {}
        self.groups: dict[str, ui.expansion] = {}
        self.entries = palette_entries(registry)
        self.search = (
            ui.input(placeholder="Search nodes", on_change=lambda e: self.filter(e.value or ""))
            .props("dense clearable outlined")
            .classes("w-full")
            .mark("palette-search")
        )
        for category, infos in self.entries.items():
            with (
                ui.expansion(category.capitalize(), value=True)
                .classes("w-full")
                .props("dense dense-toggle")
                .classes("text-sm") as group
            ):
                self.groups[category] = group
                with ui.column().classes("w-full gap-1"):
                    for info in infos:
                        self.items[info["type"]] = self._item(info, on_pick)

    def _item(self, info: dict[str, Any], on_pick: Callable[[str], Any]) -> ui.element:
        name = info["type"]
        color = COLORS.get(info["category"], DEFAULT_COLOR)
        first_line = summary(info["description"])
        item = (
            ui.element("div")
            .classes("palette-item w-full px-2 py-0.5 rounded cursor-grab text-sm")
            .style(f"background:{color};border:1px solid #999")
            .props(f'draggable=true data-type="{name}"')
            .mark(f"palette-{name}")
        )
        with item:
            with ui.row().classes("items-center gap-1 no-wrap"):
                ui.icon(info.get("icon") or "settings", size="16px").classes("opacity-70")
                ui.label(name)
            if not info["available"]:
                ui.label("library not installed").classes("text-xs text-grey-8")
        item.tooltip(first_line)
        item.on(
            "dragstart",
            js_handler=(
                f"(e) => {{ e.dataTransfer.setData({json.dumps(DRAG_TYPE)}, {json.dumps(name)});"
                " e.dataTransfer.effectAllowed = 'copy'; }"
            ),
        )
        item.on("click", lambda: on_pick(name))
        return item

    def filter(self, query: str) -> list[str]:
        """Show only matching types (and the groups that still have some); returns them."""
        shown = []
        for category, infos in self.entries.items():
            visible = [info["type"] for info in infos if matches(info, query)]
            for info in infos:
                self.items[info["type"]].set_visibility(info["type"] in visible)
            self.groups[category].set_visibility(bool(visible))
            shown += visible
        return shown
