"""Import a Node-RED ``flows.json`` into a flowengine flow; export a selection of a flow.

Node-RED moves one message at a time, flowengine batches of rows: ``msg.payload`` is a row's
``value``, ``msg.topic`` its ``topic`` column and ``msg.payload.X`` (or ``msg.X``) a column
``X``. Only what keeps its meaning is mapped (the table is in docs/nodered-import.md); the rest
is listed with a reason, never guessed at. Credentials become ``${VAR}`` references: a secret
found in the file is never written out.
"""

from __future__ import annotations

import json
import keyword
import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from croniter import croniter
from pydantic import ValidationError

from flowengine.envsubst import substitute
from flowengine.flowfile import FlowDocument, styled
from flowengine.registry import Registry, UnknownNodeType, default_registry

Raw = dict[str, Any]
#: Node-RED types that only carry wires: followed through, neither imported nor listed.
PASS_THROUGH = {"junction", "link in", "link out"}
#: Node-RED types that are no flow nodes at all (their text may become the description).
NOT_NODES = {"tab", "comment", "group", "subflow"}
SOURCES = {"inject", "mqtt_in", "rest_in"}
_UNITS = {"millisecond": 0.001, "second": 1, "minute": 60, "hour": 3600, "day": 86400}
_VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_HEADER = re.compile(r"auth|token|key|secret|pass|cookie", re.I)
#: Why common unmapped types do not map, and what to use instead.
HINTS = {
    "function": "JavaScript code: rewrite it as `compute`/`filter` expressions or a `python` node",
    "template": "text templating of messages: no flowengine equivalent",
    "catch": "every flowengine node has an `error` port: wire it instead",
    "status": "node status is shown by the runtime (`flowengine run`'s table, the editor)",
    "complete": "no per-message completion in flowengine: batches flow on",
    "link call": "link calls (return links) have no flowengine equivalent: wire the nodes",
    "exec": "runs shell commands: not imported on purpose",
    "http in": "flowengine has no HTTP endpoint source",
    "http response": "flowengine has no HTTP endpoint source",
    "split": "flowengine batches are already rows: use `batch` or `select`",
    "join": "message joining differs from flowengine's `join` (rows on a key): rebuild it",
    "trigger": "no trigger node: an `alert` node covers hysteresis and cooldowns",
    "rbe": "use a `deadband` node",
    "filter": "use a `deadband` node",
    "range": "use a `change` node with a `scale` operation",
}


class NodeRedError(ValueError):
    """The input is not a Node-RED flow export (or the asked tab is not in it)."""


class Unmapped(NamedTuple):
    """A Node-RED node that was not imported, and why."""

    id: str
    type: str
    name: str
    reason: str


@dataclass
class ImportResult:
    """The imported flow (our format, as plain data) and what could not be carried over."""

    flow: dict[str, Any]
    unmapped: list[Unmapped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # variable -> what it must hold
    ids: dict[str, str] = field(default_factory=dict)  # Node-RED id -> node id


@dataclass
class _Mapped:
    type: str
    config: Raw
    ports: list[str | None]  # our output port per Node-RED output; None: not imported
    absorbs: str | None = None  # the inject whose schedule this node took over


class _Context:
    """What mappers share: every Node-RED object, who feeds whom, warnings and variables."""

    def __init__(self, everything: dict[str, Raw], feeders: dict[str, list[str]]) -> None:
        self.all = everything
        self.feeders = feeders
        self.notes: list[tuple[str, str]] = []
        self.env: dict[str, str] = {}

    def warn(self, node: Raw, text: str) -> None:
        self.notes.append((str(node.get("id")), f"{_label(node)}: {text}"))

    def secret(self, owner: str, what: str, description: str) -> str:
        name = f"{_env_name(owner)}_{_env_name(what)}"
        self.env[name] = description
        return "${" + name + "}"


# ---- small helpers ---------------------------------------------------------------------------
def _label(node: Raw) -> str:
    name = node.get("name")
    return f"{node.get('type')} '{name}'" if name else f"{node.get('type')} {node.get('id')}"


def _slug(text: str, limit: int = 40) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")[:limit].rstrip("_")
    return f"n_{slug}" if slug[:1].isdigit() else slug


def _env_name(text: str) -> str:
    return _slug(text, 30).upper() or "NODE"


def _port(text: str) -> str:
    """A port name (letters, digits, _ and -) made of a rule's operator and values."""
    return re.sub(r"[^A-Za-z0-9-]+", "_", text).strip("_").lower()[:40]


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _num_text(number: float) -> str:
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)


