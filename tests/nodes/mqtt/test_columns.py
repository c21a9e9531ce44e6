"""The column-wise paths give what the per-message paths give.

``mqtt_in``: a batch parsed at once (``Parser.add_many``) is the same frame, row for row and
dtype for dtype, as the same messages parsed one by one (``Parser.add``), and a batch the
column-wise path cannot take falls back without losing or reordering anything. ``mqtt_out``:
the vectorised encoding gives the same topics and the same JSON as one ``plain`` record per
row did.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowengine.nodes.mqtt import encode
from flowengine.nodes.mqtt.config import MqttParsing
from flowengine.nodes.mqtt.parse import Parser

RECEIVED = 1_800_000_000 * 10**9


def _messages(payloads: list[Any], topic: str = "plant/line3/temp") -> list[tuple[str, bytes, int]]:
    out = []
    for i, p in enumerate(payloads):
        data = p if isinstance(p, bytes) else json.dumps(p).encode()
        out.append((topic if i % 3 else f"{topic}/x", data, RECEIVED + i))
    return out


def _both(payloads: list[Any], **cfg: Any) -> tuple[Any, Any, Any, list[int] | None]:
    """(column-wise frame, per-message frame, per-message errors, add_many's counts)."""
    messages = _messages(payloads)
    fast = Parser(MqttParsing(**cfg), "src")
    counts = fast.add_many(messages)
    slow = Parser(MqttParsing(**cfg), "src")
    for message in messages:
        slow.add(*message)
    return fast.take_rows(), slow.take_rows(), slow.take_bad(), counts


CASES = {
    "bench payloads": [
        {"seq": i, "sensor": f"s{i % 10}", "value": i * 1.5, "ts": 1.7e9 + i, "pad": "xx"}
        for i in range(25)
    ],
    "ints, receive time, topic as sensor": [{"value": i} for i in range(5)],
    "epoch seconds and ms": [{"value": 1, "timestamp": 1_700_000_000 + i} for i in range(3)]
    + [{"value": 2, "timestamp": 1_700_000_000_123 + i} for i in range(3)],
    "float epochs": [{"value": 1.0, "timestamp": 1_700_000_000.25 + i} for i in range(4)],
    "iso strings": [
        {"value": 1, "timestamp": "2026-01-02T03:04:05+01:00"},
        {"value": 2, "timestamp": "2026-01-02T03:04:05.123456789Z"},
        {"value": 3, "timestamp": "2026-01-02 03:04:05"},
    ],
    "missing, nested and clashing fields": [
        {"value": 1, "line": "3", "meta": {"a": 1}, "quality": "x", "source": "y"},
        {"value": 2, "extra": [1, 2], "line": None},
        {"value": 3, "only_nested": {"b": 2}, "flag": True},
    ],
    "non-finite kept bad": [{"value": 1e308 * 10}, {"value": 2}],
    "sensor field sometimes absent": [
        {"sensor": "a", "value": 1},
        {"value": 2},
        {"sensor": 7, "value": 3},
    ],
    "keys in another order": [{"value": 1, "a": 1, "b": 2}, {"b": 3, "value": 2, "a": 4}],
}


@pytest.mark.parametrize("name", list(CASES))
def test_column_wise_frame_equals_per_message_frame(name: str) -> None:
    fast, slow, bad, counts = _both(CASES[name])
    assert bad is None
    assert counts is None  # the column-wise path took it
    pd.testing.assert_frame_equal(fast, slow)


@pytest.mark.parametrize(
    ("payloads", "cfg"),
    [
        ([{"value": 1}, 7, {"value": 2}], {}),  # a bare number: per message
        ([{"value": "3.5"}, {"value": 1}], {}),  # a numeric string
        ([{"value": 1}, b"{oops", {"value": 2}], {}),  # unparseable in the middle
        ([{"value": 1, "timestamp": None}], {}),  # null time: receive time, quality bad
        ([{"value": 1, "timestamp": 1_700_000_000}, {"value": 2}], {}),  # time sometimes
        ([{"value": 1, "timestamp": "yesterday"}], {}),
        ([{"value": 1, "timestamp": 17e8}], {"timestamp_format": "iso"}),
        ([b'{"value": NaN}', {"value": 1}], {"non_finite": "error"}),
        ([{"temp": 1.5, "pressure": 2}], {}),  # a map of readings
        ([[{"value": 1}, {"value": 2}], {"value": 3}], {}),  # an array
        ([{"value": True}], {}),
        ([{"value": 1, "timestamp": 2**62}], {}),  # beyond the nanosecond range
    ],
)
def test_what_the_column_path_does_not_take_goes_per_message(
    payloads: list[Any], cfg: dict[str, Any]
) -> None:
    fast, slow, bad, counts = _both(payloads, **cfg)
    assert counts is not None and len(counts) == len(payloads)
    if slow is None:
        assert fast is None
    else:
        pd.testing.assert_frame_equal(fast, slow)
    assert sum(counts) == (0 if slow is None else len(slow))
    assert sum(1 for c in counts if c == 0) == (0 if bad is None else len(bad))


def test_batches_split_and_mixed_paths_keep_their_order() -> None:
    parser = Parser(MqttParsing(), "src")
    assert parser.add_many(_messages([{"value": i} for i in range(5)])) is None
    assert parser.add_many(_messages([7, {"value": 8}])) == [1, 1]  # per message
    assert parser.add_many(_messages([{"value": i} for i in range(9, 12)])) is None
    assert parser.pending == 10
    first = parser.take_rows(3)
    rest = parser.take_rows()
    assert first is not None and rest is not None and parser.take_rows() is None
    values = first["value"].tolist() + rest["value"].tolist()
    assert values == [0.0, 1.0, 2.0, 3.0, 4.0, 7.0, 8.0, 9.0, 10.0, 11.0]
    assert list(rest.index) == list(range(7))


readings = st.fixed_dictionaries(
    {"value": st.one_of(st.integers(-(2**60), 2**60), st.floats(allow_nan=False))},
    optional={
        "sensor": st.text(max_size=5),
        "timestamp": st.integers(0, 4_000_000_000_000),
        "line": st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=4)),
        "nested": st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    },
)


