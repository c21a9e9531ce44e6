"""MQTT 3.1.1 and 5 packets as bytes, without I/O (what :mod:`~flowengine.nodes.mqtt.link`
sends and reads on the event loop).

Only what a client needs: CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH and its acknowledgements
(QoS 0-2), PINGREQ/PINGRESP and DISCONNECT. MQTT 5 properties are written where the nodes use
them (session expiry) and otherwise skipped when read, except the few a client must honour
(receive maximum, server keep alive, reason string). Reading is one pass over a chunk of the
stream that splits out every complete packet, so a 256 KiB read of a thousand small PUBLISH
packets costs well under a microsecond per message; :func:`publishes` encodes a whole batch
into one buffer, written with one system call.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 12, 13, 14, 15

PING = b"\xc0\x00"
BYE = b"\xe0\x00"

#: A packet read: (first byte, topic, message id, body). PUBLISH: its topic, id (0 at QoS 0)
#: and payload; any other packet: "" and 0 and its whole variable header and payload.
Packet = tuple[int, str, int, bytes]

#: MQTT 3.1.1 CONNACK return codes, named as MQTT 5 reason codes are below.
V3_REFUSED = {
    1: "Unsupported protocol version",
    2: "Client identifier not valid",
    3: "Server unavailable",
    4: "Bad user name or password",
    5: "Not authorized",
}

#: MQTT 5 reason codes a broker refuses or disconnects with.
REASONS = {
    0x80: "Unspecified error",
    0x81: "Malformed Packet",
    0x82: "Protocol Error",
    0x83: "Implementation specific error",
    0x84: "Unsupported Protocol Version",
    0x85: "Client Identifier not valid",
    0x86: "Bad User Name or Password",
    0x87: "Not authorized",
    0x88: "Server unavailable",
    0x89: "Server busy",
    0x8A: "Banned",
    0x8B: "Server shutting down",
    0x8C: "Bad authentication method",
    0x8D: "Keep alive timeout",
    0x8E: "Session taken over",
    0x8F: "Topic Filter invalid",
    0x90: "Topic Name invalid",
    0x93: "Receive Maximum exceeded",
    0x94: "Topic Alias invalid",
    0x95: "Packet too large",
    0x96: "Message rate too high",
    0x97: "Quota exceeded",
    0x98: "Administrative action",
    0x99: "Payload format invalid",
    0x9A: "Retain not supported",
    0x9B: "QoS not supported",
    0x9C: "Use another server",
    0x9D: "Server moved",
    0x9E: "Shared Subscriptions not supported",
    0x9F: "Connection rate exceeded",
    0xA1: "Subscription Identifiers not supported",
    0xA2: "Wildcard Subscriptions not supported",
}

#: MQTT 5 property identifiers by value type: 1/2/4-byte integers, variable byte integers,
#: and length-prefixed strings or binary data (a user property is two of those).
_PROP_SIZE = {
    **dict.fromkeys((0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A), 1),
    **dict.fromkeys((0x13, 0x21, 0x22, 0x23), 2),
    **dict.fromkeys((0x02, 0x11, 0x18, 0x27), 4),
}
_PROP_VARINT = {0x0B}
_PROP_STRING = {0x03, 0x08, 0x09, 0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F}
_PROP_PAIR = {0x26}


class MalformedPacket(ValueError):
    """The broker sent bytes that are not MQTT: the connection must be closed."""


def reason(code: int, v5: bool) -> str:
    """The name of a CONNACK return code (3.1.1) or reason code (5)."""
    names = REASONS if v5 else V3_REFUSED
    return names.get(code, "Unspecified error" if code >= 0x80 else f"code {code}")


def varint(n: int) -> bytes:
    """MQTT's variable byte integer (remaining lengths, property lengths)."""
    if n < 128:
        return bytes((n,))
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | 0x80 if n else digit)
        if not n:
            return bytes(out)


def text(value: str | bytes) -> bytes:
    """A length-prefixed UTF-8 string (or binary data)."""
    data = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(data)) + data


def packet(first: int, body: bytes) -> bytes:
    """Fixed header (first byte, remaining length) and body."""
    return bytes((first,)) + varint(len(body)) + body


def connect(
    client_id: str,
    keep_alive: int,
    clean: bool,
    v5: bool,
    username: str | None = None,
    password: str | None = None,
    session_expiry: int = 0,
) -> bytes:
    """CONNECT; with MQTT 5 the session expiry (0 with a clean start) as its one property."""
    flags = 0x02 if clean else 0
    if username is not None:
        flags |= 0x80
        if password is not None:
            flags |= 0x40
    body = text("MQTT") + bytes((5 if v5 else 4, flags)) + struct.pack("!H", keep_alive)
    if v5:
        props = b"\x11" + struct.pack("!I", 0 if clean else session_expiry)
        body += varint(len(props)) + props
    body += text(client_id)
    if username is not None:
        body += text(username)
        if password is not None:
            body += text(password)
    return packet(CONNECT << 4, body)


