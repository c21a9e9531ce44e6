"""``flowengine import``: a Node-RED ``flows.json`` to a flow file (see docs/nodered-import.md).

Exit codes: 0 every node imported, behaving as in Node-RED, and the flow validates; 1 some nodes
were not imported or the result does not validate (the file is still written); 2 unreadable
input; 3 imported and valid, but some nodes behave differently (the report lists them).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from flowengine.flowfile import FlowDocument
from flowengine.model import parse_flow
from flowengine.nodes.nodered.convert import (
    ImportResult,
    NodeRedError,
    import_nodered,
    report,
    to_yaml,
)
from flowengine.registry import default_registry
from flowengine.validate import check_flow

EXIT_PARTIAL, EXIT_UNREADABLE, EXIT_DIFFERENT = 1, 2, 3


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

    Prints the import report: per node what behaves differently, what was not imported and
    why, warnings, variables to set. Credentials become ${VAR} references. Exit 0 when every
    node was imported and behaves the same, 1 when some were not imported or the flow does not
    validate (it is still written), 2 when SOURCE cannot be read, 3 when it was imported but
    some nodes behave differently.
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
    click.echo(report(result, source.name), err=True, nl=False)
    errors = _problems(yaml_text, result, output)
    if errors:
        click.echo("\nDoes not validate as written:", err=True)
    for error in errors:
        click.echo(f"  invalid: {error}", err=True)
    where = output or "stdout"
    nodes = len(result.flow["nodes"])
    differ = len({d.node for d in result.differences})
    click.echo(
        f"\n{source} -> {where}: {nodes} nodes imported, {differ} behave differently, "
        f"{len(result.unmapped)} not imported",
        err=True,
    )
    if result.unmapped or errors:
        sys.exit(EXIT_PARTIAL)
    sys.exit(EXIT_DIFFERENT if result.differences else 0)
