"""From a test file to runnable cases: the flow checked with each case's environment, its target
sub-graph, and every node, port and file a case names checked against that flow.

A problem is located in the test file (or, for the flow itself, in the flow file), so a broken
test never runs and never fails with a traceback.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
from dotenv import dotenv_values

from flowengine.envsubst import FlowEnv
from flowengine.flowfile import FlowDocument
from flowengine.flowtest.load import (
    RawSuite,
    case_problem,
    file_problem,
    is_test_file,
    read_suite,
    tests_for_flow,
)
from flowengine.flowtest.spec import CaseSpec, Feed, Given, Range, merged_given
from flowengine.model import Flow, parse_flow
from flowengine.problems import Pos, Problem, did_you_mean
from flowengine.registry import Registry
from flowengine.standins import check_state
from flowengine.types import ERROR_PORT
from flowengine.validate import CheckedFlow, check_flow

SNAPSHOTS = "__snapshots__"


@dataclass(slots=True)
class Case:
    """One case ready to run: its spec, merged ``given``, its flow and the target's nodes."""

    file: Path
    index: int
    spec: CaseSpec
    given: Given
    flow_path: Path
    checked: CheckedFlow | None = None
    keep: set[str] = field(default_factory=set)

    @property
    def id(self) -> str:
        return f"{self.file}::{self.spec.name}"

    @property
    def base(self) -> Path:
        """The folder data files and snapshots are relative to (the test file's)."""
        return self.file.parent

    def snapshot_path(self, node: str, port: str) -> Path:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.spec.name).strip("-").lower() or "case"
        return self.base / SNAPSHOTS / self.file.name / slug / f"{node}.{port}.jsonl"


@dataclass(slots=True)
class Suite:
    """A test file's cases, or the problems that keep it from running."""

    path: Path
    cases: list[Case] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]


