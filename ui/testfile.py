"""Save as test, part two: a :class:`~flowengine.ui.savetest.Capture` written as a case of
``NAME.test.yaml`` beside the flow (appended; the file is created when missing).

Inputs go to data files in ``NAME.tests/`` (JSONL or Parquet), one per feed step; outputs become
the expectation: ``rows`` with a tolerance (inline when short, else a data file) or a
``snapshot`` golden file. Times are written as UTC. A secret never reaches the files: a value
the logs would mask (a registered secret, a URL password, ``token=...``) and every value of a
column named like a credential is written as ``******``, and the notes say where.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from flowengine.flowtest.check import SNAPSHOTS
from flowengine.flowtest.data import write_snapshot
from flowengine.flowtest.load import default_flow
from flowengine.logs import MASK, redact
from flowengine.masking import is_secret_key
from flowengine.ui.savetest import Capture, Part, SaveError

#: Expected rows up to this many (and columns) go inline in the YAML; more go to a file.
INLINE_ROWS = 20
INLINE_COLUMNS = 10
Kind = Literal["rows", "snapshot"]
Format = Literal["jsonl", "parquet"]


@dataclass(slots=True)
class SaveOptions:
    """What the user chose in the dialog."""

    name: str
    expect: Kind = "rows"
    tolerance: float = 1e-6
    fmt: Format = "jsonl"


@dataclass(slots=True)
class Saved:
    """What was written: the test file, the data files, and notes for the user."""

    path: Path
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def test_file_for(flow: Path) -> Path:
    """``line3.yaml`` -> ``line3.test.yaml`` beside it."""
    return flow.with_name(flow.stem + ".test.yaml")


def slug(text: str) -> str:
    """A file-name part from a case or node name (as snapshot folders are named)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-").lower()[:60] or "case"


# ---- secrets ------------------------------------------------------------------------------
def _mask_value(value: Any, secret: bool) -> tuple[Any, bool]:
    """``value`` with what the logs would mask masked (in text, dicts and lists)."""
    if value is None or (isinstance(value, float) and value != value):
        return value, False
    if secret:
        return (value, False) if value == MASK else (MASK, True)
    if isinstance(value, str):
        masked = redact(value)
        return masked, masked != value
    if isinstance(value, dict):
        out, hit = {}, False
        for k, v in value.items():
            out[k], h = _mask_value(v, is_secret_key(k))
            hit |= h
        return out, hit
    if isinstance(value, list | tuple):
        items = [_mask_value(v, False) for v in value]
        return [v for v, _ in items], any(h for _, h in items)
    return value, False


