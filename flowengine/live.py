"""What ``flowengine run`` shows while a flow runs: a live table on a terminal, log lines elsewhere."""

from __future__ import annotations

import asyncio
import logging
import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

from flowengine.runtime import Runtime

log = logging.getLogger("flowengine.status")
STATE_STYLE = {
    "starting": "cyan",
    "ok": "green",
    "retrying": "yellow",
    "error": "red",
    "stopped": "dim",
}


class RateMeter:
    """Rows per second per node from successive snapshots of the counters."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int]] = {}

    def rate(self, node_id: str, rows: int) -> float:
        now = time.monotonic()
        then, before = self._last.get(node_id, (now, rows))
        self._last[node_id] = (now, rows)
        return (rows - before) / (now - then) if now > then else 0.0


def status_table(runtime: Runtime, meter: RateMeter) -> Table:
    table = Table(title=runtime.flow.name or str(runtime.flow.path), expand=False)
    for col in (
        "node",
        "type",
        "state",
        "rows in",
        "rows out",
        "rows/s",
        "errors",
        "queue",
        "age",
        "status",
    ):
        table.add_column(
            col,
            justify="right"
            if col in {"rows in", "rows out", "rows/s", "errors", "age"}
            else "left",
        )
    for s in runtime.stats.values():
        rows = s.rows_out if s.kind == "source" else s.rows_in
        queue = " ".join(f"{len(w.items)}/{w.capacity}" for w in s.wires) or "-"
        age = f"{s.data_age:.1f}s" if s.data_age is not None else "-"
        table.add_row(
            s.node_id,
            s.type,
            f"[{STATE_STYLE[s.state]}]{s.state}[/]",
            f"{s.rows_in:,}",
            f"{s.rows_out:,}",
            f"{meter.rate(s.node_id, rows):,.0f}",
            str(s.errors),
            queue,
            age,
            s.text[:40],
        )
    return table


async def show_live(runtime: Runtime, console: Console, period: float = 0.5) -> None:
    """Redraw the table until cancelled."""
    meter = RateMeter()
    with Live(
        status_table(runtime, meter), console=console, refresh_per_second=4, transient=False
    ) as live:
        try:
            while True:
                await asyncio.sleep(period)
                live.update(status_table(runtime, meter))
        finally:
            live.update(status_table(runtime, meter), refresh=True)


async def log_status(runtime: Runtime, period: float) -> None:
    """Log one summary line per ``period`` seconds until cancelled."""
    meter = RateMeter()
    while True:
        await asyncio.sleep(period)
        parts = []
        for s in runtime.stats.values():
            rows = s.rows_out if s.kind == "source" else s.rows_in
            parts.append(f"{s.node_id}={s.state} {meter.rate(s.node_id, rows):.0f} rows/s")
        log.info("status: %s", "; ".join(parts))
