"""Which mapper turns which Node-RED type into one of ours, why the common others do not map,
and the mapping of a tab's nodes: each mapped node is checked against its type's config spec,
so a node is either imported as valid settings or listed with a reason."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import NamedTuple

from pydantic import ValidationError

from flowengine.envsubst import substitute
from flowengine.nodes.nodered.change import change
from flowengine.nodes.nodered.context import Context, Mapped, Raw
from flowengine.nodes.nodered.delay import delay
from flowengine.nodes.nodered.function import function
from flowengine.nodes.nodered.http_request import http_request
from flowengine.nodes.nodered.inject import inject
from flowengine.nodes.nodered.mqtt import mqtt_in, mqtt_out
from flowengine.nodes.nodered.switch import switch
from flowengine.nodes.nodered.wiring import passes
from flowengine.registry import Registry, UnknownNodeType

_VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
#: Why common unmapped types do not map, and what to use instead.
HINTS = {
    "template": "text templating of messages: no flowengine equivalent",
    "catch": "every flowengine node has an `error` port: wire it instead",
    "status": "node status is shown by the runtime (`flowengine run`'s table, the editor)",
    "complete": "no per-message completion in flowengine: batches flow on",
    "link call": "link calls (return links) have no flowengine equivalent: wire the nodes",
    "exec": "runs shell commands: not imported on purpose",
    "http in": "flowengine has no HTTP endpoint source",
    "http response": "flowengine has no HTTP endpoint source",
    "split": "flowengine batches are already rows: use `batch` or `select`",
    "join": "message joining differs from flowengine's `join` (rows on a key): rebuild it",
    "trigger": "no trigger node: an `alert` node covers hysteresis and cooldowns",
    "rbe": "use a `deadband` node",
    "filter": "use a `deadband` node",
    "range": "use a `change` node with a `scale` operation",
}


class Unmapped(NamedTuple):
    """A Node-RED node that was not imported, and why."""

    id: str
    type: str
    name: str
    reason: str


def debug(node: Raw, cx: Context) -> Mapped | str:
    """``debug`` as ``debug``: its options are about Node-RED's sidebar."""
    return Mapped("debug", {}, [])


MAPPERS: dict[str, Callable[[Raw, Context], Mapped | str]] = {
    "mqtt in": mqtt_in,
    "mqtt out": mqtt_out,
    "inject": inject,
    "debug": debug,
    "switch": switch,
    "change": change,
    "delay": delay,
    "http request": http_request,
    "function": function,
}


def hint(kind: str) -> str:
    """Why a Node-RED type without a mapper is not imported."""
    if kind.startswith("ui_") or kind.startswith("ui-"):
        return "dashboard widget: not supported, dropped (the editor's Debug and Chart tabs show live data)"
    if kind.startswith("subflow:"):
        return "subflow instance: import the subflow's nodes as a tab instead"
    if kind in ("link out", "link in"):
        return "return link: wire the nodes directly"
    return HINTS.get(kind, f"no flowengine node type for Node-RED '{kind}'")


def _validate(mapped: Mapped, registry: Registry) -> str | None:
    """Why the config the mapper built fails its type's spec (None when it passes)."""
    try:
        cls = registry.get(mapped.type)
    except UnknownNodeType:
        return f"node type '{mapped.type}' is not installed"
    dummy = {m: "1" for m in _VAR_REF.findall(json.dumps(mapped.config))}
    try:
        cls.Config.model_validate(substitute(mapped.config, dummy))
    except (ValidationError, ValueError) as exc:
        return f"its settings do not fit '{mapped.type}': {str(exc).splitlines()[-1].strip()}"
    return None


def map_node(node: Raw, cx: Context, registry: Registry) -> Mapped | str:
    """``node`` as one of ours with valid settings, or why it is not imported."""
    kind = node["type"]
    mapper = MAPPERS.get(kind)
    try:
        outcome = mapper(node, cx) if mapper else hint(kind)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:  # hand-edited exports
        outcome = f"malformed {kind} node ({type(exc).__name__}: {exc})"
    if isinstance(outcome, Mapped):
        return _validate(outcome, registry) or outcome
    return outcome


def map_nodes(
    flow_nodes: list[Raw], cx: Context, registry: Registry
) -> tuple[dict[str, Mapped], list[Unmapped]]:
    """The nodes that map (by Node-RED id) and those that do not; links and junctions are
    neither."""
    mapped: dict[str, Mapped] = {}
    unmapped: list[Unmapped] = []
    for node in (n for n in flow_nodes if not passes(n)):
        outcome = map_node(node, cx, registry)
        if isinstance(outcome, str):
            unmapped.append(
                Unmapped(node["id"], node["type"], str(node.get("name") or ""), outcome)
            )
        else:
            mapped[node["id"]] = outcome
    return mapped, unmapped
