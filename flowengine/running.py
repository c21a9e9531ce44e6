"""What ``flowengine run`` does around the flow (a Runtime, or a Worker of its partitions):
the metrics server, the live table or status lines, the summary and the exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from rich.console import Console

if TYPE_CHECKING:
    from flowengine.runtime import RunReport, Runtime
    from flowengine.worker import Worker

log = logging.getLogger("flowengine")
EXIT_UNDRAINED, EXIT_FORCED = 3, 130


class Forcing(Protocol):
    """The stop-signal handler of the command: ``forced`` after a second signal."""

    forced: bool


async def run_command(
    make: Callable[[], Runtime | Worker],
    on_signals: Callable[[Runtime | Worker], Forcing],
    duration: float | None,
    metrics_port: int | None,
    metrics_host: str,
    live: bool,
    console: Console,
    status_interval: float,
) -> int:
    """Run the flow until it ends or is stopped, with metrics and a display; the exit code."""
    from flowengine.metrics import MetricsServer

    runtime = make()
    signals = on_signals(runtime)
    server = (
        MetricsServer(runtime, metrics_port, metrics_host) if metrics_port is not None else None
    )
    if server:
        await server.start()
    display = start_display(runtime, live, console, status_interval)
    log.info("running %s (%d nodes)", runtime.flow.path, len(runtime.flow.nodes))
    try:
        report = await runtime.run(duration)
    except asyncio.CancelledError:
        if signals.forced:
            return EXIT_FORCED
        raise
    finally:
        if display:
            display.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await display
        if server:
            await server.close()
    return summary(runtime, report)


def start_display(
    runtime: Runtime | Worker, live: bool, console: Console, status_interval: float
) -> asyncio.Task[None] | None:
    """The live table (``--live``) or periodic status lines, as a task; None for neither."""
    from flowengine.live import log_status, show_live

    if live:
        return asyncio.create_task(show_live(runtime, console))
    if status_interval:
        return asyncio.create_task(log_status(runtime, status_interval))
    return None


def summary(runtime: Runtime | Worker, report: RunReport) -> int:
    """Log how the run ended; the exit code (undrained queues: ``EXIT_UNDRAINED``)."""
    rows = sum(s.rows_out for s in runtime.stats.values() if s.kind == "source")
    log.info(
        "stopped after %.1fs: %d rows read, %d errors%s",
        report.duration,
        rows,
        report.errors,
        "" if report.drained else f", {report.lost_batches} batches not drained",
    )
    return 0 if report.drained else EXIT_UNDRAINED
