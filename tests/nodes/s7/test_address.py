"""S7 addresses as users write them (STEP 7, PLC4X, nodeS7/Node-RED, Telegraf), the values at
them to and from bytes, and bad addresses as validation errors at their line."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flowengine.nodes.s7.address import decode, encode, parse_address
from flowengine.nodes.s7.client import plan_reads, split_reply
from flowengine.testing import check_text

pytest.importorskip("snap7", reason="python-snap7 (flowengine[s7]) is not installed")

# address, declared type -> area, db, byte, bit, type, size
PARSED = [
    ("DB10.DBD4", None, ("DB", 10, 4, 0, "REAL", 4)),
    ("DB10.DBX0.1", None, ("DB", 10, 0, 1, "BOOL", 1)),
    ("db10.dbx3.7", None, ("DB", 10, 3, 7, "BOOL", 1)),
    ("DB10.DBB2", None, ("DB", 10, 2, 0, "BYTE", 1)),
    ("DB10.DBW4", None, ("DB", 10, 4, 0, "INT", 2)),
    ("DB10.DBW4", "word", ("DB", 10, 4, 0, "WORD", 2)),
    ("DB10.DBD4", "DINT", ("DB", 10, 4, 0, "DINT", 4)),
    ("DB10.DBD4", "DWORD", ("DB", 10, 4, 0, "DWORD", 4)),
    ("DB10.DBB8", "STRING[20]", ("DB", 10, 8, 0, "STRING", 22)),
    ("DB10.DBB8", "LREAL", ("DB", 10, 8, 0, "LREAL", 8)),
    ("DB10.DBSTRING8.20", None, ("DB", 10, 8, 0, "STRING", 22)),
    ("%DB1.DBW0", None, ("DB", 1, 0, 0, "INT", 2)),
    ("MW20", None, ("M", 0, 20, 0, "INT", 2)),
    ("MB1", None, ("M", 0, 1, 0, "BYTE", 1)),
    ("MD4", "UDINT", ("M", 0, 4, 0, "UDINT", 4)),
    ("M0.1", None, ("M", 0, 0, 1, "BOOL", 1)),
    ("I0.0", None, ("I", 0, 0, 0, "BOOL", 1)),
    ("IW2", None, ("I", 0, 2, 0, "INT", 2)),
    ("E1.7", None, ("I", 0, 1, 7, "BOOL", 1)),  # German: Eingang
    ("Q0.1", None, ("Q", 0, 0, 1, "BOOL", 1)),
    ("QB3", None, ("Q", 0, 3, 0, "BYTE", 1)),
    ("AW2", None, ("Q", 0, 2, 0, "INT", 2)),  # German: Ausgang
    # PLC4X
    ("DB10.DBD4:DINT", None, ("DB", 10, 4, 0, "DINT", 4)),
    ("DB10:4:REAL", None, ("DB", 10, 4, 0, "REAL", 4)),
    ("DB10:1.2:BOOL", None, ("DB", 10, 1, 2, "BOOL", 1)),
    ("DB10:8:STRING[20]", None, ("DB", 10, 8, 0, "STRING", 22)),
    # nodeS7 / Node-RED
    ("DB10,REAL4", None, ("DB", 10, 4, 0, "REAL", 4)),
    ("DB10,R4", None, ("DB", 10, 4, 0, "REAL", 4)),
    ("DB10,INT2", None, ("DB", 10, 2, 0, "INT", 2)),
    ("DB10,W2", None, ("DB", 10, 2, 0, "WORD", 2)),
    ("DB10,W2", "INT", ("DB", 10, 2, 0, "INT", 2)),
    ("DB10,DI4", None, ("DB", 10, 4, 0, "DINT", 4)),
    ("DB10,X0.1", None, ("DB", 10, 0, 1, "BOOL", 1)),
    ("DB10,S8.20", None, ("DB", 10, 8, 0, "STRING", 22)),
    ("DB10,LR8", None, ("DB", 10, 8, 0, "LREAL", 8)),
    ("MR4", None, ("M", 0, 4, 0, "REAL", 4)),
    # Telegraf s7comm
    ("DB10.R4", None, ("DB", 10, 4, 0, "REAL", 4)),
    ("DB10.UD4", None, ("DB", 10, 4, 0, "UDINT", 4)),
    ("DB10.X0.1", None, ("DB", 10, 0, 1, "BOOL", 1)),
]


@pytest.mark.parametrize(("text", "declared", "expected"), PARSED)
def test_address_spellings(text: str, declared: str | None, expected: tuple) -> None:
    a = parse_address(text, declared)
    assert (a.area, a.db, a.byte, a.bit, a.type, a.size) == expected


@pytest.mark.parametrize(
    ("text", "declared", "message"),
    [
        ("DB10.DBX0.8", None, "bit 8 is out of range 0..7"),
        ("DB10.DBX0", None, "is a bit address and needs a bit number"),
        ("DB10.DBD4", "INT", "addresses 4 byte(s) but INT takes 2"),
        ("DB10.DBW4", "BOOL", "a BOOL needs one"),
        ("DB10.DBW4.1", None, "only bit addresses (X) take '.1'"),
        ("DB0.DBW0", None, "DB number 0 is out of range 1..65535"),
        ("MW70000", None, "byte offset 70000 is out of range"),
        ("M5", None, "needs a width or a bit: MB5, MW5, MD5 or M5.0"),
        ("DB10,R4", "INT", "is a REAL; type INT does not fit it"),
        ("DB10,X0.1", "BYTE", "is a BOOL; type BYTE does not fit it"),
        ("DB10,Q4", None, "unknown type code 'Q'"),
        ("DB10,S8", None, "a STRING needs its length"),
        ("DB10.DBB0", "STRING", "STRING needs a length, e.g. STRING[20]"),
        ("DB10.DBB0", "STRING[300]", "STRING length 300 is out of range 1..254"),
        ("DB10.DBB0", "FLOAT", "unknown type 'FLOAT'"),
        ("DB10.DBD4:REAL", "DINT", "says REAL but the tag's type is DINT"),
        ("furnace", None, "'furnace' is not an S7 address"),
        ("", None, "empty address"),
    ],
)
def test_bad_addresses_say_what_is_wrong(text: str, declared: str | None, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_address(text, declared)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "declared", "value"),
    [
        ("DB1.DBB0", None, 255),
        ("DB1.DBB0", "SINT", -128),
        ("DB1.DBB0", "CHAR", "A"),
        ("DB1.DBW0", None, -32768),
        ("DB1.DBW0", "UINT", 65535),
        ("DB1.DBD0", "DINT", -(2**31)),
        ("DB1.DBD0", "UDINT", 2**32 - 1),
        ("DB1.DBD0", None, 1234.5),
        ("DB1.DBB0", "LREAL", 1e300),
        ("DB1.DBB0", "LINT", -(2**63)),
        ("DB1.DBB0", "STRING[8]", "Stahl"),
    ],
)
def test_values_round_trip_through_bytes(text: str, declared: str | None, value: object) -> None:
    a = parse_address(text, declared)
    data = encode(a, value)
    assert len(data) == a.size and decode(a, data) == value


@pytest.mark.parametrize(
    ("declared", "value", "want"),
    [
        ("LINT", 2**53 + 1, 2**53 + 1),  # the first integer a float cannot hold
        ("LINT", 2**63 - 1, 2**63 - 1),  # float() makes it 2**63: refused though it fits
        ("LINT", -(2**63) + 1, -(2**63) + 1),
        ("LINT", np.int64(2**62 + 3), 2**62 + 3),  # as a pandas column holds it
        ("LINT", " 9007199254740993 ", 2**53 + 1),  # text from a payload
        ("ULINT", 2**64 - 1, 2**64 - 1),
        ("ULINT", np.uint64(2**64 - 2), 2**64 - 2),
        ("LWORD", 0x0123456789ABCDEF, 0x0123456789ABCDEF),
        ("LINT", 2.6, 3),  # a float is still rounded, as for the shorter types
    ],
)
def test_64_bit_integers_are_written_exactly(declared: str, value: object, want: int) -> None:
    a = parse_address("DB1.DBB0", declared)
    assert decode(a, encode(a, value)) == want


@pytest.mark.parametrize(("declared", "value"), [("LINT", 2**63), ("ULINT", 2**64), ("ULINT", -1)])
def test_64_bit_integers_one_past_the_range_are_refused(declared: str, value: int) -> None:
    with pytest.raises(ValueError, match=f"is out of {declared} range"):
        encode(parse_address("DB1.DBB0", declared), value)


@pytest.mark.parametrize(
    ("declared", "value", "message"),
    [
        ("INT", 40000, "40000 is out of INT range -32768..32767"),
        ("UINT", -1, "-1 is out of UINT range 0..65535"),
        ("INT", "abc", "'abc' is not a number"),
        ("INT", math.nan, "nan is not finite"),
        ("REAL", 1e39, "is out of REAL range"),
        ("STRING[4]", "too long", "is longer than STRING[4]"),
        ("STRING[4]", "Größe€", "outside latin-1"),
    ],
)
def test_values_that_do_not_fit(declared: str, value: object, message: str) -> None:
    address = "DB1.DBW0" if declared in ("INT", "UINT") else "DB1.DBB0"
    address = "DB1.DBD0" if declared == "REAL" else address
    with pytest.raises(ValueError) as caught:
        encode(parse_address(address, declared), value)
    assert message in str(caught.value)


def test_bool_text_and_numbers() -> None:
    bit = parse_address("M0.3")
    assert [encode(bit, v) for v in (True, "on", 1, "false", 0.0)] == [
        b"\1",
        b"\1",
        b"\1",
        b"\0",
        b"\0",
    ]
    with pytest.raises(ValueError, match="is not a BOOL"):
        encode(bit, 2)
    assert decode(bit, b"\x08") is True and decode(bit, b"\xf7") is False
    assert encode(parse_address("DB1.DBW0"), 3.6) == b"\x00\x04"  # rounded, as for OPC UA


def test_plan_merges_near_tags_and_packs_pdus() -> None:
    near = [parse_address(f"DB1.DBD{4 * i}") for i in range(50)]  # 200 contiguous bytes
    (request,) = plan_reads(near, 480)
    assert [(b.start_offset, b.byte_length) for b in request] == [(0, 200)]
    # 40 tags 100 bytes apart: no merging; a 240-byte PDU holds (240 - 14) // 12 = 18 items
    apart = [parse_address(f"DB2.DBD{100 * i}") for i in range(40)]
    requests = plan_reads(apart, 240)
    assert [len(r) for r in requests] == [18, 18, 4]
    assert sorted(i.index for r in requests for b in r for i in b.items) == list(range(40))
    # S7-300s take 20 items per request whatever the PDU
    assert [len(r) for r in plan_reads(apart, 960, max_items=20)] == [20, 20]
    # a reply may not exceed the PDU either: 240 - 14 = 226 bytes of (4 + 8) per item
    wide = [parse_address(f"DB3.DBB{100 * i}", "LREAL") for i in range(30)]
    assert all(sum(4 + b.byte_length for b in r) + 14 <= 240 for r in plan_reads(wide, 240))
    # the bits of one byte are one read; areas never merge
    bits = [parse_address(f"M0.{i}") for i in range(8)] + [parse_address("Q0.0")]
    (request,) = plan_reads(bits, 480)
    assert [(b.area, b.byte_length, len(b.items)) for b in request] == [(0x82, 1, 1), (0x83, 1, 8)]


def test_reply_items_fail_alone() -> None:
    raw = bytes.fromhex("ff04 0008 2a 000a00 0000ff04 0010 0102")
    assert split_reply(raw, 3) == [b"\x2a", "Object does not exist (0x0a)", b"\x01\x02"]


FLOW = """\
version: 1
nodes:
  plc:
    type: s7_in
    host: 127.0.0.1
    tags:
      - {{address: DB1.DBD0, sensor: furnace_temp}}
      - {address}
    wires: [out]
  out: {{type: debug}}
