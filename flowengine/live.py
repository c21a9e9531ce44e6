"""What ``flowengine run`` shows while a flow runs: a live table on a terminal, log lines elsewhere."""

from __future__ import annotations

import asyncio
import logging

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


def status_table(runtime: Runtime) -> Table:
    """One row per node; rows/s is the node's own rate (:meth:`NodeStats.rows_per_s`)."""
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
        queue = " ".join(f"{len(w.items)}/{w.capacity}" for w in s.wires) or "-"
        age = f"{s.data_age:.1f}s" if s.data_age is not None else "-"
        table.add_row(
            s.node_id,
            s.type,
            f"[{STATE_STYLE[s.state]}]{s.state}[/]",
            f"{s.rows_in:,}",
            f"{s.rows_out:,}",
            f"{s.rows_per_s():,.0f}",
            str(s.errors),
            queue,
            age,
            s.text[:40],
        )
    return table


async def show_live(runtime: Runtime, console: Console, period: float = 0.5) -> None:
    """Redraw the table until cancelled."""
    with Live(
        status_table(runtime), console=console, refresh_per_second=4, transient=False
    ) as live:
        try:
            while True:
                await asyncio.sleep(period)
                live.update(status_table(runtime))
        finally:
            live.update(status_table(runtime), refresh=True)


async def log_status(runtime: Runtime, period: float) -> None:
    """Log one summary line per ``period`` seconds until cancelled."""
    while True:
        await asyncio.sleep(period)
        parts = []
        for s in runtime.stats.values():
            parts.append(f"{s.node_id}={s.state} {s.rows_per_s():.0f} rows/s")
        log.info("status: %s", "; ".join(parts))
