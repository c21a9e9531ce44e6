"""Running cases: each in its own runtime on a fake clock, with I/O replaced; many in parallel.

A case is independent of every other (its own runtime, clock, mocks and captures), so cases
run in a pool of processes (``-j``); results come back in collection order whatever order
they finish in. Time in a case is the fake clock's only: a timer fires when an ``advance``
step reaches it, never because the machine was slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from flowengine.clock import FakeClock
from flowengine.flowtest.check import Case, Suite, default_port, load_suite
from flowengine.flowtest.data import DataError, read_frame, replay_batches, rows_frame
from flowengine.flowtest.expect import Checking, Failure, Observed, check
from flowengine.flowtest.spec import (
    DEFAULT_NOW,
    Advance,
    AdvanceTo,
    Feed,
    Range,
    Rows,
    resolve_instant,
)
from flowengine.harness import FlowHarness
from flowengine.logs import redact
from flowengine.registry import Registry, default_registry

Outcome = Literal["passed", "failed", "error", "skipped"]
#: Log lines kept per case.
MAX_LOG_LINES = 200


@dataclass(slots=True)
class CaseResult:
    """How one case went (plain data: it crosses process boundaries)."""

    id: str
    file: str
    name: str
    outcome: Outcome
    failures: list[Failure] = field(default_factory=list)
    message: str = ""
    duration: float = 0.0
    written: list[str] = field(default_factory=list)
    #: What the flow logged (warnings and errors), shown with a failure.
    log: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Options:
    """What ``flowengine test`` passes down to every case."""

    update: bool = False
    allow_code: bool = False


class CaseError(Exception):
    """A case that could not run as written (a data file, a clock going back)."""


def start_time(case: Case) -> pd.Timestamp:
    epoch = pd.Timestamp(0, tz="UTC")
    return resolve_instant(case.given.now or DEFAULT_NOW, epoch)


def _frame(rows: Rows, case: Case, start: pd.Timestamp) -> pd.DataFrame:
    try:
        if isinstance(rows, str):
            return read_frame(case.base / rows, start)
        return rows_frame(rows, start)
    except DataError as exc:
        raise CaseError(str(exc)) from None


async def _steps(harness: FlowHarness, clock: FakeClock, case: Case, start: pd.Timestamp) -> None:
    """Play the case's input steps in order, settling the flow after each."""
    for k, step in enumerate(case.spec.input):
        if isinstance(step, Advance):
            await harness.advance(step.advance)
        elif isinstance(step, AdvanceTo):
            when = resolve_instant(step.advance_to, start)
            seconds = (when - clock.now()).total_seconds()
            if seconds < 0:
                raise CaseError(
                    f"input step {k + 1}: advance_to {when} is before now ({clock.now()})"
                )
            await harness.advance(seconds)
        elif isinstance(step, Feed):
            await _feed(harness, clock, case, step, start)
        await harness.settle()


async def _feed(
    harness: FlowHarness, clock: FakeClock, case: Case, step: Feed, start: pd.Timestamp
) -> None:
    node, _, port = step.feed.partition(".")
    ports = {"port": port} if port else {}
    if step.replay is None:
        await harness.feed(node, _frame(step.rows or step.file or [], case, start), **ports)
        return
    frame = _frame(step.replay, case, start)
    try:
        batches = list(replay_batches(frame, step.timestamp, step.every))
    except DataError as exc:
        raise CaseError(f"{case.base / step.replay}: {exc}") from None
    for when, batch in batches:
        if when > clock.now():
            await harness.advance_to(when)
        await harness.feed(node, batch, **ports)


def _mocks(case: Case, start: pd.Timestamp) -> dict[str, dict[str, Any]]:
    return {
        node: {port: _frame(rows, case, start) for port, rows in ports.items()}
        for node, ports in case.spec.mocks.items()
    }


def _feeders(case: Case) -> dict[str, list[str]]:
    """Node id -> the ports the case feeds: a source's output (it becomes a feeder, whatever
    its type), another node's input (the first one unless the step names one)."""
    assert case.checked is not None
    feeders: dict[str, list[str]] = {}
    for step in case.spec.input:
        if not isinstance(step, Feed):
            continue
        node, _, port = step.feed.partition(".")
        built = case.checked.nodes[node]
        if built.cls.kind == "source":
            outs = built.cls.output_ports(built.config) or built.cls.outputs
            port = port or ("out" if "out" in outs else outs[0])
        else:
            port = port or built.cls.inputs[0]
        ports = feeders.setdefault(node, [])
        if port not in ports:
            ports.append(port)
    return feeders


def _target(case: Case) -> str | tuple[str | None, str | None] | None:
    target = case.spec.target
    return (target.from_, target.to) if isinstance(target, Range) else target


def _state(case: Case) -> dict[str, dict[str, Any]]:
    state = {node: dict(values) for node, values in case.given.state.items()}
    for node, mark in case.given.watermark.items():
        state.setdefault(node, {})["watermark"] = mark
    return state


