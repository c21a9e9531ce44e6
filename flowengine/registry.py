"""The node type registry, filled from the ``flowengine.nodes`` entry point group.

Built-in types register the same way as plugins; importing a module registers nothing.
"""

from __future__ import annotations

import functools
import inspect
from importlib.metadata import entry_points
from typing import Any

from flowengine.extras import installed, missing_message
from flowengine.node import Node
from flowengine.problems import did_you_mean
from flowengine.types import ERROR_PORT

GROUP = "flowengine.nodes"


class UnknownNodeType(KeyError):
    """A type name that no installed plugin provides."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.message = f"unknown node type '{name}'{did_you_mean(name, known)}"

    def __str__(self) -> str:
        return self.message


class Registry:
    """Node types by name; ``broken`` keeps the load error of plugins that failed to import."""

    def __init__(self) -> None:
        self._types: dict[str, type[Node[Any]]] = {}
        self.broken: dict[str, str] = {}

    @classmethod
    def from_entry_points(cls) -> Registry:
        """A registry with every installed node type (built-ins included)."""
        registry = cls()
        for ep in entry_points(group=GROUP):
            try:
                node_cls = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                registry.broken[ep.name] = f"{type(exc).__name__}: {exc}"
                continue
            registry.register(ep.name, node_cls)
        return registry

    def register(self, name: str, node_cls: type[Node[Any]]) -> None:
        """Add a type under ``name`` (the name users write as ``type:`` in a flow)."""
        if not (inspect.isclass(node_cls) and issubclass(node_cls, Node)):
            self.broken[name] = f"{node_cls!r} is not a flowengine Node subclass"
            return
        node_cls.type_name = name
        self._types[name] = node_cls

    def get(self, name: str) -> type[Node[Any]]:
        """The class for ``name``; raises :class:`UnknownNodeType` with a suggestion."""
        try:
            return self._types[name]
        except KeyError:
            if name in self.broken:
                raise UnknownNodeType(name, []) from None
            raise UnknownNodeType(name, list(self._types)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def names(self) -> list[str]:
        return sorted(self._types)

    def describe(self, name: str) -> dict[str, Any]:
        """Everything the CLI, docs and editor know about a type, from its one spec."""
        cls = self.get(name)
        outputs = [*cls.outputs, ERROR_PORT]
        return {
            "type": name,
            "kind": cls.kind,
            "category": cls.category,
            "icon": cls.icon,
            "description": inspect.getdoc(cls) or "",
            "inputs": list(cls.inputs),
            "outputs": outputs,
            "requires": [{"module": m, "extra": e} for m, e in cls.requires],
            "available": not missing_requirements(cls),
            "schema": _masked_schema(cls),
        }


def _masked_schema(cls: type[Node[Any]]) -> dict[str, Any]:
    """The config JSON Schema, with the defaults of secret fields masked."""
    schema = cls.Config.model_json_schema()
    for name in cls.Config.secret_fields():
        prop = schema.get("properties", {}).get(name, {})
        if prop.get("default"):
            prop["default"] = "******"
    return schema


def missing_requirements(cls: type[Node[Any]]) -> list[str]:
    """Messages for each optional library of ``cls`` that is not installed."""
    return [missing_message(extra) for module, extra in cls.requires if not installed(module)]


@functools.cache
def default_registry() -> Registry:
    """The installed node types, loaded once per process."""
    return Registry.from_entry_points()
