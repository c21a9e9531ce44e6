"""gzip and zstd for payloads and files, shared by the file, REST and MQTT nodes.

gzip is the standard library's; zstd needs ``zstandard`` (the ``flowengine[zstd]`` extra),
imported only when a zstd payload is made or read. Both formats concatenate: a file appended
batch by batch is a sequence of complete gzip members or zstd frames, which ``gzip -d``,
``zstd -d`` and pandas read as one stream. So an append never rewrites what is written, and an
append cut off by a crash leaves one incomplete last member that :func:`repair` cuts away.

Decoding is incremental and bounded: a small bomb (zstd packs 200 MB of zeros in 6 KB) raises
:class:`CompressionError` once more than ``limit`` bytes come out, instead of filling memory.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from flowengine.extras import installed, missing_message, require

Codec = Literal["none", "gzip", "zstd"]
#: ``auto`` tells the codec from the data's first bytes (:func:`detect`).
Decompress = Literal["auto", "none", "gzip", "zstd"]

#: The first bytes of a gzip member and of a zstd frame.
MAGIC: dict[Codec, bytes] = {"gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd"}
#: The file name suffix of each codec.
SUFFIX: dict[Codec, str] = {"gzip": ".gz", "zstd": ".zst"}
#: (lowest, highest, default) compression level of each codec.
LEVELS: dict[str, tuple[int, int, int]] = {"gzip": (1, 9, 6), "zstd": (1, 22, 3)}
#: Output piece size of gzip decoding; zstd input slice size (512 bytes of zstd expand to at
#: most ~16 MB, the format's largest ratio), so one step never holds much more than ``limit``.
_OUT = 1 << 20
_SLICE = 512
_READ = 1 << 20


class CompressionError(ValueError):
    """Data that is not (complete) data of its codec, or decodes to more than allowed."""


def _zstd() -> Any:
    return require("zstandard", "zstd")


def check_codec(codec: str) -> str:
    """``codec`` if its library is installed, else a ValueError saying which extra to install
    (for config validators: a flow asking for zstd fails validation, not its first batch)."""
    if codec == "zstd" and not installed("zstandard"):
        raise ValueError(missing_message("zstd"))
    return codec


def check_level(level: int | None, codec: str) -> int | None:
    """``level`` if ``codec`` has it (gzip 1-9, zstd 1-22), else a ValueError naming the range."""
    if level is None or codec not in LEVELS:
        return level
    low, high, _ = LEVELS[codec]
    if not low <= level <= high:
        raise ValueError(f"level {level} is out of range for {codec} ({low} to {high})")
    return level


def compress(data: bytes, codec: Codec, level: int | None = None) -> bytes:
    """``data`` as one gzip member or one zstd frame (with a checksum); ``none``: as it is."""
    if codec == "none":
        return data
    check_level(level, codec)
    chosen = LEVELS[codec][2] if level is None else level
    if codec == "gzip":
        return gzip.compress(data, compresslevel=chosen, mtime=0)
    compressor = _zstd().ZstdCompressor(level=chosen, write_checksum=True)
    return bytes(compressor.compress(data))


def detect(data: bytes) -> Codec:
    """The codec whose magic number ``data`` starts with (gzip 1f8b, zstd 28b52ffd), else
    ``none``: JSON and CSV text never start with either."""
    for codec, magic in MAGIC.items():
        if data.startswith(magic):
            return codec
    return "none"


def codec_of(path: str | Path) -> Codec:
    """The codec a file name's suffix names (``.gz``, ``.zst``), else ``none``."""
    suffix = Path(path).suffix.lower()
    return next((c for c, s in SUFFIX.items() if s == suffix), "none")


def decompress(data: bytes, codec: Decompress = "auto", limit: int | None = None) -> bytes:
    """``data`` decoded (concatenated members or frames too); ``auto`` decodes only what starts
    with a magic number and passes anything else through. Raises :class:`CompressionError` on
    data of another kind, corrupt or cut-off data, or more than ``limit`` decoded bytes."""
    found = detect(data)
    if codec not in ("auto", found):
        if codec == "none":
            return data
        raise CompressionError(f"not {codec} data (it starts with {data[:4].hex() or 'nothing'})")
    if found == "none":
        return data
    decoder = Decoder(found, limit)
    out = b"".join(decoder.feed(data))
    decoder.finish()
    return out


