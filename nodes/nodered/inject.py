"""``inject`` as ``inject``: its schedule (interval, cron or once) and its message as rows.
The schedule is also what an ``http request`` GET polls on (see http_request.py)."""

from __future__ import annotations

import json
from typing import Any

from croniter import croniter

from flowengine.nodes.nodered.context import Context, Mapped, Raw
from flowengine.nodes.nodered.values import IDENT, number, slug, truthy, var_ref, whole
from flowengine.wires import OUT


def schedule(node: Raw, cx: Context) -> Raw | str:
    """``interval`` or ``cron``, and ``once``, of an inject node; or why they do not map."""
    repeat = str(node.get("repeat") or "").strip()
    crontab = str(node.get("crontab") or "").strip()
    once = bool(node.get("once"))
    if repeat:
        interval = number(repeat)
        if interval is None or interval <= 0:
            return f"repeat interval '{repeat}' is not a positive number"
        return {"interval": interval, "once": once}
    if crontab:
        if not croniter.is_valid(crontab):
            return f"schedule '{crontab}' is not a 5-field cron expression"
        cx.warn(node, "Node-RED ran the schedule in local time; flowengine runs cron in UTC")
        return {"cron": crontab, "once": once}
    if not once:
        cx.differs(
            node,
            "click-only",
            "Node-RED fired it only when its button was clicked; so does this inject "
            "(`once: false`): only from the editor's inject button, never under a headless "
            "`flowengine run`",
        )
        return {"once": False}
    return {}


def _json_rows(payload: Any, row: Raw) -> list[Raw] | str:
    """A JSON payload as rows: an object is a row, a list of objects rows, else a value."""
    try:
        data = json.loads(str(payload))
    except ValueError:
        return "its JSON payload does not parse"
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        return data
    return [{**row, "value": data}]


def _payload_rows(node: Raw, cx: Context, sensor: str) -> list[Raw] | str:
    """The rows an inject's payload becomes, each with ``sensor``."""
    kind, payload = str(node.get("payloadType") or "date"), node.get("payload", "")
    for prop in node.get("props") or []:
        if prop.get("p") == "payload" and "vt" in prop:
            kind, payload = str(prop["vt"]), prop.get("v", payload)
    row: Raw = {"sensor": sensor}
    if kind == "date":
        cx.warn(node, "the payload was the firing time: rows carry it in `timestamp`, no `value`")
        return [row]
    if kind == "num":
        value = number(payload)
        if value is None:
            return f"payload '{payload}' is not a number"
        return [{**row, "value": whole(value)}]
    if kind == "str":
        return [{**row, "value": str(payload)}]
    if kind == "bool":
        return [{**row, "value": truthy(payload)}]
    if kind == "env":
        return [{**row, "value": var_ref(payload)}]
    if kind == "json":
        return _json_rows(payload, row)
    cx.warn(node, f"payload of type '{kind}' is not imported: rows have no `value`")
    return [row]


def _with_props(node: Raw, cx: Context, rows: list[Raw]) -> list[Raw]:
    """``rows`` with a column for each constant ``msg`` property besides payload and topic."""
    for prop in node.get("props") or []:
        name = str(prop.get("p"))
        if name in ("payload", "topic"):
            continue
        if prop.get("vt") in ("str", "num", "bool") and IDENT.match(name):
            value = prop.get("v")
            value = number(value) if prop["vt"] == "num" else value
            value = truthy(value) if prop["vt"] == "bool" else value
            rows = [{**r, name: value} for r in rows]
        else:
            cx.warn(node, f"msg.{name} is not imported")
    return rows


def inject(node: Raw, cx: Context) -> Mapped | str:
    """``inject`` with its schedule and its message as rows."""
    timing = schedule(node, cx)
    if isinstance(timing, str):
        return timing
    topic = str(node.get("topic") or "")
    rows = _payload_rows(node, cx, topic or slug(str(node.get("name") or "")) or "inject")
    if isinstance(rows, str):
        return rows
    rows = _with_props(node, cx, rows)
    cfg: Raw = {"rows": rows, **timing}
    if topic:  # msg.topic is a column here: mqtt_out's `{topic}` reads it from each row
        cfg["rows"] = [{**row, "topic": row.get("topic", topic)} for row in rows]
        cfg["topic"] = topic
    return Mapped("inject", cfg, [OUT])
