"""Registers to values and back, against an independent writing-out of the four byte orders."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowengine.nodes.modbus.registers import INT_RANGE, decode, encode, scaled
from tests.nodes.modbus.device import wire_registers, wire_value

ORDERS = ("ABCD", "DCBA", "BADC", "CDAB")
NUMERIC = ("int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64")


@pytest.mark.parametrize(
    ("order", "registers"),
    [
        ("ABCD", [0x3FC0, 0x0000]),
        ("CDAB", [0x0000, 0x3FC0]),
        ("BADC", [0xC03F, 0x0000]),
        ("DCBA", [0x0000, 0xC03F]),
    ],
)
def test_float32_one_and_a_half_in_each_order(order: str, registers: list[int]) -> None:
    assert decode(registers, "float32", order) == 1.5
    assert encode(1.5, "float32", order, 1.0, 0.0, 1) == registers


def test_sixteen_bit_values_only_see_the_byte_swap() -> None:
    assert decode([0x1234], "uint16", "ABCD") == decode([0x1234], "uint16", "CDAB") == 0x1234
    assert decode([0x1234], "uint16", "BADC") == decode([0x1234], "uint16", "DCBA") == 0x3412
    assert decode([0xFFFE], "int16", "ABCD") == -2


def test_sixty_four_bit_word_order_reverses_all_four_registers() -> None:
    regs = [0x0102, 0x0304, 0x0506, 0x0708]
    assert decode(regs, "uint64", "ABCD") == 0x0102030405060708
    assert decode(regs, "uint64", "CDAB") == 0x0708050603040102
    assert decode(regs, "uint64", "BADC") == 0x0201040306050807
    assert decode(regs, "uint64", "DCBA") == 0x0807060504030201


def _values(dtype: str) -> st.SearchStrategy[int | float]:
    if dtype in INT_RANGE:
        low, high = INT_RANGE[dtype]
        return st.integers(low, high)
    width = 32 if dtype == "float32" else 64
    return st.floats(allow_nan=False, allow_infinity=False, width=width)


@st.composite
def typed_values(draw: st.DrawFn) -> tuple[str, str, int | float]:
    dtype = draw(st.sampled_from(NUMERIC))
    return dtype, draw(st.sampled_from(ORDERS)), draw(_values(dtype))


@given(typed_values())
def test_every_type_and_order_matches_the_reference(case: tuple[str, str, int | float]) -> None:
    dtype, order, value = case
    registers = wire_registers(value, dtype, order)
    assert decode(registers, dtype, order) == value
    assert encode(value, dtype, order, 1.0, 0.0, 1) == registers
    assert wire_value(registers, dtype, order) == value


def test_scale_and_offset_are_solved_for_the_raw_value_when_writing() -> None:
    assert scaled(1234, 0.1, -5.0) == pytest.approx(118.4)
    assert scaled(7, 1.0, 0.0) == 7 and isinstance(scaled(7, 1.0, 0.0), int)
    assert encode(118.4, "int16", "ABCD", 0.1, -5.0, 1) == [1234]


@pytest.mark.parametrize(
    ("value", "dtype", "message"),
    [
        (70000, "int16", "70000 does not fit int16 (-32768..32767)"),
        (-1, "uint16", "-1 does not fit uint16 (0..65535)"),
        (2**64, "uint64", "does not fit uint64"),
        (1e39, "float32", "does not fit float32"),
        (float("nan"), "float64", "is not a finite number"),
        (float("inf"), "int32", "is not a finite number"),
        ("twelve", "int32", "'twelve' is not a number"),
        (None, "int16", "None is not a number"),
    ],
)
def test_values_that_do_not_fit_are_refused(value: object, dtype: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        encode(value, dtype, "ABCD", 1.0, 0.0, 1)


def test_numeric_text_and_rounding() -> None:
    assert encode("41.6", "int16", "ABCD", 1.0, 0.0, 1) == [42]
    assert encode(" 7 ", "uint16", "ABCD", 1.0, 0.0, 1) == [7]
    assert encode(True, "uint16", "ABCD", 1.0, 0.0, 1) == [1]


def test_strings_two_characters_per_register_cut_at_nul() -> None:
    regs = encode("LINE3", "string", "ABCD", 1.0, 0.0, 4)
    assert regs == [0x4C49, 0x4E45, 0x3300, 0x0000]
    assert decode(regs, "string", "ABCD") == "LINE3"
    swapped = encode("LINE3", "string", "BADC", 1.0, 0.0, 4)
    assert swapped == [0x494C, 0x454E, 0x0033, 0x0000]
    assert decode(swapped, "string", "BADC") == "LINE3"
    assert decode(swapped, "string", "DCBA") == "LINE3"  # word order does not apply
    with pytest.raises(ValueError, match="is 9 bytes; the field holds 8"):
        encode("TOO LONG!", "string", "ABCD", 1.0, 0.0, 4)


def test_poison_string_bytes_decode_without_failing() -> None:
    assert decode([0xFFFE, 0x4142], "string", "ABCD") == "\ufffd\ufffdAB"


@pytest.mark.parametrize("word", ["true", "ON", "1", "yes", 1, 1.0, True])
def test_coil_truths(word: object) -> None:
    assert encode(word, "bool", "ABCD", 1.0, 0.0, 1) is True


@pytest.mark.parametrize("word", ["maybe", 2, 0.5, None, float("nan")])
def test_coil_non_bools_are_refused(word: object) -> None:
    with pytest.raises(ValueError, match="is not a bool"):
        encode(word, "bool", "ABCD", 1.0, 0.0, 1)


def test_non_finite_floats_decode_as_they_are() -> None:
    nan = wire_registers(float("nan"), "float32", "CDAB")
    assert math.isnan(decode(nan, "float32", "CDAB"))
    inf = wire_registers(float("-inf"), "float64", "DCBA")
    assert decode(inf, "float64", "DCBA") == float("-inf")
