"""``docs/nodes.md``, generated from the node types' config specs (never written by hand)."""

from __future__ import annotations

import json
from typing import Any

from flowengine.registry import Registry

BUILT_IN = "flowengine.nodes."
HEADER = """# Built-in node types

Generated from the node types' config specs by `flowengine nodes --markdown > docs/nodes.md`;
do not edit by hand (a test fails when this file is stale). Every node also has an `error`
output port: a batch that made the node raise goes there when it is wired.
"""


def _type_text(prop: dict[str, Any]) -> str:
    if "anyOf" in prop:
        return " or ".join(_type_text(p) for p in prop["anyOf"])
    if "enum" in prop:
        return " / ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    kind = prop.get("type", "object")
    if kind == "array" and "items" in prop:
        return f"list of {_type_text(prop['items'])}"
    if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
        return f"map of {_type_text(prop['additionalProperties'])}"
    return str(kind)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(registry: Registry, names: list[str] | None = None) -> str:
    """The markdown reference for ``names`` (default: the built-in types)."""
    if names is None:
        names = [n for n in registry.names() if registry.get(n).__module__.startswith(BUILT_IN)]
    return HEADER + "".join(type_section(registry, name) for name in names)


def type_section(registry: Registry, name: str) -> str:
    """One type's section of the reference (the editor's Info tab shows it as is)."""
    info = registry.describe(name)
    schema = info["schema"]
    required = set(schema.get("required", []))
    out = [f"\n## `{name}` ({info['kind']}, {info['category']})\n\n"]
    out.append(info["description"].strip() + "\n")
    ins = ", ".join(info["inputs"]) or "none"
    out.append(f"\nInputs: {ins}. Outputs: {', '.join(info['outputs'])}.\n")
    if info["requires"]:
        extras = ", ".join(f"`flowengine[{r['extra']}]`" for r in info["requires"])
        out.append(f"\nNeeds {extras}.\n")
    props = schema.get("properties", {})
    if not props:
        out.append("\nNo settings.\n")
        return "".join(out)
    out.append("\n| field | type | default | description |\n|---|---|---|---|\n")
    for field, prop in props.items():
        default = "*required*" if field in required else f"`{json.dumps(prop.get('default'))}`"
        flags = [f for f in ("secret", "advanced") if prop.get(f)]
        desc = prop.get("description", "") + (f" ({', '.join(flags)})" if flags else "")
        if prop.get("examples"):
            desc += f" Example: `{json.dumps(prop['examples'][0])}`."
        out.append(
            f"| `{field}` | {_cell(_type_text(prop))} | {_cell(default)} | {_cell(desc)} |\n"
        )
    return "".join(out)
