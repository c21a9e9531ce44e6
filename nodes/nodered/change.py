"""``change`` as ``change``: set, delete, move and numeric change rules on message properties
become column operations; rules on context or of other kinds are left out with a warning."""

from __future__ import annotations

import json
import re

from flowengine.nodes.nodered.context import Context, Mapped, Raw
from flowengine.nodes.nodered.values import (
    IDENT,
    column,
    num_text,
    number,
    ref,
    truthy,
    var_ref,
    whole,
)
from flowengine.wires import OUT


def _jsonata(expr: str) -> str | None:
    """A JSONata expression of plain arithmetic on the payload as a pandas expression."""
    text = re.sub(r"\b(msg\.)?payload\b", "value", expr).strip()
    plain = re.fullmatch(r"[\s\d.+\-*/()%]*(value[\s\d.+\-*/()%]*)*", text)
    return text if text and plain else None


def _set_value(rule: Raw, target: str) -> Raw | None:
    """A ``set`` rule as a set operation with a constant or an expression, else None."""
    kind, to = rule.get("tot"), rule.get("to")
    op: Raw = {"op": "set", "column": target}
    if kind == "num" and (value := number(to)) is not None:
        return {**op, "value": whole(value)}
    if kind == "str":
        return {**op, "value": str(to)}
    if kind == "bool":
        return {**op, "value": truthy(to)}
    if kind == "json":
        try:
            data = json.loads(str(to))
        except ValueError:
            return None
        return {**op, "value": data} if not isinstance(data, dict | list) else None
    if kind == "env" and IDENT.match(str(to)):
        return {**op, "value": var_ref(to)}
    if kind == "msg" and (source := column(to)):
        return {**op, "expr": ref(source)}
    if kind == "jsonata" and (expr := _jsonata(str(to))):
        return {**op, "expr": expr}
    return None


def _change_op(rule: Raw) -> Raw | None:
    """One change rule as one of our column operations, None if it has none."""
    if rule.get("pt", "msg") != "msg":
        return None
    target = column(rule.get("p"))
    if target is None:
        return None
    kind = rule.get("t")
    if kind == "set":
        return _set_value(rule, target)
    if kind == "delete":
        return {"op": "delete", "columns": [target]}
    if kind == "move" and rule.get("tot", "msg") == "msg" and column(rule.get("to")):
        return {"op": "move", "column": target, "to": column(rule.get("to"))}
    if kind == "change" and rule.get("fromt") == "num" and rule.get("tot") == "num":
        old, new = number(rule.get("from")), number(rule.get("to"))
        if old is None or new is None:
            return None
        col = ref(target)  # rows equal to `old` get `new`; NaN stays NaN
        return {"op": "set", "column": target, "expr": f"{col} + ({col} == {num_text(old)})"
                f" * {num_text(new - old)}"}  # fmt: skip
    return None


def change(node: Raw, cx: Context) -> Mapped | str:
    """``change`` with the rules that map; the rest are warned about."""
    operations: list[Raw] = []
    for rule in node.get("rules") or []:
        op = _change_op(rule)
        if op is None:
            where = f"{rule.get('pt', 'msg')}.{rule.get('p')}"
            cx.warn(node, f"rule '{rule.get('t')}' on {where} is not imported")
        else:
            operations.append(op)
    if not operations:
        return "none of its rules maps to a column operation"
    return Mapped("change", {"operations": operations}, [OUT])
