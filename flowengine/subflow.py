"""Subflows: a group of nodes in its own file, used in flows as one node with typed parameters.

A subflow file (``smooth.subflow.yaml``) holds a ``subflow:`` header (name, version,
description, ``params``, and which inner nodes are its ``inputs`` and ``outputs``) and
``nodes:`` written as in a flow, whose options may say ``${param.NAME}``. A flow uses it as
a node ``type: subflow`` with ``path:`` (relative to the flow file) or ``package: NAME@VERSION``
(an installed subflow, entry point group ``flowengine.subflows``) and its params as options.

The params are the subflow's spec: :func:`node_class` builds a node type from them, so an
instance's options are checked, documented and edited like any node's. Validation expands
every instance into its inner nodes (:mod:`flowengine.expansion`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, create_model, field_validator

from flowengine.flowfile import FlowDocument, key_pos, to_plain, value_pos
from flowengine.model import (
    NODE_ID,
    NODE_KEYS,
    Flow,
    NodeDef,
    _parse_nodes,
    _pydantic_problems,
)
from flowengine.node import Node, NodeConfig, Sink, Source, Transform, option
from flowengine.problems import Pos, Problem, did_you_mean
from flowengine.types import ERROR_PORT
from flowengine.wires import as_list, split_target

#: The ``type`` of a node that is a subflow instance.
SUBFLOW_TYPE = "subflow"
#: Entry point group of installed subflows: ``NAME = "package.module"`` (the file is
#: ``NAME.subflow.yaml`` beside that module) or ``NAME = "module:ATTR"`` (ATTR: its path).
GROUP = "flowengine.subflows"
#: How subflow files are named (``flowengine validate flows/*.yaml`` does not pick them up
#: when they live in a folder of their own, such as ``flows/subflows/``).
SUFFIX = ".subflow.yaml"
#: Between an instance id and an inner node id: ``line1/avg``.
SEP = "/"
TOP_KEYS = ("version", "subflow", "nodes", "layout")
#: Keys of an instance that are not params: where the subflow comes from.
SOURCE_KEYS = ("path", "package")
_TYPES: dict[str, Any] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "list": list[Any],
    "dict": dict[str, Any],
}


class ParamSpec(BaseModel):
    """One parameter of a subflow: what an instance may set, checked like a node option."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["int", "float", "str", "bool", "list", "dict"] = "str"
    default: Any = None
    description: str = ""
    choices: list[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    secret: bool = False
    advanced: bool = False

    @property
    def required(self) -> bool:
        """A param without a ``default`` key must be set by every instance."""
        return "default" not in self.model_fields_set


def _ports(value: Any) -> Any:
    """``inputs: [in]`` is not enough: a port names its inner nodes, so read a mapping whose
    values are a target or a list of them."""
    if isinstance(value, dict):
        return {str(k): as_list(v) if as_list(v) is not None else v for k, v in value.items()}
    return value


class SubflowHeader(BaseModel):
    """The ``subflow:`` section of a subflow file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str = "0.0.0"
    description: str = ""
    params: dict[str, ParamSpec] = {}
    #: Input port -> inner targets (``node`` or ``node.port``) that receive what comes in.
    inputs: dict[str, list[str]] = {}
    #: Output port -> inner sources (``node`` for its ``out`` port, or ``node.port``).
    outputs: dict[str, list[str]] = {}

    _ports_before = field_validator("inputs", "outputs", mode="before")(_ports)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not NODE_ID.match(name):
            raise ValueError(f"invalid subflow name '{name}': use letters, digits, _ and -")
        return name

    @field_validator("params")
    @classmethod
    def _param_names(cls, params: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        for name in params:
            if not NODE_ID.match(name) or "-" in name:
                raise ValueError(f"invalid param name '{name}': use letters, digits and _")
            if name in NODE_KEYS or name in SOURCE_KEYS:
                raise ValueError(f"param '{name}' clashes with a node key")
        return params

    @field_validator("inputs", "outputs")
    @classmethod
    def _port_names(cls, ports: dict[str, list[str]]) -> dict[str, list[str]]:
        for port in ports:
            if not NODE_ID.match(port) or port == ERROR_PORT:
                raise ValueError(f"invalid port name '{port}'")
        return ports


@dataclass(slots=True)
class Subflow:
    """A parsed subflow file: its header, inner nodes and the node type its params make."""

    path: Path
    header: SubflowHeader
    nodes: dict[str, NodeDef]
    node_type: type[Node[Any]]
    port_pos: dict[tuple[str, str], Pos] = field(default_factory=dict)


class SubflowNode(Node[NodeConfig]):
    """Base of the node types built from subflow specs; never run (instances are expanded)."""

    category: ClassVar[str] = "subflow"
    icon: ClassVar[str] = "account_tree"
    subflow: ClassVar[Subflow | None] = None


def params_model(header: SubflowHeader) -> type[NodeConfig]:
    """The config model of an instance: ``path``/``package`` plus one field per param."""
    fields: dict[str, Any] = {
        "path": (
            str | None,
            option(None, description="The subflow file, relative to the file using it."),
        ),
        "package": (
            str | None,
            option(None, description="An installed subflow: NAME@VERSION (entry points)."),
        ),
    }
    for name, spec in header.params.items():
        kind: Any = _TYPES[spec.type]
        if spec.choices:
            kind = Literal[tuple(spec.choices)]
        limits: dict[str, Any] = {"ge": spec.minimum, "le": spec.maximum}
        fields[name] = (
            kind,
            option(
                ... if spec.required else spec.default,
                description=spec.description,
                secret=spec.secret,
                advanced=spec.advanced,
                **{k: v for k, v in limits.items() if v is not None},
            ),
        )
    model: type[NodeConfig] = create_model(  # type: ignore[call-overload]
        f"Subflow_{header.name}", __base__=NodeConfig, **fields
    )
    return model


def node_class(header: SubflowHeader) -> type[Node[Any]]:
    """A node type for a subflow: its params as ``Config``, its ports and description, so
    ``Registry.describe``, docs and the editor's form treat an instance like any node."""
    kinds: tuple[type[Node[Any]], ...]
    if not header.inputs:
        kinds = (Source,)
    elif not header.outputs:
        kinds = (Sink,)
    else:
        kinds = (Transform,)
    doc = header.description or f"Subflow {header.name} {header.version}."
    attrs = {
        "__doc__": doc,
        "inputs": tuple(header.inputs),
        "outputs": tuple(header.outputs),
        "category": "subflow",
    }
    cls: type[Node[Any]] = type(f"Subflow_{header.name}", (SubflowNode, *kinds), attrs)
    cls.Config = params_model(header)  # after the class exists: __init_subclass__ sets it too
    return cls


# ---- reading ------------------------------------------------------------------------------
def read_subflow(path: Path) -> tuple[Subflow | None, list[Problem]]:
    """Read and parse a subflow file; every problem is located in it. None when unusable."""
    doc, problems = FlowDocument.read(path)
    if doc is None:
        return None, problems
    name, data = str(path), doc.data
    if not isinstance(data, dict) or not isinstance(data.get("subflow"), dict):
        return None, [*problems, Problem(name, Pos(1, 1), "a subflow file needs a 'subflow:' map")]
    for key in data:
        if key not in TOP_KEYS:
            hint = did_you_mean(str(key), TOP_KEYS)
            problems.append(
                Problem(name, key_pos(data, key), f"unknown top-level key '{key}'{hint}")
            )
    raw_header = data["subflow"]
    try:
        header = SubflowHeader.model_validate(to_plain(raw_header))
    except ValidationError as exc:
        at = key_pos(data, "subflow")
        return None, problems + _pydantic_problems(exc, name, raw_header, at, None, "subflow ")
    stub = Flow(path=path)
    problems += _parse_nodes(stub, data, name)
    sub = Subflow(path, header, stub.nodes, node_class(header))
    sub.node_type.subflow = sub  # type: ignore[attr-defined]  # a SubflowNode
    problems += _check_ports(sub, raw_header)
    return sub, problems


def _check_ports(sub: Subflow, raw_header: Any) -> list[Problem]:
    """Every port must name inner nodes that exist."""
    problems: list[Problem] = []
    for section in ("inputs", "outputs"):
        ports = getattr(sub.header, section)
        raw = raw_header.get(section)
        for port, items in ports.items():
            at = value_pos(raw, port, key_pos(raw_header, section))
            sub.port_pos[(section, port)] = at
            for item in items:
                node = split_target(item)[0]
                if node not in sub.nodes:
                    hint = did_you_mean(node, sub.nodes)
                    msg = f"subflow {section[:-1]} '{port}' names missing node '{node}'{hint}"
                    problems.append(Problem(str(sub.path), at, msg))
    return problems


def docs(sub: Subflow) -> str:
    """The markdown reference of a subflow, as ``flowengine nodes --markdown`` writes a type's."""
    from flowengine.nodedocs import HEADER, render
    from flowengine.registry import Registry

    registry = Registry()
    registry.register(sub.header.name, sub.node_type)
    text = render(registry, [sub.header.name]).removeprefix(HEADER).lstrip("\n")
    return text.replace(
        f"## `{sub.header.name}`", f"## `{sub.header.name}` {sub.header.version}", 1
    )


# ---- finding ------------------------------------------------------------------------------
def find_package(spec: str) -> tuple[Path | None, str | None]:
    """``NAME@VERSION`` (or ``NAME``: any version) -> ``(file, None)``: the installed subflow
    (entry point group ``flowengine.subflows``) of that version; ``(None, why)`` when none."""
    name, _, version = spec.partition("@")
    found = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not found:
        known = sorted({ep.name for ep in entry_points(group=GROUP)})
        return None, f"no installed subflow '{name}'{did_you_mean(name, known)}"
    errors: list[str] = []
    for ep in found:
        try:
            target = ep.load()
        except Exception as exc:  # a broken plugin is a problem, never a crash
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        if isinstance(target, ModuleType):
            path = Path(str(target.__file__)).parent / f"{name}{SUFFIX}"
        else:
            path = Path(str(target))
        if not version or _version_matches(path, version):
            return path, None
    if errors:
        return None, f"subflow '{name}' failed to load: {'; '.join(errors)}"
    return None, f"no installed subflow '{name}' has version {version}"


def _version_matches(path: Path, wanted: str) -> bool:
    """``1.2`` matches a subflow of version ``1.2`` or ``1.2.x``."""
    sub, _ = read_subflow(path)
    if sub is None:
        return False
    have = sub.header.version
    return have == wanted or have.startswith(wanted + ".")