def mask_secrets(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """``frame`` with secret values masked, and how many cells per column held one."""
    hits: dict[str, int] = {}
    out = frame
    for column in frame.columns:
        values = frame[column]
        secret = is_secret_key(str(column))
        if not secret and not (values.dtype == object or pd.api.types.is_string_dtype(values)):
            continue
        pairs = [_mask_value(v, secret) for v in values]
        count = sum(1 for _, hit in pairs if hit)
        if count:
            if out is frame:
                out = frame.copy()
            out[column] = pd.Series([v for v, _ in pairs], index=frame.index, dtype=object)
            hits[str(column)] = count
    return out, hits


def _utc(frame: pd.DataFrame) -> pd.DataFrame:
    """Zoned times as UTC (a Parquet file would keep the zone)."""
    zoned = [c for c in frame.columns if isinstance(frame[c].dtype, pd.DatetimeTZDtype)]
    return (
        frame.assign(**{str(c): frame[c].dt.tz_convert("UTC") for c in zoned}) if zoned else frame
    )


def plain_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain values for YAML: times as ISO 8601 UTC text, NaN as null."""
    text = _utc(frame).to_json(orient="records", date_format="iso", date_unit="us")
    rows: list[dict[str, Any]] = json.loads(text)
    return rows


# ---- the case -----------------------------------------------------------------------------
class _Writer:
    """Writes one case's data files and builds its YAML entry."""

    def __init__(self, capture: Capture, test_file: Path, options: SaveOptions) -> None:
        self.capture = capture
        self.options = options
        self.base = test_file.parent
        self.folder = test_file.with_name(test_file.name.removesuffix(".test.yaml") + ".tests")
        self.test_file = test_file
        self.saved = Saved(test_file)

    def masked(self, part: Part, what: str) -> pd.DataFrame:
        frame, hits = mask_secrets(_utc(part.frame))
        for column, count in hits.items():
            self.saved.notes.append(
                f"{what}: {count} value(s) in column '{column}' held a secret, written as "
                f"{MASK}: the case feeds or expects the masked text; edit it if that matters"
            )
        return frame

    def data_file(self, stem: str, frame: pd.DataFrame, suffix: str | None = None) -> str:
        """Write ``frame`` to a new file in the data folder; its path relative to the test."""
        suffix = suffix or f".{self.options.fmt}"
        path = self.folder / f"{stem}{suffix}"
        n = 2
        while path.exists():
            path, n = self.folder / f"{stem}-{n}{suffix}", n + 1
        write_snapshot(path, frame)
        self.saved.files.append(path)
        return path.relative_to(self.base).as_posix()

    def feed(self, part: Part) -> CommentedMap:
        where = part.node if part.port in ("in", "out") else f"{part.node}.{part.port}"
        frame = self.masked(part, f"input {where}")
        stem = f"{slug(self.options.name)}-{slug(where)}"
        return CommentedMap(feed=where, file=self.data_file(stem, frame))

    def expectation(self, part: Part) -> tuple[str, CommentedMap]:
        where = part.node if part.port in ("in", "out") else f"{part.node}.{part.port}"
        if not part.batches:
            return where, CommentedMap(no_output=True)
        frame = self.masked(part, f"output {where}")
        if self.options.expect == "snapshot":
            folder = self.base / SNAPSHOTS / self.test_file.name / slug(self.options.name)
            port = part.port
            golden = folder / f"{part.node}.{port}.jsonl"
            write_snapshot(golden, frame)
            self.saved.files.append(golden)
            exp = CommentedMap(snapshot=True)
        elif len(frame) <= INLINE_ROWS and len(frame.columns) <= INLINE_COLUMNS:
            rows = CommentedSeq()
            for row in plain_rows(frame):
                item = CommentedMap(row)
                item.fa.set_flow_style()
                rows.append(item)
            exp = CommentedMap(rows=rows)
        else:
            stem = f"{slug(self.options.name)}-{slug(where)}.expected"
            exp = CommentedMap(rows=self.data_file(stem, frame))
        exp["tolerance"] = self.options.tolerance
        return where, exp

    def case(self) -> CommentedMap:
        cap = self.capture
        case = CommentedMap(name=self.options.name)
        when = cap.start.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        ins, outs = sum(p.batches for p in cap.feeds), sum(p.batches for p in cap.expects)
        case["description"] = f"saved in the editor from live data ({ins} batches in, {outs} out)"
        if cap.target is not None:
            target = cap.target
            if isinstance(target, dict):
                target = CommentedMap(target)
                target.fa.set_flow_style()
            case["target"] = target
        if cap.mocks:
            mocks = CommentedMap((node, CommentedMap()) for node in cap.mocks)
            case["mocks"] = mocks
            case.yaml_add_eol_comment("run but send nothing (outside the selection)", "mocks")
        case["given"] = CommentedMap(now=when)
        case["input"] = CommentedSeq(self.feed(part) for part in cap.feeds)
        case["expect"] = CommentedMap(self.expectation(part) for part in cap.expects)
        return case


def existing_names(path: Path) -> list[str]:
    """The case names already in a test file (none when it does not exist or parse)."""
    try:
        data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    except (OSError, YAMLError):
        return []
    cases = data.get("cases") if isinstance(data, dict) else None
    return [str(c.get("name")) for c in cases or [] if isinstance(c, dict)]


def save_case(capture: Capture, flow: Path, options: SaveOptions) -> Saved:
    """Write the case into ``NAME.test.yaml`` beside ``flow`` (and its data files)."""
    path = test_file_for(flow)
    yaml = YAML()
    yaml.width = 4096  # a row on one line
    if path.exists():
        try:
            data, indent, block = load_yaml_guess_indent(path.read_text(encoding="utf-8"))
        except YAMLError as exc:
            raise SaveError(f"{path.name} does not parse: fix it first ({exc})") from None
        cases = data.get("cases") if isinstance(data, dict) else None
        if not isinstance(cases, list):
            raise SaveError(f"{path.name} has no 'cases:' list to add to: fix it first")
        seq, offset = indent or 4, block if block is not None else 2
        yaml.indent(mapping=max(2, seq - offset), sequence=seq, offset=offset)
    else:
        data = CommentedMap()
        if default_flow(path).resolve() != flow.resolve():  # line3.json beside a line3.yaml
            data["flow"] = flow.name
        data["cases"] = cases = CommentedSeq()
        data.yaml_set_start_comment(
            f"Tests of {flow.name}: `flowengine test {path.name}` (docs/testing-flows.md)"
        )
        yaml.indent(mapping=2, sequence=4, offset=2)
    if options.name in existing_names(path):
        raise SaveError(f"{path.name} already has a case named '{options.name}'")
    writer = _Writer(capture, path, options)
    cases.append(writer.case())
    out = StringIO()
    yaml.dump(data, out)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(out.getvalue(), encoding="utf-8")
    tmp.replace(path)
    return writer.saved
