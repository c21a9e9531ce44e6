"""What the editor reads off the open flow: the validated flow, problems, type descriptions,
positions, the canvas's views and the property form's values. Every reading is cached per
revision, since the editor asks several times a second."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flowengine.envsubst import has_reference
from flowengine.flowfile import FlowDocument, to_plain
from flowengine.logs import MASK
from flowengine.model import Flow, NodeDef, parse_flow
from flowengine.paths import WritePolicy
from flowengine.problems import Problem
from flowengine.registry import Registry, UnknownNodeType
from flowengine.subflow import SUBFLOW_TYPE
from flowengine.types import ERROR_PORT
from flowengine.ui.document import ModelDocument
from flowengine.ui.subflows import describe_instance, versions
from flowengine.ui.views import NodeView, WireView, wire_key
from flowengine.validate import CheckedFlow, check_flow

#: Node colours by palette category (Node-RED's muted tones).
COLORS = {
    "input": "#a6bbcf",
    "output": "#c0deed",
    "function": "#fdd0a2",
    "analytics": "#d8bfd8",
}
DEFAULT_COLOR = "#dddddd"
#: Where nodes may write in the editor (``flowengine edit --output-root``).
OUTPUT_ROOT_ENV = "FLOWENGINE_EDITOR_OUTPUT_ROOT"


def editor_write_policy() -> WritePolicy:
    """The editor's write policy: ``--output-root`` (passed on in the environment, so flows
    run in worker processes get it too), else the ``out`` folders of :class:`WritePolicy`."""
    root = os.environ.get(OUTPUT_ROOT_ENV)
    return WritePolicy(Path(root) if root else None)


def _wire_views(node_id: str, node: NodeDef) -> list[WireView]:
    """The canvas's wires out of one node."""
    return [
        WireView(
            key=wire_key(node_id, port, target.node, target.port),
            source=node_id,
            port=port,
            target=target.node,
            target_port=target.port,
        )
        for port, targets in node.wires.items()
        for target in targets
    ]