"""


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("{address: DB1.DBX0}", "field 'tags.1': 'DB1.DBX0' is a bit address"),
        ("{address: DB1.DBW2, sensor: speed, type: REAL}", "tag 'speed': 'DB1.DBW2' addresses 2"),
        ("{address: MW4, sensor: furnace_temp}", "two tags are named 'furnace_temp'"),
        ("{address: M0.0, scale: 2}", "scale/offset apply to numbers, not a BOOL"),
    ],
)
def test_bad_tags_fail_validation_at_their_line(tag: str, message: str) -> None:
    checked = check_text(FLOW.format(address=tag), path="f.yaml")
    (error,) = [str(p) for p in checked.problems]
    assert error.startswith("f.yaml:") and "node 'plc'" in error and message in error, error


def test_tsaps_and_host_are_checked() -> None:
    base = {"type": "s7_in", "host": "plc", "tags": [{"address": "MW0"}], "wires": ["out"]}
    out = {"type": "debug"}
    ok = check_text({"plc": {**base, "local_tsap": "01.00", "remote_tsap": "0x0301"}, "out": out})
    assert ok.ok
    for bad, message in [
        ({"local_tsap": "01.00"}, "give both local_tsap and remote_tsap"),
        ({"local_tsap": "zz", "remote_tsap": 1}, "'zz' is not a TSAP"),
        ({"host": "plc one"}, "is not a host name or address"),
        ({"tags": []}, "list at least one tag"),
        ({"port": 0}, "port"),
    ]:
        problems = [str(p) for p in check_text({"plc": {**base, **bad}, "out": out}).problems]
        assert problems and message in problems[0], problems
