"""``broker_host`` is checked by ``flowengine validate``, at its line: a host name or address
alone (the port goes in ``broker_port``)."""

from __future__ import annotations

import pytest

from flowengine.testing import check_text

FLOW = """\
version: 1
nodes:
  src:
    type: mqtt_in
    broker_host: {host}
    wires: [out]
  out: {{type: debug}}
"""


def errors(host: str) -> list[str]:
    return [str(p) for p in check_text(FLOW.format(host=host), path="f.yaml").errors]


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("broker:1883", "'broker:1883': put the port in broker_port, not in broker_host"),
        ("mqtt://broker", "give the host name alone"),
        ("'bad host'", "'bad host' is not a host name or address"),
        ("''", "empty host"),
    ],
)
def test_bad_broker_host_fails_at_its_line(host: str, message: str) -> None:
    (error,) = errors(host)
    assert error.startswith("f.yaml:5:5: node 'src': field 'broker_host': ") and message in error


@pytest.mark.parametrize("host", ["127.0.0.1", "mqtt.factory.com", "broker_1", "'::1'", "'[::1]'"])
def test_host_names_and_addresses_pass(host: str) -> None:
    assert errors(host) == []
