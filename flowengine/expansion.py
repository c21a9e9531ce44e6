"""Subflow instances expanded into their inner nodes, before a flow is checked.

An instance ``line1`` of a subflow becomes its inner nodes ``line1/avg``, ``line1/tag``, ...
(nested instances: ``line1/inner/avg``), each a node of its own (own state, checkpoints and
deploys). A wire into the instance goes to the inner targets its input port names; the
instance's own wires leave from the inner nodes its output ports name, and its ``error`` wires
from every inner node's error port. :func:`relocate` then points each problem of an inner node
at the subflow file's line:col and names the instance that included it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowengine.configcheck import build_config
from flowengine.model import Flow, NodeDef, Target
from flowengine.problems import Pos, Problem, did_you_mean
from flowengine.subflow import SEP, SUBFLOW_TYPE, Subflow, find_package, read_subflow
from flowengine.types import ERROR_PORT
from flowengine.wires import OUT, split_target

_PARAM_REF = re.compile(r"\$\$|\$\{param\.([A-Za-z_][A-Za-z0-9_]*)\}")
_WHOLE_PARAM = re.compile(r"\$\{param\.([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an expanded node (or nested instance) is written: its file and the instances,
    outermost first, that brought it into the flow."""

    path: Path
    chain: tuple[str, ...]


@dataclass(slots=True)
class _Level:
    """The nodes of one file with its instances expanded, and how to reach those instances."""

    nodes: dict[str, NodeDef] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    origins: dict[str, Origin] = field(default_factory=dict)
    ins: dict[str, dict[str, list[Target]]] = field(default_factory=dict)
    outs: dict[str, dict[str, list[tuple[str, str]]]] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Expansion:
    """A flow with its subflow instances expanded; ``origins`` locate the inner nodes."""

    flow: Flow
    problems: list[Problem] = field(default_factory=list)
    origins: dict[str, Origin] = field(default_factory=dict)
    #: Every subflow file read (resolved paths).
    files: tuple[Path, ...] = ()


class _Loader:
    """Reads each subflow file once per expansion; its problems are reported once."""

    def __init__(self) -> None:
        self.read: dict[Path, tuple[Subflow | None, list[Problem]]] = {}

    def load(self, path: Path) -> tuple[Subflow | None, list[Problem]]:
        key = path.resolve()
        if key in self.read:
            return self.read[key][0], []
        self.read[key] = read_subflow(path)
        return self.read[key]


def has_instances(flow: Flow) -> bool:
    return any(n.type == SUBFLOW_TYPE for n in flow.nodes.values())


def expand(flow: Flow, env: Mapping[str, str]) -> Expansion:
    """``flow`` with every subflow instance replaced by its inner nodes (recursively), wires
    to and from an instance joined to the inner nodes its ports name. A flow without
    instances comes back as is."""
    if not has_instances(flow):
        return Expansion(flow)
    loader = _Loader()
    level = _expand(flow.nodes, flow.path, env, loader, (flow.path.resolve(),))
    expanded = dataclasses.replace(flow, nodes=level.nodes)
    return Expansion(expanded, level.problems, level.origins, tuple(loader.read))


def _expand(
    nodes: Mapping[str, NodeDef],
    path: Path,
    env: Mapping[str, str],
    loader: _Loader,
    stack: tuple[Path, ...],
) -> _Level:
    level = _Level()
    instances = [n for n in nodes.values() if n.type == SUBFLOW_TYPE]
    for node in nodes.values():
        if node.type != SUBFLOW_TYPE:
            level.nodes[node.id] = dataclasses.replace(
                node, wires={p: list(t) for p, t in node.wires.items()}
            )
    for inst in instances:
        _instance(level, inst, path, env, loader, stack)
    for node_id in [n for n in nodes if nodes[n].type != SUBFLOW_TYPE]:
        own = level.nodes[node_id]
        own.wires = {p: _into(level, own, ts, path) for p, ts in own.wires.items()}
    for inst in instances:
        if inst.id not in level.failed:
            _wire_out(level, inst, path)
    return level


