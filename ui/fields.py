"""A node type's config JSON Schema read as form fields: which control each field gets, its
title, default and limits, and which validator messages belong to which field. Pure (no
NiceGUI), apart from the panel that draws them."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML

from flowengine.problems import Problem

_FIELD = re.compile(r"(?:field|required field) '([^'.]+)")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """What the form needs to know about one config field."""

    name: str
    kind: str  # text | code | number | integer | bool | choice | list | dict | yaml
    title: str
    description: str
    required: bool
    default: Any
    secret: bool = False
    advanced: bool = False
    nullable: bool = False
    choices: tuple[Any, ...] = ()
    item_type: str = "string"
    minimum: float | None = None
    maximum: float | None = None


def _strip_null(prop: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    options = prop.get("anyOf")
    if not options:
        return prop, False
    rest = [o for o in options if o.get("type") != "null"]
    nullable = len(rest) < len(options)
    if len(rest) == 1:
        return {**prop, **rest[0], "anyOf": None}, nullable
    return prop, nullable


def field_kind(prop: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    """The control for a schema property, the property with ``null`` removed, nullable."""
    inner, nullable = _strip_null(prop)
    kind = inner.get("type")
    described = f"{inner.get('description', '')}".lower()
    if "enum" in inner:
        return "choice", inner, nullable
    if kind == "string":
        if inner.get("widget") in ("code", "textarea") or "expression" in described:
            return "code", inner, nullable
        return "text", inner, nullable
    if kind in ("integer", "number"):
        return kind, inner, nullable
    if kind == "boolean":
        return "bool", inner, nullable
    items = inner.get("items") or {}
    if kind == "array" and items.get("type") in ("string", "integer", "number"):
        return "list", inner, nullable
    extra = inner.get("additionalProperties")
    if kind == "object" and isinstance(extra, dict) and extra.get("type") in ("string", "number"):
        return "dict", inner, nullable
    return "yaml", inner, nullable


def field_specs(schema: dict[str, Any]) -> list[FieldSpec]:
    """The fields of a config schema in declaration order."""
    required = set(schema.get("required", []))
    specs = []
    for name, prop in schema.get("properties", {}).items():
        kind, inner, nullable = field_kind(prop)
        items = inner.get("items") or {}
        extra = inner.get("additionalProperties")
        item_type = (
            items.get("type", "string")
            if kind == "list"
            else extra.get("type", "string")
            if kind == "dict" and isinstance(extra, dict)
            else "string"
        )
        specs.append(
            FieldSpec(
                name=name,
                kind=kind,
                title=prop.get("title", name),
                description=prop.get("description", ""),
                required=name in required,
                default=prop.get("default"),
                secret=bool(prop.get("secret")),
                advanced=bool(prop.get("advanced")),
                nullable=nullable,
                choices=tuple(inner.get("enum", ())),
                item_type=item_type,
                minimum=inner.get("minimum", inner.get("exclusiveMinimum")),
                maximum=inner.get("maximum", inner.get("exclusiveMaximum")),
            )
        )
    return specs


def field_errors(problems: list[Problem]) -> tuple[dict[str, list[str]], list[str]]:
    """A node's error messages by field name, and those about the node as a whole."""
    by_field: dict[str, list[str]] = {}
    general: list[str] = []
    for problem in problems:
        match = _FIELD.search(problem.message)
        text = problem.message if problem.is_error else f"warning: {problem.message}"
        if match:
            by_field.setdefault(match[1], []).append(text)
        else:
            general.append(text)
    return by_field, general


def to_yaml(value: Any) -> str:
    if value is None:
        return ""
    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(value, out)
    return out.getvalue()


def from_yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text) if text.strip() else None