def case_env(flow_path: Path, given: Given) -> FlowEnv:
    """A case's variables: the ``.env`` beside the flow, then ``given.env``. The process
    environment is left out, so a test runs the same on every machine."""
    env = FlowEnv(flow_path=flow_path)
    dotenv = flow_path.parent / ".env"
    if dotenv.is_file():
        values = dotenv_values(stream=io.StringIO(dotenv.read_text(encoding="utf-8")))
        env.update({k: v for k, v in values.items() if v is not None})
    for name, value in given.env.items():
        env[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def load_suite(path: Path, registry: Registry, *, allow_code: bool = False) -> Suite:
    """Read a test file and prepare each case; problems come back in the suite, never raised."""
    raw = read_suite(path)
    suite = Suite(path, problems=list(raw.problems))
    if raw.spec is None or raw.flow_path is None:
        return suite
    flow = _read_flow(raw, suite)
    if flow is None:
        return suite
    checked_by_given: dict[tuple[tuple[tuple[str, str], ...], str], CheckedFlow] = {}
    for index, spec in enumerate(raw.spec.cases):
        case = Case(path, index, spec, merged_given(raw.spec.given, spec), raw.flow_path)
        try:
            env = case_env(raw.flow_path, case.given)
        except (OSError, UnicodeDecodeError) as exc:
            dotenv = str(raw.flow_path.parent / ".env")
            suite.problems.append(Problem(dotenv, Pos(1, 1), f"cannot read .env: {exc}"))
            continue
        config = case.given.config
        key = (tuple(sorted(env.items())), json.dumps(config, sort_keys=True, default=str))
        if key not in checked_by_given:
            configured, marks = with_config(flow, config)
            checked = check_flow(configured, registry, env, allow_code=allow_code)
            checked_by_given[key] = checked
            suite.problems += [_at_override(raw, index, p, marks) for p in checked.errors]
        case.checked = checked_by_given[key]
        if not case.checked.ok:
            continue
        problems = CaseCheck(raw, case).run()
        suite.problems += problems
        if not problems:
            suite.cases.append(case)
    suite.problems = list(dict.fromkeys(suite.problems))
    return suite


#: Where a key set by ``given.config`` sits, in the flow a case runs: a mark, not a place in the
#: flow file, so that a problem of that key is reported at the key in the test file.
Marks = dict[Pos, tuple[str, str]]


def with_config(flow: Flow, config: Mapping[str, Mapping[str, Any]]) -> tuple[Flow, Marks]:
    """``flow`` with a case's ``given.config`` set over its nodes' configs (a node the flow
    does not have is left to :class:`CaseCheck`), and the marks of the keys set."""
    if not config:
        return flow, {}
    nodes = dict(flow.nodes)
    marks: Marks = {}
    for node_id, values in config.items():
        node = nodes.get(node_id)
        if node is None:
            continue
        field_pos = dict(node.field_pos)
        for name in values:
            field_pos[name] = mark = Pos(0, -1 - len(marks))
            marks[mark] = (node_id, name)
        nodes[node_id] = dataclasses.replace(
            node, config={**node.config, **values}, field_pos=field_pos
        )
    return dataclasses.replace(flow, nodes=nodes), marks


def _at_override(raw: RawSuite, index: int, problem: Problem, marks: Marks) -> Problem:
    """A problem of a key ``given.config`` set, moved from the flow to that key in the test
    file (in the case, or in the file's ``given``); any other problem as it is."""
    if problem.pos not in marks:
        return problem
    node, name = marks[problem.pos]
    prefix = f"field '{name}': "
    message = f"node '{node}': {problem.message.removeprefix(prefix)}"
    loc = ["given", "config", node, name]
    case = raw.data[raw.key][index] if isinstance(raw.data, dict) else None
    if _has(case, loc):
        return case_problem(raw, index, loc, message)
    return file_problem(raw, loc, f"'{'.'.join(loc)}': {message}")


def _has(data: Any, loc: list[str]) -> bool:
    for part in loc:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def _read_flow(raw: RawSuite, suite: Suite) -> Flow | None:
    assert raw.flow_path is not None
    if not raw.flow_path.is_file():
        where = ["flow"] if raw.spec is not None and raw.spec.flow else []
        what = f"flow file {raw.flow_path} not found"
        hint = "" if where else " (name it with 'flow:' or put NAME.yaml beside NAME.test.yaml)"
        suite.problems.append(file_problem(raw, where, what + hint))
        return None
    doc, problems = FlowDocument.read(raw.flow_path)
    suite.problems += [p for p in problems if p.is_error]
    if doc is None:
        return None
    flow, more = parse_flow(doc)
    suite.problems += [p for p in more if p.is_error]
    return None if any(p.is_error for p in problems + more) else flow


def target_nodes(graph: nx.MultiDiGraph, target: str | Range | None) -> set[str]:
    """The nodes a target runs: all, one, or those on paths from ``from`` to ``to``."""
    if target is None:
        return set(graph.nodes)
    if isinstance(target, str):
        return {target}
    down = {target.from_} | nx.descendants(graph, target.from_) if target.from_ else set(graph)
    up = {target.to} | nx.ancestors(graph, target.to) if target.to else set(graph)
    return down & up


class CaseCheck:
    """Every node, port and data file one case names, checked against its checked flow."""

    def __init__(self, raw: RawSuite, case: Case) -> None:
        assert case.checked is not None
        self.raw, self.case, self.checked = raw, case, case.checked
        self.problems: list[Problem] = []

    def fail(self, loc: list[Any], message: str) -> None:
        self.problems.append(case_problem(self.raw, self.case.index, loc, message))

    def run(self) -> list[Problem]:
        spec = self.case.spec
        if not self._target(spec.target):
            return self.problems
        for node, ports in spec.mocks.items():
            if self._node(["mocks", node], node):
                for port, rows in ports.items():
                    self._port(["mocks", node, port], node, port, self.outputs(node))
                    self._file(["mocks", node, port], rows)
        given = self.case.given
        for node in given.config:
            self._node(["given", "config", node], node, anywhere=True)
        for key, seeded in (("state", given.state), ("watermark", given.watermark)):
            for node, value in seeded.items():
                if self._node(["given", key, node], node):
                    state = {"watermark": value} if key == "watermark" else value
                    self._state(["given", key, node], node, state)
        for k, step in enumerate(spec.input):
            if isinstance(step, Feed):
                self._feed(["input", k], step)
        for where, exp in spec.expect.items():
            node, named = self.split(where)
            if self._node(["expect", where], node):
                port = named or default_port(self.checked, node)
                self._port(["expect", where], node, port, self.outputs(node, sink_in=True))
                self._file(["expect", where, "rows"], exp.rows)
        return self.problems

    def _target(self, target: str | Range | None) -> bool:
        graph = self.checked.graph
        names = [("target", target)] if isinstance(target, str) else []
        if isinstance(target, Range):
            names = [(k, n) for k, n in (("from", target.from_), ("to", target.to)) if n]
        for key, node in names:
            if node not in graph:
                loc = ["target"] if key == "target" else ["target", key]
                self.fail(loc, self._unknown(node))
        if self.problems:
            return False
        self.case.keep = target_nodes(graph, target)
        if not self.case.keep:
            assert isinstance(target, Range)
            self.fail(["target"], f"no path from '{target.from_}' to '{target.to}'")
            return False
        return True

    def _state(self, loc: list[Any], node: str, state: Any) -> None:
        """A state the node would take: not one for a stand-in, and names it keeps."""
        why = self._stand_in(node)
        if why is not None:
            self.fail(loc, f"node '{node}' runs as a stand-in in this case ({why}): "
                      "a state given to it would not be used")  # fmt: skip
            return
        try:
            check_state(node, self.checked.nodes[node].cls, state)
        except ValueError as exc:
            self.fail(loc, str(exc))

    def _stand_in(self, node: str) -> str | None:
        """Why ``node`` runs as a stand-in in this case (None: it runs itself)."""
        spec, cls = self.case.spec, self.checked.nodes[node].cls
        if node in spec.mocks:
            return "it is mocked"
        steps = [s for s in spec.input if isinstance(s, Feed)]
        if cls.kind == "source" and any(self.split(s.feed)[0] == node for s in steps):
            return "the case feeds it"
        if spec.replace_io and cls.io:
            return "external I/O is replaced unless replace_io is false"
        return None

    def _unknown(self, node: str) -> str:
        flow = self.checked.flow
        if node in flow.nodes:
            return f"node '{node}' is disabled"
        return f"no node '{node}' in {flow.path}{did_you_mean(node, flow.nodes)}"

    def _node(self, loc: list[Any], node: str, anywhere: bool = False) -> bool:
        if node not in self.checked.graph:
            self.fail(loc, self._unknown(node))
            return False
        if not anywhere and node not in self.case.keep:
            kept = ", ".join(sorted(self.case.keep))
            self.fail(loc, f"node '{node}' is not in the case's target ({kept})")
            return False
        return True

    def _port(self, loc: list[Any], node: str, port: str, ports: tuple[str, ...]) -> None:
        if port not in ports:
            built = self.checked.nodes[node]
            self.fail(
                loc,
                f"no port '{port}' on node '{node}' (type '{built.defn.type}'; ports: "
                f"{', '.join(ports) or 'none'}){did_you_mean(port, ports)}",
            )

    def _file(self, loc: list[Any], rows: Any) -> None:
        if isinstance(rows, str) and not (self.case.base / rows).is_file():
            self.fail(loc, f"data file {self.case.base / rows} not found")

    def _feed(self, loc: list[Any], step: Feed) -> None:
        node, port = self.split(step.feed)
        if not self._node([*loc, "feed"], node):
            return
        built = self.checked.nodes[node]
        if port is not None:
            ports = self.outputs(node) if built.cls.kind == "source" else built.cls.inputs
            self._port([*loc, "feed"], node, port, tuple(p for p in ports if p != ERROR_PORT))
        self._file([*loc, "file"], step.file)
        self._file([*loc, "replay"], step.replay)

    def outputs(self, node: str, sink_in: bool = False) -> tuple[str, ...]:
        """The ports a node sends on (with ``error``); a sink's ``in`` is what it received."""
        built = self.checked.nodes[node]
        if built.cls.kind == "sink" and sink_in:
            return ("in", ERROR_PORT)
        ports = built.cls.output_ports(built.config) or built.cls.outputs
        return (*ports, ERROR_PORT)

    @staticmethod
    def split(where: str) -> tuple[str, str | None]:
        """``"node.port"`` -> ``("node", "port")``; ``"node"`` -> ``("node", None)``."""
        node, _, port = where.partition(".")
        return node, port or None


def default_port(checked: CheckedFlow, node: str) -> str:
    """The port ``expect: {node: ...}`` means: a sink's input, any other node's ``out``."""
    built = checked.nodes.get(node)
    return "in" if built is not None and built.cls.kind == "sink" else "out"


def load_suites(
    paths: list[Path], registry: Registry, *, allow_code: bool = False
) -> Mapping[Path, Suite]:
    """Every test file in ``paths``, loaded."""
    return {p: load_suite(p, registry, allow_code=allow_code) for p in paths}


def flow_test_problems(
    path: Path, registry: Registry, *, allow_code: bool = False
) -> tuple[list[Problem], int]:
    """What ``flowengine validate`` adds for ``path``: the problems of its tests (a flow's
    inline ``tests:`` and the ``NAME.test.yaml`` beside it; or ``path`` itself, a test file)
    and how many cases they hold that are ready to run."""
    files = [path] if is_test_file(path) else tests_for_flow(path)
    problems: list[Problem] = []
    cases = 0
    for file in files:
        suite = load_suite(file, registry, allow_code=allow_code)
        problems += suite.problems
        cases += len(suite.cases)
    return list(dict.fromkeys(problems)), cases
