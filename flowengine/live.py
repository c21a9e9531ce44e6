"""What ``flowengine run`` shows while a flow runs: a live table on a terminal, log lines elsewhere."""

from __future__ import annotations

import asyncio
import logging

from rich.console import Console
from rich.live import Live
from rich.table import Table

from flowengine.runtime import Runtime
from flowengine.status import NodeStats, human_age, human_bytes

log = logging.getLogger("flowengine.status")
STATE_STYLE = {
    "starting": "cyan",
    "ok": "green",
    "retrying": "yellow",
    "error": "red",
    "stopped": "dim",
}


COLUMNS = ("node", "type", "state", "rows in", "rows out", "rows/s", "errors", "queue", "age")
RIGHT = {"rows in", "rows out", "rows/s", "errors", "age", "on disk"}


def disk_cell(stats: NodeStats) -> str:
    """``1,234 rows, 2.1 MB, 35s``: what the node holds on disk (amber when it warns)."""
    disk = stats.on_disk()
    if disk is None:
        return "-"
    parts = [f"{disk.rows:,} rows", human_bytes(disk.bytes)]
    if disk.age_s is not None:
        parts.append(human_age(disk.age_s))
    text = ", ".join(parts)
    return f"[yellow]{text}[/]" if stats.warning else text


def status_table(runtime: Runtime) -> Table:
    """One row per node; rows/s is the node's own rate (:meth:`NodeStats.rows_per_s`). The
    "on disk" column (buffers and journals) is there only when some node has one."""
    table = Table(title=runtime.flow.name or str(runtime.flow.path), expand=False)
    on_disk = any(s.on_disk() is not None for s in runtime.stats.values())
    for col in (*COLUMNS, *(["on disk"] if on_disk else []), "status"):
        table.add_column(col, justify="right" if col in RIGHT else "left")
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
            *([disk_cell(s)] if on_disk else []),
            s.text[:40],
        )
    return table


def status_part(stats: NodeStats) -> str:
    """``db=retrying 0 rows/s, 1,234 rows buffered (2.1 MB, oldest 35s) [buffer full]``."""
    part = f"{stats.node_id}={stats.state} {stats.rows_per_s():.0f} rows/s"
    if (disk := stats.on_disk()) is not None:
        part += f", {disk.describe()}"
    if warning := stats.warning:
        part += f" [{warning}]"
    return part


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
        log.info("status: %s", "; ".join(status_part(s) for s in runtime.stats.values()))