async def run_case(case: Case, options: Options = Options()) -> CaseResult:
    """Run one case and check its expectations; never raises for a failing flow."""
    spec = case.spec
    result = CaseResult(case.id, str(case.file), spec.name, "passed")
    if spec.skip:
        result.outcome = "skipped"
        result.message = spec.skip if isinstance(spec.skip, str) else "skip: true"
        return result
    began = time.perf_counter()
    try:
        with captured_log(result.log):
            observed = await asyncio.wait_for(_run(case), spec.timeout)
    except TimeoutError:
        result.outcome = "error"
        result.message = (
            f"the case did not finish within {spec.timeout:g}s of real time "
            "(raise `timeout:` for a long replay)"
        )
    except CaseError as exc:
        result.outcome, result.message = "error", str(exc)
    except Exception as exc:  # a node or the harness failed: an error, never a traceback
        result.outcome, result.message = "error", f"{type(exc).__name__}: {exc}"
    else:
        ctx = Checking(start_time(case), case.base, Path(), update=options.update)
        for where, exp in spec.expect.items():
            node, port = _split(case, where)
            ctx.snapshot = case.snapshot_path(node, port)
            result.failures += check(where, exp, observed[where], ctx)
        result.written = [str(p) for p in ctx.written]
        result.outcome = "failed" if result.failures else "passed"
    result.duration = time.perf_counter() - began
    return result


class _Keep(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.into) < MAX_LOG_LINES:
            self.into.append(redact(self.format(record)))


@contextlib.contextmanager
def captured_log(into: list[str]) -> Iterator[None]:
    """The flow's warnings and errors (and asyncio's: a task that failed unseen) go to
    ``into``, shown with a failure, not to the terminal."""
    handler = _Keep(into)
    loggers = [logging.getLogger(name) for name in ("flowengine", "asyncio")]
    before = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, propagate in zip(loggers, before, strict=True):
            logger.removeHandler(handler)
            logger.propagate = propagate


def _split(case: Case, where: str) -> tuple[str, str]:
    node, _, port = where.partition(".")
    assert case.checked is not None
    return node, port or default_port(case.checked, node)


async def _run(case: Case) -> dict[str, Observed]:
    """Run the flow through the input steps; what each expected port saw."""
    start = start_time(case)
    clock = FakeClock(start)
    assert case.checked is not None
    harness = FlowHarness(
        case.checked,
        clock=clock,
        target=_target(case),
        feeders=_feeders(case),
        replace_io=case.spec.replace_io,
        mocks=_mocks(case, start),
        state=_state(case),
    )
    async with harness:
        await harness.settle()
        await _steps(harness, clock, case, start)
    observed: dict[str, Observed] = {}
    for where in case.spec.expect:
        node, port = _split(case, where)
        observed[where] = Observed(
            list(harness.outputs(node, port)), harness.counters(node), harness.errors(node)
        )
    return observed


# ---- many cases -------------------------------------------------------------------------
_SUITES: dict[tuple[Path, bool], Suite] = {}


def _suite(path: Path, allow_code: bool, registry: Registry | None = None) -> Suite:
    """A test file loaded once per process (a worker runs many of its cases)."""
    key = (path, allow_code)
    if key not in _SUITES:
        _SUITES[key] = load_suite(path, registry or default_registry(), allow_code=allow_code)
    return _SUITES[key]


def run_one(path: Path, index: int, options: Options) -> CaseResult:
    """Run case ``index`` of the test file at ``path`` (in a worker process)."""
    case = next(c for c in _suite(path, options.allow_code).cases if c.index == index)
    return asyncio.run(run_case(case, options))


def run_cases(
    cases: Sequence[Case],
    options: Options,
    *,
    jobs: int = 1,
    exitfirst: bool = False,
    progress: Callable[[CaseResult], None] | None = None,
) -> list[CaseResult]:
    """Run ``cases`` (``jobs`` at a time in worker processes); results in the order given.

    ``exitfirst``: after the first case that fails or errors, start no more.
    """
    done = progress or (lambda _r: None)
    if jobs <= 1 or len(cases) < 2:
        results = []
        for case in cases:
            result = asyncio.run(run_case(case, options))
            done(result)
            results.append(result)
            if exitfirst and result.outcome in ("failed", "error"):
                break
        return results
    return list(_pooled(cases, options, jobs, exitfirst, done))


def _pooled(
    cases: Sequence[Case],
    options: Options,
    jobs: int,
    exitfirst: bool,
    done: Callable[[CaseResult], None],
) -> Iterator[CaseResult]:
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:
        context.set_forkserver_preload(["flowengine.flowtest.run"])
    with ProcessPoolExecutor(max_workers=min(jobs, len(cases)), mp_context=context) as pool:
        futures: list[Future[CaseResult]] = [
            pool.submit(run_one, case.file, case.index, options) for case in cases
        ]
        stop = False

        def finished(future: Future[CaseResult]) -> None:
            nonlocal stop
            if future.cancelled() or future.exception() is not None:
                return
            result = future.result()
            if exitfirst and result.outcome in ("failed", "error") and not stop:
                stop = True
                for other in futures:
                    other.cancel()

        for future in futures:
            future.add_done_callback(finished)
        for case, future in zip(cases, futures, strict=True):
            if future.cancelled():
                continue
            error = future.exception()
            if error is not None:
                failed = CaseResult(case.id, str(case.file), case.spec.name, "error")
                failed.message = f"worker failed: {type(error).__name__}: {error}"
                done(failed)
                yield failed
                continue
            done(future.result())  # in collection order: one progress line per file
            yield future.result()
