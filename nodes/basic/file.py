"""File sink: CSV or JSON Lines, appending, rotated by size."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from flowengine.node import NodeConfig, Sink, option
from flowengine.types import Batch


class FileConfig(NodeConfig):
    path: str = option(
        description="File to write; relative paths are beside the flow file.",
        examples=["out/line3.csv"],
    )
    format: Literal["auto", "csv", "jsonl"] = option(
        "auto", description="`auto` picks from the extension (.csv, .jsonl/.ndjson)."
    )
    append: bool = option(True, description="Append to an existing file (else truncate at start).")
    rotate_bytes: int | None = option(
        None, ge=1, description="Rotate when the file reaches this size: name.1, name.2, ..."
    )
    keep: int = option(5, ge=1, description="Rotated files kept.")


class FileSink(Sink[FileConfig]):
    """Write each batch as CSV rows (header once per file) or JSON Lines records."""

    async def start(self) -> None:
        cfg = self.config
        path = Path(cfg.path)
        self.path = path if path.is_absolute() else self.ctx.flow_dir / path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        suffix = self.path.suffix.lower()
        self.format = (
            cfg.format if cfg.format != "auto" else ("csv" if suffix == ".csv" else "jsonl")
        )
        if not cfg.append:
            self.path.write_text("")

    def _rotate(self) -> None:
        keep = self.config.keep
        for i in range(keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))

    def write(self, batch: Batch) -> None:
        limit = self.config.rotate_bytes
        if limit and self.path.exists() and self.path.stat().st_size >= limit:
            self._rotate()
        frame = batch.frame
        with self.path.open("a", encoding="utf-8", newline="") as out:
            if self.format == "csv":
                frame.to_csv(out, header=out.tell() == 0, index=False)
            else:
                text = frame.to_json(
                    orient="records", lines=True, date_format="iso", date_unit="us"
                )
                out.write(text if text.endswith("\n") else text + "\n")
