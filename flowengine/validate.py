"""Validation: one pass that collects every problem of a flow, located in its file.

The same checks run before ``flowengine run``, in ``flowengine validate`` and in the editor.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from flowengine.configcheck import build_config
from flowengine.envsubst import EnvError, FlowEnv, load_env, substitute
from flowengine.expansion import expand as expand_subflows
from flowengine.expansion import relocate
from flowengine.flowfile import FlowDocument, value_pos
from flowengine.model import Flow, NodeDef, Target, parse_flow
from flowengine.node import Node, NodeConfig
from flowengine.paths import WritePolicy, refusals
from flowengine.problems import Pos, Problem, did_you_mean
from flowengine.registry import Registry, UnknownNodeType, missing_requirements
from flowengine.types import ERROR_PORT

MAX_CYCLES_REPORTED = 5
#: Set to 1 by ``flowengine edit`` for itself and every process it starts (test runs, flow
#: workers): a flow's own ``settings.allow_code`` then admits no code, only ``--allow-code``.
NO_FILE_CODE_ENV = "FLOWENGINE_NO_FILE_CODE"
__all__ = ["BuiltNode", "CheckedFlow", "build_config", "check_flow", "load_flow"]


@dataclass(slots=True)
class BuiltNode:
    """A node whose type is known and whose config passed its spec."""

    defn: NodeDef
    cls: type[Node[Any]]
    config: NodeConfig


@dataclass(slots=True)
class CheckedFlow:
    """A flow plus its validated nodes, its graph and every problem found."""

    flow: Flow
    nodes: dict[str, BuiltNode] = field(default_factory=dict)
    graph: nx.MultiDiGraph = field(default_factory=nx.MultiDiGraph)
    problems: list[Problem] = field(default_factory=list)
    #: Where its nodes may write (the editor's; None: anywhere), applied again by the runtime.
    write_policy: WritePolicy | None = None
    #: The subflow files its instances were expanded from (the editor re-checks when one changes).
    subflows: tuple[Path, ...] = ()

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors


def check_flow(
    flow: Flow,
    registry: Registry,
    env: Mapping[str, str] | None = None,
    *,
    allow_code: bool = False,
    file_code: bool | None = None,
    write_policy: WritePolicy | None = None,
) -> CheckedFlow:
    """Check types, configs, wires and the graph; never raises on bad input.

    ``allow_code`` (the CLI's ``--allow-code``) admits nodes that run Python from the file, as
    does ``settings: allow_code: true`` in the flow itself unless ``file_code`` is False (the
    editor: whoever edits the flow there could set it; None: False when ``NO_FILE_CODE_ENV``
    is 1). Under ``write_policy`` a node writing a flow file or outside the output root is an
    error (see :mod:`flowengine.paths`).
    """
    if file_code is None:
        file_code = os.environ.get(NO_FILE_CODE_ENV) != "1"
    checked = CheckedFlow(flow, write_policy=write_policy)
    if env is None:
        env = _read_env(flow, checked.problems)
    expansion = expand_subflows(flow, env)  # instances -> their inner nodes, `inst/inner`
    checked.flow, checked.subflows = expansion.flow, expansion.files
    checked.problems += expansion.problems
    _check_names(checked, env)
    code = allow_code or (file_code and flow.settings.allow_code)
    classes = _build_nodes(checked, registry, env, code, file_code)
    _check_state_dir(checked)
    _build_graph(checked, classes)
    _check_cycles(checked)
    _check_reach(checked, classes)
    checked.problems = relocate(checked.problems, expansion)  # at the subflow file's line:col
    checked.problems.sort(key=lambda p: (p.pos.line, p.pos.col))
    return checked


def _read_env(flow: Flow, problems: list[Problem]) -> Mapping[str, str]:
    """The ``.env`` beside the flow over the process environment; the latter alone if unreadable."""
    try:
        return load_env(flow.path)
    except (OSError, UnicodeDecodeError) as exc:
        dotenv = flow.path.parent / ".env"
        problems.append(Problem(str(dotenv), Pos(1, 1), f"cannot read .env: {exc}"))
        return FlowEnv(os.environ, flow.path)


def _check_names(checked: CheckedFlow, env: Mapping[str, str]) -> None:
    """``${VAR}`` in the flow's and the nodes' ``name`` must resolve, as in every other field."""
    flow = checked.flow
    path = str(flow.path)
    data = flow.doc.data if flow.doc is not None else None
    named: list[tuple[object, Pos, str | None]] = [(flow.name, value_pos(data, "name"), None)]
    named += [(n.name, n.field_pos.get("name", n.pos), n.id) for n in flow.nodes.values()]
    for name, pos, node_id in named:
        if not isinstance(name, str) or "$" not in name:
            continue
        try:
            substitute(name, env)
        except EnvError as exc:
            checked.problems.append(Problem(path, pos, f"field 'name': {exc}", node_id))


def _code_refused(type_name: str, file_code: bool, file_allows: bool) -> str:
    """Why a node of ``type_name`` (which runs Python from the file) is refused."""
    why = f"type '{type_name}' runs Python code from the flow file: refused"
    if not file_code and file_allows:
        return (
            f"{why}: the editor was started without --allow-code (in the editor the flow's "
            "own 'settings: {allow_code: true}' is not enough)"
        )
    if not file_code:
        return f"{why}: start the editor with --allow-code to run it"
    return f"{why} unless the flow sets 'settings: {{allow_code: true}}' or you pass --allow-code"


def _check_state_dir(checked: CheckedFlow) -> None:
    """Under a write policy, a ``settings.state_dir`` must lie inside the output root too."""
    flow, policy = checked.flow, checked.write_policy
    if policy is None or not flow.settings.state_dir:
        return
    why = policy.refusal(flow.settings.state_dir, flow.path.parent)
    if why is not None:
        data = flow.doc.data if flow.doc is not None else None
        where = value_pos(data, "settings")
        checked.problems.append(Problem(str(flow.path), where, f"settings 'state_dir': {why}"))


def _build_nodes(
    checked: CheckedFlow,
    registry: Registry,
    env: Mapping[str, str],
    allow_code: bool,
    file_code: bool = True,
) -> dict[str, type[Node[Any]]]:
    """Find each node's type and apply its config model; returns the classes found by node id
    (a node with a bad config has a class but is not in ``checked.nodes``)."""
    flow, problems = checked.flow, checked.problems
    path = str(flow.path)
    classes: dict[str, type[Node[Any]]] = {}
    for node in flow.nodes.values():
        type_pos = node.field_pos.get("type", node.pos)
        try:
            cls = classes[node.id] = registry.get(node.type)
        except UnknownNodeType as exc:
            if node.type:
                reason = registry.broken.get(node.type)
                msg = f"node type '{node.type}' failed to load: {reason}" if reason else str(exc)
                problems.append(Problem(path, type_pos, msg, node.id))
            continue
        for missing in missing_requirements(cls):
            problems.append(Problem(path, type_pos, missing, node.id))
        if cls.runs_code and not allow_code:
            msg = _code_refused(node.type, file_code, flow.settings.allow_code)
            problems.append(Problem(path, type_pos, msg, node.id))
        if node.buffer is not None and cls.kind != "sink":
            where = node.field_pos.get("buffer", node.pos)
            msg = f"'buffer' is for sinks (store-and-forward); '{node.type}' is a {cls.kind}"
            problems.append(Problem(path, where, msg, node.id))
        config, probs = build_config(node, cls, env, path)
        problems += probs
        if config is not None:
            for name, why in refusals(checked.write_policy, config, flow.path.parent):
                msg = f"node '{node.id}' may not write field '{name}': {why}"
                problems.append(Problem(path, node.field_pos.get(name, type_pos), msg, node.id))
            checked.nodes[node.id] = BuiltNode(node, cls, config)
    return classes


def _build_graph(checked: CheckedFlow, classes: Mapping[str, type[Node[Any]]]) -> None:
    """Add every enabled node and every valid wire between enabled nodes to the graph."""
    flow, graph = checked.flow, checked.graph
    for node in flow.nodes.values():
        if not node.disabled:
            graph.add_node(node.id)
    for node in flow.nodes.values():
        cls = classes.get(node.id)
        built = checked.nodes.get(node.id)
        for port, targets in node.wires.items():
            ports = cls.output_ports(built.config if built else None) if cls else None
            problem = _port_problem(checked.flow, node, port, ports)
            if problem is not None:
                checked.problems.append(problem)
                continue
            for target in targets:
                problem = _target_problem(checked.flow, node, target, classes)
                if problem is not None:
                    checked.problems.append(problem)
                elif not node.disabled and not flow.nodes[target.node].disabled:
                    graph.add_edge(node.id, target.node, port=port, dest_port=target.port)


def _port_problem(
    flow: Flow, node: NodeDef, port: str, ports: tuple[str, ...] | None
) -> Problem | None:
    """Why ``node`` cannot send on ``port`` (None: it can, or its ports are not known)."""
    outs = (*(ports or ()), ERROR_PORT)
    if ports is None or port in outs:
        return None
    return Problem(
        str(flow.path),
        node.field_pos.get("wires", node.pos),
        f"no output port '{port}' on type '{node.type}' "
        f"(ports: {', '.join(outs)}){did_you_mean(port, outs)}",
        node.id,
    )


def _target_problem(
    flow: Flow, node: NodeDef, target: Target, classes: Mapping[str, type[Node[Any]]]
) -> Problem | None:
    """Why a wire from ``node`` cannot reach ``target`` (None: it can)."""
    path = str(flow.path)
    if target.node not in flow.nodes:
        hint = did_you_mean(target.node, flow.nodes)
        return Problem(path, target.pos, f"wire to missing node '{target.node}'{hint}", node.id)
    dest_cls = classes.get(target.node)
    if dest_cls is None or target.port in dest_cls.inputs:
        return None
    ins = dest_cls.inputs
    what = f"(ports: {', '.join(ins)})" if ins else "(a source takes no input)"
    return Problem(
        path,
        target.pos,
        f"wire to missing input port '{target.port}' of '{target.node}' {what}",
        node.id,
    )


def _check_cycles(checked: CheckedFlow) -> None:
    """Report the first few cycles: flows must be acyclic."""
    flow = checked.flow
    simple = nx.DiGraph(checked.graph)
    for cycle in itertools.islice(nx.simple_cycles(simple), MAX_CYCLES_REPORTED):
        first = flow.nodes[cycle[0]]
        ring = " -> ".join([*cycle, cycle[0]])
        checked.problems.append(
            Problem(str(flow.path), first.pos, f"cycle: {ring} (flows must be acyclic)", first.id)
        )


def _check_reach(checked: CheckedFlow, classes: Mapping[str, type[Node[Any]]]) -> None:
    """Warn about sources wired to nothing and nodes no source feeds."""
    flow, graph = checked.flow, checked.graph
    path = str(flow.path)
    # A node whose type is unknown may be a source: do not pile warnings on top of its error.
    roots = [n for n in graph if n not in classes or classes[n].kind == "source"]
    fed = set(roots)
    for src in roots:
        fed |= nx.descendants(graph, src)
        if src in classes and graph.out_degree(src) == 0:
            checked.problems.append(
                Problem(path, flow.nodes[src].pos, "source is wired to nothing", src, "warning")
            )
    for node_id in graph.nodes:
        if node_id not in fed and node_id in classes:
            checked.problems.append(
                Problem(
                    path,
                    flow.nodes[node_id].pos,
                    "unreachable: no source feeds this node",
                    node_id,
                    "warning",
                )
            )


def load_flow(
    path: str | Path,
    registry: Registry,
    env: Mapping[str, str] | None = None,
    *,
    allow_code: bool = False,
    file_code: bool | None = None,
    write_policy: WritePolicy | None = None,
) -> CheckedFlow:
    """Read, parse and check a flow file; problems come back in the result, never raised."""
    doc, problems = FlowDocument.read(path)
    if doc is None:
        return CheckedFlow(Flow(path=Path(path)), problems=problems, write_policy=write_policy)
    flow, parse_problems = parse_flow(doc)
    checked = check_flow(
        flow, registry, env, allow_code=allow_code, file_code=file_code, write_policy=write_policy
    )
    checked.problems[:0] = problems + parse_problems
    checked.problems.sort(key=lambda p: (p.pos.line, p.pos.col))
    return checked