@settings(max_examples=200, deadline=None)
@given(st.lists(readings, min_size=1, max_size=12), st.sampled_from(["bad", "keep", "error"]))
def test_fuzz_both_paths_agree(payloads: list[dict[str, Any]], policy: str) -> None:
    fast, slow, bad, counts = _both(payloads, non_finite=policy)
    if slow is None or fast is None:
        assert fast is None and slow is None
    else:
        pd.testing.assert_frame_equal(fast, slow)
    assert (0 if bad is None else len(bad)) == (0 if counts is None else counts.count(0))


# ---- mqtt_out's encoding ---------------------------------------------------------------------
def _old(frame: pd.DataFrame, template: str, mode: str) -> list[tuple[str, Any]]:
    return [(t, json.loads(p)) for t, p in encode._texts_per_row(frame, template, mode)]


def _new(frame: pd.DataFrame, template: str, mode: str) -> list[tuple[str, Any]]:
    return [(t, json.loads(p)) for t, p in encode.texts(frame, template, mode)]


def _frame() -> pd.DataFrame:
    utc = pd.to_datetime(
        [1_700_000_000_000_000_000, 1_700_000_000_123_456_000, 1_700_000_000_123_456_789, None],
        utc=True,
    )
    return pd.DataFrame(
        {
            "timestamp": utc,
            "naive": utc.tz_localize(None),
            "berlin": utc.tz_convert("Europe/Berlin"),
            "sensor": ["a", "b", None, "d"],
            "value": [1.5, np.nan, -0.0, 1e20],
            "count": np.array([1, 2, 3, 4], dtype=np.int64),
            "flag": [True, False, True, False],
            "nullable": pd.array([1, None, 3, 4], dtype="Int64"),
            "cat": pd.Categorical(["x", "y", "x", "y"]),
            "obj": [Decimal("1.5"), {"k": [1, 2]}, np.float64(2.5), pd.Timestamp("2026-01-01")],
            "f32": np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32),
            7: ["int", "label", "is", "kept"],
        }
    )


@pytest.mark.parametrize("mode", ["rows", "batch"])
@pytest.mark.parametrize("template", ["plain/topic", "out/{sensor}/{count}", "by/{flag}/{value}"])
def test_vectorised_encoding_equals_the_per_row_encoding(template: str, mode: str) -> None:
    frame = _frame()
    assert _new(frame, template, mode) == _old(frame, template, mode)