class Decoder:
    """Incremental decoding of concatenated gzip members or zstd frames.

    ``complete`` counts the input bytes up to the end of the last whole member or frame: where
    an interrupted append begins. Output comes in pieces; more than ``limit`` bytes in all
    raises :class:`CompressionError` before the piece after the limit is made.
    """

    def __init__(self, codec: Literal["gzip", "zstd"], limit: int | None = None) -> None:
        self.codec = codec
        self.limit = limit
        self.fed = 0
        self.complete = 0
        self.size = 0
        self._lib: Any = _zstd() if codec == "zstd" else None
        self._unit: Any = None

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded output of ``data``, piece by piece."""
        view = memoryview(data)
        more = False  # zlib filled a whole piece: it may hold more output for the same input
        while view or more:
            if self._unit is None:
                self._unit = (
                    zlib.decompressobj(16 + zlib.MAX_WBITS)
                    if self._lib is None
                    else self._lib.ZstdDecompressor().decompressobj()
                )
            piece, used = self._step(view)
            self.fed += used
            more = self._lib is None and len(piece) == _OUT and not self._unit.eof
            if self._unit.eof:
                self.complete, self._unit = self.fed, None
            view = view[used:]
            self.size += len(piece)
            if self.limit is not None and self.size > self.limit:
                raise CompressionError(f"{self.codec} data decodes to more than {self.limit} bytes")
            if piece:
                yield piece

    def _step(self, view: memoryview) -> tuple[bytes, int]:
        """Decode some of ``view``: the output and how many input bytes it used."""
        unit = self._unit
        errors = zlib.error if self._lib is None else self._lib.ZstdError
        try:
            if self._lib is None:
                out: bytes = unit.decompress(view, _OUT)
                left = unit.unused_data if unit.eof else unit.unconsumed_tail
                return out, len(view) - len(left)
            taken = view[:_SLICE]
            out = unit.decompress(taken)
        except errors as exc:
            raise CompressionError(
                f"corrupt {self.codec} data after byte {self.fed}: {exc}"
            ) from None
        return out, len(taken) - (len(unit.unused_data) if unit.eof else 0)

    def finish(self) -> None:
        """Raise :class:`CompressionError` if the data ended inside a member or frame."""
        if self._unit is not None:
            raise CompressionError(
                f"{self.codec} data is cut off: the last {self.fed - self.complete} bytes "
                "are an incomplete member"
            )


def append(path: Path, data: bytes, codec: Codec, level: int | None = None) -> int:
    """Append ``data`` to ``path`` as one complete member or frame, in one write (nothing when
    compressing fails, so a bad batch never leaves half a member). Returns the bytes written."""
    blob = compress(data, codec, level)
    with path.open("ab") as out:
        out.write(blob)
    return len(blob)


def repair(path: Path, codec: Codec) -> int:
    """Cut an incomplete last member or frame (a write cut off by a crash) off ``path`` so that
    appending goes on after whole ones; returns the bytes cut. Corrupt data inside the file
    raises :class:`CompressionError` saying how many leading bytes are good: nothing is lost
    silently."""
    if codec == "none" or not path.exists():
        return 0
    with path.open("rb") as stream:
        head = stream.read(len(MAGIC[codec]))
    if head and not MAGIC[codec].startswith(head):  # not even a cut-off member of ours
        raise CompressionError(
            f"{path} is not a {codec} file (it was written uncompressed, or by "
            f"something else): leave it as it is and give the sink a new path ending "
            f"in {SUFFIX[codec]}, or move the file away"
        )
    decoder = Decoder(codec)
    with path.open("rb") as stream:
        try:
            for chunk in iter(lambda: stream.read(_READ), b""):
                for _ in decoder.feed(chunk):
                    pass  # only the member boundaries matter
        except CompressionError as exc:
            raise CompressionError(
                f"{path}: {exc}; the first {decoder.complete} bytes are good "
                f"(keep them: truncate -s {decoder.complete} '{path}'), or move the file away"
            ) from None
    cut = decoder.fed - decoder.complete
    if cut:
        with path.open("r+b") as stream:
            stream.truncate(decoder.complete)
    return cut
