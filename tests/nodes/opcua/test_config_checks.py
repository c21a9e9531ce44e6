"""``server_url`` is checked by ``flowengine validate``, at its line: ``opc.tcp://host:port``."""

from __future__ import annotations

import pytest

from flowengine.testing import check_text

FLOW = """\
version: 1
nodes:
  src:
    type: opcua_in
    server_url: {url}
    nodes: [ns=2;i=1001]
    wires: [out]
  out: {{type: debug}}
"""


def errors(url: str) -> list[str]:
    return [str(p) for p in check_text(FLOW.format(url=url), path="f.yaml").errors]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("opc.tcp://plc", "'opc.tcp://plc' needs a port: opc.tcp://plc:4840"),
        ("plc:4840", "'plc:4840' must start with opc.tcp://"),
        ("opc.tcp://plc:0", "port '0' must be a number from 1 to 65535"),
        ("opc.tcp://", "names no server"),
        ("opc.tcp://op:hunter2@plc", "'opc.tcp://op:******@plc' needs a port"),
    ],
)
def test_bad_server_url_fails_at_its_line(url: str, message: str) -> None:
    (error,) = errors(url)
    assert error.startswith("f.yaml:5:5: node 'src': field 'server_url': ") and message in error


@pytest.mark.parametrize(
    "url",
    ["opc.tcp://plc:4840", "opc.tcp://127.0.0.1:4840/freeopcua/server/", "opc.tcp://[::1]:4840"],
)
def test_opc_tcp_urls_pass(url: str) -> None:
    assert errors(url) == []
