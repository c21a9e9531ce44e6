"""What ``flowengine test`` prints (pytest's shape: progress, failures, a summary line) and the
JUnit XML file CI systems read."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from flowengine.problems import Problem

if TYPE_CHECKING:
    from flowengine.flowtest.run import CaseResult

_MARK = {"passed": ".", "failed": "F", "error": "E", "skipped": "s"}
_WORD = {"passed": "PASSED", "failed": "FAILED", "error": "ERROR", "skipped": "SKIPPED"}
Echo = Callable[[str], None]


def width() -> int:
    return max(40, min(120, shutil.get_terminal_size((80, 24)).columns))


def rule(title: str = "", char: str = "=") -> str:
    """``===== title =====`` across the terminal."""
    if not title:
        return char * width()
    side = max(3, (width() - len(title) - 2) // 2)
    return f"{char * side} {title} {char * side}"


def failure_text(result: CaseResult) -> str:
    """A failed or errored case, in full: each failed expectation and its diff."""
    parts = [result.message] if result.outcome == "error" else []
    for failure in result.failures:
        parts.append(failure.title)
        if failure.detail:
            parts.append("\n".join("  " + line for line in failure.detail.splitlines()))
    if result.log:
        parts.append("captured log:")
        parts += ["  " + line for line in result.log]
    return "\n".join(parts)


def short(result: CaseResult) -> str:
    """The one-line reason of a failure (the first failed expectation)."""
    if result.outcome == "error":
        return result.message.splitlines()[0] if result.message else ""
    if result.outcome == "skipped":
        return result.message
    first = result.failures[0].title if result.failures else ""
    more = len(result.failures) - 1
    return first + (f" (+{more} more)" if more > 0 else "")


class Progress:
    """One character per case (``.`` passed, ``F``, ``E``, ``s``), a line per test file;
    ``verbose``: one line per case."""

    def __init__(self, echo: Callable[..., None], verbose: bool = False) -> None:
        self.echo = echo
        self.verbose = verbose
        self.file: str | None = None

    def __call__(self, result: CaseResult) -> None:
        if self.verbose:
            self.echo(f"{result.id} {_WORD[result.outcome]}")
            return
        if result.file != self.file:
            self.echo(("\n" if self.file is not None else "") + result.file + " ", nl=False)
            self.file = result.file
        self.echo(_MARK[result.outcome], nl=False)

    def end(self) -> None:
        if self.file is not None and not self.verbose:
            self.echo("")


def summary(
    results: Sequence[CaseResult],
    problems: Sequence[Problem],
    seconds: float,
    deselected: int = 0,
) -> list[str]:
    """The lines after the progress: failures in full, written snapshots, the short summary
    and the final count."""
    lines: list[str] = []
    bad = [r for r in results if r.outcome in ("failed", "error")]
    if bad:
        lines.append(rule("FAILURES"))
        for result in bad:
            lines.append(rule(result.id, "_"))
            lines.append(failure_text(result))
    written = [w for r in results for w in r.written]
    if written:
        lines.append(rule("snapshots written"))
        lines += [f"wrote {w}" for w in written]
    errors = [p for p in problems if p.is_error]
    if bad or errors:
        lines.append(rule("short test summary info"))
        lines += [f"{_WORD[r.outcome]} {r.id} - {short(r)}" for r in bad]
        per_file = Counter(p.path for p in errors)
        lines += [f"ERROR {path} - {n} problem(s), listed above" for path, n in per_file.items()]
    files = len({p.path for p in errors})
    lines.append(rule(count_line(results, files, deselected) + f" in {seconds:.2f}s"))
    return lines


def count_line(results: Sequence[CaseResult], file_errors: int = 0, deselected: int = 0) -> str:
    counts = Counter(r.outcome for r in results)
    parts = [f"{counts[k]} {k}" for k in ("failed", "passed", "skipped") if counts[k]]
    errors = counts["error"] + file_errors
    if errors:
        parts.append(f"{errors} error{'s' if errors != 1 else ''}")
    if not results:
        parts.insert(0, "no cases ran")
    if deselected:
        parts.append(f"{deselected} deselected")
    return ", ".join(parts)


def junit(
    results: Sequence[CaseResult], problems: Sequence[Problem], seconds: float
) -> ET.ElementTree[ET.Element]:
    """Results as JUnit XML: a testsuite per test file, a testcase per case; a test file that
    could not be read is a testcase with an ``error``."""
    root = ET.Element("testsuites", name="flowengine test", time=f"{seconds:.3f}")
    suites: dict[str, ET.Element] = {}

    def suite(file: str) -> ET.Element:
        if file not in suites:
            suites[file] = ET.SubElement(root, "testsuite", name=file)
        return suites[file]

    for r in results:
        case = ET.SubElement(
            suite(r.file), "testcase", classname=r.file, name=r.name, file=r.file,
            time=f"{r.duration:.3f}",
        )  # fmt: skip
        if r.outcome == "failed":
            ET.SubElement(case, "failure", message=short(r)).text = failure_text(r)
        elif r.outcome == "error":
            ET.SubElement(case, "error", message=short(r)).text = failure_text(r)
        elif r.outcome == "skipped":
            ET.SubElement(case, "skipped", message=r.message)
    by_file: dict[str, list[Problem]] = {}
    for p in problems:
        if p.is_error:
            by_file.setdefault(p.path, []).append(p)
    for file, found in by_file.items():
        case = ET.SubElement(suite(file), "testcase", classname=file, name="(collect)", file=file)
        text = "\n".join(map(str, found))
        ET.SubElement(case, "error", message=str(found[0])).text = text
    _count(root, suites)
    ET.indent(root)
    return ET.ElementTree(root)


def _count(root: ET.Element, suites: dict[str, ET.Element]) -> None:
    """The tests / failures / errors / skipped attributes, per suite and in all."""
    total: Counter[str] = Counter()
    for element in suites.values():
        cases = element.findall("testcase")
        counts = Counter(
            {
                "tests": len(cases),
                "failures": sum(1 for c in cases if c.find("failure") is not None),
                "errors": sum(1 for c in cases if c.find("error") is not None),
                "skipped": sum(1 for c in cases if c.find("skipped") is not None),
            }
        )
        seconds = sum(float(c.get("time", "0")) for c in cases)
        for key in ("tests", "failures", "errors", "skipped"):
            element.set(key, str(counts[key]))
        element.set("time", f"{seconds:.3f}")
        total.update(counts)
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(total[key]))


def write_junit(path: Path, tree: ET.ElementTree[ET.Element]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)
