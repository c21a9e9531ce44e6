"""enip_in / enip_out configs are checked by ``flowengine validate`` at their line, and the
pure parts (rows of a read, value checks of a write) behave as documented."""

from __future__ import annotations

import math
from typing import Any

import pytest

from flowengine.nodes.enip.config import TagSpec
from flowengine.nodes.enip.sink import coerce, targets
from flowengine.nodes.enip.source import rows_of
from flowengine.testing import check_text

FLOW = """\
version: 1
nodes:
  src:
    type: enip_in
    host: {host}
    tags: {tags}
{extra}    wires: [out]
  out: {{type: debug}}
"""


def errors(host: str = "plc", tags: str = "[Speed]", extra: str = "") -> list[str]:
    text = FLOW.format(host=host, tags=tags, extra=extra)
    return [str(p) for p in check_text(text, path="f.yaml").errors]


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ("[]", "list at least one tag"),
        ("['Temps{0}']", "an element count {n} must be at least 1"),
        ("['Line 3']", "'Line 3' is not a Logix tag"),
        ("['Temps[x]']", "is not a Logix tag"),
        ("['3Temps']", "is not a Logix tag"),
        ("[{tag: Speed, scale: 0}]", "scale must not be 0"),
        ("[{tag: Speed, unit: degC}]", "unit"),
    ],
)
def test_bad_tags_fail_at_the_field(tags: str, message: str) -> None:
    (error,) = errors(tags=tags)
    assert error.startswith("f.yaml:") and "node 'src'" in error and "tags" in error
    assert message in error, error


@pytest.mark.parametrize(
    ("host", "extra", "message"),
    [
        ("plc:44818", "", "give the port in `port`"),
        ("plc", "    slot: 1\n    route: 1/0\n", "either `slot` or `route`"),
        ("plc", "    route: backplane\n", "not a CIP route"),
        ("plc", "    port: 0\n", "port"),
        ("plc", "    tag_list: always\n", "tag_list"),
    ],
)
def test_bad_connection_fails_at_the_field(host: str, extra: str, message: str) -> None:
    (error,) = errors(host=host, extra=extra)
    assert "node 'src'" in error and message in error, error


def test_good_configs_pass() -> None:
    tags = "['Line3.Temp', 'Temps{10}', 'Temps[2]{3}', 'Program:Main.Count', 'Status.5', 'M[1,2]']"
    assert errors(tags=tags, extra="    slot: 2\n") == []
    assert errors(host="10.0.0.5", extra="    route: backplane/2/enet/10.0.0.9/bp/0\n") == []


def test_sink_needs_a_writable_tag() -> None:
    flow = {"src": {"type": "inject", "wires": ["out"]}, "out": {"type": "enip_out", "host": "plc"}}
    flow["out"]["tags"] = ["Speed"]
    problems = [str(p) for p in check_text(flow).errors]
    assert any("mark at least one tag `writable: true`" in p for p in problems), problems


def test_tag_spec_names_elements() -> None:
    spec = TagSpec(tag="Temps[2]{3}", sensor="zone")
    assert spec.plc_tag == "Temps[2]" and spec.count == 3
    assert spec.elements() == [
        ("zone[2]", "Temps[2]"),
        ("zone[3]", "Temps[3]"),
        ("zone[4]", "Temps[4]"),
    ]
    assert TagSpec(tag="Temps{2}").elements() == [
        ("Temps[0]", "Temps[0]"),
        ("Temps[1]", "Temps[1]"),
    ]
    assert TagSpec(tag="Line3.Temp").name == "Line3.Temp"
    assert targets([TagSpec(tag="Temps{2}", writable=True), TagSpec(tag="Speed")]) == {
        "Temps[0]": ("Temps[0]", TagSpec(tag="Temps{2}", writable=True)),
        "Temps[1]": ("Temps[1]", TagSpec(tag="Temps{2}", writable=True)),
    }


def _tag(value: Any, data_type: str | None = "REAL", error: str | None = None) -> Any:
    from pycomm3 import Tag  # pycomm3's result tuple, as LogixDriver.read returns it

    return Tag("t", value, data_type, error)


def test_a_structure_read_whole_is_flattened_to_members() -> None:
    pytest.importorskip("pycomm3")
    udt = {"Temp": 1200.5, "Speed": 3, "Flags": [True, False], "Motor": {"Amps": 4.5}}
    rows = rows_of(TagSpec(tag="Line3", scale=2.0), _tag(udt, "Line3_UDT"))
    assert [(r["sensor"], r["tag"], r["value"]) for r in rows] == [
        ("Line3.Temp", "Line3.Temp", 2401.0),
        ("Line3.Speed", "Line3.Speed", 6.0),
        ("Line3.Flags[0]", "Line3.Flags[0]", True),  # BOOLs are never scaled
        ("Line3.Flags[1]", "Line3.Flags[1]", False),
        ("Line3.Motor.Amps", "Line3.Motor.Amps", 9.0),
    ]
    motors = [{"Amps": 1.0}, {"Amps": 2.0}]
    rows = rows_of(TagSpec(tag="Motors{2}"), _tag(motors, "MOTOR[2]"))
    assert [(r["sensor"], r["value"]) for r in rows] == [
        ("Motors[0].Amps", 1.0),
        ("Motors[1].Amps", 2.0),
    ]


def test_a_failed_array_gives_one_bad_row_per_element() -> None:
    pytest.importorskip("pycomm3")
    rows = rows_of(TagSpec(tag="Temps{3}"), _tag(None, None, "Path destination unknown"))
    assert [r["sensor"] for r in rows] == ["Temps[0]", "Temps[1]", "Temps[2]"]
    assert {r["quality"] for r in rows} == {"bad"}
    assert {r["status"] for r in rows} == {"Path destination unknown"}
    short = rows_of(TagSpec(tag="Temps{3}"), _tag([1.0, 2.0], "REAL[2]"))
    assert {r["status"] for r in short} == {"asked for 3 elements, got 2"}


@pytest.mark.parametrize(
    ("value", "data_type", "expected"),
    [
        (3.0, "DINT", 3),
        ("42", "INT", 42),
        (-128, "SINT", -128),
        (2**32 - 1, "UDINT", 2**32 - 1),
        (1.5, "REAL", 1.5),
        ("true", "BOOL", True),
        (0, "BOOL", False),
        (True, "BOOL", True),
    ],
)
def test_coerce_accepts(value: Any, data_type: str, expected: Any) -> None:
    got = coerce(value, data_type, "T")
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    ("value", "data_type", "message"),
    [
        (2.5, "DINT", "T (DINT): 2.5 is not a whole number"),
        (128, "SINT", "out of range -128..127"),
        (-1, "UINT", "out of range 0..65535"),
        (math.inf, "LREAL", "not a finite LREAL"),
        (1e39, "REAL", "not a finite REAL"),
        ("abc", "REAL", "'abc' is not a number"),
        (2, "BOOL", "is not true/false/1/0"),
        (None, "DINT", "no value"),
        ("x", "STRING", "writing STRING tags is not supported"),
    ],
)
def test_coerce_refuses(value: Any, data_type: str, message: str) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        coerce(value, data_type, "T")
    assert message in str(caught.value)


def test_missing_pycomm3_names_the_extra() -> None:
    from flowengine.extras import missing_message
    from flowengine.nodes.enip.sink import EnipOut
    from flowengine.nodes.enip.source import EnipIn

    assert EnipIn.requires == EnipOut.requires == (("pycomm3", "enip"),)
    assert missing_message("enip").startswith("EtherNet/IP library not available. Install ")