def _column(prop: Any) -> str | None:
    """The column a ``msg`` property maps to: payload -> value, payload.X or X -> X."""
    prop = str(prop or "").removeprefix("msg.")
    if prop == "payload":
        return "value"
    rest = prop.removeprefix("payload.")
    return rest if _IDENT.match(rest) else None


def _ref(column: str) -> str:
    return f"`{column}`" if keyword.iskeyword(column) else column


def _seconds(amount: Any, unit: Any) -> float | None:
    number = _number(amount)
    factor = _UNITS.get(str(unit or "seconds").removesuffix("s"))
    return None if number is None or factor is None else number * factor


# ---- MQTT ------------------------------------------------------------------------------------
def _broker(node: Raw, cx: _Context) -> Raw | str:
    """The connection keys of ``node``'s broker config node, credentials as references."""
    broker = cx.all.get(str(node.get("broker", "")))
    if broker is None or broker.get("type") != "mqtt-broker":
        return f"its broker config node '{node.get('broker')}' is not in the file"
    host = str(broker.get("broker") or "").strip()
    port: Any = broker.get("port") or ""
    tls = bool(broker.get("usetls"))
    if "://" in host:
        scheme, _, rest = host.partition("://")
        if scheme.lower() in ("ws", "wss"):
            return "MQTT over WebSockets: flowengine's MQTT client speaks MQTT over TCP only"
        tls = tls or scheme.lower() in ("mqtts", "ssl", "tls")
        host, _, url_port = rest.split("/")[0].partition(":")
        port = url_port or port
    if not host:
        return "its broker config node has no host"
    number = _number(port)
    cfg: Raw = {"broker_host": host}
    cfg["broker_port"] = int(number) if number is not None else (port or (8883 if tls else 1883))
    if broker.get("clientid"):
        cfg["client_id"] = str(broker["clientid"])
    if broker.get("cleansession") is False:
        if cfg.get("client_id"):
            cfg["clean_session"] = False
        else:
            cx.warn(node, "a persistent session needs a fixed client id: clean session kept")
    keep_alive = _number(broker.get("keepalive"))
    if keep_alive is not None and keep_alive != 60:
        cfg["keep_alive"] = int(keep_alive)
    if str(broker.get("protocolVersion")) == "5":
        cfg["protocol"] = "5"
    elif str(broker.get("protocolVersion")) == "3":
        cx.warn(node, "MQTT 3.1 becomes 3.1.1")
    owner = str(broker.get("name") or host)
    creds = broker.get("credentials") or {}
    if creds.get("user"):
        cfg["username"] = cx.secret(owner, "username", f"user name for MQTT broker '{owner}'")
    if creds.get("password"):
        cfg["password"] = cx.secret(owner, "password", f"password for MQTT broker '{owner}'")
    if tls:
        cfg["tls"] = True
        cfg.update(_tls(cx.all.get(str(broker.get("tls", ""))), node, cx))
    return cfg


def _tls(conf: Raw | None, node: Raw, cx: _Context) -> Raw:
    if conf is None:
        return {}
    cfg: Raw = {}
    for ours, theirs in (("ca_file", "ca"), ("certfile", "cert"), ("keyfile", "key")):
        if conf.get(theirs):
            cfg[ours] = str(conf[theirs])
        elif conf.get(f"{theirs}name"):
            cx.warn(
                node, f"uploaded file '{conf[f'{theirs}name']}' is not in flows.json: set {ours}"
            )
    if conf.get("verifyservercert") is False:
        cfg["insecure"] = True
    if (conf.get("credentials") or {}).get("passphrase"):
        cx.warn(node, "a key passphrase is not supported: use an unencrypted key file")
    return cfg


def _mqtt_in(node: Raw, cx: _Context) -> _Mapped | str:
    if node.get("inputs") or node.get("topicType") == "dynamic":
        return "dynamic subscription (topics from messages): mqtt_in subscribes to fixed topics"
    datatype = str(node.get("datatype") or "auto-detect")
    if datatype in ("buffer", "base64"):
        return f"binary payloads (output '{datatype}'): mqtt_in parses JSON readings"
    if datatype == "utf8":
        cx.warn(node, "payloads are parsed as JSON readings; other text goes to `error`")
    if not node.get("topic"):
        return "no topic to subscribe to"
    cfg = _broker(node, cx)
    if isinstance(cfg, str):
        return cfg
    qos = _number(node.get("qos"))
    cfg.update(topic=str(node["topic"]), qos=int(qos) if qos in (0, 1, 2) else 2)
    return _Mapped("mqtt_in", cfg, ["out"])


