"""The shared codec: gzip and zstd round trips, concatenated members and frames, detection by
magic number, bombs bounded by ``limit``, corrupt and cut-off data, repairing a file whose last
append was cut off, and the message when zstandard is missing."""

from __future__ import annotations

import contextlib
import gzip
import io
import sys
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowengine import compression as c
from flowengine.compression import CompressionError, Decoder, compress, decompress, detect
from flowengine.extras import LibraryMissing

zstandard = pytest.importorskip("zstandard", reason="zstd needs flowengine[zstd] (zstandard)")

CODECS = ["gzip", "zstd"]
TEXT = b"".join(b"2026-01-01T00:00:%02d,t%d,%d.5,good\n" % (i % 60, i % 7, i) for i in range(5000))


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_levels_and_magic(codec: c.Codec) -> None:
    low, high, _ = c.LEVELS[codec]
    for level in (None, low, high):
        blob = compress(TEXT, codec, level)
        assert detect(blob) == codec
        assert decompress(blob) == TEXT == decompress(blob, codec)
    assert len(compress(TEXT, codec)) < len(TEXT) / 4


@pytest.mark.parametrize("codec", CODECS)
def test_concatenated_members_and_frames_are_one_stream(codec: c.Codec) -> None:
    parts = [TEXT[:10], b"", TEXT[10:5000], TEXT[5000:]]
    blob = b"".join(compress(p, codec) for p in parts)
    assert decompress(blob) == TEXT
    if codec == "gzip":  # the standard library agrees
        assert gzip.decompress(blob) == TEXT
    else:
        assert zstandard.open(io.BytesIO(blob), "rb").read() == TEXT


@pytest.mark.parametrize("codec", CODECS)
def test_fed_in_any_pieces_the_output_and_member_ends_are_the_same(codec: c.Codec) -> None:
    first, second = compress(b"abc" * 100, codec), compress(b"xyz" * 100, codec)
    blob = first + second
    decoder = Decoder(codec)
    ends = []
    out = b""
    for i in range(len(blob)):
        out += b"".join(decoder.feed(blob[i : i + 1]))
        ends.append(decoder.complete)
    decoder.finish()
    assert out == b"abc" * 100 + b"xyz" * 100
    assert sorted(set(ends)) == [0, len(first), len(blob)]


@pytest.mark.parametrize("size", [(1 << 20) - 1, 1 << 20, (1 << 20) + 1, 5 << 20])
def test_gzip_output_around_the_piece_size_is_complete(size: int) -> None:
    """zlib returns output in 1 MiB pieces: a member ending right at a piece boundary (or
    holding output back there) still decodes whole and counts as complete."""
    data = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    blob = compress(data, "gzip", 1) * 2
    assert decompress(blob) == data * 2


def test_zstd_frames_without_a_content_size_decode() -> None:
    """Frames written by a streaming compressor (the zstd CLI in a pipe) state no size."""
    sink = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(sink, closefd=False) as writer:
        writer.write(TEXT)
    unknown = zstandard.CONTENTSIZE_UNKNOWN
    assert zstandard.get_frame_parameters(sink.getvalue()).content_size == unknown
    assert decompress(sink.getvalue(), "zstd") == TEXT


def test_auto_passes_plain_payloads_through_and_a_named_codec_checks_the_magic() -> None:
    for plain in (b'{"value": 1}', b"[1,2]", b"42", b"", b"\x1f", b"(\xb5"):
        assert detect(plain) == "none"
        assert decompress(plain) == plain
    assert decompress(b"anything", "none") == b"anything"
    with pytest.raises(CompressionError, match=r"not gzip data \(it starts with 7b227661\)"):
        decompress(b'{"value": 1}', "gzip")
    with pytest.raises(CompressionError, match="not zstd data"):
        decompress(compress(b"x", "gzip"), "zstd")
    with pytest.raises(CompressionError, match="starts with nothing"):
        decompress(b"", "gzip")


@pytest.mark.parametrize("codec", CODECS)
def test_a_bomb_stops_at_the_limit_without_filling_memory(codec: c.Codec) -> None:
    """1 GiB of zeros packed in a few hundred kB: decoding stops just past ``limit``."""
    chunk = compress(b"\0" * (16 << 20), codec, 9 if codec == "gzip" else 19)
    bomb = chunk * 64
    assert len(bomb) < 2 << 20
    tracemalloc.start()
    try:
        with pytest.raises(CompressionError, match=f"{codec} data decodes to more than 1048576"):
            decompress(bomb, limit=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20  # the bomb (2 MB) plus at most one piece, never its 1 GiB
    assert decompress(compress(b"x" * 100, codec), limit=100) == b"x" * 100  # at the limit


@pytest.mark.parametrize("codec", CODECS)
def test_corrupt_and_cut_off_data_raise_compression_error(codec: c.Codec) -> None:
    blob = bytearray(compress(TEXT, codec))
    blob[len(blob) // 2] ^= 0xFF
    with pytest.raises(CompressionError, match=f"corrupt {codec} data"):
        decompress(bytes(blob))
    with pytest.raises(CompressionError, match=f"{codec} data is cut off"):
        decompress(compress(TEXT, codec)[:-7])
    with pytest.raises(CompressionError, match=f"corrupt {codec} data"):
        decompress(compress(b"ok", codec) + b"trailing garbage")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CODECS), st.binary(max_size=300))
