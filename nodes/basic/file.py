"""File sink: CSV or JSON Lines, appending, rotated by size, optionally gzip or zstd."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

from pydantic import ValidationInfo, field_validator

from flowengine import compression
from flowengine.compression import SUFFIX, Codec, check_codec, check_level, codec_of
from flowengine.node import NodeConfig, Sink, option
from flowengine.types import Batch


class FileConfig(NodeConfig):
    path: str = option(
        description="File to write; relative paths are beside the flow file.",
        examples=["out/line3.csv", "out/line3.jsonl.zst"],
        writes=True,
    )
    format: Literal["auto", "csv", "jsonl"] = option(
        "auto",
        description="`auto` picks from the extension (.csv, .jsonl/.ndjson; before a .gz/.zst).",
    )
    append: bool = option(True, description="Append to an existing file (else truncate at start).")
    rotate_bytes: int | None = option(
        None,
        ge=1,
        description="Rotate when the file reaches this size on disk (compressed): name.1, "
        "name.2, ... (out.csv.gz rotates to out.csv.1.gz).",
    )
    keep: int = option(5, ge=1, description="Rotated files kept.")
    compression: Literal["auto", "none", "gzip", "zstd"] = option(
        "auto",
        description="`auto`: gzip for a .gz path, zstd (flowengine[zstd]) for .zst, else none. "
        "Each batch is appended as one whole gzip member or zstd frame, so the file stays one "
        "readable stream, and a write cut off by a crash is cut away at the next start.",
        validate_default=True,  # `auto` on a .zst path needs zstandard too
    )
    compression_level: int | None = option(
        None, ge=1, le=22, advanced=True, description="gzip 1-9 (default 6), zstd 1-22 (3)."
    )

    @field_validator("compression")
    @classmethod
    def _codec(cls, value: str, info: ValidationInfo) -> str:
        named = codec_of(info.data.get("path", ""))
        if value != "auto" and named != "none" and named != value:
            raise ValueError(f"the path ends in {SUFFIX[named]} but compression is {value}")
        check_codec(named if value == "auto" else value)
        return value

    @field_validator("compression_level")
    @classmethod
    def _level(cls, value: int | None, info: ValidationInfo) -> int | None:
        codec = info.data.get("compression", "none")
        return check_level(value, codec_of(info.data.get("path", "")) if codec == "auto" else codec)


class FileSink(Sink[FileConfig]):
    """Write each batch as CSV rows (header once per file) or JSON Lines records."""

    icon = "description"
    io = True  # replaced by a feeder/capture in `flowengine test`
    codec: Codec

    async def start(self) -> None:
        cfg = self.config
        path = Path(cfg.path)
        self.path = path if path.is_absolute() else self.ctx.flow_dir / path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.codec = codec_of(self.path) if cfg.compression == "auto" else cfg.compression
        plain = self.path.with_suffix("") if codec_of(self.path) != "none" else self.path
        suffix = plain.suffix.lower()
        self.format = (
            cfg.format if cfg.format != "auto" else ("csv" if suffix == ".csv" else "jsonl")
        )
        if not cfg.append:
            self.path.write_text("")
        elif self.codec != "none":  # blocking, but once, and a large file takes a while
            cut = await asyncio.to_thread(compression.repair, self.path, self.codec)
            if cut:
                self.ctx.log.warning(
                    "%s: cut %d bytes of a write a crash left unfinished", self.path, cut
                )

    def _rotated(self, i: int) -> Path:
        if codec_of(self.path) == "none":
            return self.path.with_name(f"{self.path.name}.{i}")
        return self.path.with_name(f"{self.path.stem}.{i}{self.path.suffix}")

    def _rotate(self) -> None:
        for i in range(self.config.keep - 1, 0, -1):
            older = self._rotated(i)
            if older.exists():
                older.replace(self._rotated(i + 1))
        self.path.replace(self._rotated(1))

    def write(self, batch: Batch) -> None:
        limit = self.config.rotate_bytes
        if limit and self.path.exists() and self.path.stat().st_size >= limit:
            self._rotate()
        if self.codec != "none":  # one whole member per batch, in one write
            empty = not self.path.exists() or self.path.stat().st_size == 0
            level = self.config.compression_level
            compression.append(self.path, self._text(batch, empty).encode(), self.codec, level)
            return
        with self.path.open("a", encoding="utf-8", newline="") as out:
            out.write(self._text(batch, out.tell() == 0))

    def _text(self, batch: Batch, header: bool) -> str:
        frame = batch.frame
        if self.format == "csv":
            return frame.to_csv(header=header, index=False)
        text = frame.to_json(orient="records", lines=True, date_format="iso", date_unit="us")
        return text if text.endswith("\n") else text + "\n"
