"""``switch`` as ``switch``: each rule a pandas expression on its own port, the ports named
after the rules (or their output labels), ``otherwise`` kept."""

from __future__ import annotations

import re
from typing import Any

from flowengine.nodes.nodered.context import Context, Mapped, Raw
from flowengine.nodes.nodered.values import (
    IDENT,
    column,
    num_text,
    number,
    port_name,
    ref,
    slug,
    truthy,
    unique,
    var_ref,
)

_COMPARE = {"eq": "==", "neq": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_FIXED = {
    "true": "{c} == True",
    "false": "{c} == False",
    "null": "{c} != {c}",
    "nnull": "{c} == {c}",
}
_FIXED_NAMES = {"true": "is_true", "false": "is_false", "null": "is_null", "nnull": "not_null"}


def _literal(value: Any, kind: Any) -> str | None:
    """A pandas expression operand for a Node-RED typed value, or None if it has none."""
    if kind == "num":
        as_number = number(value)
        return None if as_number is None else num_text(as_number)
    if kind == "str":
        return repr(str(value))
    if kind == "bool":
        return str(truthy(value))
    if kind == "env" and IDENT.match(str(value)):
        return var_ref(value)
    if kind == "msg":
        name = column(value)
        return None if name is None else ref(name)
    return None


def _exact_regex(pattern: str) -> list[str] | None:
    """The strings an anchored alternation of literals (``^(a|b)$``) matches, else None."""
    match = re.fullmatch(r"\^\(?([^()]*?)\)?\$", pattern)
    if match is None:
        return None
    words = match.group(1).split("|")
    return words if all(w and re.escape(w) == w for w in words) else None


def _between(rule: Raw, col: str) -> tuple[str, str] | str:
    """(expression, port name) of a ``btwn`` rule, whose bounds may be given either way."""
    low, high = _literal(rule.get("v"), rule.get("vt")), _literal(rule.get("v2"), rule.get("v2t"))
    if low is None or high is None:
        return "rule 'btwn' compares with a non-constant value"
    if number(low) is not None and number(high) is not None and float(low) > float(high):
        low, high = high, low  # as Node-RED does
    return f"({col} >= {low}) and ({col} <= {high})", port_name(f"btwn_{low}_{high}")


def _rule(rule: Raw, col: str) -> tuple[str, str] | str:
    """(expression, port name stem) of one switch rule, or why it does not map."""
    for key, kind in (("v", "vt"), ("v2", "v2t")):  # old exports: typed as Node-RED does
        if key in rule and not rule.get(kind):
            rule = {**rule, kind: "num" if number(rule[key]) is not None else "str"}
    op, value = str(rule.get("t")), rule.get("v")
    stem = port_name(f"{op}_{value}")
    if op in _COMPARE:
        operand = _literal(value, rule.get("vt"))
        if operand is None:
            return f"rule '{op}' compares with a {rule.get('vt')} value"
        return f"{col} {_COMPARE[op]} {operand}", stem
    if op == "btwn":
        return _between(rule, col)
    if op in _FIXED:
        return _FIXED[op].format(c=col), _FIXED_NAMES[op]
    if op == "regex":
        words = None if rule.get("case") else _exact_regex(str(value))
        if words is None:
            return (
                f"rule 'regex' /{value}/: pandas expressions have no regular expressions "
                "(only an anchored alternation of literals, ^(a|b)$, maps)"
            )
        return f"{col} in {words!r}", port_name(f"match_{'_'.join(words)}")
    return f"rule '{op}' has no pandas expression equivalent"


def _rule_port(labels: list[Any], i: int, stem: str, taken: dict[str, str]) -> str:
    """The port of rule ``i``: its output label, else its stem; unique, never a fixed port."""
    label = slug(str(labels[i])) if i < len(labels) and labels[i] else ""
    name = label if label and not label[0].isdigit() else stem
    name = f"{name}_rule" if name in ("otherwise", "error") else name
    return unique(name, taken)


def switch(node: Raw, cx: Context) -> Mapped | str:
    """``switch`` on a message column, rule by rule."""
    if node.get("propertyType", "msg") != "msg":
        return f"it tests {node.get('propertyType')} context, not the message"
    tested = column(node.get("property", "payload"))
    if tested is None:
        return f"property msg.{node.get('property')} is not a column"
    rules: dict[str, str] = {}
    ports: list[str | None] = []
    labels = node.get("outputLabels") or []
    raw_rules = node.get("rules") or []
    for i, rule in enumerate(raw_rules):
        if rule.get("t") == "else":
            if i != len(raw_rules) - 1:
                return "'otherwise' is not the last rule"
            ports.append("otherwise")
            continue
        mapped = _rule(rule, ref(tested))
        if isinstance(mapped, str):
            return mapped
        expr, stem = mapped
        port = _rule_port(labels, i, stem, rules)
        rules[port] = expr
        ports.append(port)
    if not rules:
        return "it has no rules besides 'otherwise'"
    if node.get("repair"):
        cx.warn(node, "'recreate message sequences' has no meaning for batches")
    mode = "first" if str(node.get("checkall", "true")) == "false" else "all"
    return Mapped("switch", {"rules": rules, "mode": mode}, ports)
