"""Bad settings fail at validation, at their line, with a message naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from flowengine.testing import check_text


def errors(node: dict[str, Any]) -> list[str]:
    nodes = {"n": {**node, "wires": ["d"]} if node["type"] == "nats_in" else node}
    if node["type"] == "nats_in":
        nodes["d"] = {"type": "debug"}
    return [str(p) for p in check_text({"version": 1, "nodes": nodes}, path="f.yaml").errors]


OUT = {"type": "nats_out", "stream": "PLANT", "subject": "plant.readings"}
IN = {"type": "nats_in", "stream": "PLANT", "subject": "plant.readings", "durable": "a"}


@pytest.mark.parametrize(
    ("node", "field", "message"),
    [
        ({**OUT, "servers": "http://n:4222"}, "servers", "use nats://host:4222 or tls://host:4222"),
        (
            {**OUT, "servers": ["nats://a", "nats://a"]},
            "servers",
            "entry [1]: 'nats://a' is listed",
        ),
        ({**OUT, "servers": "nats://u:pw@n:99999"}, "servers", "port '99999'"),
        ({**OUT, "stream": "plant.readings"}, "stream", "a stream name may not"),
        ({**OUT, "subject": "plant.>"}, "subject", "without spaces or wildcards"),
        ({**OUT, "partitions": 8}, "", "partition_by and partitions go together"),
        ({**OUT, "max_age": "forever"}, "max_age", "not a duration like 500ms"),
        ({**OUT, "max_bytes": "ten"}, "max_bytes", "not a size like 10GB"),
        ({**OUT, "password": "pw"}, "", "password given without user"),
        ({**OUT, "user": "a", "token": "t"}, "", "either user/password or token"),
        ({**IN, "durable": "my consumer"}, "durable", "a consumer name may not"),
        ({**IN, "worker": "2/2"}, "worker", "0 <= I < N"),
        ({**IN, "worker": "first"}, "worker", "give worker as I/N"),
        ({**IN, "partitions": [1, 1]}, "partitions", "distinct partition numbers"),
        ({**IN, "partitions": [0], "worker": "0/2"}, "", "either partitions or worker"),
        ({**IN, "max_deliver": 0}, "", "max_deliver: -1 (no limit) or at least 1"),
    ],
)
def test_bad_settings_are_named(node: dict[str, Any], field: str, message: str) -> None:
    (error,) = errors(node)
    assert "node 'n'" in error and message in error, error
    if field:
        assert f"field '{field}'" in error, error
    assert "pw@" not in error  # a password in a URL is masked


def test_good_settings_pass() -> None:
    good = {**OUT, "max_age": "12h", "max_bytes": "10GB", "duplicate_window": "5m"}
    assert errors({**good, "partition_by": "line", "partitions": 8}) == []
    assert errors({**IN, "worker": "1/3", "ack_wait": "45s"}) == []
    assert errors({**OUT, "servers": ["n1:4222", "tls://n2:4222"]}) == []