def test_timestamps_are_written_as_isoformat_with_the_digits_they_need() -> None:
    (_, row), *_ = _new(_frame(), "t", "rows")
    assert row["timestamp"] == "2023-11-14T22:13:20+00:00"
    texts = [p["timestamp"] for _, p in _new(_frame(), "t", "rows")]
    assert texts[1:] == [
        "2023-11-14T22:13:20.123456+00:00",
        "2023-11-14T22:13:20.123456789+00:00",
        None,
    ]
    assert [p["naive"] for _, p in _new(_frame(), "t", "rows")][1] == "2023-11-14T22:13:20.123456"


def test_infinity_keeps_the_per_row_encoding_and_a_missing_column_is_named() -> None:
    frame = pd.DataFrame({"value": [1.0, float("inf")], "when": [dt.date(2026, 1, 1)] * 2})
    (_, payload), _ = encode.texts(frame, "t", "rows")
    assert payload == b'{"value":1.0,"when":"2026-01-01"}'
    assert encode.texts(frame, "t", "rows")[1][1] == b'{"value":Infinity,"when":"2026-01-01"}'
    with pytest.raises(KeyError, match="topic template column 'line' is not in the batch"):
        encode.texts(frame, "a/{line}", "rows")
    assert encode.texts(frame.iloc[:0], "a/{line}", "rows") == []


# ---- from lists: what mqtt_in hands on, written without a frame --------------------------
@settings(max_examples=200, deadline=None)
@given(
    st.lists(readings, min_size=1, max_size=12),
    st.sampled_from(["plain/topic", "out/{sensor}", "by/{line}/{value}"]),
    st.sampled_from(["rows", "batch"]),
)
def test_lists_are_written_as_their_frame_is(
    payloads: list[dict[str, Any]], template: str, mode: str
) -> None:
    parser = Parser(MqttParsing(non_finite="keep"), "src")
    parser.add_many(_messages(payloads))
    rows = parser.take()
    if rows is None or isinstance(rows, pd.DataFrame):
        return  # the per-message path: a frame already
    frame = rows.frame()
    try:
        expected = encode.texts(frame, template, mode)
    except KeyError:
        with pytest.raises(KeyError):
            encode.texts_of_lists(rows, template, mode)
        return
    got = encode.texts_of_lists(rows, template, mode)
    assert got is None or got == expected  # byte for byte; None: pandas decides


def test_lists_that_need_pandas_reading_are_left_to_the_frame() -> None:
    from flowengine.lists import Lists

    mixed = Lists({"value": [1, 2.5]}, 2)  # pandas makes 1.0 of the 1
    assert encode.texts_of_lists(mixed, "t", "rows") is None
    assert encode.texts(mixed.frame(), "t", "rows")[0][1] == b'{"value":1.0}'
    infinite = Lists({"value": [1.0, float("inf")]}, 2)
    assert encode.texts_of_lists(infinite, "t", "rows") is None
    plain = Lists({"value": [1.0, float("nan")], "n": [1, 2], "ok": [True, False]}, 2)
    assert encode.texts_of_lists(plain, "t", "rows") == encode.texts(plain.frame(), "t", "rows")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-(2**63) + 1, 2**63 - 1), min_size=1, max_size=encode.FEW))
def test_few_timestamps_are_written_as_numpy_writes_many(stamps: list[int]) -> None:
    few = encode.iso_ns(np.array(stamps, dtype=np.int64), "+00:00")
    padded = stamps * (encode.FEW // len(stamps) + 1)  # more than FEW: numpy's way
    many = encode.iso_ns(np.array(padded, dtype=np.int64), "+00:00")
    assert few == many[: len(stamps)]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(-(2**62), 2**62),
    st.lists(st.integers(-2_000_000_000, 2_000_000_000), min_size=1, max_size=encode.FEW),
)
def test_timestamps_close_together_are_written_as_numpy_writes_them(
    base: int, offsets: list[int]
) -> None:
    """Neighbours share their whole second, whose text is reused: the fractions still differ."""
    stamps = [base + o for o in offsets]
    few = [encode.iso_ns(np.array([s], dtype=np.int64), "+00:00")[0] for s in stamps]
    padded = stamps * (encode.FEW // len(stamps) + 1)
    many = encode.iso_ns(np.array(padded, dtype=np.int64), "+00:00")
    assert few == many[: len(stamps)]
