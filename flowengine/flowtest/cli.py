"""``flowengine test [PATHS...]``: find the tests of flows, run them, say what differs.

Exit codes: 0 every case passed, 1 a case failed or errored, 2 a usage error, a test file (or
its flow) that cannot be read, or no case to run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from flowengine.flowtest.check import Case, Suite, load_suite
from flowengine.flowtest.load import discover
from flowengine.flowtest.report import Progress, junit, summary, write_junit
from flowengine.flowtest.select import SelectError, parse
from flowengine.flowtest.spec import json_schema
from flowengine.problems import Problem
from flowengine.registry import default_registry

if TYPE_CHECKING:
    from flowengine.flowtest.run import CaseResult

EXIT_FAILED, EXIT_USAGE = 1, 2
#: With ``-j`` left at auto, fewer cases than this run in this process (a pool takes seconds
#: to start).
POOL_FROM = 8


def _jobs(jobs: int, cases: int) -> int:
    if jobs:
        return jobs
    return min(os.cpu_count() or 1, cases) if cases >= POOL_FROM else 1


@click.command("test")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("-k", "keyword", metavar="EXPR", help="Only cases whose FILE::NAME matches, e.g. "
              "'alert and not quiet'.")  # fmt: skip
@click.option(
    "--junit",
    "junit_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the results as JUnit XML (for CI).",
)
@click.option("--update", is_flag=True, help="Write snapshot files from this run's output.")
@click.option("-x", "--exitfirst", is_flag=True, help="Stop after the first failing case.")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=0),
    default=0,
    show_default="0: one per CPU from 8 cases",
    help="Cases run at once, in worker processes.",
)
@click.option("-v", "--verbose", is_flag=True, help="One line per case.")
@click.option("--collect-only", is_flag=True, help="Check the test files and list the cases.")
@click.option("--schema", is_flag=True, help="Print the JSON Schema of test files and exit.")
@click.option(
    "--allow-code",
    is_flag=True,
    help="Admit nodes that run Python from the flow file (the `python` node).",
)
def test(
    paths: tuple[Path, ...],
    keyword: str | None,
    junit_file: Path | None,
    update: bool,
    exitfirst: bool,
    jobs: int,
    verbose: bool,
    collect_only: bool,
    schema: bool,
    allow_code: bool,
) -> None:
    """Run the tests of flows: NAME.test.yaml beside a flow and `tests:` inside flow files.

    PATHS are test files, flow files (their tests) or folders (searched); default: the
    current folder. Cases run on a fake clock with external I/O replaced. Exit 0 when every
    case passed, 1 when one failed, 2 for a usage or file error.

    \b
    Examples:
      flowengine test flows/
      flowengine test flows/line3.test.yaml -k "alert and not quiet" --junit out/tests.xml
    """
    if schema:
        click.echo(json.dumps(json_schema(), indent=2))
        return
    try:
        selected = parse(keyword or "")
    except SelectError as exc:
        raise click.UsageError(str(exc)) from None
    began = time.perf_counter()
    problems, everything = _collect(list(paths) or [Path(".")], allow_code)
    cases = [c for c in everything if selected(c.id)]
    if collect_only:
        for case in cases:
            click.echo(f"  {case.id}")
        sys.exit(EXIT_USAGE if any(p.is_error for p in problems) else 0)
    from flowengine.flowtest.run import Options, run_cases  # the runtime: only to run

    progress = Progress(click.echo, verbose)
    options = Options(update=update, allow_code=allow_code)
    results = run_cases(
        cases, options, jobs=_jobs(jobs, len(cases)), exitfirst=exitfirst, progress=progress
    )
    progress.end()
    seconds = time.perf_counter() - began
    for line in summary(results, problems, seconds, len(everything) - len(cases)):
        click.echo(line)
    if junit_file is not None:
        try:
            write_junit(junit_file, junit(results, problems, seconds))
        except OSError as exc:
            raise click.FileError(str(junit_file), exc.strerror or str(exc)) from None
    sys.exit(_exit_code(results, problems, bool(cases)))


def _collect(paths: list[Path], allow_code: bool) -> tuple[list[Problem], list[Case]]:
    """Every problem and every case under ``paths``; problems go to stderr as found."""
    files, problems = discover(paths)
    registry = default_registry()
    suites: list[Suite] = [load_suite(f, registry, allow_code=allow_code) for f in files]
    problems += [p for s in suites for p in s.problems]
    for problem in problems:
        click.echo(str(problem), err=True)
    cases = [c for s in suites for c in s.cases]
    click.echo(f"collected {len(cases)} case(s) from {len(files)} file(s)")
    return problems, cases


def _exit_code(results: Sequence[CaseResult], problems: Sequence[Problem], ran: bool) -> int:
    if any(p.is_error for p in problems) or not ran:
        return EXIT_USAGE
    if any(r.outcome in ("failed", "error") for r in results):
        return EXIT_FAILED
    return 0
