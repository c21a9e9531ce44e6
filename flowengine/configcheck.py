"""A node's config checked against its type's model: ``${VAR}`` substituted, errors located.

Never raises on bad input: a validator that crashes (a RecursionError on a 20,000-term
expression, say) is a problem at the field that made it crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from flowengine.envsubst import EnvError, is_whole_reference, substitute, yaml_scalar
from flowengine.logs import redact
from flowengine.model import NodeDef
from flowengine.node import Node, NodeConfig
from flowengine.problems import Problem, did_you_mean


def build_config(
    node: NodeDef, cls: type[Node[Any]], env: Mapping[str, str], path: str
) -> tuple[NodeConfig | None, list[Problem]]:
    """Apply ``${VAR}`` substitution and the type's config model to a node's raw config."""
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    unresolved = set()
    for key, raw in node.config.items():
        try:
            values[key] = substitute(raw, env)
        except EnvError as exc:
            unresolved.add(key)
            problems.append(
                Problem(path, node.field_pos.get(key, node.pos), f"field '{key}': {exc}", node.id)
            )
    whole = {key for key, raw in node.config.items() if is_whole_reference(raw)}
    # the flow's folder, for fields naming files beside the flow (a model, say)
    context = {"flow_dir": Path(path).parent}
    try:
        config = _validate(cls.Config, values, whole, context)
    except ValidationError as exc:
        return None, problems + _config_problems(exc, node, cls.Config, path, unresolved)
    except Exception as exc:  # a flow file never crashes the engine, whatever a validator does
        return None, [*problems, _crash_problem(exc, node, cls.Config, values, path, context)]
    return (None, problems) if problems else (config, [])


def _validate(
    model: type[NodeConfig], values: dict[str, Any], whole: set[str], context: dict[str, Any]
) -> NodeConfig:
    """Validate; when a field that was one whole ``${VAR}`` is refused as text, read its value
    as a YAML scalar (``qos: ${QOS:-0}`` -> 0), as if it had been written in the file."""
    try:
        return model.model_validate(values, context=context)
    except ValidationError as exc:
        refused = {str(e["loc"][0]) for e in exc.errors() if e["loc"]} & whole
        retry = {k: yaml_scalar(values[k]) for k in refused if isinstance(values.get(k), str)}
        retry = {k: v for k, v in retry.items() if v is not values[k]}
        if not retry:
            raise
        return model.model_validate({**values, **retry}, context=context)


def _config_problems(
    exc: ValidationError, node: NodeDef, model: type[NodeConfig], path: str, unresolved: set[str]
) -> list[Problem]:
    """pydantic's errors as problems at the fields they are about."""
    problems: list[Problem] = []
    fields = list(model.model_fields)
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else ""
        if name in unresolved:
            continue  # already reported: its variable is not set
        loc = ".".join(str(p) for p in err["loc"])
        pos = node.field_pos.get(name, node.pos)
        text = redact(err["msg"].removeprefix("Value error, "))
        if err["type"] == "missing":
            msg = f"missing required field '{loc}'"
            pos = node.pos
        elif err["type"] == "extra_forbidden":
            msg = f"unknown field '{loc}'{did_you_mean(name, fields)}"
        elif not loc:
            msg = text
        else:
            msg = f"field '{loc}': {text}"
        problems.append(Problem(path, pos, msg, node.id))
    return problems


def _crash_problem(
    exc: Exception,
    node: NodeDef,
    model: type[NodeConfig],
    values: Mapping[str, Any],
    path: str,
    context: dict[str, Any],
) -> Problem:
    """A crashed config check as a problem, at the field whose value makes it crash alone."""
    why = redact(f"{type(exc).__name__}: {exc}")
    for key, value in values.items():
        try:
            model.model_validate({key: value}, context=context)
        except ValidationError:
            continue
        except Exception as crash:
            why = redact(f"{type(crash).__name__}: {crash}")
            return Problem(
                path,
                node.field_pos.get(key, node.pos),
                f"field '{key}': cannot check: {why}",
                node.id,
            )
    return Problem(path, node.pos, f"cannot check the config: {why}", node.id)
