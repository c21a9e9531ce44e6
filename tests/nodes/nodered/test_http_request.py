"""``http request`` import: which headers become ``${VAR}`` references (the SDK's one rule of
credential keys), and a URL without a scheme gets Node-RED's ``http://`` so the result validates."""

from __future__ import annotations

from typing import Any

from flowengine.nodes.nodered.convert import import_nodered
from flowengine.testing import check_text

TAB = "8f1c2a7b3d4e5f60"


def hook(url: str, headers: dict[str, str], **extra: Any) -> dict[str, Any]:
    """The flowengine node an imported POST ``http request`` becomes (nodes need a position)."""
    flow = [
        {"id": TAB, "type": "tab", "label": "Line"},
        {"id": "p", "z": TAB, "type": "http request", "name": "Hook", "method": "POST",
         "url": url, "ret": "txt", "headers": headers, "x": 1, "y": 1, "wires": [], **extra},
    ]  # fmt: skip
    result = import_nodered(flow)
    env = {name: "set-in-test" for name in result.env}
    assert check_text(result.flow, env=env).errors == []
    node: dict[str, Any] = result.flow["nodes"]["hook"]
    return node


def test_credential_headers_become_references_others_stay() -> None:
    headers = {"X-API-Key": "k-1", "Authorization": "Bearer t", "Accept": "application/json"}
    node = hook("https://hooks.local/x", headers)
    assert node["headers"]["X-API-Key"].startswith("${")
    assert node["headers"]["Authorization"].startswith("${")
    assert node["headers"]["Accept"] == "application/json"


def test_url_without_scheme_gets_http_like_node_red() -> None:
    assert hook("hooks.local/x", {})["url"] == "http://hooks.local/x"
    assert hook("https://hooks.local/x", {})["url"] == "https://hooks.local/x"
