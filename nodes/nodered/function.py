"""``function`` nodes: their JavaScript is never translated by guesswork. A body that only
parses the payload with ``parseFloat`` becomes a ``change`` convert to ``number`` (the same
leading-number reading); any other becomes a ``python`` node holding the JavaScript in a comment
whose ``process_row`` raises "translate me" until someone rewrites it."""

from __future__ import annotations

import re

from flowengine.nodes.nodered.context import Context, Mapped, Raw, label
from flowengine.wires import OUT

_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
#: ``msg.payload = parseFloat(msg.payload); return msg;``, the whole body.
_PARSE_FLOAT = re.compile(
    r"(?:msg\.payload\s*=\s*parseFloat\(\s*msg\.payload\s*\)\s*;?\s*)return\s+msg\s*;?"
)
PARSES_NUMBERS = re.compile(r"\b(parseFloat|parseInt|Number)\s*\(")


def stub(node: Raw) -> str:
    """The ``python`` code standing in for a function node: its JavaScript as a comment, and a
    ``process_row`` (called per message, as the function was) that sends every row to the
    error port until it is rewritten."""
    name = " ".join(label(node).split())  # one line, whatever the name holds
    parts = (("On start:", "initialize"), ("On message:", "func"), ("On stop:", "finalize"))
    lines = [f"# translate me: this was the Node-RED {name}. Its JavaScript is not run:", "#"]
    for heading, key in parts:
        text = str(node.get(key) or "").strip()
        if text:
            lines.append(f"# {heading}")
            lines += [f"#     {line}".rstrip() for line in text.splitlines()]
    lines += [
        "#",
        "# Rewrite it as process_row(row), called per message as the function was: row is the",
        "# reading as a dict (msg.payload is row['value'], msg.topic row['topic']); return the",
        "# row, a list of rows, or None to drop it; globals keep state between calls, as the",
        "# context did. Or use compute/filter/change nodes, which need no code.",
        "",
        "",
        "def process_row(row):",
        "    raise NotImplementedError(",
        f"        {'translate me: this was a Node-RED function node (' + name + ')'!r}",
        "    )",
        "",
    ]
    return "\n".join(lines)


def function(node: Raw, cx: Context) -> Mapped | str:
    """``function`` as a ``change`` (a lone parseFloat of the payload) or a ``python`` stub."""
    body = _COMMENTS.sub("", str(node.get("func") or "")).strip()
    if _PARSE_FLOAT.fullmatch(body) and not node.get("initialize") and not node.get("finalize"):
        return _parse_float(node, cx)
    outputs = int(node.get("outputs", 1) or 1)
    cx.differs(
        node,
        "function",
        "its JavaScript is not translated: it is a `python` node holding the code in a comment, "
        "and every message goes to its `error` port ('translate me') until you rewrite it "
        "(python nodes run only with --allow-code)",
    )
    if PARSES_NUMBERS.search(body):
        cx.differs(
            node,
            "numbers",
            "it reads numbers with parseFloat/parseInt/Number: a `change` operation "
            "{op: convert, column: value, dtype: number} reads a leading number as parseFloat "
            "did ('3.2V' -> 3.2), where `float` would send the batch to the error port",
        )
    return Mapped("python", {"code": stub(node)}, [OUT] + [None] * (outputs - 1))


def _parse_float(node: Raw, cx: Context) -> Mapped:
    """``msg.payload = parseFloat(msg.payload)`` as a ``change`` convert to ``number``. Fed
    only by ``mqtt in`` nodes, it takes their text payloads (what ``mqtt_in`` puts on its
    ``error`` port, in ``payload``) while their JSON numbers go straight on."""
    feeders = [cx.all.get(f, {}) for f in cx.feeders.get(str(node.get("id")), [])]
    convert = {"op": "convert", "column": "value", "dtype": "number"}
    if feeders and all(f.get("type") == "mqtt in" for f in feeders):
        cx.differs(
            node,
            "numbers",
            "parseFloat(msg.payload) became a `change` on the `error` port of the MQTT input "
            "(where text payloads such as '3.2V' arrive, in `payload`) converting to `number`: "
            "'3.2V' -> 3.2 and no number gives NaN, as parseFloat did; JSON numbers skip it",
        )
        ops = [
            {"op": "move", "column": "payload", "to": "value"},
            {"op": "delete", "columns": ["error"]},
            convert,
        ]
        return Mapped("change", {"operations": ops}, [OUT], on_error_port=True)
    cx.differs(
        node,
        "numbers",
        "parseFloat(msg.payload) became a `change` convert to `number`: a leading number is "
        "read the same way ('3.2V' -> 3.2; no number gives NaN)",
    )
    return Mapped("change", {"operations": [convert]}, [OUT])