def _mqtt_out(node: Raw, cx: _Context) -> _Mapped | str:
    topic = str(node.get("topic") or "")
    if "+" in topic or "#" in topic:
        return f"publish topic '{topic}' has wildcards"
    cfg = _broker(node, cx)
    if isinstance(cfg, str):
        return cfg
    if topic:
        topic = topic.replace("{", "{{").replace("}", "}}")  # ours is a {column} template
    else:
        topic = "{topic}"
        cx.warn(node, "the topic came from msg.topic: rows need a `topic` column")
    qos = _number(node.get("qos"))
    cfg.update(topic=topic, qos=int(qos) if qos in (0, 1, 2) else 0)
    if str(node.get("retain")).lower() == "true":
        cfg["retain"] = True
    v5 = [k for k in ("respTopic", "contentType", "userProps", "correl", "expiry") if node.get(k)]
    if v5:
        cx.warn(node, f"MQTT 5 properties not imported: {', '.join(v5)}")
    return _Mapped("mqtt_out", cfg, [])


# ---- inject ----------------------------------------------------------------------------------
def _schedule(node: Raw, cx: _Context) -> Raw | str:
    repeat = str(node.get("repeat") or "").strip()
    crontab = str(node.get("crontab") or "").strip()
    once = bool(node.get("once"))
    if repeat:
        interval = _number(repeat)
        if interval is None or interval <= 0:
            return f"repeat interval '{repeat}' is not a positive number"
        return {"interval": interval, "once": once}
    if crontab:
        if not croniter.is_valid(crontab):
            return f"schedule '{crontab}' is not a 5-field cron expression"
        cx.warn(node, "Node-RED ran the schedule in local time; flowengine runs cron in UTC")
        return {"cron": crontab, "once": once}
    if not once:
        cx.warn(node, "fired only on a click in Node-RED; here it fires once at start")
    return {}


def _payload_rows(node: Raw, cx: _Context, sensor: str) -> list[Raw] | str:
    kind, payload = str(node.get("payloadType") or "date"), node.get("payload", "")
    for prop in node.get("props") or []:
        if prop.get("p") == "payload" and "vt" in prop:
            kind, payload = str(prop["vt"]), prop.get("v", payload)
    row: Raw = {"sensor": sensor}
    if kind == "date":
        cx.warn(node, "the payload was the firing time: rows carry it in `timestamp`, no `value`")
        return [row]
    if kind == "num":
        number = _number(payload)
        if number is None:
            return f"payload '{payload}' is not a number"
        return [{**row, "value": int(number) if number.is_integer() else number}]
    if kind == "str":
        return [{**row, "value": str(payload)}]
    if kind == "bool":
        return [{**row, "value": str(payload).lower() == "true"}]
    if kind == "env":
        return [{**row, "value": "${" + str(payload) + "}"}]
    if kind == "json":
        try:
            data = json.loads(str(payload))
        except ValueError:
            return "its JSON payload does not parse"
        if isinstance(data, dict):
            return [data]
        if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
            return data
        return [{**row, "value": data}]
    cx.warn(node, f"payload of type '{kind}' is not imported: rows have no `value`")
    return [row]


def _inject(node: Raw, cx: _Context) -> _Mapped | str:
    schedule = _schedule(node, cx)
    if isinstance(schedule, str):
        return schedule
    topic = str(node.get("topic") or "")
    rows = _payload_rows(node, cx, topic or _slug(str(node.get("name") or "")) or "inject")
    if isinstance(rows, str):
        return rows
    for prop in node.get("props") or []:
        name = str(prop.get("p"))
        if name in ("payload", "topic"):
            continue
        if prop.get("vt") in ("str", "num", "bool") and _IDENT.match(name):
            value = prop.get("v")
            value = _number(value) if prop["vt"] == "num" else value
            value = str(value).lower() == "true" if prop["vt"] == "bool" else value
            rows = [{**r, name: value} for r in rows]
        else:
            cx.warn(node, f"msg.{name} is not imported")
    cfg: Raw = {"rows": rows, **schedule}
    if topic:
        cfg["topic"] = topic
    return _Mapped("inject", cfg, ["out"])


# ---- switch, change, delay, debug ------------------------------------------------------------
def _literal(value: Any, kind: Any) -> str | None:
    """A pandas expression operand for a Node-RED typed value, or None if it has none."""
    if kind == "num":
        number = _number(value)
        return None if number is None else _num_text(number)
    if kind == "str":
        return repr(str(value))
    if kind == "bool":
        return "True" if str(value).lower() == "true" else "False"
    if kind == "env" and _IDENT.match(str(value)):
        return "${" + str(value) + "}"
    if kind == "msg":
        column = _column(value)
        return None if column is None else _ref(column)
    return None


