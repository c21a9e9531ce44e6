"""The Info tab: the selected node's type documentation, the same text as docs/nodes.md, and
the node's own name and description; a palette entry under the pointer shows its type."""

from __future__ import annotations

from pathlib import Path

import pytest
from nicegui import ElementFilter, ui
from nicegui.testing import User

from flowengine.nodedocs import render, type_section
from flowengine.registry import default_registry
from flowengine.ui.app import Editor, EditorConfig
from flowengine.ui.canvas import FlowCanvas
from flowengine.ui.infotab import HINT
from tests.helpers.samples import SAMPLE
from tests.helpers.uiuser import editing, run, storage_in_tmp  # noqa: F401  (autouse fixture)


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    path = tmp_path / "line3.yaml"
    path.write_text(
        SAMPLE.replace(
            "    name: Furnace temperature only\n",
            "    name: Furnace temperature only\n"
            "    description: Only the furnace sensor goes on to the deviation.\n",
        )
    )
    return path


def info_labels(user: User) -> list[str]:
    """The texts of the Info tab's labels (not the whole page's)."""
    with user:
        labels = ElementFilter(kind=ui.label, local_scope=False).within(marker="info")
        return [label.text for label in labels]


def docs_shown(user: User) -> str:
    (markdown,) = [e for e in user.find(marker="info-docs").elements if isinstance(e, ui.markdown)]
    return markdown.content


def test_each_type_section_is_the_one_in_the_reference() -> None:
    registry = default_registry()
    reference = render(registry)
    for name in ("filter", "debug", "simulate", "mqtt_in"):
        assert type_section(registry, name) in reference


def test_info_follows_the_selection_and_the_palette(flow: Path) -> None:
    editor = Editor(EditorConfig(flow, run=False))
    registry = editor.registry

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            assert info_labels(user) == [HINT]
            canvas = user.find(FlowCanvas)
            canvas.trigger("change", {"op": "select", "nodes": ["furnace"], "wires": []})
            assert info_labels(user) == [
                "Furnace temperature only",
                "id: furnace",
                "Only the furnace sensor goes on to the deviation.",
            ]
            assert docs_shown(user) == type_section(registry, "filter")

            # the pointer over a palette entry shows that type; leaving it, the node again
            user.find(marker="palette-debug").trigger("mouseenter")
            assert docs_shown(user) == type_section(registry, "debug")
            assert info_labels(user) == []  # a type alone: no node's name or description
            user.find(marker="palette-debug").trigger("mouseleave")
            assert docs_shown(user) == type_section(registry, "filter")

            user.find(marker="prop-name").clear().type("Furnace only").trigger("blur")
            assert info_labels(user)[0] == "Furnace only"  # an edit shows at once

            canvas.trigger("change", {"op": "select", "nodes": ["furnace", "plc"], "wires": []})
            assert info_labels(user) == [HINT]
            canvas.trigger("change", {"op": "open", "node": "console"})  # a double-click
            assert docs_shown(user) == type_section(registry, "debug")

    run(scenario)
