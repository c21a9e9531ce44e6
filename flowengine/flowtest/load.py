"""Finding and reading test files: ``NAME.test.yaml`` beside a flow, or ``tests:`` inside one.

A test file is read like a flow file (the same YAML guard, duplicate keys, PATH:LINE:COL), and
every problem of its spec comes back located, never as an exception.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from flowengine.flowfile import FlowDocument, key_pos, to_plain, value_pos
from flowengine.flowtest.spec import KEYS, SuiteSpec
from flowengine.problems import Pos, Problem, did_you_mean

TEST_SUFFIXES = (".test.yaml", ".test.yml")
FLOW_SUFFIXES = (".yaml", ".yml", ".json")
#: Folders discovery never enters.
SKIP_DIRS = frozenset({"node_modules", "__pycache__", "__snapshots__", "venv", "site-packages"})
#: Top-level keys of a flow with inline tests: at the start of a line in YAML, quoted in JSON.
_YAML_KEY = r"^{0}\s*:"
_JSON_KEY = r'^\s*"{0}"\s*:'

_TOP = Pos(1, 1)


def is_test_file(path: Path) -> bool:
    return path.name.lower().endswith(TEST_SUFFIXES)


def has_inline_tests(path: Path) -> bool:
    """A flow file with a top-level ``tests:`` key (a cheap look at the text, no parse)."""
    if is_test_file(path) or path.suffix.lower() not in FLOW_SUFFIXES:
        return False
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            text = file.read(4 * 1024 * 1024)
    except OSError:
        return False
    key = _JSON_KEY if path.suffix.lower() == ".json" else _YAML_KEY
    return all(re.search(key.format(k), text, re.MULTILINE) for k in ("nodes", "tests"))


def discover(paths: Sequence[Path]) -> tuple[list[Path], list[Problem]]:
    """Test files (and flows with inline tests) under ``paths``, sorted, each once.

    A directory is searched recursively (hidden folders and virtualenvs skipped); a flow file
    brings its inline tests and its ``NAME.test.yaml``; a path that does not exist is a problem.
    """
    found: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if path.is_dir():
            found += _walk(path)
        elif path.is_file():
            found += [path] if is_test_file(path) else tests_for_flow(path)
            if not is_test_file(path) and not tests_for_flow(path):
                problems.append(Problem(str(path), _TOP, "no tests for this flow", None, "warning"))
        else:
            problems.append(Problem(str(path), _TOP, "no such file or directory"))
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return [_relative(p) for p in unique], problems


def _walk(root: Path) -> list[Path]:
    out: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        for name in sorted(files):
            path = Path(folder) / name
            if is_test_file(path) or has_inline_tests(path):
                out.append(path)
    return out


def tests_for_flow(flow: Path) -> list[Path]:
    """A flow's own tests: inline ones, then ``NAME.test.yaml`` beside it."""
    out = [flow] if has_inline_tests(flow) else []
    out += [s for s in (flow.with_name(flow.stem + x) for x in TEST_SUFFIXES) if s.is_file()]
    return out


def _relative(path: Path) -> Path:
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def default_flow(test_file: Path) -> Path:
    """``line3.test.yaml`` -> the ``line3.yaml`` (or .yml, .json) beside it."""
    stem = test_file.name[
        : -len(next(s for s in TEST_SUFFIXES if test_file.name.lower().endswith(s)))
    ]
    candidates = [test_file.with_name(stem + s) for s in FLOW_SUFFIXES]
    return next((c for c in candidates if c.is_file()), candidates[0])


@dataclass(slots=True)
class RawSuite:
    """A test file as read: its spec (None when invalid), its YAML tree for locating
    problems, and where its cases sit in that tree (``cases`` or a flow's ``tests``)."""

    path: Path
    spec: SuiteSpec | None
    data: Any
    key: str = "cases"
    flow_path: Path | None = None
    problems: list[Problem] = field(default_factory=list)


def read_suite(path: Path) -> RawSuite:
    """Read and validate a test file, or the inline ``tests:`` of a flow file."""
    doc, problems = FlowDocument.read(path)
    if doc is None:
        return RawSuite(path, None, None, problems=problems)
    inline = not is_test_file(path)
    raw = RawSuite(path, None, doc.data, "tests" if inline else "cases", problems=problems)
    data = doc.data
    if not isinstance(data, dict):
        raw.problems.append(Problem(str(path), _TOP, "a test file must be a mapping with 'cases'"))
        return raw
    if inline:
        tests = data.get("tests")
        if tests is None:
            return raw  # no inline tests after all (a nested `tests:` key, say)
        if not isinstance(tests, list):
            where = key_pos(data, "tests")
            raw.problems.append(Problem(str(path), where, "'tests' must be a list of cases"))
            return raw
        plain: Any = {"cases": to_plain(tests)}
        raw.flow_path = path
    else:
        plain = to_plain(data)
    raw.problems += _same_names(raw)
    try:
        raw.spec = SuiteSpec.model_validate(plain)
    except ValidationError as exc:
        raw.problems += spec_problems(exc, raw)
    if raw.spec is None or any(p.is_error for p in raw.problems):
        raw.spec = None
        return raw
    if not inline:
        flow = raw.spec.flow
        raw.flow_path = path.parent / flow if flow else default_flow(path)
    return raw


