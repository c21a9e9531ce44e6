"""``mqtt in`` and ``mqtt out`` as ``mqtt_in`` and ``mqtt_out``: the broker config node's
connection becomes the node's own keys, credentials ``${VAR}`` references."""

from __future__ import annotations

from typing import Any

from flowengine.nodes.nodered.context import Context, Mapped, Raw
from flowengine.nodes.nodered.values import number, truthy
from flowengine.wires import OUT


def _address(broker: Raw) -> tuple[str, Any, bool] | str:
    """(host, port, TLS) of a broker config node, whose host may be a URL; or why not."""
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
    return host, port, tls


def _session(broker: Raw, node: Raw, cx: Context) -> Raw:
    """Client id, clean session, keep-alive and protocol version of a broker config node."""
    cfg: Raw = {}
    if broker.get("clientid"):
        cfg["client_id"] = str(broker["clientid"])
    if broker.get("cleansession") is False:
        if cfg.get("client_id"):
            cfg["clean_session"] = False
        else:
            cx.warn(node, "a persistent session needs a fixed client id: clean session kept")
    keep_alive = number(broker.get("keepalive"))
    if keep_alive is not None and keep_alive != 60:
        cfg["keep_alive"] = int(keep_alive)
    if str(broker.get("protocolVersion")) == "5":
        cfg["protocol"] = "5"
    elif str(broker.get("protocolVersion")) == "3":
        cx.warn(node, "MQTT 3.1 becomes 3.1.1")
    return cfg


def _broker(node: Raw, cx: Context) -> Raw | str:
    """The connection keys of ``node``'s broker config node, credentials as references."""
    broker = cx.all.get(str(node.get("broker", "")))
    if broker is None or broker.get("type") != "mqtt-broker":
        return f"its broker config node '{node.get('broker')}' is not in the file"
    address = _address(broker)
    if isinstance(address, str):
        return address
    host, port, tls = address
    port_number = number(port)
    cfg: Raw = {"broker_host": host}
    cfg["broker_port"] = (
        int(port_number) if port_number is not None else (port or (8883 if tls else 1883))
    )
    cfg.update(_session(broker, node, cx))
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


def _tls(conf: Raw | None, node: Raw, cx: Context) -> Raw:
    """The certificate files of a TLS config node; uploaded files are not in the export."""
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


def _qos(node: Raw, default: int) -> int:
    """The node's QoS level, ``default`` when it has no valid one."""
    qos = number(node.get("qos"))
    return int(qos) if qos in (0, 1, 2) else default


def mqtt_in(node: Raw, cx: Context) -> Mapped | str:
    """``mqtt in`` on fixed topics with JSON readings."""
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
    cfg.update(topic=str(node["topic"]), qos=_qos(node, 2))
    cx.differs(
        node,
        "payloads",
        "mqtt_in reads JSON readings (a number, an object with `value`, or one row per top-level "
        "numeric field): a text payload ('ON', 'Online', '3.2V') or an object holding only "
        'nested objects ({"ENERGY": {...}}) goes to its `error` port (text in `payload`), '
        "where Node-RED passed it on as msg.payload",
    )
    return Mapped("mqtt_in", cfg, [OUT])


def mqtt_out(node: Raw, cx: Context) -> Mapped | str:
    """``mqtt out`` publishing to a fixed topic (a template of ours) or ``msg.topic``."""
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
        cx.differs(
            node,
            "topics",
            "it publishes to each row's `topic` column (msg.topic): imported injects set it, "
            "a row without one goes to the `error` port",
        )
    cfg.update(topic=topic, qos=_qos(node, 0))
    cx.differs(
        node,
        "payloads",
        "it publishes each row as a JSON object (timestamp, sensor, value and any other "
        "columns), where Node-RED published msg.payload alone: a device that expects plain "
        "text ('ON') or a bare number will not understand it",
    )
    if truthy(node.get("retain")):
        cfg["retain"] = True
    v5 = [k for k in ("respTopic", "contentType", "userProps", "correl", "expiry") if node.get(k)]
    if v5:
        cx.warn(node, f"MQTT 5 properties not imported: {', '.join(v5)}")
    return Mapped("mqtt_out", cfg, [])