def _instance(
    level: _Level,
    inst: NodeDef,
    path: Path,
    env: Mapping[str, str],
    loader: _Loader,
    stack: tuple[Path, ...],
) -> None:
    """Expand one instance into ``level`` (or mark it failed, its problems reported)."""
    level.origins[inst.id] = Origin(path, ())
    sub_path, why = _locate(inst, path)
    if sub_path is None:
        level.failed.add(inst.id)
        where = inst.field_pos.get("package") or inst.field_pos.get("path") or inst.pos
        level.problems.append(Problem(str(path), where, why or "no subflow", inst.id))
        return
    if sub_path.resolve() in stack:
        level.failed.add(inst.id)
        ring = " -> ".join(p.name for p in (*stack[1:], sub_path.resolve()))
        where = inst.field_pos.get("path") or inst.field_pos.get("package") or inst.pos
        msg = f"subflow cycle: {ring} (a subflow cannot include itself)"
        level.problems.append(Problem(str(path), where, msg, inst.id))
        return
    sub, problems = loader.load(sub_path)
    level.problems += [p if p.node else dataclasses.replace(p, node=inst.id) for p in problems]
    if sub is None:
        level.failed.add(inst.id)
        return
    config, problems = build_config(inst, sub.node_type, env, str(path))
    level.problems += problems
    if config is None:
        level.failed.add(inst.id)
        return
    params = {name: getattr(config, name) for name in sub.header.params}
    inner: dict[str, NodeDef] = {}
    for node in sub.nodes.values():
        copy, problems = _with_params(node, params, sub)
        inner[node.id] = copy
        level.problems += [dataclasses.replace(p, node=f"{inst.id}{SEP}{p.node}") for p in problems]
    deeper = _expand(inner, sub.path, env, loader, (*stack, sub_path.resolve()))
    _adopt(level, inst, sub, deeper, path)


def _locate(inst: NodeDef, path: Path) -> tuple[Path | None, str | None]:
    """The file an instance uses: ``path`` relative to the including file, or a package."""
    where, package = inst.config.get("path"), inst.config.get("package")
    if bool(where) == bool(package):
        return None, "a subflow instance needs 'path' (a subflow file) or 'package', not both"
    if package:
        return find_package(str(package))
    target = path.parent / str(where)
    if not target.is_file():
        return None, f"no subflow file '{where}' (looked for {target})"
    return target, None


def _with_params(
    node: NodeDef, params: Mapping[str, Any], sub: Subflow
) -> tuple[NodeDef, list[Problem]]:
    """A copy of an inner node with ``${param.NAME}`` replaced in its options: a whole
    reference by the param's typed value, a reference inside text by its text."""
    problems: list[Problem] = []

    def sub_value(key: str, value: Any) -> Any:
        if isinstance(value, str):
            whole = _WHOLE_PARAM.fullmatch(value)
            if whole and whole.group(1) in params:
                return _escaped(params[whole.group(1)])

            def repl(match: re.Match[str]) -> str:
                name = match.group(1)
                if name is None:
                    return match.group(0)
                if name not in params:
                    hint = did_you_mean(name, params)
                    pos = node.field_pos.get(key, node.pos)
                    msg = f"field '{key}': unknown param '{name}'{hint}"
                    problems.append(Problem(str(sub.path), pos, msg, node.id))
                    return match.group(0).replace("$", "$$")
                return str(_escaped(params[name]))

            return _PARAM_REF.sub(repl, value)
        if isinstance(value, dict):
            return {k: sub_value(key, v) for k, v in value.items()}
        if isinstance(value, list):
            return [sub_value(key, v) for v in value]
        return value

    config = {k: sub_value(k, v) for k, v in node.config.items()}
    copy = dataclasses.replace(
        node, config=config, wires={p: list(t) for p, t in node.wires.items()}
    )
    return copy, problems


