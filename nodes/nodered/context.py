"""What every mapper is given and gives back: the Node-RED objects, who feeds whom and a
place for warnings and variables in; a mapped node (our type, config and ports) out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from flowengine.nodes.nodered.values import env_name, var_ref

#: A node (or config object) of a Node-RED export, as parsed from JSON.
Raw = dict[str, Any]


@dataclass
class Mapped:
    """A Node-RED node as one of ours."""

    type: str
    config: Raw
    ports: list[str | None]  # our output port per Node-RED output; None: not imported
    absorbs: str | None = None  # the inject whose schedule this node took over
    #: Fed by its feeders' ``error`` port (text payloads an ``mqtt_in`` could not read), while
    #: their ``out`` port goes straight to this node's targets.
    on_error_port: bool = False


class Difference(NamedTuple):
    """Something an imported node will do differently from the Node-RED one, and why."""

    id: str  # the Node-RED node's id
    kind: str  # payloads, numbers, topics, click-only, function, dashboard, ...
    text: str


class Context:
    """What mappers share: every Node-RED object, who feeds whom, warnings and variables."""

    def __init__(self, everything: dict[str, Raw], feeders: dict[str, list[str]]) -> None:
        self.all = everything
        self.feeders = feeders
        self.notes: list[tuple[str, str]] = []  # (Node-RED id, warning)
        self.env: dict[str, str] = {}  # variable -> what it must hold
        self.differences: list[Difference] = []

    def differs(self, node: Raw, kind: str, text: str) -> None:
        """Note that ``node``, imported, will behave differently (the import report's list)."""
        self.differences.append(Difference(str(node.get("id")), kind, text))

    def warn(self, node: Raw, text: str) -> None:
        """Note something about ``node`` that was imported differently or left out."""
        self.notes.append((str(node.get("id")), f"{label(node)}: {text}"))

    def secret(self, owner: str, what: str, description: str) -> str:
        """A ``${VAR}`` reference for a credential: its value is never written out."""
        name = f"{env_name(owner)}_{env_name(what)}"
        self.env[name] = description
        return var_ref(name)


def label(node: Raw) -> str:
    """How warnings name a Node-RED node: its type and name, else its id."""
    name = node.get("name")
    return f"{node.get('type')} '{name}'" if name else f"{node.get('type')} {node.get('id')}"
