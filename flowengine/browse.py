"""``flowengine browse URL``: list what a server holds (OPC UA nodes, Modbus registers, S7
blocks, Logix tags), to find the addresses a flow needs.

The core knows no protocol: a node family registers an async lister for its URL scheme under
the ``flowengine.browsers`` entry point group (``opc.tcp``, ``modbus``, ``s7``, ``enip``).
A lister is ``async def (url, depth, timeout) -> list[dict]``; each row has ``depth`` and, for
the tree view, ``name`` (or ``browse_name``), ``address`` (or ``node_id``), ``data_type`` (or
``node_class``) and ``value``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Coroutine
from importlib.metadata import entry_points
from typing import Any

import click

from flowengine.extras import LibraryMissing

#: The entry point group of the per-scheme listers.
BROWSERS = "flowengine.browsers"

#: A lister's reason that already names the server ("127.0.0.1:502: timeout").
_NAMED = re.compile(r"^\S+:\d+: ")

Lister = Callable[[str, int, float], Coroutine[Any, Any, list[dict[str, Any]]]]


def schemes() -> list[str]:
    """The URL schemes some installed family can browse."""
    return sorted(ep.name for ep in entry_points(group=BROWSERS))


def lister(url: str) -> Lister:
    """The lister registered for ``url``'s scheme, or a ClickException naming the known ones."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    for ep in entry_points(group=BROWSERS):
        if ep.name == scheme:
            try:
                found: Lister = ep.load()
            except Exception as exc:  # a broken family must not take the CLI down
                raise click.ClickException(f"browsing {scheme}:// failed to load: {exc}") from None
            return found
    known = ", ".join(f"{s}://" for s in schemes())
    raise click.ClickException(f"cannot browse '{url}': the URL must start with one of {known}")


def _label(scheme: str) -> str:
    return {"opc.tcp": "OPC UA server", "modbus": "Modbus device", "s7": "S7 PLC"}.get(
        scheme, "EtherNet/IP device" if scheme == "enip" else f"{scheme} server"
    )


@click.command()
@click.argument("url")
@click.option("--depth", default=3, show_default=True, help="Levels below the top.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a tree.")
@click.option("--timeout", default=4.0, show_default=True, help="Seconds per request.")
def browse(url: str, depth: int, as_json: bool, timeout: float) -> None:
    """Print what a server holds: OPC UA nodes (opc.tcp://), Modbus registers (modbus://),
    S7 blocks (s7://) or Logix tags (enip://), with types and current values."""
    fn = lister(url)
    scheme = url.partition("://")[0].lower()
    try:
        rows = asyncio.run(fn(url, depth, timeout))
    except LibraryMissing as exc:
        raise click.ClickException(str(exc)) from None
    except ValueError as exc:
        raise click.ClickException(f"cannot browse '{url}': {exc}") from None
    except (OSError, TimeoutError, ConnectionError) as exc:
        reason = str(exc) or "timeout"
        sep = " " if _NAMED.match(reason) else ": "
        raise click.ClickException(f"Failed to connect to {_label(scheme)}{sep}{reason}") from None
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    for row in rows:
        indent = "  " * (int(row.get("depth", 1)) - 1)
        name = row.get("name") or row.get("browse_name")
        address = row.get("address") or row.get("node_id")
        kind = row.get("data_type") or row.get("node_class") or ""
        value = "" if row.get("value") is None else f" = {row['value']!r}"
        click.echo(f"{indent}{name}  [{address}]  {kind}{value}")
