"""What ``flowengine run`` shows while a flow runs: a live table on a terminal, log lines elsewhere."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Protocol

from rich.console import Console
from rich.live import Live
from rich.table import Table

from flowengine.model import Flow
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
RIGHT = {"rows in", "rows out", "rows/s", "errors", "age", "on disk", "lag"}


class Watched(Protocol):
    """What the table, the status lines and ``/metrics`` read: a Runtime (nodes by id), or a
    ``--worker`` Worker (the nodes of its partitions' flows as ``<node>@p<partition>``, its
    flow's name saying which partitions it owns)."""

    @property
    def flow(self) -> Flow: ...

    @property
    def stats(self) -> Mapping[str, NodeStats]: ...

    @property
    def stopping(self) -> bool: ...


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


def status_table(runtime: Watched) -> Table:
    """One row per node; rows/s is the node's own rate (:meth:`NodeStats.rows_per_s`). The
    "on disk" column (buffers and journals) is there only when some node has one, the "lag"
    column (messages waiting for a consumer: ``nats_in``) when some node counts one."""
    table = Table(title=runtime.flow.name or str(runtime.flow.path), expand=False)
    on_disk = any(s.on_disk() is not None for s in runtime.stats.values())
    lag = any("lag" in s.counters for s in runtime.stats.values())
    extra = [*(["on disk"] if on_disk else []), *(["lag"] if lag else [])]
    for col in (*COLUMNS, *extra, "status"):
        table.add_column(col, justify="right" if col in RIGHT else "left")
    for key, s in runtime.stats.items():
        queue = " ".join(f"{len(w.items)}/{w.capacity}" for w in s.wires) or "-"
        age = f"{s.data_age:.1f}s" if s.data_age is not None else "-"
        table.add_row(
            key,
            s.type,
            f"[{STATE_STYLE[s.state]}]{s.state}[/]",
            f"{s.rows_in:,}",
            f"{s.rows_out:,}",
            f"{s.rows_per_s():,.0f}",
            str(s.errors),
            queue,
            age,
            *([disk_cell(s)] if on_disk else []),
            *([f"{s.counters['lag']:,}" if "lag" in s.counters else "-"] if lag else []),
            s.text[:40],
        )
    return table


def status_part(stats: NodeStats, name: str | None = None) -> str:
    """``db=retrying 0 rows/s, 1,234 rows buffered (2.1 MB, oldest 35s) [buffer full]``."""
    part = f"{name or stats.node_id}={stats.state} {stats.rows_per_s():.0f} rows/s"
    if "lag" in stats.counters:
        part += f", lag {stats.counters['lag']:,}"
    if (disk := stats.on_disk()) is not None:
        part += f", {disk.describe()}"
    if warning := stats.warning:
        part += f" [{warning}]"
    return part


async def show_live(runtime: Watched, console: Console, period: float = 0.5) -> None:
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


async def log_status(runtime: Watched, period: float) -> None:
    """Log one summary line per ``period`` seconds until cancelled."""
    while True:
        await asyncio.sleep(period)
        parts = (status_part(s, key) for key, s in runtime.stats.items())
        log.info("status: %s", "; ".join(parts))
