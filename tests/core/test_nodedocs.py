"""docs/nodes.md is generated from the node specs and must not go stale."""

from __future__ import annotations

from pathlib import Path

from flowengine.nodedocs import render
from flowengine.registry import default_registry

DOC = Path(__file__).resolve().parents[2] / "docs" / "nodes.md"


def test_nodes_md_is_up_to_date():
    expected = render(default_registry())
    assert DOC.read_text() == expected, (
        "docs/nodes.md is stale: regenerate with `flowengine nodes --markdown > docs/nodes.md`"
    )


def test_every_built_in_field_is_documented():
    registry = default_registry()
    text = render(registry)
    for name in ("simulate", "inject", "filter", "compute", "select", "rename", "debug", "file"):
        assert f"## `{name}`" in text
        for field in registry.get(name).Config.model_fields:
            assert f"| `{field}` |" in text, (name, field)
