"""Request planning: fewest requests within the protocol's limits, checked against brute force."""

from __future__ import annotations

from functools import cache
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowengine.nodes.modbus.config import ModbusConfig
from flowengine.nodes.modbus.plan import Span, pack, plan_requests


def _feasible(items: list[tuple[int, int]], max_gap: int, limit: int) -> bool:
    """One request can read these consecutive (sorted, disjoint) items."""
    span = items[-1][0] + items[-1][1] - items[0][0]
    gaps = all(b[0] - (a[0] + a[1]) <= max_gap for a, b in pairwise(items))
    return span <= limit and gaps


def _fewest(items: list[tuple[int, int]], max_gap: int, limit: int) -> int:
    """The true minimum number of requests, by dynamic programming over all splits."""

    @cache
    def best(i: int) -> int:
        if i == len(items):
            return 0
        return min(
            1 + best(j)
            for j in range(i + 1, len(items) + 1)
            if _feasible(items[i:j], max_gap, limit)
        )

    return best(0)


@st.composite
def layouts(draw: st.DrawFn) -> tuple[list[tuple[int, int]], int, int]:
    """Disjoint items (start, size) in random order, a gap allowance and a request limit."""
    limit = draw(st.integers(4, 125))
    sizes = draw(st.lists(st.integers(1, min(limit, 8)), min_size=1, max_size=12))
    gaps = draw(st.lists(st.integers(0, 30), min_size=len(sizes), max_size=len(sizes)))
    items, at = [], draw(st.integers(0, 100))
    for size, gap in zip(sizes, gaps, strict=True):
        at += gap
        items.append((at, size))
        at += size
    shuffled = draw(st.permutations(items))
    return list(shuffled), draw(st.integers(0, 20)), limit


@settings(max_examples=300, deadline=None)
@given(layouts())
def test_packing_is_valid_and_minimal(case: tuple[list[tuple[int, int]], int, int]) -> None:
    items, max_gap, limit = case
    spans = pack(items, max_gap, limit)
    covered = sorted(i for s in spans for i in s.members)
    assert covered == list(range(len(items)))  # every item exactly once
    for span in spans:
        members = sorted((items[i] for i in span.members), key=lambda it: it[0])
        assert span.count <= limit
        assert span.start == members[0][0]
        assert span.start + span.count == members[-1][0] + members[-1][1]
        assert _feasible(members, max_gap, limit)
    assert len(spans) == _fewest(sorted(items), max_gap, limit)


def test_gap_filling_and_its_limit() -> None:
    items = [(0, 2), (4, 1), (20, 2), (150, 4)]
    assert pack(items, 10, 125) == [Span(0, 5, (0, 1)), Span(20, 2, (2,)), Span(150, 4, (3,))]
    assert pack(items, 0, 125) == [
        Span(0, 2, (0,)),
        Span(4, 1, (1,)),
        Span(20, 2, (2,)),
        Span(150, 4, (3,)),
    ]
    assert len(pack(items, 200, 125)) == 2  # 0..153 would be more than 125 registers
    assert pack(items, 200, 200) == [Span(0, 154, (0, 1, 2, 3))]


def test_adjacent_fields_join_even_without_gap_allowance() -> None:
    assert pack([(10, 2), (12, 2), (14, 4)], 0, 125) == [Span(10, 8, (0, 1, 2))]


def test_an_item_longer_than_a_request_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit a request of 125"):
        pack([(0, 126)], 0, 125)


def _config(fields: list[dict[str, Any]], **kw: Any) -> ModbusConfig:
    return ModbusConfig.model_validate(
        {"host": "plc", "devices": [{"device_id": 1, "fields": fields}], **kw}
    )


def test_requests_per_device_and_kind_within_the_protocol_limits() -> None:
    registers = [{"name": f"r{i}", "address": 2 * i, "type": "float32"} for i in range(100)]
    coils = [{"name": f"c{i}", "register": "coil", "address": i} for i in range(2500)]
    requests = plan_requests(_config(registers + coils))
    shape = [(r.kind, r.start, r.count, len(r.fields)) for r in requests]
    assert shape == [
        ("coil", 0, 2000, 2000),
        ("coil", 2000, 500, 500),
        ("holding", 0, 124, 62),  # a float32 is never split across two requests
        ("holding", 124, 76, 38),
    ]


def test_bit_gaps_count_sixteen_coils_per_register_of_max_gap() -> None:
    coils = [
        {"name": "a", "register": "coil", "address": 0},
        {"name": "b", "register": "coil", "address": 160},
        {"name": "c", "register": "coil", "address": 400},
    ]
    requests = plan_requests(_config(coils, max_gap=10))
    assert [(r.start, r.count) for r in requests] == [(0, 161), (400, 1)]


def test_max_registers_for_devices_that_take_fewer() -> None:
    fields = [{"name": f"r{i}", "address": i} for i in range(40)]
    requests = plan_requests(_config(fields, max_registers=16))
    assert [(r.start, r.count) for r in requests] == [(0, 16), (16, 16), (32, 8)]
