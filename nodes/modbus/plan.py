"""Request planning: a device's fields packed into as few read requests as the protocol allows.

:func:`pack` is the pure core (unit-tested with hypothesis against a brute-force optimum):
fields sorted by address join one request while the request stays within ``limit`` addresses
and the unused addresses between two neighbours are at most ``max_gap``. Reading a few unused
registers costs far less than another round trip (a request on a serial gateway takes tens of
milliseconds, a register two bytes). Taking each field into the current request while it fits
gives the fewest requests: a request that can end later never forces one more afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flowengine.nodes.modbus.config import Device, Field, ModbusConfig
from flowengine.nodes.modbus.registers import BIT_KINDS, Kind

KINDS: tuple[Kind, ...] = ("coil", "discrete", "holding", "input")


@dataclass(frozen=True)
class Span:
    """One read: ``count`` addresses from ``start``, covering the items at ``members``."""

    start: int
    count: int
    members: tuple[int, ...]


def pack(items: Sequence[tuple[int, int]], max_gap: int, limit: int) -> list[Span]:
    """Spans covering every ``(start, size)`` item (indexes into ``items``), in address order.

    No span is longer than ``limit``; two neighbours in a span leave at most ``max_gap``
    addresses unread between them. An item longer than ``limit`` is a ValueError (the config
    refuses such fields first). Overlapping items share a span.
    """
    order = sorted(range(len(items)), key=lambda i: items[i][0])
    spans: list[Span] = []
    start = end = -1  # end: one past the current span's last address
    members: list[int] = []
    for i in order:
        first, size = items[i]
        if size > limit:
            raise ValueError(f"an item of {size} addresses does not fit a request of {limit}")
        last = first + size
        if members and first - end <= max_gap and max(end, last) - start <= limit:
            end = max(end, last)
            members.append(i)
            continue
        if members:
            spans.append(Span(start, end - start, tuple(members)))
        start, end, members = first, last, [i]
    if members:
        spans.append(Span(start, end - start, tuple(members)))
    return spans


@dataclass(frozen=True)
class Request:
    """One read request of the poll: a device, a register kind and the fields it covers."""

    device: Device
    kind: Kind
    start: int
    count: int
    fields: tuple[Field, ...]

    @property
    def label(self) -> str:
        """How logs and error rows name the block: ``holding 0..9 on device 1``."""
        last = self.start + self.count - 1
        return f"{self.kind} {self.start}..{last} on device {self.device.device_id}"


def plan_requests(cfg: ModbusConfig) -> list[Request]:
    """Every read of one poll, device by device, coils first and input registers last."""
    requests: list[Request] = []
    for device in cfg.devices:
        for kind in KINDS:
            fields = [f for f in device.fields if f.kind == kind]
            if not fields:
                continue
            bits = kind in BIT_KINDS
            gap = cfg.max_gap * 16 if bits else cfg.max_gap
            limit = cfg.max_bits if bits else cfg.max_registers
            for span in pack([(f.address, f.size) for f in fields], gap, limit):
                members = tuple(fields[i] for i in span.members)
                requests.append(Request(device, kind, span.start, span.count, members))
    return requests