def test_fuzz_any_bytes_after_a_magic_number_decode_or_raise_compression_error(
    codec: c.Codec, tail: bytes
) -> None:
    data = c.MAGIC[codec] + tail
    with contextlib.suppress(CompressionError):  # anything else escaping fails the test
        decompress(data, limit=1 << 20)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(CODECS), st.binary(max_size=2000), st.integers(0, 10_000))
def test_fuzz_a_cut_anywhere_is_found_exactly(codec: c.Codec, data: bytes, cut: int) -> None:
    whole, second = compress(data, codec), compress(data[::-1], codec)
    kept = cut % (len(second) + 1)
    blob = whole + second[:kept]
    decoder = Decoder(codec)
    for _ in decoder.feed(blob):
        pass
    assert decoder.complete == (len(blob) if kept in (0, len(second)) else len(whole))


@pytest.mark.parametrize("codec", CODECS)
def test_repair_cuts_only_an_unfinished_last_member(tmp_path: Path, codec: c.Codec) -> None:
    path = tmp_path / f"out{c.SUFFIX[codec]}"
    assert c.repair(path, codec) == 0  # no file yet
    c.append(path, b"one\n", codec)
    c.append(path, b"two\n", codec)
    good = path.read_bytes()
    partial = compress(b"three\n" * 100, codec)[:-9]
    path.write_bytes(good + partial)
    assert c.repair(path, codec) == len(partial)
    assert path.read_bytes() == good
    assert c.repair(path, codec) == 0
    c.append(path, b"four\n", codec)
    assert decompress(path.read_bytes()) == b"one\ntwo\nfour\n"
    path.write_bytes(b"")
    assert c.repair(path, codec) == 0


def test_repair_refuses_a_file_with_garbage_inside(tmp_path: Path) -> None:
    path = tmp_path / "out.gz"
    c.append(path, b"one\n", "gzip")
    good = path.stat().st_size
    path.write_bytes(path.read_bytes() + b"not gzip at all" + compress(b"two\n", "gzip"))
    before = path.read_bytes()
    with pytest.raises(CompressionError) as caught:
        c.repair(path, "gzip")
    assert f"the first {good} bytes are good (keep them: truncate -s {good}" in str(caught.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("codec", "content"),
    [
        ("gzip", b"timestamp,sensor,value\n" + b"2026-01-01,t,1\n" * 1000),  # plain CSV
        ("zstd", b'{"sensor": "t"}\n'),  # plain JSON lines
        ("zstd", compress(b"a,b\n", "gzip")),  # another codec's file
    ],
)
def test_repair_of_a_file_that_is_not_of_the_codec_says_so_and_never_advises_truncate(
    tmp_path: Path, codec: c.Codec, content: bytes
) -> None:
    """`compression` turned on for a path that already holds data: "the first 0 bytes are
    good (truncate -s 0)" would advise erasing it all."""
    path = tmp_path / "line3.csv"
    path.write_bytes(content)
    with pytest.raises(CompressionError) as caught:
        c.repair(path, codec)
    message = str(caught.value)
    assert f"{path} is not a {codec} file" in message
    assert f"a new path ending in {c.SUFFIX[codec]}" in message
    assert "truncate" not in message and "first 0 bytes" not in message
    assert path.read_bytes() == content


def test_levels_suffixes_and_library_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    assert c.codec_of("a/b.csv.GZ") == "gzip" and c.codec_of("x.jsonl.zst") == "zstd"
    assert c.codec_of("x.csv") == "none"
    assert c.check_level(None, "gzip") is None and c.check_level(22, "zstd") == 22
    with pytest.raises(ValueError, match=r"level 10 is out of range for gzip \(1 to 9\)"):
        c.check_level(10, "gzip")
    with pytest.raises(ValueError, match="out of range for zstd"):
        compress(b"x", "zstd", 23)
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(LibraryMissing, match=r"Install 'flowengine\[zstd\]'"):
        compress(b"x", "zstd")
    with pytest.raises(LibraryMissing, match=r"flowengine\[zstd\]"):
        decompress(b"\x28\xb5\x2f\xfd....")
    with pytest.raises(ValueError, match=r"flowengine\[zstd\]"):
        c.check_codec("zstd")
    assert c.check_codec("gzip") == "gzip"
    assert decompress(compress(b"x", "gzip")) == b"x"  # gzip needs nothing


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_a_one_byte_plain_file_is_refused_not_cut(tmp_path: Path, codec: str) -> None:
    path = tmp_path / "tiny"
    path.write_bytes(b"x")  # shorter than any magic number, and not the start of one
    with pytest.raises(CompressionError, match=f"is not a {codec} file"):
        c.repair(path, codec)  # type: ignore[arg-type]
    assert path.read_bytes() == b"x"


def test_a_member_cut_inside_its_magic_number_is_trimmed(tmp_path: Path) -> None:
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(b"a,b\n1,2\n") + b"\x1f")  # a crash after one byte
    assert c.repair(path, "gzip") == 1
    assert gzip.decompress(path.read_bytes()) == b"a,b\n1,2\n"
