"""``flowengine import``: a Node-RED ``flows.json`` to a flow file (see docs/nodered-import.md).

Exit codes: 0 every node imported and the flow validates, 1 some nodes were not imported or the
result does not validate (the file is still written), 2 unreadable input.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from flowengine.flowfile import FlowDocument
from flowengine.model import parse_flow
from flowengine.nodes.nodered.convert import ImportResult, NodeRedError, import_nodered, to_yaml
from flowengine.registry import default_registry
from flowengine.validate import check_flow

EXIT_PARTIAL, EXIT_UNREADABLE = 1, 2


def _problems(text: str, result: ImportResult, output: Path | None) -> list[str]:
    """Errors of the written flow, with made-up values for the variables still to be set."""
    path = output or Path("imported.yaml")
    doc, problems = FlowDocument.parse(text, path)
    if doc is None:
        return [str(p) for p in problems]
    flow, more = parse_flow(doc)
    env = {**os.environ, **{name: "1" for name in result.env if name not in os.environ}}
    checked = check_flow(flow, default_registry(), env)
    return [str(p) for p in problems + more + checked.errors]


def _report(result: ImportResult) -> None:
    """What was not imported, the warnings and the variables to set, on stderr."""
    for unmapped in result.unmapped:
        name = f" '{unmapped.name}'" if unmapped.name else ""
        click.echo(
            f"not imported: {unmapped.type}{name} ({unmapped.id}): {unmapped.reason}", err=True
        )
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    for name, what in result.env.items():
        click.echo(f"set {name}: {what}", err=True)


@click.command("import")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the flow here instead of stdout.",
)
@click.option("--tab", help="Import only this tab (its label or id); default every tab.")
def import_cmd(source: Path, output: Path | None, tab: str | None) -> None:
    """Import a Node-RED SOURCE (flows.json) as a flowengine flow (YAML).

    Prints the nodes that were not imported and why. Credentials become ${VAR} references.
    Exit 0 when every node was imported, 1 when some were not (the flow is still written),
    2 when SOURCE cannot be read.
    """
    try:
        text = source.read_text(encoding="utf-8-sig")
        result = import_nodered(text, tab=tab)
    except (OSError, UnicodeDecodeError) as exc:
        click.echo(
            f"error: cannot read {source}: {getattr(exc, 'strerror', None) or exc}", err=True
        )
        sys.exit(EXIT_UNREADABLE)
    except NodeRedError as exc:
        click.echo(f"error: {source}: {exc}", err=True)
        sys.exit(EXIT_UNREADABLE)
    yaml_text = to_yaml(result, source.name)
    if output:
        try:
            output.write_text(yaml_text, encoding="utf-8")
        except OSError as exc:
            raise click.FileError(str(output), exc.strerror or str(exc)) from None
    else:
        click.echo(yaml_text, nl=False)
    _report(result)
    errors = _problems(yaml_text, result, output)
    for error in errors:
        click.echo(f"invalid: {error}", err=True)
    where = output or "stdout"
    nodes = len(result.flow["nodes"])
    click.echo(
        f"{source} -> {where}: {nodes} nodes imported, {len(result.unmapped)} not imported",
        err=True,
    )
    sys.exit(EXIT_PARTIAL if result.unmapped or errors else 0)