def _exact_regex(pattern: str) -> list[str] | None:
    """The strings an anchored alternation of literals (``^(a|b)$``) matches, else None."""
    match = re.fullmatch(r"\^\(?([^()]*?)\)?\$", pattern)
    if match is None:
        return None
    words = match.group(1).split("|")
    return words if all(w and re.escape(w) == w for w in words) else None


_COMPARE = {"eq": "==", "neq": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_FIXED = {
    "true": "{c} == True",
    "false": "{c} == False",
    "null": "{c} != {c}",
    "nnull": "{c} == {c}",
}
_FIXED_NAMES = {"true": "is_true", "false": "is_false", "null": "is_null", "nnull": "not_null"}


def _rule(rule: Raw, col: str) -> tuple[str, str] | str:
    """(expression, port name stem) of one switch rule, or why it does not map."""
    for value, kind in (("v", "vt"), ("v2", "v2t")):  # old exports: typed as Node-RED does
        if value in rule and not rule.get(kind):
            rule = {**rule, kind: "num" if _number(rule[value]) is not None else "str"}
    op, value = str(rule.get("t")), rule.get("v")
    stem = _port(f"{op}_{value}")
    if op in _COMPARE:
        operand = _literal(value, rule.get("vt"))
        if operand is None:
            return f"rule '{op}' compares with a {rule.get('vt')} value"
        return f"{col} {_COMPARE[op]} {operand}", stem
    if op == "btwn":
        low, high = _literal(value, rule.get("vt")), _literal(rule.get("v2"), rule.get("v2t"))
        if low is None or high is None:
            return "rule 'btwn' compares with a non-constant value"
        if _number(low) is not None and _number(high) is not None and float(low) > float(high):
            low, high = high, low  # as Node-RED does
        return f"({col} >= {low}) and ({col} <= {high})", _port(f"btwn_{low}_{high}")
    if op in _FIXED:
        return _FIXED[op].format(c=col), _FIXED_NAMES[op]
    if op == "regex":
        words = None if rule.get("case") else _exact_regex(str(value))
        if words is None:
            return (
                f"rule 'regex' /{value}/: pandas expressions have no regular expressions "
                "(only an anchored alternation of literals, ^(a|b)$, maps)"
            )
        return f"{col} in {words!r}", _port(f"match_{'_'.join(words)}")
    return f"rule '{op}' has no pandas expression equivalent"


def _switch(node: Raw, cx: _Context) -> _Mapped | str:
    if node.get("propertyType", "msg") != "msg":
        return f"it tests {node.get('propertyType')} context, not the message"
    column = _column(node.get("property", "payload"))
    if column is None:
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
        mapped = _rule(rule, _ref(column))
        if isinstance(mapped, str):
            return mapped
        expr, stem = mapped
        label = _slug(str(labels[i])) if i < len(labels) and labels[i] else ""
        name = label if label and not label[0].isdigit() else stem
        name = f"{name}_rule" if name in ("otherwise", "error") else name
        unique, n = name, 2
        while unique in rules:
            unique, n = f"{name}_{n}", n + 1
        rules[unique] = expr
        ports.append(unique)
    if not rules:
        return "it has no rules besides 'otherwise'"
    if node.get("repair"):
        cx.warn(node, "'recreate message sequences' has no meaning for batches")
    mode = "first" if str(node.get("checkall", "true")) == "false" else "all"
    return _Mapped("switch", {"rules": rules, "mode": mode}, ports)


def _jsonata(expr: str) -> str | None:
    """A JSONata expression of plain arithmetic on the payload as a pandas expression."""
    text = re.sub(r"\b(msg\.)?payload\b", "value", expr).strip()
    plain = re.fullmatch(r"[\s\d.+\-*/()%]*(value[\s\d.+\-*/()%]*)*", text)
    return text if text and plain else None


def _set_value(rule: Raw, column: str) -> Raw | None:
    kind, to = rule.get("tot"), rule.get("to")
    op: Raw = {"op": "set", "column": column}
    if kind == "num" and (number := _number(to)) is not None:
        return {**op, "value": int(number) if number.is_integer() else number}
    if kind == "str":
        return {**op, "value": str(to)}
    if kind == "bool":
        return {**op, "value": str(to).lower() == "true"}
    if kind == "json":
        try:
            data = json.loads(str(to))
        except ValueError:
            return None
        return {**op, "value": data} if not isinstance(data, dict | list) else None
    if kind == "env" and _IDENT.match(str(to)):
        return {**op, "value": "${" + str(to) + "}"}
    if kind == "msg" and (source := _column(to)):
        return {**op, "expr": _ref(source)}
    if kind == "jsonata" and (expr := _jsonata(str(to))):
        return {**op, "expr": expr}
    return None


def _change_op(rule: Raw) -> Raw | None:
    if rule.get("pt", "msg") != "msg":
        return None
    column = _column(rule.get("p"))
    if column is None:
        return None
    kind = rule.get("t")
    if kind == "set":
        return _set_value(rule, column)
    if kind == "delete":
        return {"op": "delete", "columns": [column]}
    if kind == "move" and rule.get("tot", "msg") == "msg" and _column(rule.get("to")):
        return {"op": "move", "column": column, "to": _column(rule.get("to"))}
    if kind == "change" and rule.get("fromt") == "num" and rule.get("tot") == "num":
        old, new = _number(rule.get("from")), _number(rule.get("to"))
        if old is None or new is None:
            return None
        col = _ref(column)  # rows equal to `old` get `new`; NaN stays NaN
        return {"op": "set", "column": column, "expr": f"{col} + ({col} == {_num_text(old)})"
                f" * {_num_text(new - old)}"}  # fmt: skip
    return None


def _change(node: Raw, cx: _Context) -> _Mapped | str:
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
    return _Mapped("change", {"operations": operations}, ["out"])


def _delay(node: Raw, cx: _Context) -> _Mapped | str:
    kind = node.get("pauseType", "delay")
    ports: list[str | None] = ["out", None] if node.get("outputs") == 2 else ["out"]
    if kind == "delay":
        seconds = _seconds(node.get("timeout"), node.get("timeoutUnits"))
        if seconds is None:
            return f"delay '{node.get('timeout')} {node.get('timeoutUnits')}' is not a duration"
        return _Mapped("delay", {"mode": "delay", "delay": seconds}, ports)
    if kind == "rate":
        per = _seconds(node.get("nbRateUnits") or 1, node.get("rateUnits"))
        count = _number(node.get("rate"))
        if not per or not count:
            return f"rate '{node.get('rate')} per {node.get('rateUnits')}' is not a rate"
        if node.get("allowrate"):
            cx.warn(node, "msg.rate overrides are not imported")
        cfg: Raw = {"mode": "rate_limit", "rate": count / per, "per": "rows"}
        if node.get("drop"):
            cfg["drop"] = True
        return _Mapped("delay", cfg, ports)
    reasons = {
        "delayv": "the delay came from msg.delay",
        "random": "random delays have no flowengine equivalent",
        "queue": "rate limiting per msg.topic has no flowengine equivalent",
        "timed": "releasing the latest message per topic has no flowengine equivalent",
    }
    return reasons.get(kind, f"delay action '{kind}' is unknown")


def _debug(node: Raw, cx: _Context) -> _Mapped | str:
    return _Mapped("debug", {}, [])


# ---- HTTP ------------------------------------------------------------------------------------
def _split_url(url: str) -> tuple[str, str]:
    """(base_url, endpoint): the last path segment is the endpoint, as rest_in names readings."""
    head, query = url.split("?", 1) if "?" in url else (url, "")
    start = head.find("//") + 2 if "//" in head else 0
    cut = head.rfind("/", start)
    if cut < 0:
        return url, ""
    return head[:cut], head[cut + 1 :] + (f"?{query}" if query else "")


def _http_settings(node: Raw, cx: _Context) -> Raw | str:
    owner = str(node.get("name") or "http")
    cfg: Raw = {}
    auth = node.get("authType") or ("basic" if node.get("useAuth") else "")
    if auth == "basic":
        cfg["username"] = cx.secret(owner, "username", f"user name for '{owner}'")
        cfg["password"] = cx.secret(owner, "password", f"password for '{owner}'")
    elif auth == "bearer":
        cfg["token"] = cx.secret(owner, "token", f"bearer token for '{owner}'")
    elif auth:
        return f"{auth} authentication is not supported (basic and bearer are)"
    headers = node.get("headers") or []
    pairs = headers.items() if isinstance(headers, dict) else [
        (h.get("keyValue") if h.get("keyType") == "other" else h.get("keyType"),
         h.get("valueValue") if h.get("valueType") == "other" else h.get("valueType"))
        for h in headers
    ]  # fmt: skip
    for key, value in pairs:
        if not key:
            continue
        if _SECRET_HEADER.search(str(key)):
            value = cx.secret(owner, str(key), f"'{key}' header for '{owner}'")
        cfg.setdefault("headers", {})[str(key)] = str(value)
    if node.get("tls"):
        cx.warn(node, "its TLS config node is not imported: the system's CAs verify the server")
    if node.get("proxy"):
        cx.warn(node, "its proxy is not imported: set HTTPS_PROXY in the environment")
    return cfg


def _http_request(node: Raw, cx: _Context) -> _Mapped | str:
    method = str(node.get("method") or "GET").upper()
    url = str(node.get("url") or "")
    if not url:
        return "no URL: Node-RED took it from msg.url"
    if "{{" in url:
        return "its URL is built from the message ({{...}})"
    if method not in ("GET", "POST"):
        return f"method {method}: only GET (polling, as rest_in) and POST (as rest_out) map"
    cfg = _http_settings(node, cx)
    if isinstance(cfg, str):
        return cfg
    if method == "POST":
        return _Mapped("rest_out", {"url": url, **cfg}, [None])
    if node.get("ret", "txt") != "obj":
        return "it returns text or a buffer: rest_in reads JSON (choose 'a parsed JSON object')"
    feeders = cx.feeders.get(str(node["id"]), [])
    trigger = cx.all.get(feeders[0]) if len(feeders) == 1 else None
    if trigger is None or trigger.get("type") != "inject":
        return "a GET that is not triggered by one inject node: rest_in polls on its own schedule"
    schedule = _schedule(trigger, _Context({}, {}))
    if isinstance(schedule, str) or "cron" in schedule:
        return "polled on a cron schedule: rest_in polls at a fixed interval"
    base, endpoint = _split_url(url)
    polls: Raw = {"poll_interval": schedule["interval"]} if schedule else {"polls": 1}
    mapped: Raw = {"base_url": base, **({"endpoints": [endpoint]} if endpoint else {}), **polls}
    cx.warn(node, "rest_in turns each JSON response into rows: check records_path, "
            "sensor_field, value_field and timestamp_field against the API")  # fmt: skip
    return _Mapped("rest_in", {**mapped, **cfg}, ["out"], absorbs=str(trigger["id"]))


MAPPERS: dict[str, Callable[[Raw, _Context], _Mapped | str]] = {
    "mqtt in": _mqtt_in,
    "mqtt out": _mqtt_out,
    "inject": _inject,
    "debug": _debug,
    "switch": _switch,
    "change": _change,
    "delay": _delay,
    "http request": _http_request,
}


# ---- the import ------------------------------------------------------------------------------
def _load(data: list[Raw] | str | Mapping[str, Any]) -> list[Raw]:
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise NodeRedError(f"not JSON: {exc}") from None
    if isinstance(data, Mapping) and isinstance(data.get("flows"), list):
        data = data["flows"]  # the admin API's {"rev": ..., "flows": [...]}
    if not isinstance(data, list) or not all(
        isinstance(n, dict) and isinstance(n.get("id"), str) and isinstance(n.get("type"), str)
        for n in data
    ):
        raise NodeRedError("not a Node-RED flow export: expected a JSON array of nodes")
    return data


def _scope(items: list[Raw], tab: str | None) -> list[Raw]:
    tabs = [n for n in items if n["type"] == "tab"]
    if tab is None:
        return tabs
    chosen = [t for t in tabs if tab in (t.get("label"), t["id"])]
    if not chosen:
        names = ", ".join(repr(t.get("label") or t["id"]) for t in tabs) or "none"
        raise NodeRedError(f"no tab '{tab}' in the file; tabs: {names}")
    return chosen[:1]


def _validate(mapped: _Mapped, registry: Registry) -> str | None:
    """Why the config the mapper built fails its type's spec (None when it passes)."""
    try:
        cls = registry.get(mapped.type)
    except UnknownNodeType:
        return f"node type '{mapped.type}' is not installed"
    dummy = {m: "1" for m in _VAR_REF.findall(json.dumps(mapped.config))}
    try:
        cls.Config.model_validate(substitute(mapped.config, dummy))
    except (ValidationError, ValueError) as exc:
        return f"its settings do not fit '{mapped.type}': {str(exc).splitlines()[-1].strip()}"
    return None


class _Wiring:
    """Who feeds whom among the imported tabs' nodes, following junctions and links through."""

    def __init__(self, everything: dict[str, Raw], flow_nodes: list[Raw]) -> None:
        self.all = everything
        self.feeders: dict[str, list[str]] = {}
        for node in flow_nodes:
            if not _passes(node):
                for i in range(len(node.get("wires") or [])):
                    for target in self.targets(node, i):
                        self.feeders.setdefault(target, []).append(node["id"])

    def targets(self, node: Raw, index: int) -> list[str]:
        """The nodes output ``index`` of ``node`` reaches, in order, without duplicates."""
        return list(dict.fromkeys(t for w in _outs(node, index) for t in self._expand(w)))

    def _expand(self, target: str, seen: frozenset[str] = frozenset()) -> Iterator[str]:
        node = self.all.get(target)
        if node is None or target in seen:
            return
        if not _passes(node):
            yield target
            return
        nexts = (node.get("links") or []) if node["type"] == "link out" else _outs(node, 0)
        for nxt in nexts:
            yield from self._expand(str(nxt), seen | {target})


def _passes(node: Raw) -> bool:
    return node["type"] in PASS_THROUGH and node.get("mode", "link") == "link"


def _map_nodes(
    flow_nodes: list[Raw], cx: _Context, registry: Registry
) -> tuple[dict[str, _Mapped], list[Unmapped]]:
    mapped: dict[str, _Mapped] = {}
    unmapped: list[Unmapped] = []
    for node in (n for n in flow_nodes if not _passes(n)):
        kind = node["type"]
        mapper = MAPPERS.get(kind)
        try:
            outcome = mapper(node, cx) if mapper else _hint(kind)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # hand-edited exports
            outcome = f"malformed {kind} node ({type(exc).__name__}: {exc})"
        if isinstance(outcome, _Mapped):
            outcome = _validate(outcome, registry) or outcome
        if isinstance(outcome, str):
            unmapped.append(Unmapped(node["id"], kind, str(node.get("name") or ""), outcome))
        else:
            mapped[node["id"]] = outcome
    return mapped, unmapped


def _unique_ids(mapped: dict[str, _Mapped], everything: dict[str, Raw]) -> dict[str, str]:
    """Node-RED id -> a readable id: the slug of the name (else our type), numbered if taken."""
    ids: dict[str, str] = {}
    for nr_id, m in mapped.items():
        base = _slug(str(everything[nr_id].get("name") or "")) or m.type
        unique, n = base, 2
        while unique in ids.values():
            unique, n = f"{base}_{n}", n + 1
        ids[nr_id] = unique
    return ids


def _wires(
    source: Raw, m: _Mapped, mapped: dict[str, _Mapped], ids: dict[str, str], wiring: _Wiring,
    cx: _Context,
) -> list[str] | dict[str, list[str]] | None:  # fmt: skip
    """Our wires of a mapped node: Node-RED's output i is our port ``m.ports[i]``."""
    wires: dict[str, list[str]] = {}
    outputs = len(source.get("wires") or [])
    for i, port in enumerate(m.ports + [None] * (outputs - len(m.ports))):
        for target in wiring.targets(source, i):
            dest = wiring.all[target]
            if mapped.get(target) and mapped[target].absorbs == source["id"]:
                continue  # the inject became the schedule of this GET
            if port is None:
                cx.warn(source, f"output {i + 1} is not imported: wire to {_label(dest)} dropped")
            elif dest.get("z") != source.get("z") and target not in mapped:
                cx.warn(source, f"wire to {_label(dest)} on another tab dropped")
            elif target not in mapped:
                cx.warn(source, f"wire to unmapped {_label(dest)} dropped")
            elif mapped[target].type in SOURCES:
                cx.warn(source, f"wire to {_label(dest)} dropped: it became a source")
            else:
                wires.setdefault(port, []).append(ids[target])
    if not wires:
        return None
    return wires["out"] if m.ports == ["out"] else wires


def _our_node(source: Raw, m: _Mapped, everything: dict[str, Raw]) -> Raw:
    ours: Raw = {"type": m.type}
    if source.get("name"):
        ours["name"] = str(source["name"])
    if source.get("info"):
        ours["description"] = str(source["info"])
    tab = everything.get(str(source.get("z")), {})
    if source.get("d") or tab.get("disabled") or source.get("active") is False:
        ours["disabled"] = True
    return {**ours, **m.config}


def import_nodered(
    data: list[Raw] | str, *, tab: str | None = None, registry: Registry | None = None
) -> ImportResult:
    """Map a Node-RED export (parsed, or its JSON text) to a flow; ``tab`` (label or id) picks
    one tab, default all. Raises :class:`NodeRedError` when ``data`` is no flow export."""
    items = _load(data)
    everything = {n["id"]: n for n in items}
    tabs = _scope(items, tab)
    scope = {t["id"] for t in tabs} | (set() if tab or tabs else {None})
    flow_nodes = [
        n for n in items if n.get("z") in scope and "x" in n and n["type"] not in NOT_NODES
    ]
    wiring = _Wiring(everything, flow_nodes)
    cx = _Context(everything, wiring.feeders)
    mapped, unmapped = _map_nodes(flow_nodes, cx, registry or default_registry())
    absorbed = _absorbed(mapped, wiring.feeders)
    for nr_id in absorbed:
        del mapped[nr_id]
    ids = _unique_ids(mapped, everything)

    nodes: dict[str, Raw] = {}
    layout: dict[str, Raw] = {}
    offsets = _tab_offsets(flow_nodes, tabs)
    for nr_id, m in mapped.items():
        source = everything[nr_id]
        node = nodes[ids[nr_id]] = _our_node(source, m, everything)
        wires = _wires(source, m, mapped, ids, wiring, cx)
        if wires:
            node["wires"] = wires
        dx, dy = offsets.get(source.get("z"), (0, 0))
        layout[ids[nr_id]] = {"x": _int(source.get("x")) + dx, "y": _int(source.get("y")) + dy}

    flow: Raw = {"version": 1}
    if tabs:
        flow["name"] = ", ".join(str(t.get("label") or t["id"]) for t in tabs)
    description = _description(items, tabs, scope)
    if description:
        flow["description"] = description
    flow.update(nodes=nodes, layout=layout)
    warnings = [text for nr_id, text in cx.notes if nr_id not in absorbed]
    return ImportResult(flow, unmapped, warnings, cx.env, ids)


def _outs(node: Raw, index: int) -> list[str]:
    wires = node.get("wires") or []
    if not isinstance(wires, list) or index >= len(wires) or not isinstance(wires[index], list):
        return []
    return [str(w) for w in wires[index]]


def _int(value: Any) -> int:
    number = _number(value)
    return int(number) if number is not None else 0


def _hint(kind: str) -> str:
    if kind.startswith("ui_") or kind.startswith("ui-"):
        return "dashboard widget: flowengine's editor shows live data instead"
    if kind.startswith("subflow:"):
        return "subflow instance: import the subflow's nodes as a tab instead"
    if kind in ("link out", "link in"):
        return "return link: wire the nodes directly"
    return HINTS.get(kind, f"no flowengine node type for Node-RED '{kind}'")


def _absorbed(mapped: dict[str, _Mapped], feeders: dict[str, list[str]]) -> set[str]:
    """Injects whose every target is a GET that took over their schedule."""
    takers: dict[str, set[str]] = {}
    for nr_id, m in mapped.items():
        if m.absorbs:
            takers.setdefault(m.absorbs, set()).add(nr_id)
    fed: dict[str, set[str]] = {}
    for target, sources in feeders.items():
        for src in sources:
            fed.setdefault(src, set()).add(target)
    return {inj for inj, gets in takers.items() if inj in mapped and fed.get(inj, set()) <= gets}


def _tab_offsets(nodes: list[Raw], tabs: list[Raw]) -> dict[Any, tuple[int, int]]:
    """Stack several tabs vertically, so their nodes do not overlap in the layout."""
    offsets: dict[Any, tuple[int, int]] = {}
    top = 0
    for t in tabs:
        ys = [_int(n.get("y")) for n in nodes if n.get("z") == t["id"]]
        offsets[t["id"]] = (0, top)
        top += (max(ys) + 120) if ys else 0
    return offsets


def _description(items: list[Raw], tabs: list[Raw], scope: set[Any]) -> str:
    lines = [str(t["info"]).strip() for t in tabs if str(t.get("info") or "").strip()]
    for node in items:
        if node["type"] == "comment" and node.get("z") in scope:
            text = ": ".join(s for s in (node.get("name"), node.get("info")) if s)
            lines += [text.strip()] if text.strip() else []
    return "\n".join(lines)


# ---- output ----------------------------------------------------------------------------------
def to_yaml(result: ImportResult, source: str = "flows.json") -> str:
    """The imported flow as YAML, under a header that lists what was not imported."""
    header = [f"Imported from Node-RED ({source}) by `flowengine import`."]
    if result.unmapped:
        header.append(f"Not imported ({len(result.unmapped)} nodes; see docs/nodered-import.md):")
        header += [f"  {u.type} '{u.name or u.id}' ({u.id}): {u.reason}" for u in result.unmapped]
    else:
        header.append("Every node was imported.")
    if result.env:
        header.append("Set these environment variables (or put them in .env):")
        header += [f"  {name}: {what}" for name, what in result.env.items()]
    body = FlowDocument(styled(result.flow), Path("imported.yaml")).dumps()
    return "".join(f"# {line}\n" for line in header) + body
