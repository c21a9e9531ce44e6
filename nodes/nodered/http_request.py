"""``http request`` as ``rest_out`` (a POST) or ``rest_in`` (a GET polled by one inject node,
whose schedule it takes over: the inject is then absorbed, see wiring.absorbed)."""

from __future__ import annotations

from flowengine.masking import is_secret_key
from flowengine.nodes.nodered.context import Context, Mapped, Raw
from flowengine.nodes.nodered.inject import schedule
from flowengine.wires import OUT


def _split_url(url: str) -> tuple[str, str]:
    """(base_url, endpoint): the last path segment is the endpoint, as rest_in names readings."""
    head, query = url.split("?", 1) if "?" in url else (url, "")
    start = head.find("//") + 2 if "//" in head else 0
    cut = head.rfind("/", start)
    if cut < 0:
        return url, ""
    return head[:cut], head[cut + 1 :] + (f"?{query}" if query else "")


def _http_settings(node: Raw, cx: Context) -> Raw | str:
    """Authentication and headers, secrets as references; or why the auth does not map."""
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
        if is_secret_key(str(key)):  # the one rule of which keys hold credentials
            value = cx.secret(owner, str(key), f"'{key}' header for '{owner}'")
        cfg.setdefault("headers", {})[str(key)] = str(value)
    if node.get("tls"):
        cx.warn(node, "its TLS config node is not imported: the system's CAs verify the server")
    if node.get("proxy"):
        cx.warn(node, "its proxy is not imported: set HTTPS_PROXY in the environment")
    return cfg


def _polled_get(node: Raw, cx: Context, url: str, cfg: Raw) -> Mapped | str:
    """A GET as ``rest_in`` polling on the schedule of the one inject node that triggers it."""
    if node.get("ret", "txt") != "obj":
        return "it returns text or a buffer: rest_in reads JSON (choose 'a parsed JSON object')"
    feeders = cx.feeders.get(str(node["id"]), [])
    trigger = cx.all.get(feeders[0]) if len(feeders) == 1 else None
    if trigger is None or trigger.get("type") != "inject":
        return "a GET that is not triggered by one inject node: rest_in polls on its own schedule"
    timing = schedule(trigger, Context({}, {}))  # its warnings are the inject's, dropped
    if isinstance(timing, str) or "cron" in timing:
        return "polled on a cron schedule: rest_in polls at a fixed interval"
    base, endpoint = _split_url(url)
    polls: Raw = {"poll_interval": timing["interval"]} if timing else {"polls": 1}
    mapped: Raw = {"base_url": base, **({"endpoints": [endpoint]} if endpoint else {}), **polls}
    cx.warn(node, "rest_in turns each JSON response into rows: check records_path, "
            "sensor_field, value_field and timestamp_field against the API")  # fmt: skip
    return Mapped("rest_in", {**mapped, **cfg}, [OUT], absorbs=str(trigger["id"]))


def http_request(node: Raw, cx: Context) -> Mapped | str:
    """``http request`` with a fixed URL: POST as ``rest_out``, GET as a polling ``rest_in``."""
    method = str(node.get("method") or "GET").upper()
    url = str(node.get("url") or "")
    if not url:
        return "no URL: Node-RED took it from msg.url"
    if "{{" in url:
        return "its URL is built from the message ({{...}})"
    if method not in ("GET", "POST"):
        return f"method {method}: only GET (polling, as rest_in) and POST (as rest_out) map"
    if "://" not in url:  # Node-RED prefixes it so (rest_in/rest_out want a whole URL)
        url = ("https://" if node.get("tls") else "http://") + url
    cfg = _http_settings(node, cx)
    if isinstance(cfg, str):
        return cfg
    if method == "POST":
        return Mapped("rest_out", {"url": url, **cfg}, [None])
    return _polled_get(node, cx, url, cfg)