def _escaped(value: Any) -> Any:
    """A param's value as it must be written so that ``${VAR}`` substitution, which runs on
    the inner nodes next, gives it back unchanged (``$`` doubled)."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    if isinstance(value, dict):
        return {k: _escaped(v) for k, v in value.items()}
    return value


def _adopt(level: _Level, inst: NodeDef, sub: Subflow, deeper: _Level, path: Path) -> None:
    """Put an instance's expanded nodes into ``level`` under ``inst.id/``, with its ports."""
    prefix = inst.id + SEP
    here = f"'{inst.id}' ({path}:{inst.pos.line}:{inst.pos.col})"

    def moved(t: Target) -> Target:
        return Target(prefix + t.node, t.port, t.pos)

    for node_id, node in deeper.nodes.items():
        node.id = prefix + node_id
        node.wires = {p: [moved(t) for t in ts] for p, ts in node.wires.items()}
        node.disabled = node.disabled or inst.disabled
        node.queue_size = node.queue_size or inst.queue_size
        node.retry = node.retry or inst.retry
        level.nodes[node.id] = node
        origin = deeper.origins.get(node_id)
        level.origins[node.id] = Origin(
            origin.path if origin else sub.path, (here, *(origin.chain if origin else ()))
        )
    for key, origin in deeper.origins.items():
        if key not in deeper.nodes:  # a nested instance
            level.origins[prefix + key] = Origin(origin.path, (here, *origin.chain))
    level.problems += [
        dataclasses.replace(p, node=prefix + p.node) if p.node else p for p in deeper.problems
    ]
    if inst.buffer is not None:
        where = inst.field_pos.get("buffer", inst.pos)
        msg = "'buffer' is set on the sinks inside a subflow, not on its instance"
        level.problems.append(Problem(str(path), where, msg, inst.id))
    ins: dict[str, list[Target]] = {}
    for port, items in sub.header.inputs.items():
        pos = sub.port_pos.get(("inputs", port), Pos(1, 1))
        ins[port] = []
        for item in items:
            node_id, node_port = split_target(item)
            if not _inner(node_id, deeper):
                continue  # reported by _check_ports
            if node_id in deeper.ins:
                targets = deeper.ins[node_id].get(node_port, [])
            elif node_id in deeper.failed:
                targets = []
            else:
                targets = [Target(node_id, node_port, pos)]
            ins[port] += [moved(t) for t in targets]
    outs: dict[str, list[tuple[str, str]]] = {}
    for port, items in sub.header.outputs.items():
        outs[port] = []
        for item in items:
            node_id, _, node_port = item.partition(".")
            if not _inner(node_id, deeper):
                continue
            if node_id in deeper.outs:
                sources = deeper.outs[node_id].get(node_port or OUT, [])
            elif node_id in deeper.failed:
                sources = []
            else:
                sources = [(node_id, node_port or OUT)]
            outs[port] += [(prefix + n, p) for n, p in sources]
    level.ins[inst.id], level.outs[inst.id] = ins, outs


def _inner(node_id: str, deeper: _Level) -> bool:
    """True when ``node_id`` is a node or an instance of the subflow."""
    return node_id in deeper.nodes or node_id in deeper.ins or node_id in deeper.failed


def _into(level: _Level, node: NodeDef, targets: list[Target], path: Path) -> list[Target]:
    """Wire targets with those naming an instance replaced by the inner nodes its port feeds."""
    out: list[Target] = []
    for target in targets:
        if target.node in level.failed:
            continue  # its problem is reported; a wire to it adds nothing
        ports = level.ins.get(target.node)
        if ports is None:
            out.append(target)
            continue
        if target.port not in ports:
            names = ", ".join(ports) or "none"
            msg = (
                f"wire to missing input port '{target.port}' of subflow instance "
                f"'{target.node}' (ports: {names}){did_you_mean(target.port, ports)}"
            )
            level.problems.append(Problem(str(path), target.pos, msg, node.id))
            continue
        out += [t for t in ports[target.port] if t not in out]
    return out


def _wire_out(level: _Level, inst: NodeDef, path: Path) -> None:
    """An instance's own wires: from the inner nodes its output ports name (its ``error``
    port: from every inner node's error port)."""
    outs = level.outs[inst.id]
    for port, targets in inst.wires.items():
        resolved = _into(level, inst, targets, path)
        if port == ERROR_PORT:
            prefix = inst.id + SEP
            sources = [(n, ERROR_PORT) for n in level.nodes if n.startswith(prefix)]
        elif port in outs:
            sources = outs[port]
        else:
            names = ", ".join([*outs, ERROR_PORT])
            msg = f"no output port '{port}' on subflow instance '{inst.id}' (ports: {names})"
            where = inst.field_pos.get("wires", inst.pos)
            level.problems.append(Problem(str(path), where, msg + did_you_mean(port, outs)))
            continue
        for node_id, node_port in sources:
            wires = level.nodes[node_id].wires.setdefault(node_port, [])
            wires += [t for t in resolved if t not in wires]


def relocate(problems: list[Problem], expansion: Expansion) -> list[Problem]:
    """Problems of expanded nodes located in the subflow file that holds them, each saying
    which instance (and where) included it."""
    if not expansion.origins:
        return problems
    flow_path = str(expansion.flow.path)
    out: list[Problem] = []
    for problem in problems:
        origin = expansion.origins.get(problem.node or "")
        if origin is None or not origin.chain:
            out.append(problem)
            continue
        path = str(origin.path) if problem.path == flow_path else problem.path
        via = " in ".join(reversed(origin.chain))
        out.append(
            dataclasses.replace(
                problem, path=path, message=f"{problem.message} (in subflow instance {via})"
            )
        )
    return out
