"""Payloads, message ids and partitions, without a server: what must stay stable does."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from flowengine.nodes.nats.codec import (
    ARROW,
    CONTENT_TYPE,
    JSON,
    PayloadError,
    decode,
    decode_piece,
    encode,
    join,
    msg_id,
    pieces,
)
from flowengine.nodes.nats.partition import key_text, mark, marked, partition_of, split


def long_frame(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2026-03-01", periods=n, freq="100ms", tz="UTC"),
            "sensor": [f"line3.s{i % 7}" for i in range(n)],
            "value": np.linspace(0, 1, n),
            "quality": "good",
            "source": "sim",
            "line": [i % 5 for i in range(n)],
        }
    )


@pytest.mark.parametrize("rows", [1, 1000])
def test_arrow_round_trip_keeps_values_and_types(rows: int) -> None:
    frame = long_frame(rows)
    back = decode(encode(frame, "arrow"), {CONTENT_TYPE: ARROW})
    assert str(back["timestamp"].dtype) == "datetime64[ns, UTC]"  # the one canonical unit
    expected = frame.assign(timestamp=frame["timestamp"].dt.as_unit("ns"))
    assert back.dtypes.to_dict() == expected.dtypes.to_dict()
    pd.testing.assert_frame_equal(back, expected)


def test_json_rows_round_trip_with_utc_timestamps() -> None:
    frame = long_frame(3)
    payload = encode(frame, "json")
    rows = json.loads(payload)
    assert rows[0]["timestamp"].startswith("2026-03-01T00:00:00") and rows[0]["line"] == 0
    back = decode(payload, {CONTENT_TYPE: JSON})
    assert str(back["timestamp"].dt.tz) == "UTC"
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)


def test_payloads_without_a_header_are_recognised() -> None:
    assert len(decode(encode(long_frame(2), "arrow"), None)) == 2
    one = decode(b'{"sensor": "t1", "value": 1.5, "timestamp": 1772366400}', None)
    assert one["timestamp"][0] == pd.Timestamp("2026-03-01T12:00:00Z")


@pytest.mark.parametrize(
    ("payload", "headers", "message"),
    [
        (b"\xff\xff\xff\xffgarbage", {CONTENT_TYPE: ARROW}, "not an Arrow IPC stream"),
        (b"[" * 5000, None, "not JSON"),
        (b"[1, 2]", None, "array of objects"),
        (b'[{"timestamp": "yesterday"}]', None, "unreadable timestamp"),
        (b"x", {CONTENT_TYPE: "text/csv"}, "unknown Content-Type 'text/csv'"),
    ],
)
def test_poison_payloads_raise_payload_error(
    payload: bytes, headers: dict[str, str] | None, message: str
) -> None:
    with pytest.raises(PayloadError, match=message):
        decode(payload, headers)


def test_a_fetch_of_many_payloads_joins_in_order_as_per_message_decoding_did() -> None:
    """Arrow runs are concatenated as Arrow (one conversion) with JSON rows in between kept in
    place; a column all null in one batch and float in the next comes out float."""
    t0 = pd.Timestamp("2026-03-02T00:00:00Z")
    frames = [
        pd.DataFrame({"timestamp": [t0], "line": ["L1"], "value": [None]}),
        pd.DataFrame({"timestamp": [t0, t0], "line": ["L2", "L3"], "value": [1.5, 2.5]}),
        pd.DataFrame({"timestamp": [t0], "line": ["L4"], "value": [3.5]}),
        pd.DataFrame({"timestamp": [t0], "line": ["L5"], "value": [4.5]}),
    ]
    payloads = [encode(frames[0], "arrow"), encode(frames[1], "arrow")]
    payloads += [encode(frames[2], "json"), encode(frames[3], "arrow", "zstd")]
    empty = encode(frames[1].iloc[:0], "arrow")
    pieces = [decode_piece(p, None) for p in [*payloads[:2], empty, *payloads[2:]]]
    joined = join(pieces)
    assert joined is not None
    assert joined["line"].tolist() == ["L1", "L2", "L3", "L4", "L5"]
    assert joined["value"].dtype == np.float64
    assert np.isnan(joined["value"][0]) and joined["value"].tolist()[1:] == [1.5, 2.5, 3.5, 4.5]
    assert str(joined["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert join([empty_piece for empty_piece in [decode_piece(empty, None)]]) is None


def test_a_column_arrow_cannot_type_is_the_batchs_error() -> None:
    with pytest.raises(PayloadError, match="cannot encode the batch as Arrow"):
        encode(pd.DataFrame({"v": [1.5, "text", b"\x00"]}), "arrow")


def test_the_same_rows_give_the_same_id_after_a_journal_round_trip() -> None:
    """A batch replayed from a journal (Arrow with pandas metadata, other units) is re-sent
    with the same Nats-Msg-Id, so JetStream drops it."""
    frame = long_frame(100)
    table = pa.Table.from_pandas(frame.assign(timestamp=frame["timestamp"].dt.as_unit("us")))
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    replayed = pa.ipc.open_stream(sink.getvalue()).read_all().to_pandas()
    for fmt in ("arrow", "json"):
        first, again = encode(frame, fmt), encode(replayed, fmt)  # type: ignore[arg-type]
        assert msg_id("s", first) == msg_id("s", again)
    assert msg_id("a", first) != msg_id("b", first)  # the subject is part of it
    assert msg_id("s", encode(frame.iloc[:99], "arrow")) != msg_id("s", encode(frame, "arrow"))


def test_compression_auto_compresses_big_batches_only() -> None:
    small, big = long_frame(1), long_frame(1000)
    assert len(encode(small, "arrow", "auto")) == len(encode(small, "arrow", "none"))
    assert len(encode(big, "arrow", "auto")) < len(encode(big, "arrow", "none")) / 3


def test_a_batch_over_max_payload_is_split_deterministically() -> None:
    frame = long_frame(5000)
    parts = pieces(frame, "arrow", "none", 64_000)
    assert len(parts) > 1 and all(len(p) <= 64_000 for p in parts)
    assert parts == pieces(frame, "arrow", "none", 64_000)
    back = pd.concat([decode(p, None) for p in parts], ignore_index=True)
    pd.testing.assert_frame_equal(back, frame.assign(timestamp=frame["timestamp"].dt.as_unit("ns")))
    with pytest.raises(PayloadError, match=r"one row is .* over the server's max_payload"):
        pieces(frame.iloc[:1], "arrow", "none", 100)


#: Partitions of fixed keys over 8: pinned, so a change of the hash (which would move every
#: key to another partition of a live stream) fails here first.
PINNED = {"line1": 2, "line2": 0, "3": 3, "": 0, "press-\u03b1": 6}  # a Greek alpha: UTF-8 bytes


def test_partitions_are_crc32_of_the_key_text_and_pinned() -> None:
    assert {k: partition_of(k, 8) for k in PINNED} == PINNED
    assert partition_of(3, 8) == partition_of(3.0, 8) == partition_of("3", 8)
    assert partition_of(np.int64(3), 8) == partition_of(np.float32(3.0), 8)
    assert key_text(True) == "true" and key_text(None) == key_text(float("nan")) == ""
    assert key_text(2.5) == "2.5"


def test_partitions_are_the_same_in_another_process() -> None:
    """Unlike hash(), which Python salts per process (PYTHONHASHSEED)."""
    code = (
        "from flowengine.nodes.nats.partition import partition_of;"
        "print([partition_of(f'line{i}', 16) for i in range(50)])"
    )
    here = [partition_of(f"line{i}", 16) for i in range(50)]
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        assert json.loads(out) == here


def test_split_keeps_row_order_and_puts_each_key_in_one_partition() -> None:
    frame = long_frame(200).assign(line=[f"line{i % 13}" for i in range(200)])
    parts = dict(split(frame, "line", 4))
    assert sum(len(p) for p in parts.values()) == 200
    for p, part in parts.items():
        assert part.index.is_monotonic_increasing
        assert {partition_of(k, 4) for k in part["line"]} == {p}
    with pytest.raises(KeyError, match="partition_by column 'plant'"):
        list(split(frame, "plant", 4))


def test_the_partition_count_is_read_back_from_a_description() -> None:
    assert marked(mark(8, "line")) == (8, "line")
    assert marked("ops notes. flowengine partitions=4 partition_by=line") == (4, "line")
    assert marked(None) == (None, None) and marked("a stream") == (None, None)
