"""``delay`` as ``delay``: a fixed delay or a rate limit; the kinds driven by message
properties or topics have no equivalent and are listed."""

from __future__ import annotations

from flowengine.nodes.nodered.context import Context, Mapped, Raw
from flowengine.nodes.nodered.values import number, seconds
from flowengine.wires import OUT

_UNMAPPED = {
    "delayv": "the delay came from msg.delay",
    "random": "random delays have no flowengine equivalent",
    "queue": "rate limiting per msg.topic has no flowengine equivalent",
    "timed": "releasing the latest message per topic has no flowengine equivalent",
}


def delay(node: Raw, cx: Context) -> Mapped | str:
    """``delay`` in delay or rate mode (a second output, if any, is not imported)."""
    kind = node.get("pauseType", "delay")
    ports: list[str | None] = [OUT, None] if node.get("outputs") == 2 else [OUT]
    if kind == "delay":
        wait = seconds(node.get("timeout"), node.get("timeoutUnits"))
        if wait is None:
            return f"delay '{node.get('timeout')} {node.get('timeoutUnits')}' is not a duration"
        return Mapped("delay", {"mode": "delay", "delay": wait}, ports)
    if kind == "rate":
        per = seconds(node.get("nbRateUnits") or 1, node.get("rateUnits"))
        count = number(node.get("rate"))
        if not per or not count:
            return f"rate '{node.get('rate')} per {node.get('rateUnits')}' is not a rate"
        if node.get("allowrate"):
            cx.warn(node, "msg.rate overrides are not imported")
        cfg: Raw = {"mode": "rate_limit", "rate": count / per, "per": "rows"}
        if node.get("drop"):
            cfg["drop"] = True
        return Mapped("delay", cfg, ports)
    return _UNMAPPED.get(kind, f"delay action '{kind}' is unknown")