def subscribe(mid: int, filters: Iterable[tuple[str, int]], v5: bool) -> bytes:
    """SUBSCRIBE to ``(filter, qos)`` pairs (MQTT 5: no options besides the QoS)."""
    body = struct.pack("!H", mid) + (b"\x00" if v5 else b"")
    for topic, qos in filters:
        body += text(topic) + bytes((qos,))
    return packet((SUBSCRIBE << 4) | 0x02, body)


def ack(kind: int, mid: int) -> bytes:
    """PUBACK, PUBREC, PUBREL or PUBCOMP for ``mid`` (success: no reason code needed in 5)."""
    return bytes(((kind << 4) | (0x02 if kind == PUBREL else 0), 2, mid >> 8, mid & 0xFF))


def publishes(
    messages: Sequence[tuple[str, bytes]],
    qos: int,
    retain: bool,
    mids: Sequence[int] | None,
    v5: bool,
    dup: bool = False,
) -> bytearray:
    """PUBLISH packets for ``(topic, payload)`` pairs, one after the other in one buffer;
    ``mids`` gives each its message id at QoS 1/2."""
    first = (PUBLISH << 4) | (qos << 1) | (0x01 if retain else 0) | (0x08 if dup else 0)
    props = b"\x00" if v5 else b""
    heads: dict[str, bytes] = {}  # topic -> its length-prefixed bytes (+ empty properties)
    out = bytearray()
    for i, (topic, payload) in enumerate(messages):
        head = heads.get(topic)
        if head is None:
            head = heads[topic] = text(topic)
        size = len(head) + len(props) + len(payload) + (2 if qos else 0)
        if size < 128:
            out += bytes((first, size))
        elif size < 16384:
            out += bytes((first, (size & 0x7F) | 0x80, size >> 7))
        else:
            out.append(first)
            out += varint(size)
        out += head
        if qos:
            assert mids is not None
            mid = mids[i]
            out += bytes((mid >> 8, mid & 0xFF))
        out += props
        out += payload
    return out


def split(buf: bytes, v5: bool) -> tuple[list[Packet], int]:
    """Every complete packet at the start of ``buf`` and how many bytes they took; the rest is
    the start of a packet still arriving. Long because it is the receive hot path: one loop,
    no calls per packet but the slices."""
    packets: list[Packet] = []
    pos, end = 0, len(buf)
    while pos + 2 <= end:
        first = buf[pos]
        size, shift, i = 0, 0, pos + 1
        while True:
            if i >= end:
                return packets, pos
            byte = buf[i]
            i += 1
            size |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 21:
                raise MalformedPacket("remaining length longer than 4 bytes")
        stop = i + size
        if stop > end:
            break
        if first >> 4 == PUBLISH:
            if size < 2:
                raise MalformedPacket("PUBLISH without a topic")
            head = i + 2 + ((buf[i] << 8) | buf[i + 1])
            topic = buf[i + 2 : head].decode("utf-8", "replace")
            mid = 0
            if first & 0x06:
                if head + 2 > stop:
                    raise MalformedPacket("PUBLISH without a message id")
                mid = (buf[head] << 8) | buf[head + 1]
                head += 2
            if v5:
                length, head = read_varint(buf, head, stop)
                head += length
            if head > stop:
                raise MalformedPacket("PUBLISH header longer than the packet")
            packets.append((first, topic, mid, buf[head:stop]))
        else:
            packets.append((first, "", 0, buf[i:stop]))
        pos = stop
    return packets, pos


def read_varint(buf: bytes, pos: int, end: int | None = None) -> tuple[int, int]:
    """A variable byte integer at ``pos`` (before ``end``): its value and the position after."""
    value, shift = 0, 0
    end = len(buf) if end is None else end
    while True:
        if pos >= end or shift > 21:
            raise MalformedPacket("bad variable byte integer")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def properties(buf: bytes, pos: int) -> tuple[dict[int, int | bytes], int]:
    """MQTT 5 properties at ``pos`` (integers as ints, strings as bytes; a user property
    keeps its last value) and the position after them."""
    length, pos = read_varint(buf, pos)
    stop = pos + length
    props: dict[int, int | bytes] = {}
    while pos < stop:
        ident = buf[pos]
        pos += 1
        if ident in _PROP_SIZE:
            width = _PROP_SIZE[ident]
            props[ident] = int.from_bytes(buf[pos : pos + width], "big")
            pos += width
        elif ident in _PROP_VARINT:
            props[ident], pos = read_varint(buf, pos)
        elif ident in _PROP_STRING or ident in _PROP_PAIR:
            for _ in range(2 if ident in _PROP_PAIR else 1):
                width = (buf[pos] << 8) | buf[pos + 1]
                props[ident] = bytes(buf[pos + 2 : pos + 2 + width])
                pos += 2 + width
        else:
            raise MalformedPacket(f"unknown property {ident:#x}")
    if pos != stop:
        raise MalformedPacket("properties overrun their length")
    return props, stop


def mid_of(body: bytes) -> int:
    """The message id at the start of an acknowledgement or SUBACK."""
    if len(body) < 2:
        raise MalformedPacket("packet without a message id")
    return (body[0] << 8) | body[1]