def _same_names(raw: RawSuite) -> list[Problem]:
    """A case name used twice (names select cases and name snapshots: they must differ)."""
    cases = raw.data.get(raw.key) if isinstance(raw.data, dict) else None
    seen: dict[str, int] = {}
    problems = []
    for case in cases if isinstance(cases, list) else []:
        name = case.get("name") if isinstance(case, dict) else None
        if not isinstance(name, str):
            continue
        pos = value_pos(case, "name")
        if name in seen:
            message = f"two cases are named '{name}' (the first at line {seen[name]})"
            problems.append(Problem(str(raw.path), pos, message))
        else:
            seen[name] = pos.line
    return problems


def locate(data: Any, loc: Iterable[Any], missing: bool = False) -> tuple[Pos, list[Any]]:
    """The position of ``loc`` (a pydantic error location) in a ruamel tree, and the part of
    ``loc`` that names keys and indexes there (union tags left out). ``missing``: the last
    part is a key that is not there (shown, positioned at its mapping)."""
    node, pos, shown = data, _TOP, []
    parts = list(loc)
    for k, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            pos = key_pos(node, part, pos)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            pos = value_pos(node, part, pos)
            node = node[part]
        elif not (missing and k == len(parts) - 1):
            continue
        shown.append(part)
    return pos, shown


def spec_problems(exc: ValidationError, raw: RawSuite) -> list[Problem]:
    """Pydantic's errors as located problems: unknown keys with a hint, a union's shallow
    type errors dropped when one of its shapes matched further, one message per place."""
    found: list[tuple[Pos, list[Any], str, str]] = []
    for err in exc.errors():
        loc = [raw.key if i == 0 and p == "cases" else p for i, p in enumerate(err["loc"])]
        pos, shown = locate(raw.data, loc, err["type"] == "missing")
        found.append((pos, shown, err["type"], err["msg"]))
    kept = [
        f for f in found if not (f[2].endswith("_type") and any(_under(o[1], f[1]) for o in found))
    ]
    merged: dict[tuple[Pos, str], list[str]] = {}
    for pos, shown, kind, msg in kept:
        head, text = _describe(raw, shown, kind, msg)
        merged.setdefault((pos, head), []).append(text)
    out = []
    for (pos, head), texts in merged.items():
        joined = texts[0] + "".join(" or " + t.removeprefix("Input should be ") for t in texts[1:])
        out.append(Problem(str(raw.path), pos, head + joined))
    return sorted(out, key=lambda p: (p.pos.line, p.pos.col))


def _under(longer: list[Any], prefix: list[Any]) -> bool:
    return len(longer) > len(prefix) and longer[: len(prefix)] == prefix


def _describe(raw: RawSuite, shown: list[Any], kind: str, msg: str) -> tuple[str, str]:
    """A message in two parts: where (case, key path) and what (merged across a union)."""
    case, rest = _split(raw, shown)
    dotted = ".".join(map(str, rest))
    if kind == "extra_forbidden":
        return f"{case}unknown key '{dotted}'{did_you_mean(str(rest[-1]), KEYS)}", ""
    if kind == "missing":
        return f"{case}missing key '{dotted}'", ""
    text = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return case + (f"'{dotted}': " if rest else ""), text


def _split(raw: RawSuite, shown: Sequence[Any]) -> tuple[str, list[Any]]:
    """``("case 'NAME': ", key path inside the case)`` for a place inside a case."""
    if len(shown) >= 2 and shown[0] == raw.key and isinstance(shown[1], int):
        case = raw.data[raw.key][shown[1]] if isinstance(raw.data, dict) else None
        name = case.get("name") if isinstance(case, dict) else None
        prefix = f"case '{name}': " if isinstance(name, str) else f"case {shown[1] + 1}: "
        return prefix, list(shown[2:])
    return "", list(shown)


def case_problem(raw: RawSuite, index: int, loc: Sequence[Any], message: str) -> Problem:
    """A problem of case ``index`` found after validation, at ``loc`` inside the case."""
    pos, shown = locate(raw.data, [raw.key, index, *loc])
    case, rest = _split(raw, shown)
    where = f"'{'.'.join(map(str, rest))}': " if rest else ""
    return Problem(str(raw.path), pos, case + where + message)


def file_problem(raw: RawSuite, loc: Sequence[Any], message: str) -> Problem:
    """A problem of the file itself (its ``flow`` key, say)."""
    pos, _ = locate(raw.data, loc)
    return Problem(str(raw.path), pos, message)
