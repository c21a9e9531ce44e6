"""The MQTT codec and the outbox without a broker: packets split at any byte boundary come out
whole and in order, MQTT 5 properties are skipped, malformed input is refused, message ids
wrap around without reusing one in flight.
"""

from __future__ import annotations

import asyncio
import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowengine.nodes.mqtt import wire
from flowengine.nodes.mqtt.outbox import MAX_MID, Outbox


def _read(chunks: list[bytes], v5: bool = False) -> list[wire.Packet]:
    """Feed ``chunks`` as a connection does (a remainder waits for the next chunk)."""
    got: list[wire.Packet] = []
    rest = b""
    for chunk in chunks:
        buf = rest + chunk
        packets, used = wire.split(buf, v5)
        got += packets
        rest = buf[used:]
    assert rest == b""
    return got


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


messages = st.lists(
    st.tuples(
        st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=30),
        st.binary(max_size=20_000),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(messages, st.sampled_from([0, 1, 2]), st.booleans(), st.lists(st.integers(0, 10**6)))
def test_publishes_read_back_whole_and_in_order_however_they_are_cut(
    msgs: list[tuple[str, bytes]], qos: int, v5: bool, cuts: list[int]
) -> None:
    mids = list(range(1, len(msgs) + 1)) if qos else None
    data = bytes(wire.publishes(msgs, qos, False, mids, v5))
    got = _read(_cut(data, cuts), v5)
    assert [(t, p) for _, t, _, p in got] == msgs
    assert [m for _, _, m, _ in got] == (mids or [0] * len(msgs))
    assert all(first >> 4 == wire.PUBLISH and (first >> 1) & 3 == qos for first, *_ in got)


def test_byte_by_byte_mixed_packets_keep_their_order() -> None:
    stream = (
        bytes(wire.publishes([("a/b", b"1")], 1, True, [7], False))
        + wire.ack(wire.PUBACK, 7)
        + wire.PING
        + bytes(wire.publishes([("a/c", b"x" * 300)], 0, False, None, False))
        + wire.ack(wire.PUBREL, 9)
    )
    got = _read([stream[i : i + 1] for i in range(len(stream))])
    assert [first >> 4 for first, *_ in got] == [
        wire.PUBLISH,
        wire.PUBACK,
        wire.PINGREQ,
        wire.PUBLISH,
        wire.PUBREL,
    ]
    assert got[0][1:] == ("a/b", 7, b"1") and got[0][0] & 0x01  # retain flag
    assert wire.mid_of(got[1][3]) == 7 and wire.mid_of(got[4][3]) == 9
    assert got[3][3] == b"x" * 300


def test_mqtt5_publish_properties_are_skipped() -> None:
    props = b"\x01\x01" + b"\x03" + wire.text("application/json") + b"\x26" + wire.text("k")
    props += wire.text("v")
    body = wire.text("t/1") + struct.pack("!H", 5) + wire.varint(len(props)) + props + b"{}"
    (packet,) = _read([wire.packet(0x32, body)], v5=True)
    assert packet[1:] == ("t/1", 5, b"{}")
    parsed, end = wire.properties(wire.varint(len(props)) + props, 0)
    assert parsed[0x01] == 1 and parsed[0x03] == b"application/json" and parsed[0x26] == b"v"
    assert end == len(props) + 1


@pytest.mark.parametrize(
    "data",
    [
        b"\x30\xff\xff\xff\xff\x01",  # a remaining length of five bytes
        wire.packet(0x30, b"\x00"),  # a PUBLISH without its topic
        wire.packet(0x32, wire.text("t")),  # QoS 1 without its message id
        wire.packet(0x30, b"\x00\x09ab"),  # a topic longer than the packet
    ],
)
def test_malformed_packets_are_refused(data: bytes) -> None:
    with pytest.raises(wire.MalformedPacket):
        wire.split(data, False)


def test_connect_and_subscribe_encode_what_the_config_says() -> None:
    v3 = wire.connect("id", 60, True, False, "user", "secret")
    assert v3[0] == 0x10 and b"MQTT\x04\xc2\x00\x3c" in v3 and v3.endswith(b"\x00\x06secret")
    v5 = wire.connect("id", 30, False, True, session_expiry=3600)
    assert b"MQTT\x05\x00\x00\x1e\x05\x11\x00\x00\x0e\x10" in v5
    sub = wire.subscribe(1, [("a/#", 1), ("b/+", 2)], True)
    assert sub[0] == 0x82 and sub.endswith(b"\x00\x03a/#\x01\x00\x03b/+\x02")
    assert wire.ack(wire.PUBREL, 258) == b"\x62\x02\x01\x02"
    assert wire.varint(16_384) == b"\x80\x80\x01" and wire.read_varint(b"\x80\x80\x01", 0) == (
        16_384,
        3,
    )
    assert wire.reason(5, False) == "Not authorized" and wire.reason(0x87, True) == (
        "Not authorized"
    )


def test_outbox_ids_wrap_around_and_skip_those_in_flight() -> None:
    async def main() -> None:
        box = Outbox()
        first = box.add([("t", b"a")], 1, False)
        assert first == [1]
        box._next = MAX_MID - 1
        mids = box.add([("t", b"b"), ("t", b"c"), ("t", b"d")], 1, False)
        assert mids == [MAX_MID, 2, 3]  # 1 is still unacknowledged
        waiter = box.at_most(1)
        box.done(MAX_MID)
        box.done(2)
        assert not waiter.done()
        box.released(3)
        assert box.items[3].released
        box.done(3)
        assert waiter.done() and list(box.items) == [1]
        box.done(99)  # an ack for nothing we sent: ignored
        assert box.take() == [("t", b"a")] and not len(box)
        with pytest.raises(ValueError, match="unacknowledged"):
            box.add([("t", b"")] * (MAX_MID + 1), 1, False)

    asyncio.run(main())
