"""Register maps are checked by `flowengine validate`; every message names the field."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from flowengine.testing import check_text

pytest.importorskip("pymodbus")


def errors(src: dict[str, Any]) -> list[str]:
    flow = {"src": {"type": "modbus_in", **src, "wires": ["out"]}, "out": {"type": "debug"}}
    text = yaml.safe_dump({"version": 1, "nodes": flow}, sort_keys=False)
    return [str(p) for p in check_text(text, path="f.yaml").errors]


def one_device(*fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "devices": [{"device_id": 1, "fields": list(fields)}], **extra}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            [
                {"name": "temp", "address": 0, "type": "float32"},
                {"name": "press", "address": 1, "type": "int16"},
            ],
            "fields 'temp' (holding 0..1) and 'press' (holding 1..1) overlap on device 1",
        ),
        (
            [{"name": "run", "register": "holding", "address": 5, "type": "bool"}],
            "field 'run': type bool needs register coil or discrete, not holding",
        ),
        (
            [{"name": "alarm", "register": "coil", "address": 5, "type": "int16"}],
            "field 'alarm': coils hold one bit: the type must be bool, not int16",
        ),
        (
            [{"name": "label", "address": 10, "type": "string"}],
            "field 'label': type string needs `length`",
        ),
        (
            [{"name": "speed", "address": 10, "type": "int32", "length": 2}],
            "field 'speed': `length` is for type string only",
        ),
        (
            [{"name": "last", "address": 65534, "type": "float64"}],
            "field 'last': holding 65534..65537 runs past address 65535",
        ),
        (
            [{"name": "flow", "register": "input", "address": 0, "writable": True}],
            "field 'flow': input registers are read-only in Modbus",
        ),
        (
            [{"name": "run", "register": "coil", "address": 0, "scale": 10}],
            "field 'run': scale and offset apply to numbers, not to type bool",
        ),
        (
            [{"name": "x", "address": 0}, {"name": "x", "address": 4}],
            "field 'x' is defined twice on device 1",
        ),
        (
            [{"name": "x", "address": 0, "type": "float128"}],
            "fields.0.type",
        ),
        (
            [{"name": "x", "address": 0, "byte_order": "ACBD"}],
            "fields.0.byte_order",
        ),
    ],
)
def test_bad_fields_fail_with_the_field_named(fields: list[dict[str, Any]], message: str) -> None:
    (error,) = errors(one_device(*fields))
    assert error.startswith("f.yaml:") and "node 'src'" in error
    assert message in error


def test_a_string_longer_than_one_request() -> None:
    field = {"name": "log", "address": 0, "type": "string", "length": 100}
    (error,) = errors(one_device(field, max_registers=64))
    assert "field 'log': 100 registers do not fit one request (max_registers 64)" in error


@pytest.mark.parametrize(
    ("connection", "message"),
    [
        ({}, "`host` (or `url: modbus://host:port`) is required"),
        ({"host": "plc", "url": "modbus://plc:502"}, "either `url` or `host`/`port`, not both"),
        ({"url": "http://plc:502"}, "'http://plc:502' must start with modbus://"),
        ({"url": "modbus://plc:99999"}, "port '99999' must be a number from 1 to 65535"),
        ({"host": "plc", "port": 0}, "port"),
    ],
)
def test_bad_connection_settings(connection: dict[str, Any], message: str) -> None:
    devices = [{"device_id": 1, "fields": [{"name": "x", "address": 0}]}]
    (error,) = errors({**connection, "devices": devices})
    assert message in error


def test_duplicate_unit_ids_and_empty_maps() -> None:
    dev = {"device_id": 3, "fields": [{"name": "x", "address": 0}]}
    (error,) = errors({"host": "plc", "devices": [dev, dev]})
    assert "device_id 3 is listed twice" in error
    (error,) = errors({"host": "plc", "devices": []})
    assert "devices" in error
    (error,) = errors({"host": "plc", "devices": [{"device_id": 300, "fields": dev["fields"]}]})
    assert "device_id" in error


def test_a_good_map_with_telegraf_spellings_passes() -> None:
    fields = [
        {"name": "temp", "address": 0, "type": "float32", "byte_order": "cdab"},
        {
            "name": "energy",
            "register": "input",
            "address": 0,
            "type": "uint64",
            "byte_order": "GHEFCDAB",
        },
        {"name": "status", "address": 2, "type": "uint16", "byte_order": "BA"},
        {"name": "label", "address": 3, "type": "string", "length": 4},
        {"name": "run", "register": "coil", "address": 0, "writable": True},
        {"name": "trip", "register": "discrete", "address": 7},
    ]
    assert errors({"url": "tcp://10.0.3.21:502", "devices": [{"fields": fields}]}) == []
    assert errors({"url": "modbus://[::1]", "devices": [{"fields": fields}]}) == []