class ModelReading(ModelDocument):
    """The open flow as the views see it."""

    def __init__(
        self, doc: FlowDocument, registry: Registry | None = None, *, allow_code: bool = False
    ) -> None:
        super().__init__(doc, registry, allow_code=allow_code)
        self._cache: tuple[int, Flow, CheckedFlow, list[Problem]] | None = None
        self._subflows: tuple[int, ...] = ()  # the cached check's subflow files' versions
        self._described: dict[str, dict[str, Any]] = {}

    def _checked(self) -> tuple[Flow, CheckedFlow, list[Problem]]:
        if (
            self._cache is None
            or self._cache[0] != self.revision
            or (self._cache[2].subflows and versions(self._cache[2].subflows) != self._subflows)
        ):
            flow, parse_problems = parse_flow(self.doc)
            # in the editor, only --allow-code admits code (not the file's own settings), and
            # nodes write only inside the output root
            checked = check_flow(
                flow,
                self.registry,
                allow_code=self.allow_code,
                file_code=False,
                write_policy=editor_write_policy(),
            )
            problems = sorted(
                [*parse_problems, *checked.problems], key=lambda p: (p.pos.line, p.pos.col)
            )
            self._cache = (self.revision, flow, checked, problems)
            self._subflows = versions(checked.subflows)
        return self._cache[1], self._cache[2], self._cache[3]

    def flow(self) -> Flow:
        return self._checked()[0]

    def checked(self) -> CheckedFlow:
        """The validated flow, what :class:`FlowHost` deploys (parse problems included)."""
        _, checked, problems = self._checked()
        checked.problems = list(problems)
        return checked

    def problems(self) -> list[Problem]:
        """Every problem, from the same validator as ``flowengine validate``."""
        return list(self._checked()[2])

    def node_problems(self) -> dict[str, list[Problem]]:
        """Problems per node id (those not tied to a node are under ``""``)."""
        out: dict[str, list[Problem]] = {}
        for problem in self.problems():
            out.setdefault(problem.node or "", []).append(problem)
        return out

    def describe(self, type_name: str) -> dict[str, Any] | None:
        """``Registry.describe`` of a type (cached: a schema is built once), None if unknown."""
        if type_name not in self._described:
            try:
                self._described[type_name] = self.registry.describe(type_name)
            except UnknownNodeType:
                return None
        return self._described[type_name]

    def describe_node(self, node_id: str) -> dict[str, Any] | None:
        """``describe`` of a node's type; a subflow instance's is its subflow's (params, ports)."""
        type_name = self.node_type(node_id)
        if type_name == SUBFLOW_TYPE:
            return describe_instance(self.path, self.nodes.get(node_id))
        return self.describe(type_name)

    def node_type(self, node_id: str) -> str:
        raw = self.nodes.get(node_id)
        return str(raw.get("type", "")) if isinstance(raw, dict) else ""

    def position(self, node_id: str, index: int = 0) -> tuple[float, float]:
        """Where a node is drawn: its layout entry, else a grid spot by its place in the file."""
        xy = self.layout.get(node_id)
        try:
            return float(xy["x"]), float(xy["y"])
        except (TypeError, KeyError, ValueError):
            return 80.0 + 220.0 * (index % 5), 80.0 + 100.0 * (index // 5)

    def output_ports(self, node_id: str) -> list[str]:
        """A node's output ports, ``error`` last (a switch's follow its rule names)."""
        _, checked, _ = self._checked()
        if self.node_type(node_id) == SUBFLOW_TYPE:
            info = self.describe_node(node_id)
            return list(info["outputs"]) if info else ["out", ERROR_PORT]
        try:
            cls = self.registry.get(self.node_type(node_id))
        except UnknownNodeType:
            return ["out", ERROR_PORT]
        built = checked.nodes.get(node_id)
        ports = cls.output_ports(built.config if built else None)
        return [*(ports if ports is not None else cls.outputs), ERROR_PORT]

    def to_view(self) -> tuple[list[NodeView], list[WireView]]:
        """What the canvas draws: nodes with ports, colour and first error; every wire."""
        flow, _, problems = self._checked()
        first_error: dict[str, str] = {}
        for problem in problems:
            if problem.node and problem.is_error:  # inside a subflow: shown on its instance
                first_error.setdefault(problem.node.partition("/")[0], problem.message)
        views: list[NodeView] = []
        wires: list[WireView] = []
        for index, (node_id, node) in enumerate(flow.nodes.items()):
            info = self.describe_node(node_id)
            x, y = self.position(node_id, index)
            views.append(
                NodeView(
                    id=node_id,
                    type=node.type,
                    label=node.label,
                    x=x,
                    y=y,
                    inputs=list(info["inputs"]) if info else ["in"],
                    outputs=self.output_ports(node_id),
                    color=COLORS.get(info["category"], DEFAULT_COLOR) if info else DEFAULT_COLOR,
                    icon=info["icon"] if info else "help_outline",
                    disabled=node.disabled,
                    error=first_error.get(node_id),
                )
            )
            wires += _wire_views(node_id, node)
        return views, wires

    def form_values(self, node_id: str) -> dict[str, Any]:
        """A node's keys as plain values for the property form; literal secrets come back as
        ``******`` (never in clear), ``${VAR}`` references as written."""
        raw = self.nodes.get(node_id)
        if not isinstance(raw, dict):
            return {}
        values = {str(k): to_plain(v) for k, v in raw.items() if k != "wires"}
        for name in self._secret_fields(node_id):
            value = values.get(name)
            if value not in (None, "") and not has_reference(value):
                values[name] = MASK
        return values

    def _secret_fields(self, node_id: str) -> set[str]:
        if self.node_type(node_id) == SUBFLOW_TYPE:  # its subflow's secret params
            props = (self.describe_node(node_id) or {}).get("schema", {}).get("properties", {})
            return {name for name, prop in props.items() if prop.get("secret")}
        try:
            return self.registry.get(self.node_type(node_id)).Config.secret_fields()
        except UnknownNodeType:
            return set()
